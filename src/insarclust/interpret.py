"""Suggested labels for clusters from the descriptors of their mean series.

Placeholder signature (filled in by the descriptors/interpretation work):
``describe_clusters`` is what every clustering method's metrics call.
"""
from __future__ import annotations

import numpy as np

VOCABULARY = ("stable", "subsiding", "uplifting", "seasonal", "accelerating", "step")


def describe_clusters(mean_series: np.ndarray, grid_dates: np.ndarray, counts: np.ndarray,
                      thresholds: dict, member_spread: dict | None = None) -> list[dict]:
    """One dict per cluster: ``cluster``, ``size``, ``descriptors``, ``spread``, ``label``.

    mean_series (K, G) mm on the regular grid; grid_dates (G,) days since epoch;
    counts (K,); thresholds: the ``interpret:`` config section; member_spread:
    descriptor name -> (K,) std of that descriptor across cluster members.
    """
    return [{"cluster": int(j), "size": int(counts[j]), "descriptors": {}, "spread": {},
             "label": "stable"} for j in range(len(mean_series))]
