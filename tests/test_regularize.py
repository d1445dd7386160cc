"""Resampling methods: known answers against scipy on single series."""
import numpy as np
import pytest
from scipy.interpolate import Akima1DInterpolator, PchipInterpolator

from insarclust.regularize import regular_grid, regularize, robust_trend


def _gappy(n=60, T=40, seed=0, missing=0.3):
    rng = np.random.default_rng(seed)
    dates = np.cumsum(rng.choice([6, 12], T)).astype(float)
    dates[20:] += 150  # a winter gap
    values = np.cumsum(rng.normal(0, 2, (n, T)), axis=1)
    values[rng.random((n, T)) < missing] = np.nan
    values[:, 0][::3] = np.nan  # leading gaps
    values[:, -1][::4] = np.nan  # trailing gaps
    values[5, :] = np.nan
    values[5, 7] = 3.0  # a single observation
    values[6, :] = np.nan
    values[6, [3, 9]] = [1.0, 2.0]  # two observations
    grid = regular_grid(dates, 6).astype(float)
    return values, dates, grid


def _reference(values, dates, grid, cls):
    out = np.empty((len(values), len(grid)))
    for i, row in enumerate(values):
        ok = ~np.isnan(row)
        x, y = dates[ok], row[ok]
        if ok.sum() == 1:
            out[i] = y[0]
            continue
        if cls is None or ok.sum() == 2:
            f = np.interp(grid, x, y)
        else:
            f = cls(x, y)(np.clip(grid, x[0], x[-1]))
        out[i] = f
    return out


@pytest.mark.parametrize("method,cls", [
    ("linear", None),
    ("pchip", PchipInterpolator),
    ("makima", lambda x, y: Akima1DInterpolator(x, y, method="makima")),
])
def test_matches_scipy_per_series(method, cls):
    values, dates, grid = _gappy()
    got = regularize(values, dates, grid, method)
    want = _reference(values, dates, grid, cls)
    assert got.dtype == np.float32 and not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_linear_keeps_observed_values_and_holds_ends():
    dates = np.array([0, 6, 12, 30, 36], float)
    v = np.array([[np.nan, 1.0, 3.0, np.nan, 5.0]])
    grid = regular_grid(dates, 6).astype(float)
    out = regularize(v, dates, grid, "linear")[0]
    np.testing.assert_allclose(out, [1, 1, 3, 3.5, 4, 4.5, 5], atol=1e-6)


def test_regular_grid_step():
    g = regular_grid(np.array([100, 112, 130]), 6)
    assert list(g) == [100, 106, 112, 118, 124, 130] and g.dtype == np.int32


def test_regular_grid_ends_at_the_last_epoch_that_fits_before_the_last_date():
    """The grid runs from the first to the last observed date: when the span is not a whole
    number of steps it stops at the last step before the last date and never goes past it
    (an epoch beyond the data would only repeat the held last value)."""
    assert list(regular_grid(np.array([100, 112, 131]), 6)) == [100, 106, 112, 118, 124, 130]
    assert list(regular_grid(np.array([100, 112, 135]), 6)) == [100, 106, 112, 118, 124, 130]
    assert list(regular_grid(np.array([7]), 6)) == [7]


def test_ransac_ignores_outliers_and_keeps_observations():
    rng = np.random.default_rng(1)
    dates = np.arange(0, 600, 12).astype(float)
    true = -0.02 * dates + 4.0  # -7.3 mm/yr
    v = np.tile(true, (50, 1)) + rng.normal(0, 0.5, (50, len(dates)))
    v[:, ::7] += 40.0  # gross outliers (unwrapping errors)
    v[:, 10:20] = np.nan
    slope, icpt = robust_trend(v, dates, n_trials=60, seed=0)
    np.testing.assert_allclose(slope, -0.02, atol=0.002)
    np.testing.assert_allclose(icpt, 4.0, atol=0.6)
    grid = regular_grid(dates, 6).astype(float)
    out = regularize(v, dates, grid, "ransac", seed=0)
    on_obs = np.isin(grid, dates)
    obs = v[:, np.searchsorted(dates, grid[on_obs])]
    ok = ~np.isnan(obs)
    np.testing.assert_array_equal(out[:, on_obs][ok], obs[ok].astype(np.float32))
    # unobserved grid epochs follow the robust trend, not the outliers
    gap = (grid > dates[10]) & (grid < dates[19])
    np.testing.assert_allclose(out[:, gap], (icpt[:, None] + slope[:, None] * grid[gap]), atol=1e-3)


def test_all_nan_row_is_rejected():
    with pytest.raises(ValueError, match="no observation"):
        regularize(np.full((2, 3), np.nan), np.array([0., 6, 12]), np.array([0., 6, 12]))


def test_ransac_bridges_short_gaps_and_follows_the_trend_across_long_ones():
    """12-day acquisitions on a 6-day grid: every other epoch is unobserved. With the trend in
    every gap the series zigzagged between the data and the trend line (10 mm second
    differences on an 8 mm seasonal signal); short gaps now follow the data, a winter the trend."""
    d = np.arange(17500, 17500 + 1643, 12).astype(np.float64)
    season = 8 * np.sin(2 * np.pi * d / 365.25)
    y = season - 5 * (d - d[0]) / 365.25
    grid = regular_grid(d.astype(np.int32), 6).astype(np.float64)
    R = regularize(y[None].astype(np.float32), d, grid, "ransac")[0]
    assert np.abs(np.diff(R, 2)).mean() < 0.5
    lin = regularize(y[None].astype(np.float32), d, grid, "linear")[0]
    np.testing.assert_allclose(R, lin, atol=1e-3)          # bridged along the residual: linear here
    # a 200-day winter: inside it the robust trend, not a line between its edges
    winter = (d > 18000) & (d < 18200)
    yw = y.copy()
    yw[winter] = np.nan
    Rw = regularize(yw[None].astype(np.float32), d, grid, "ransac")[0]
    inside = (grid > 18012) & (grid < 18190)
    slope = np.polyfit(d[~winter], y[~winter], 1)
    np.testing.assert_allclose(Rw[inside], np.polyval(slope, grid[inside]), atol=1.5)


def test_ransac_short_gap_with_unequal_residuals_is_the_line_between_its_observations():
    """Inside a short gap the residual from the (linear) trend is interpolated from the
    observation before towards the one after, so trend + residual is the straight line
    between the two observations at every grid epoch, not only at the gap's middle:
    np.interp of the data is the known answer. A 24-day gap on a 6-day grid puts epochs at
    a quarter, half and three quarters of it; the ends lie 0 and 4 mm off the trend."""
    d = np.arange(0, 361, 12).astype(np.float64)
    d = d[d != 192]                                      # gap 180 -> 204: 24 days
    y = 0.01 * d
    y[d == 204] += 4.0                                   # only the gap's far end is off the trend
    grid = np.arange(0, 361, 6).astype(np.float64)
    out = regularize(y[None].astype(np.float32), d, grid, "ransac", ransac_threshold_mm=0.5)[0]
    inside = (grid > 180) & (grid < 204)
    assert inside.sum() == 3
    np.testing.assert_allclose(out[inside], np.interp(grid[inside], d, y), atol=1e-4)
