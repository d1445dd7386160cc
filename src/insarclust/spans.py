"""Each point's observed span: its first and last acquisition, as grid indices.

Beyond its span ``shards`` holds a point's first/last value on the regular
grid (a point of a later product release, a scatterer that appeared late);
the descriptors and the cluster mean series count a point on its span only.
The shards stage stores the spans (``/series/span``, ``/components/{name}/span``)
so later stages do not scan the raw displacements again;
:meth:`insarclust.h5io.Shards.spans` derives them for files built before.
"""
from __future__ import annotations

import numpy as np


def half_step(grid: np.ndarray) -> float:
    """Half the (median) step of a regular grid, in days (0 for a single epoch)."""
    return 0.5 * float(np.median(np.diff(grid))) if len(grid) > 1 else 0.0


def first_last(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of (n, T) bool ``valid``: whether it has any True, and its first and last True column."""
    T = valid.shape[1]
    return valid.any(axis=1), np.argmax(valid, axis=1), T - 1 - np.argmax(valid[:, ::-1], axis=1)


def observed_spans(displacement: np.ndarray, dates: np.ndarray, grid_dates: np.ndarray) -> np.ndarray:
    """(n, 2) int32 first and last grid index of each row's observed values (``/series/displacement``
    (n, T) on ``dates`` (T,)); a row without any value gets the whole grid."""
    grid = np.asarray(grid_dates, dtype=np.float64)
    has, first_col, last_col = first_last(~np.isnan(np.asarray(displacement)))
    dates = np.asarray(dates, dtype=np.float64)
    first, last = dates[first_col], dates[last_col]
    half = half_step(grid)
    a = np.searchsorted(grid, first - half, side="left")
    b = np.searchsorted(grid, last + half, side="right") - 1
    a = np.where(has, np.clip(a, 0, len(grid) - 1), 0)
    b = np.where(has, np.clip(b, 0, len(grid) - 1), len(grid) - 1)
    return np.stack([a, np.maximum(a, b)], axis=1).astype(np.int32)


def span_mask(spans: np.ndarray, n_grid: int) -> np.ndarray:
    """(n, G) bool: grid epochs inside each row's observed span ``spans (n, 2)`` (first, last)."""
    cols = np.arange(n_grid)
    return (cols >= spans[:, :1]) & (cols <= spans[:, 1:])
