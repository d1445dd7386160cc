"""Resample irregular, gappy displacement series onto a regular time grid.

All methods are vectorised over a block of series (one shard at a time): each
series has its own missing epochs, so the observed samples of every row are
first *compacted* to the left of an (n, T) array; interval search, slopes and
Hermite evaluation then run as array operations, with no per-series loop.

Treatment of gaps (the same for every method unless stated):

* inside the observed span: the method's interpolant through the observed
  samples (``linear``, ``pchip``, ``makima``), or the robust trend
  (``ransac``: observed grid epochs keep their value; inside a gap of up to
  :data:`RANSAC_SHORT_GAP_DAYS` between two observations (a missed acquisition,
  the 12-day revisit on a 6-day grid) the trend plus the residual interpolated
  linearly between them, so the series stays continuous; inside longer gaps
  (winters) the robust trend);
* before the first / after the last observation (leading/trailing gaps): the
  first / last observed value is held constant; cubic or linear
  extrapolation of a noisy end point would invent motion. ``ransac`` instead
  continues its robust trend, which is its purpose;
* a series with a single observation is constant;
* a series with no observation at all cannot be resampled: the ``shards``
  stage rejects it (or drops it with ``shards.all_nan: drop``).
"""
from __future__ import annotations

import numpy as np

METHODS = ("linear", "pchip", "makima", "ransac")
# ransac: gaps up to this long are bridged along the residual, longer ones follow the trend
# (three 12-day revisits, as the descriptors' max_gap_days). With the trend in every gap,
# a 12-day revisit on a 6-day grid alternated between the data and the trend line.
RANSAC_SHORT_GAP_DAYS = 36.0


