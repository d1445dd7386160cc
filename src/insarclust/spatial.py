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


def morans_i(indptr, indices, X, weight=None, row_standardise: bool = True):
    """Moran's I of each column of ``X`` on the graph: spatial autocorrelation in [-1, 1]-ish.

    ``I = N / S0 * sum_ij w_ij z_i z_j / sum_i z_i^2`` with ``z`` the centred
    column and ``S0 = sum_ij w_ij``. ``indptr`` (N+1,), ``indices`` (nnz,) CSR,
    ``weight`` (nnz,) edge weights (None = 1); ``X`` (N,) or (N, D).
    With ``row_standardise`` (the usual choice for k-NN graphs) each point's
    weights sum to 1. Points without edges (islands: a distance cap, vanishing
    weights) contribute 0 to ``S0`` and to the cross sum, and ``N`` counts only
    the others, as spdep's ``moran.test(adjust.n = TRUE)``: with ``N`` counting
    islands too, row-standardised I grows by N / (N - islands) and exceeds 1
    when many points are isolated. Near 1: neighbours alike (smooth field); about -1/(N-1): random;
    negative: neighbours unlike (checkerboard). Returns a float for (N,) input,
    a (D,) float64 array otherwise; NaN for constant columns or no edges.
    Memory: O(nnz + N D), in float64.
    """
    import scipy.sparse as sp

    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    n = len(indptr) - 1
    X = np.asarray(X, dtype=np.float64)
    squeeze = X.ndim == 1
    Z = X.reshape(n, -1)
    Z = Z - Z.mean(axis=0)
    w = np.ones(len(indices)) if weight is None else np.array(weight, dtype=np.float64)
    if row_standardise:
        row_sum = np.bincount(np.repeat(np.arange(n), np.diff(indptr)), weights=w, minlength=n).astype(np.float64)
        inv = np.divide(1.0, row_sum, out=np.zeros_like(row_sum), where=row_sum > 0)
        w *= np.repeat(inv, np.diff(indptr))
    s0 = float(w.sum())
    row_weight = np.bincount(np.repeat(np.arange(n), np.diff(indptr)), weights=np.abs(w), minlength=n)
    n_linked = int(np.count_nonzero(row_weight > 0))
    # Only W @ Z is used: scipy's canonicalising methods (W.sum(), ...) would sort
    # the caller's ``indices`` in place.
    W = sp.csr_array((w, indices, indptr), shape=(n, n))
    cross = np.einsum("ij,ij->j", Z, W @ Z)
    var = np.einsum("ij,ij->j", Z, Z)
    if not s0 > 0:
        out = np.full(Z.shape[1], np.nan)
    else:
        out = np.where(var > 0, n_linked / s0 * cross / np.where(var > 0, var, 1.0), np.nan)
    return float(out[0]) if squeeze else out
