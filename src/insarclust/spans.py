"""Each point's observed span: its first and last acquisition, as grid indices.

Beyond its span ``shards`` holds a point's first/last value on the regular
grid (a point of a later product release, a scatterer that appeared late);
the descriptors and the cluster mean series count a point on its span only.
The shards stage stores the spans (``/series/span``, ``/components/{name}/span``)
so later stages do not scan the raw displacements again;
:meth:`insarclust.h5io.Shards.spans` derives them for files built before.

Inside its span a point may still miss months (masked by a coherence
threshold for a season or a year) while the site has acquisitions: the grid
is interpolated across such a hole as across a winter, and
:func:`observed_holes` finds them for the descriptor fit and for the cluster
means (:mod:`insarclust.cluster_series`), which leave them out.
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


def observed_holes(displacement: np.ndarray, dates: np.ndarray, grid_dates: np.ndarray,
                   max_gap_days: float, site_dates: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's interior gaps longer than ``max_gap_days`` between two of its own values of
    ``displacement`` (n, T) on ``dates`` (T,): ``(rows, lo, hi)`` int64 (m,), one per hole,
    sorted by row, with ``lo..hi`` the grid indices strictly between the two dates (the rule
    :func:`insarclust.descriptors.observed_grid_mask` applies to the site's dates).

    With the site's acquisition dates ``site_dates``, a gap counts only the time the site
    observes (none of its own gaps > ``max_gap_days``, the winters): a point missing the last
    acquisition before a winter has a gap of a revisit, not of a winter (its one interpolated
    epoch sits next to its last value, as for any single missing acquisition), while a point
    masked for a summer has a hole. Without them, every gap counts in full."""
    grid = np.asarray(grid_dates, dtype=np.float64)
    dates = np.asarray(dates, dtype=np.float64)
    clock = dates if site_dates is None else site_time(dates, site_dates, max_gap_days)
    missing = np.isnan(np.asarray(displacement))
    none = np.zeros(0, dtype=np.int64)
    T = missing.shape[1]
    if T < 2:
        return none, none, none
    # a hole is a run of at least `run` missing values (the fewest between two dates more than
    # max_gap_days apart): rows without one, the common case, cost a few vectorised passes
    # (~0.04 s per 100,000 rows of 263 dates); the others are scanned
    reach = np.searchsorted(clock, clock + max_gap_days, side="right")   # first date too far
    if (np.diff(clock) < 0).any():
        run = 1
    elif (reach < T).any():
        run = max(int((reach - np.arange(T) - 1)[reach < T].min()), 1)
    else:
        return none, none, none
    if run < T:
        runs = missing[:, :T - run + 1].copy()
        for i in range(1, run):
            runs &= missing[:, i:T - run + 1 + i]
        cand = np.flatnonzero(runs.any(axis=1))
    else:
        cand = none
    if len(cand) == 0:
        return none, none, none
    v = ~missing[cand]
    prev = np.maximum.accumulate(np.where(v, np.arange(T), -1), axis=1)[:, :-1]
    gap = clock[1:] - clock[np.maximum(prev, 0)]
    r, j = np.nonzero(v[:, 1:] & (prev >= 0) & (gap > max_gap_days))
    before, after = dates[prev[r, j]], dates[j + 1]
    lo = np.searchsorted(grid, before, side="right")
    hi = np.searchsorted(grid, after, side="left") - 1
    keep = lo <= hi
    return cand[r[keep]].astype(np.int64), lo[keep].astype(np.int64), hi[keep].astype(np.int64)


def site_time(dates: np.ndarray, site_dates: np.ndarray, max_gap_days: float) -> np.ndarray:
    """(T,) days of the site's observed time up to each of ``dates``: the days between two
    consecutive ``site_dates`` count when they are at most ``max_gap_days`` apart."""
    site = np.unique(np.asarray(site_dates, dtype=np.float64))
    if len(site) < 2:
        return np.asarray(dates, dtype=np.float64)
    step = np.diff(site)
    clock = np.r_[0.0, np.cumsum(np.where(step <= max_gap_days, step, 0.0))]
    # flat across a site gap; beyond the site's first and last date the calendar runs on
    dates = np.asarray(dates, dtype=np.float64)
    return np.interp(dates, site, clock) + np.minimum(dates - site[0], 0) + np.maximum(dates - site[-1], 0)


def span_mask(spans: np.ndarray, n_grid: int) -> np.ndarray:
    """(n, G) bool: grid epochs inside each row's observed span ``spans (n, 2)`` (first, last)."""
    cols = np.arange(n_grid)
    return (cols >= spans[:, :1]) & (cols <= spans[:, 1:])


def acquisition_gaps(observed_dates, max_gap_days: float = 36.0) -> list[tuple[int, int]]:
    """``(start, end)`` days of every stretch longer than ``max_gap_days`` between consecutive
    acquisitions (e.g. the snow season): the regular series there is interpolated, not observed."""
    d = np.sort(np.asarray(observed_dates, dtype=np.int64))
    if len(d) < 2:
        return []
    wide = np.flatnonzero(np.diff(d) > max_gap_days)
    return [(int(d[i]), int(d[i + 1])) for i in wide]