def regular_grid(dates: np.ndarray, step_days: int) -> np.ndarray:
    """Regular grid (G,) int32 from the first to the last observed epoch (days)."""
    dates = np.asarray(dates)
    n = int((dates[-1] - dates[0]) // step_days) + 1
    return (dates[0] + step_days * np.arange(n)).astype(np.int32)


def _compact(values: np.ndarray, dates: np.ndarray):
    """Left-justify the observed samples of each row.

    Returns x (n,T) float64 dates, y (n,T) float64 values (padding repeats the
    last observation so that padded intervals have zero length and no NaN),
    and count (n,) of observations.
    """
    n, T = values.shape
    mask = ~np.isnan(values)
    count = mask.sum(axis=1)
    # stable sort puts observed columns first, in date order
    order = np.argsort(~mask, axis=1, kind="stable")
    y = np.take_along_axis(values, order, axis=1).astype(np.float64)
    x = np.broadcast_to(np.asarray(dates, dtype=np.float64), (n, T))
    x = np.take_along_axis(x, order, axis=1)
    last = np.maximum(count - 1, 0)[:, None]
    pad = np.arange(T)[None, :] > last
    x = np.where(pad, np.take_along_axis(x, last, axis=1), x)
    y = np.where(pad, np.take_along_axis(y, last, axis=1), y)
    return x, y, count


def _locate(values: np.ndarray, dates: np.ndarray, grid: np.ndarray, count: np.ndarray):
    """Interval index k (n,G) of each grid date among the row's observations.

    k = (number of observations at or before the grid date) - 1, clipped to
    [0, count-2] so that k, k+1 is always a valid pair when count >= 2.
    """
    mask = ~np.isnan(values)
    cum = np.cumsum(mask, axis=1)
    j = np.searchsorted(dates, grid, side="right")  # epochs <= grid date
    n_le = np.where(j[None, :] > 0, cum[:, np.maximum(j - 1, 0)], 0)
    k = np.clip(n_le - 1, 0, np.maximum(count - 2, 0)[:, None])
    return k, n_le


def _secants(x, y, count):
    h = np.diff(x, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(h > 0, np.diff(y, axis=1) / np.where(h > 0, h, 1.0), 0.0)
    valid = np.arange(h.shape[1])[None, :] < (count - 1)[:, None]
    return np.where(valid, h, 0.0), np.where(valid, delta, 0.0), valid


def _pchip_slopes(x, y, count):
    """Fritsch-Carlson monotone slopes at each observed sample (as scipy's PCHIP)."""
    h, delta, valid = _secants(x, y, count)
    n, T = x.shape
    d = np.zeros((n, T))
    if T < 3:
        d[:, :T - 1] = delta
        d[:, 1:] = np.where(valid, delta, d[:, 1:])
        return d
    h0, h1 = h[:, :-1], h[:, 1:]
    m0, m1 = delta[:, :-1], delta[:, 1:]
    w1 = 2 * h1 + h0
    w2 = h1 + 2 * h0
    same_sign = (np.sign(m0) * np.sign(m1)) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        whmean = (w1 / np.where(m0 != 0, m0, 1) + w2 / np.where(m1 != 0, m1, 1)) / (w1 + w2)
        interior = np.where(same_sign, 1.0 / whmean, 0.0)
    inner_valid = np.arange(1, T - 1)[None, :] < (count - 1)[:, None]
    d[:, 1:-1] = np.where(inner_valid, interior, 0.0)
    # end points: non-centred three-point formula, shape preserving (scipy's _edge_case)
    rows = np.arange(n)
    d[:, 0] = _pchip_edge(h[:, 0], h[:, 1] if T > 2 else h[:, 0], delta[:, 0],
                          delta[:, 1] if T > 2 else delta[:, 0])
    last = np.maximum(count - 1, 0)
    hl0 = h[rows, np.clip(last - 1, 0, T - 2)]
    hl1 = h[rows, np.clip(last - 2, 0, T - 2)]
    ml0 = delta[rows, np.clip(last - 1, 0, T - 2)]
    ml1 = delta[rows, np.clip(last - 2, 0, T - 2)]
    d_end = _pchip_edge(hl0, hl1, ml0, ml1)
    two = count == 2  # a single interval: linear
    d[:, 0] = np.where(two, delta[:, 0], d[:, 0])
    d_end = np.where(two, delta[:, 0], d_end)
    d[rows, last] = d_end
    return d


def _pchip_edge(h0, h1, m0, m1):
    with np.errstate(divide="ignore", invalid="ignore"):
        d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    d = np.where(np.isfinite(d), d, 0.0)
    d = np.where(np.sign(d) != np.sign(m0), 0.0, d)
    d = np.where((np.sign(m0) != np.sign(m1)) & (np.abs(d) > np.abs(3 * m0)), 3 * m0, d)
    return d


def _makima_slopes(x, y, count):
    """Modified Akima slopes (as scipy's Akima1DInterpolator(method="makima"))."""
    h, delta, valid = _secants(x, y, count)
    n, T = x.shape
    rows = np.arange(n)
    c = np.maximum(count - 1, 1)  # number of secants
    # extend the secants by two on each side (linear extrapolation of slopes)
    m = np.zeros((n, T + 3))
    m[:, 2:T + 1] = delta
    m[:, 1] = 2 * m[:, 2] - m[:, 3]
    m[:, 0] = 2 * m[:, 1] - m[:, 2]
    e1 = 2 * m[rows, c + 1] - m[rows, c]
    m[rows, c + 2] = e1
    m[rows, np.minimum(c + 3, T + 2)] = 2 * e1 - m[rows, c + 1]
    dm = np.abs(np.diff(m, axis=1))
    pm = np.abs(m[:, 1:] + m[:, :-1])
    f1 = dm[:, 2:T + 2] + 0.5 * pm[:, 2:T + 2]
    f2 = dm[:, 0:T] + 0.5 * pm[:, 0:T]
    f12 = f1 + f2
    mi, mi1 = m[:, 1:T + 1], m[:, 2:T + 2]
    big = f12 > 1e-9 * np.maximum(np.max(f12, axis=1, keepdims=True), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(big & (f12 > 0), (f1 * mi + f2 * mi1) / np.where(f12 > 0, f12, 1), 0.5 * (mi + mi1))
    two = count == 2
    d = np.where(two[:, None], delta[:, :1], d)
    return d


def _hermite(x, y, d, k, grid):
    """Evaluate the cubic Hermite interpolant on interval k at the grid dates."""
    x0 = np.take_along_axis(x, k, axis=1)
    x1 = np.take_along_axis(x, k + 1, axis=1)
    y0 = np.take_along_axis(y, k, axis=1)
    y1 = np.take_along_axis(y, k + 1, axis=1)
    d0 = np.take_along_axis(d, k, axis=1)
    d1 = np.take_along_axis(d, k + 1, axis=1)
    h = x1 - x0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(h > 0, (grid[None, :] - x0) / np.where(h > 0, h, 1), 0.0)
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * h * d0
            + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * h * d1)


def _hold_ends(out, x, y, count, grid):
    first_x, first_y = x[:, :1], y[:, :1]
    last = np.maximum(count - 1, 0)[:, None]
    last_x = np.take_along_axis(x, last, axis=1)
    last_y = np.take_along_axis(y, last, axis=1)
    out = np.where(grid[None, :] < first_x, first_y, out)
    out = np.where(grid[None, :] > last_x, last_y, out)
    return out


def robust_trend(values: np.ndarray, dates: np.ndarray, n_trials: int = 50,
                 threshold_mm: float | None = None, seed: int = 0):
    """RANSAC line per series, vectorised over rows.

    Each trial draws two observed samples per row, fits the line through them
    and counts inliers within the threshold; the best line (most inliers) is
    refitted by least squares on its inliers. The threshold defaults to 2.5x
    the robust (MAD) scale of the least-squares residuals of each row.
    Returns slope (n,) mm/day and intercept (n,) mm at ``dates[0]``.
    """
    rng = np.random.default_rng(seed)
    x, y, count = _compact(values, dates)
    x = x - float(dates[0])
    n, T = x.shape
    valid = np.arange(T)[None, :] < count[:, None]
    # least-squares start for the default threshold
    slope0, icpt0 = _weighted_line(x, y, valid.astype(float))
    if threshold_mm is None:
        res = np.where(valid, y - (icpt0[:, None] + slope0[:, None] * x), np.nan)
        mad = np.nanmedian(np.abs(res - np.nanmedian(res, axis=1, keepdims=True)), axis=1)
        thr = np.maximum(2.5 * 1.4826 * mad, 1e-6)
    else:
        thr = np.full(n, float(threshold_mm))
    best_inliers = np.full(n, -1)
    best_mask = valid.copy()
    cnt = np.maximum(count, 1)
    rows = np.arange(n)
    for _ in range(n_trials):
        i = (rng.random(n) * cnt).astype(np.int64)
        j = (rng.random(n) * cnt).astype(np.int64)
        xi, xj, yi, yj = x[rows, i], x[rows, j], y[rows, i], y[rows, j]
        dx = xj - xi
        ok = dx != 0
        s = np.where(ok, (yj - yi) / np.where(ok, dx, 1.0), 0.0)
        b = yi - s * xi
        inl = valid & (np.abs(y - (b[:, None] + s[:, None] * x)) <= thr[:, None])
        n_in = np.where(ok, inl.sum(axis=1), -1)
        better = n_in > best_inliers
        best_inliers = np.where(better, n_in, best_inliers)
        best_mask = np.where(better[:, None], inl, best_mask)
    use = np.where((best_inliers >= 2)[:, None], best_mask, valid)
    slope, icpt = _weighted_line(x, y, use.astype(float))
    return slope, icpt


def _weighted_line(x, y, w):
    sw = w.sum(axis=1)
    sw_safe = np.maximum(sw, 1e-12)
    mx = (w * x).sum(axis=1) / sw_safe
    my = (w * y).sum(axis=1) / sw_safe
    sxx = (w * (x - mx[:, None]) ** 2).sum(axis=1)
    sxy = (w * (x - mx[:, None]) * (y - my[:, None])).sum(axis=1)
    slope = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1), 0.0)
    return slope, my - slope * mx


