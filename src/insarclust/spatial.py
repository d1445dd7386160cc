"""Spatial statistics on the k-NN graph: label coherence (and autocorrelation)."""
from __future__ import annotations

import numpy as np


def label_coherence(indptr: np.ndarray, indices: np.ndarray, labels: np.ndarray) -> float:
    """Share of graph edges whose two ends carry the same label (NaN without edges).

    ``indptr`` (N+1,), ``indices`` (nnz,) CSR of the graph; ``labels`` (N,).
    Random labels over K equal clusters give about 1/K; a spatially coherent
    partition approaches 1.
    """
    indptr = np.asarray(indptr)
    labels = np.asarray(labels)
    if len(indices) == 0:
        return float("nan")
    src = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return float(np.mean(labels[src] == labels[np.asarray(indices)]))