def _copy_columns(out: np.ndarray, values: np.ndarray, dst: np.ndarray, src: np.ndarray) -> None:
    """``out[:, dst] = values[:, src]``, as slice copies where both step by one
    (a grid on the acquisition cadence is one or a few such runs; a fancy
    column gather is several times slower)."""
    if len(dst) == 0:
        return
    brk = np.flatnonzero((np.diff(dst) != 1) | (np.diff(src) != 1)) + 1
    if len(brk) > 8:
        out[:, dst] = values[:, src]
        return
    for a, b in zip(np.r_[0, brk], np.r_[brk, len(dst)]):
        out[:, dst[a]:dst[b - 1] + 1] = values[:, src[a]:src[b - 1] + 1]


def _linear(values: np.ndarray, dates: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation with end holds, float32, in the original (n, T) layout.

    Grid epochs that coincide with an observation take it as is; only the
    remaining cells (gaps, off-cadence grid epochs) are interpolated. The
    missing cells are grouped into gaps (runs of NaN within a row); a cell's
    previous/next observations are the cells just outside its gap, so the
    cost follows the number of missing cells, not n x T.
    """
    n, T = values.shape
    G = len(grid)
    pos = np.searchsorted(dates, grid, side="left")
    on = (pos < T) & (dates[np.minimum(pos, T - 1)] == grid)
    out = np.empty((n, G), dtype=np.float32)
    _copy_columns(out, values, np.flatnonzero(on), pos[on])

    # Gaps: maximal runs of missing cells within a row (flat, row-major indices).
    nan_flat = np.flatnonzero(np.isnan(values))
    first = np.ones(len(nan_flat), dtype=bool)           # first cell of its gap
    first[1:] = (nan_flat[1:] != nan_flat[:-1] + 1) | (nan_flat[1:] % T == 0)
    last = np.ones(len(nan_flat), dtype=bool)
    last[:-1] = first[1:]
    gap = np.cumsum(first) - 1
    gap_first, gap_last = nan_flat[first], nan_flat[last]
    del first, last

    # Missing cells on grid epochs: the observations just outside their gap.
    grid_col = np.full(T, -1, dtype=np.int64)
    grid_col[pos[on]] = np.flatnonzero(on)
    cell_row, cell_col = np.divmod(nan_flat, T)
    gc = grid_col[cell_col]
    hit = gc >= 0
    row0 = (cell_row * T)[hit]
    r, c = cell_row[hit], gc[hit]
    p = gap_first[gap[hit]] - row0 - 1                   # -1: no observation before
    q = gap_last[gap[hit]] - row0 + 1                    # T: no observation after
    del cell_row, cell_col, gc, hit

    # Off-cadence grid epochs: every row, between the epochs around the grid date.
    off = np.flatnonzero(~on)
    if len(off):
        j = np.searchsorted(dates, grid[off], side="right") - 1   # last epoch before (-1: none)
        rows = np.repeat(np.arange(n, dtype=np.int64), len(off))
        offc = np.tile(off, n)
        jp = np.tile(j, n).astype(np.int64)
        jq = jp + 1
        row0_off = rows * T

        def outside(col, before):
            res = col.copy()
            cell = row0_off + col
            inside = (col >= 0) & (col < T)
            k = np.searchsorted(nan_flat, cell[inside])
            k_ok = np.minimum(k, max(len(nan_flat) - 1, 0))
            missing = np.zeros(len(col), dtype=bool)
            if len(nan_flat):
                missing[inside] = nan_flat[k_ok] == cell[inside]
            g = gap[np.searchsorted(nan_flat, cell[missing])]
            res[missing] = (gap_first[g] - row0_off[missing] - 1) if before else (gap_last[g] - row0_off[missing] + 1)
            return res

        r = np.concatenate([r, rows])
        c = np.concatenate([c, offc])
        p = np.concatenate([p, outside(jp, True)])
        q = np.concatenate([q, outside(jq, False)])
    if len(r) == 0:
        return out
    # leading gap: hold the first observation; trailing gap: hold the last
    p = np.where(p < 0, q, p)
    q = np.where(q >= T, p, q)
    flat = values.reshape(-1)
    base = r * T
    y0, y1 = flat[base + p], flat[base + q]
    g = grid[c]
    x0, x1 = dates[p], dates[q]
    h = x1 - x0
    t = np.where(h > 0, (g - x0) / np.where(h > 0, h, 1), 0.0)
    out[r, c] = y0 + t.astype(np.float32) * (y1 - y0)
    return out


def regularize(values: np.ndarray, dates: np.ndarray, grid: np.ndarray, method: str = "linear",
               ransac_trials: int = 50, ransac_threshold_mm: float | None = None,
               seed: int = 0) -> np.ndarray:
    """Resample (n, T) series with NaN gaps, observed at ``dates``, onto ``grid``.

    values (n, T) float mm; dates (T,) and grid (G,) in days. Returns (n, G)
    float32 without NaN. Rows without any observation raise ValueError.
    """
    if method not in METHODS:
        raise ValueError(f"unknown regularization method '{method}'; choose one of {METHODS}")
    if method == "linear":
        values = np.asarray(values, dtype=np.float32)
        if len(values) and np.isnan(values).all(axis=1).any():
            raise ValueError(f"{int(np.isnan(values).all(axis=1).sum())} series have no observation")
        if len(values) == 0:
            return np.zeros((0, len(grid)), dtype=np.float32)
        return _linear(values, np.asarray(dates, dtype=np.float64), np.asarray(grid, dtype=np.float64))
    values = np.asarray(values, dtype=np.float64)
    dates = np.asarray(dates, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    n, T = values.shape
    if n == 0:
        return np.zeros((0, len(grid)), dtype=np.float32)
    x, y, count = _compact(values, dates)
    if (count == 0).any():
        raise ValueError(f"{int((count == 0).sum())} series have no observation")
    k, n_le = _locate(values, dates, grid, count)
    if method == "ransac":
        slope, icpt = robust_trend(values, dates, ransac_trials, ransac_threshold_mm, seed)
        out = icpt[:, None] + slope[:, None] * (grid[None, :] - dates[0])
        # inside short gaps: the residual from the trend, interpolated between the observations
        resid = y - (icpt[:, None] + slope[:, None] * (x - dates[0]))
        k1 = np.minimum(k + 1, T - 1)
        x0, x1 = np.take_along_axis(x, k, axis=1), np.take_along_axis(x, k1, axis=1)
        r0, r1 = np.take_along_axis(resid, k, axis=1), np.take_along_axis(resid, k1, axis=1)
        span = x1 - x0
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(span > 0, (grid[None, :] - x0) / np.where(span > 0, span, 1.0), 0.0)
        inside = (grid[None, :] >= x[:, :1]) & (grid[None, :] <= np.take_along_axis(
            x, np.maximum(count - 1, 0)[:, None], axis=1))
        bridged = inside & (span <= RANSAC_SHORT_GAP_DAYS) & (t >= 0) & (t <= 1)
        out = np.where(bridged, out + r0 + t * (r1 - r0), out)
        # observed values kept where a grid epoch coincides with an observation
        pos = np.searchsorted(dates, grid)
        pos_c = np.minimum(pos, T - 1)
        hit = (pos < T) & (dates[pos_c] == grid)
        obs = values[:, pos_c]
        keep = hit[None, :] & ~np.isnan(obs)
        out = np.where(keep, obs, out)
        return out.astype(np.float32)
    d = _pchip_slopes(x, y, count) if method == "pchip" else _makima_slopes(x, y, count)
    out = _hermite(x, y, d, k, grid) if T > 1 else np.repeat(y[:, :1], len(grid), 1)
    out = _hold_ends(out, x, y, count, grid)
    single = count == 1
    if single.any():
        out[single] = y[single, :1]
    return out.astype(np.float32)
