"""Known answers for the per-series descriptors, with the winter gaps of northern sites."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from insarclust import h5io
from insarclust.descriptors import (DESCRIPTOR_NAMES, DescriptorModel, acquisition_dates,
                                    compute_descriptors, model_curve, observed_grid_mask,
                                    step_or_trend, write_descriptors)

from conftest import make_shards_file

COL = {name: i for i, name in enumerate(DESCRIPTOR_NAMES)}


def _day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


def northern_acquisitions(start="2018-06-01", years=4.5, revisit_days=6):
    """Sentinel-1 epochs with no acquisition from 1 November to 30 April (snow)."""
    dates = _day(start) + revisit_days * np.arange(int(years * 365.25 / revisit_days))
    month = (dates.astype("datetime64[D]").astype("datetime64[M]").astype(int) % 12) + 1
    return dates[(month >= 5) & (month <= 10)].astype(np.int32)


def regular_grid(acq, step_days=6):
    return (acq[0] + step_days * np.arange((acq[-1] - acq[0]) // step_days + 1)).astype(np.int32)


def signal(dates, grid, trend=0.0, accel=0.0, amplitude=0.0, peak_doy=1.0, step=0.0,
           step_date=None):
    """The descriptor model itself, evaluated on ``dates`` (reference: middle of ``grid``)."""
    ref = 0.5 * (grid[0] + grid[-1])
    t = (dates - ref) / 365.25
    y = trend * t + 0.5 * accel * t ** 2
    y = y + amplitude * np.cos(2 * np.pi * (dates - (peak_doy - 1)) / 365.25)
    if step_date is not None:
        y = y + step * (dates >= step_date)
    return y


def regularize_linear(acq, grid, observed):
    """Linear interpolation onto the grid, as the shards stage does (ends held)."""
    return np.stack([np.interp(grid, acq, row) for row in observed]).astype(np.float32)


@pytest.fixture(scope="module")
def northern():
    acq = northern_acquisitions()
    return acq, regular_grid(acq)


def test_observed_grid_mask_keeps_the_epochs_backed_by_an_acquisition():
    acq = np.array([0, 12, 24, 48, 60, 200, 212])
    grid = np.arange(0, 213, 6)
    mask = observed_grid_mask(grid, acq, max_gap_days=36)
    # a 12-day revisit and a missed acquisition on a 6-day grid: only the epochs on an
    # acquisition are data, the others are interpolated between them
    # (the last acquisition, day 212, backs the grid's last epoch, day 210)
    np.testing.assert_array_equal(mask, np.isin(grid, acq) | (grid == 210))
    # inside the 140-day gap nothing; its end points are acquisitions
    assert not mask[(grid > 60) & (grid < 200)].any()
    assert mask[grid == 60].all() and mask[grid == 200].all()
    # an acquisition between grid epochs backs the nearest one (a second track 2 days later)
    shifted = observed_grid_mask(grid, np.array([0, 12, 26, 38, 50]), max_gap_days=36)
    np.testing.assert_array_equal(np.flatnonzero(shifted), [0, 2, 4, 6, 8])
    assert observed_grid_mask(grid, None).all()


def test_noise_free_series_recovered_exactly(northern):
    acq, grid = northern
    step_date = _day("2020-07-15")
    truth = dict(trend=-6.0, accel=-2.0, amplitude=7.0, peak_doy=200.0, step=15.0, step_date=step_date)
    regular = regularize_linear(acq, grid, signal(acq, grid, **truth)[None, :])
    d = compute_descriptors(regular, grid, observed_dates=acq)[0]
    assert d[COL["trend_mm_yr"]] == pytest.approx(-6.0, abs=1e-2)
    assert d[COL["acceleration_mm_yr2"]] == pytest.approx(-2.0, abs=1e-2)
    assert d[COL["annual_amplitude_mm"]] == pytest.approx(7.0, abs=1e-2)
    assert d[COL["annual_peak_doy"]] == pytest.approx(200.0, abs=0.5)
    assert d[COL["step_mm"]] == pytest.approx(15.0, abs=1e-2)
    # the step lies between the last epoch before and the first on/after its date
    assert acq[acq < step_date].max() < d[COL["step_date"]] <= acq[acq >= step_date].min()
    assert d[COL["residual_rms_mm"]] < 1e-2
    # model_curve redraws the fitted series on the grid (winter epochs are the model, not the line)
    curve = model_curve(d, grid)
    expected = signal(grid.astype(float), grid, **truth)
    assert np.abs(curve - expected).max() < 0.05
    assert model_curve(dict(zip(DESCRIPTOR_NAMES, d)), grid) == pytest.approx(curve)


def test_noisy_series_with_winter_gaps_within_tolerances(northern):
    """300 series, white noise 1.5 mm at the acquisitions, Nov-Apr unobserved.

    Stated tolerances per series: trend 1.0 mm/yr, acceleration 1.0 mm/yr^2,
    amplitude 1.5 mm, peak 15 days, step 2.5 mm, step date one grid step,
    residual RMS within 20 % of the noise. Means over the 300 series are
    unbiased to within a fifth of those.
    """
    acq, grid = northern
    rng = np.random.default_rng(1)
    n, sigma = 300, 1.5
    step_date = _day("2020-08-10")
    truth = dict(trend=4.0, accel=1.2, amplitude=5.0, peak_doy=30.0, step=-10.0, step_date=step_date)
    observed = signal(acq, grid, **truth)[None, :] + rng.normal(0, sigma, (n, len(acq)))
    D = compute_descriptors(regularize_linear(acq, grid, observed), grid, observed_dates=acq)
    checks = [("trend_mm_yr", 4.0, 1.0), ("acceleration_mm_yr2", 1.2, 1.0),
              ("annual_amplitude_mm", 5.0, 1.5), ("step_mm", -10.0, 2.5),
              ("residual_rms_mm", sigma, 0.2 * sigma)]
    for name, value, tol in checks:
        col = D[:, COL[name]]
        assert np.abs(col - value).max() < tol, name
        assert abs(col.mean() - value) < tol / 5, name
    # peak day of year 30 (end of January, in the unobserved winter): circular difference
    diff = (D[:, COL["annual_peak_doy"]] - 30.0 + 182.625) % 365.25 - 182.625
    assert np.abs(diff).max() < 15
    assert np.abs(D[:, COL["step_date"]] - step_date).max() <= 6


def test_gap_weighting_matters_for_the_annual_amplitude(northern):
    """Without the acquisition dates the interpolated winter lines shrink the amplitude."""
    acq, grid = northern
    regular = regularize_linear(acq, grid, signal(acq, grid, amplitude=8.0, peak_doy=40.0)[None, :])
    with_gaps = compute_descriptors(regular, grid, observed_dates=acq)[0, COL["annual_amplitude_mm"]]
    without = compute_descriptors(regular, grid)[0, COL["annual_amplitude_mm"]]
    assert with_gaps == pytest.approx(8.0, abs=0.05)
    assert without < 6.0


def test_step_inside_a_winter_gap_is_found_across_it(northern):
    acq, grid = northern
    rng = np.random.default_rng(2)
    step_date = _day("2021-01-15")
    observed = (signal(acq, grid, trend=3.0, amplitude=3.0, peak_doy=30.0, step=-12.0,
                       step_date=step_date)[None, :] + rng.normal(0, 1.5, (100, len(acq))))
    D = compute_descriptors(regularize_linear(acq, grid, observed), grid, observed_dates=acq)
    assert np.abs(D[:, COL["step_mm"]] + 12.0).max() < 2.5
    before, after = acq[acq < step_date].max(), acq[acq > step_date].min()
    # the date is the middle of the gap: between the last autumn and first spring acquisition
    assert ((D[:, COL["step_date"]] > before) & (D[:, COL["step_date"]] < after)).all()


def test_no_step_reports_a_step_below_the_noise_level(northern):
    acq, grid = northern
    rng = np.random.default_rng(3)
    n = 500
    observed = (signal(acq, grid, trend=-5.0, accel=0.5, amplitude=4.0, peak_doy=250.0)[None, :]
                + rng.normal(0, 2.0, (n, len(acq))))
    D = compute_descriptors(regularize_linear(acq, grid, observed), grid, observed_dates=acq)
    step, rms = np.abs(D[:, COL["step_mm"]]), D[:, COL["residual_rms_mm"]]
    assert np.median(step) == 0.0
    # the significance gate (z >= 4.5) lets through about 0.1 % of pure-noise series
    assert np.mean(step < rms) >= 0.99
    assert np.abs(D[:, COL["trend_mm_yr"]] + 5.0).max() < 1.2


def test_small_real_step_is_detected(northern):
    """A step of 3x the noise is found in (nearly) every series."""
    acq, grid = northern
    rng = np.random.default_rng(4)
    step_date = _day("2019-09-01")
    observed = (signal(acq, grid, step=6.0, step_date=step_date)[None, :]
                + rng.normal(0, 2.0, (200, len(acq))))
    D = compute_descriptors(regularize_linear(acq, grid, observed), grid, observed_dates=acq)
    assert np.mean(np.abs(D[:, COL["step_mm"]] - 6.0) < 2.0) >= 0.95


def test_peak_day_wraps_around_new_year():
    grid = np.arange(17500, 17500 + 6 * 300, 6).astype(np.int32)
    for peak in (3.0, 362.0, 183.0):
        regular = signal(grid.astype(float), grid, amplitude=5.0, peak_doy=peak)[None, :]
        d = compute_descriptors(regular.astype(np.float32), grid)[0]
        diff = (d[COL["annual_peak_doy"]] - peak + 182.625) % 365.25 - 182.625
        assert abs(diff) < 0.5
        assert 1.0 <= d[COL["annual_peak_doy"]] < 366.25


def test_rows_are_independent_of_blocking(northern):
    acq, grid = northern
    rng = np.random.default_rng(5)
    regular = rng.normal(0, 3, (257, len(grid))).astype(np.float32).cumsum(axis=1)
    model = DescriptorModel(grid, acq).fit()
    whole = model.transform(regular)
    parts = np.concatenate([model.transform(regular[:100]), model.transform(regular[100:])])
    np.testing.assert_allclose(whole, parts, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(whole, model.transform(regular))  # deterministic
    assert whole.dtype == np.float32 and whole.shape == (257, len(DESCRIPTOR_NAMES))
    assert np.isfinite(whole).all()
    # a scikit-learn transformer: parameters stored unchanged, design learned in fit
    unfitted = clone(model)
    assert unfitted.get_params()["max_gap_days"] == 36.0 and not hasattr(unfitted, "design_")
    with pytest.raises(NotFittedError):
        unfitted.transform(regular)
    np.testing.assert_array_equal(unfitted.fit_transform(regular), whole)


def test_fit_transform_takes_spans_and_checks_the_grid(northern):
    """fit_transform(regular, spans=...) is fit then transform with those spans (the mixin's
    passed them to fit, a TypeError); fit given series of another width says so."""
    acq, grid = northern
    rng = np.random.default_rng(6)
    regular = rng.normal(0, 3, (20, len(grid))).astype(np.float32).cumsum(axis=1)
    spans = np.tile([0, len(grid) - 1], (20, 1))
    spans[:5, 0] = len(grid) // 3            # five series observed from a third of the grid on
    model = DescriptorModel(grid, acq)
    expected = clone(model).fit().transform(regular, spans)
    np.testing.assert_array_equal(model.fit_transform(regular, spans=spans), expected)
    assert model.n_features_in_ == len(grid)
    with pytest.raises(ValueError, match=rf"expected \(n, {len(grid)}\)"):
        DescriptorModel(grid, acq).fit(regular[:, 1:])


def test_rows_do_not_depend_on_the_blas_threads(northern):
    """snakemake --cores 1 gives a rule one thread: OpenBLAS then splits the products
    otherwise and rounded some rows (8 of the demo's 20,000) differently than with two."""
    acq, grid = northern
    rng = np.random.default_rng(11)
    t = np.arange(len(grid))[None, :]
    regular = (rng.normal(0, 2, (6000, len(grid))).cumsum(axis=1) * 0.3
               + rng.normal(0, 5, (6000, 1)) * t / 60
               + 4 * np.sin(2 * np.pi * t / 61) * rng.random((6000, 1))).astype(np.float32)
    spans = np.tile([0, len(grid) - 1], (6000, 1))
    spans[::7, 0] = len(grid) // 3                      # late starters: their own span designs
    model = DescriptorModel(grid, acq).fit()
    results = {}
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            results[threads] = (model.transform(regular, spans),
                                step_or_trend(regular[:500].astype(np.float64), grid, observed_dates=acq))
    np.testing.assert_array_equal(results[1][0], results[2][0])
    for key, value in results[1][1].items():
        np.testing.assert_array_equal(value, results[2][1][key])


def test_acquisition_dates_drops_empty_date_columns():
    dates = np.array([10, 22, 34, 46])
    sample = np.ones((10, 4))
    sample[:, 2] = np.nan
    sample[0, 1] = np.nan
    assert acquisition_dates(dates, sample).tolist() == [10, 22, 46]
    assert acquisition_dates(dates).tolist() == dates.tolist()


def test_write_descriptors_streams_a_shards_file(tmp_path):
    shards_path, truth = make_shards_file(tmp_path / "shards.h5", n=1500, shard_size=400)
    out = tmp_path / "features" / "descriptors.h5"
    write_descriptors(shards_path, out, block_rows=256)
    X, names = h5io.read_features(out)
    assert names == DESCRIPTOR_NAMES
    assert X.shape == (1500, len(DESCRIPTOR_NAMES)) and X.dtype == np.float32
    # conftest regimes: 0 stable, 1 subsiding -8 mm/yr, 2 seasonal 6 mm, 3 uplift 5 mm/yr
    trend = X[:, COL["trend_mm_yr"]]
    amp = X[:, COL["annual_amplitude_mm"]]
    assert np.median(trend[truth == 1]) == pytest.approx(-8.0, abs=0.5)
    assert np.median(trend[truth == 3]) == pytest.approx(5.0, abs=0.5)
    assert np.median(amp[truth == 2]) == pytest.approx(6.0, abs=0.5)
    assert np.median(np.abs(trend[truth == 0])) < 1.0
    assert np.median(X[:, COL["residual_rms_mm"]]) == pytest.approx(1.5, abs=0.15)
    attrs = h5io.Features(out).attrs
    assert attrs["reference_date"] == pytest.approx(17500 + 6 * 119 / 2)
    assert not list(tmp_path.joinpath("features").glob(".*tmp*"))


def test_pure_noise_on_a_real_sentinel1_calendar_gives_few_false_steps():
    """6-day revisits until 2021-12-23, 12-day after: half of the 6-day grid is then
    interpolated. Counted as data, those epochs shrank the residual and gave pure noise a
    'significant' step in ~4 % of the series (22 % on an all-12-day calendar)."""
    from insarclust.dates import parse_date
    from insarclust.regularize import regular_grid, regularize

    rng = np.random.default_rng(0)
    a, switch, end = parse_date("20170103"), parse_date("20211223"), parse_date("20240601")
    six = np.arange(a, switch, 6)
    for dates in (np.r_[six, np.arange(six[-1] + 12, end, 12)], np.arange(a, end, 12)):
        dates = dates.astype(np.int32)
        grid = regular_grid(dates, 6)
        noise = rng.normal(0, 1.5, (2000, len(dates))).astype(np.float32)
        D = compute_descriptors(regularize(noise, dates, grid, "linear"), grid, observed_dates=dates)
        assert np.mean(D[:, COL["step_mm"]] != 0) < 0.005
        assert np.median(D[:, COL["residual_rms_mm"]]) == pytest.approx(1.5, rel=0.05)


def test_site_acquisition_dates_of_a_multi_file_site_covering_two_periods(tmp_path):
    """Two files, two periods, each held by other shards: every file's dates are acquisitions.
    (From the first shard alone, the second file's whole period counted as a gap.)"""
    from insarclust.descriptors import site_acquisition_dates

    class FakeShards:
        def __init__(self, dates, values, bounds):
            self.dates, self._values, self._bounds = dates, values, bounds
            self.n_shards = len(bounds)

        def shard_bounds(self):
            return self._bounds

        def read(self, name, a, b):
            return self._values[a:b]

    A, B = np.arange(0, 600, 6), np.arange(540, 1200, 6)
    dates = np.union1d(A, B)
    values = np.full((400, len(dates)), np.nan, np.float32)
    values[:200, np.isin(dates, A)] = 1.0          # file A: the first two shards
    values[200:, np.isin(dates, B)] = 2.0          # file B: the last two
    values[:, (dates > 300) & (dates < 420)] = np.nan   # a winter that nobody observed
    got = site_acquisition_dates(FakeShards(dates, values, [(0, 100), (100, 200), (200, 300), (300, 400)]))
    np.testing.assert_array_equal(got, dates[~((dates > 300) & (dates < 420))])


def test_the_dates_and_the_pair_noise_check_read_one_sample_of_rows():
    """The sites' dates and the pair's noise check take the same rows (the first of each shard)."""
    from insarclust.pair_checks import step_noise_mm
    from insarclust.descriptors import sample_series
    from insarclust.unit_checks import step_noise

    class FakeShards:
        dates = np.arange(5) * 6
        n_shards = 3

        def shard_bounds(self):
            return [(0, 10), (10, 12), (12, 30)]

        def read(self, name, a, b):
            assert name == "series/displacement"
            return np.arange(a, b, dtype=np.float32)[:, None] * np.arange(5)[None, :]

    sample = sample_series(FakeShards(), 9)
    np.testing.assert_array_equal(sample[:, 1], [0, 1, 2, 10, 11, 12, 13, 14])
    assert step_noise_mm(FakeShards()) == pytest.approx(float(np.median(step_noise(sample_series(FakeShards())))))
    empty = FakeShards()
    empty.n_shards = 0
    assert sample_series(empty) is None and np.isnan(step_noise_mm(empty))


@pytest.mark.parametrize("late", [0.3, 0.5, 0.6])
def test_point_observed_over_part_of_the_period_is_fitted_on_its_span(late):
    """A steady -10 mm/yr point first coherent after `late` of the period: its first value is
    held back to the grid's start (shards); fitted as data that flat stretch gave -6.5 mm/yr and
    'accelerating' (30 % late) or -4.5 (50 % late), and a step in every series."""
    from insarclust.spans import observed_spans
    from insarclust.regularize import regular_grid, regularize

    rng = np.random.default_rng(1)
    dates = np.arange(17000, 17000 + int(4.5 * 365.25), 6).astype(np.int32)
    grid = regular_grid(dates, 6)
    t = (dates - dates.mean()) / 365.25
    V = (-10 * t + rng.normal(0, 1.5, (300, len(dates)))).astype(np.float32)
    V[:, : int(late * len(dates))] = np.nan
    R = regularize(V, dates, grid, "linear")
    model = DescriptorModel(grid, dates).fit()
    spans = observed_spans(V, dates, grid)
    assert (spans[:, 0] == np.searchsorted(grid, dates[int(late * len(dates))])).all()
    D = model.transform(R, spans)
    assert np.median(D[:, COL["trend_mm_yr"]]) == pytest.approx(-10, abs=0.5)
    assert np.abs(np.median(D[:, COL["acceleration_mm_yr2"]])) < 0.5
    assert np.mean(D[:, COL["step_mm"]] != 0) < 0.02
    # series observed throughout are fitted exactly as without spans
    full = regularize((-10 * t + rng.normal(0, 1.5, (50, len(dates)))).astype(np.float32), dates, grid, "linear")
    np.testing.assert_array_equal(model.transform(full, np.tile([0, len(grid) - 1], (50, 1))), model.transform(full))


def test_short_spans_keep_bounded_descriptors():
    """Pure noise on spans too short to tell trend from annual cycle (< 1.5 years) keeps the
    shared fit: fitted alone, 8 epochs gave |trend| ~ 2,900 mm/yr and amplitudes ~ 470 mm."""
    from insarclust.spans import observed_spans
    from insarclust.regularize import regular_grid, regularize

    rng = np.random.default_rng(2)
    dates = np.arange(17000, 17000 + int(6 * 365.25), 6).astype(np.int32)
    grid = regular_grid(dates, 6)
    model = DescriptorModel(grid, dates).fit()
    for n_epochs in (8, 30, 61, 200, 250):
        V = rng.normal(0, 3.0, (400, len(dates))).astype(np.float32)
        V[:, : len(dates) - n_epochs] = np.nan
        D = model.transform(regularize(V, dates, grid, "linear"), observed_spans(V, dates, grid))
        assert np.percentile(np.abs(D[:, COL["trend_mm_yr"]]), 99) < 4.0, n_epochs
        assert np.percentile(D[:, COL["annual_amplitude_mm"]], 99) < 6.0, n_epochs
        assert np.mean(D[:, COL["step_mm"]] != 0) < 0.02, n_epochs


def test_residual_rms_of_a_fit_without_step_search_uses_its_own_degrees_of_freedom():
    """A span fitted with a line and no step search (1-1.5 years): residual_rms_mm is the
    least-squares sqrt(RSS / (n - 2)); the dof of the step model plus one (meant for a step
    searched but not kept) counted n - 1 and gave 1.902 instead of 1.914."""
    rng = np.random.default_rng(0)
    grid = np.arange(18000, 18000 + 6 * 300, 6)
    model = DescriptorModel(grid, None).fit()
    a, b = 100, 180
    Y = np.zeros((1, len(grid)), np.float32)
    Y[0, a:b + 1] = 10 * (grid[a:b + 1] - grid[a]) / 365.25 + rng.normal(0, 2, b - a + 1)
    Y[0, :a], Y[0, b + 1:] = Y[0, a], Y[0, b]
    out = model.transform(Y, np.array([[a, b]]))[0]
    x, y = grid[a:b + 1].astype(float), Y[0, a:b + 1].astype(float)
    A = np.stack([np.ones_like(x), x], axis=1)
    res = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
    assert out[COL["trend_mm_yr"]] == pytest.approx(np.linalg.lstsq(A, y, rcond=None)[0][1] * 365.25, rel=1e-4)
    assert out[COL["residual_rms_mm"]] == pytest.approx(np.sqrt(res @ res / (len(x) - 2)), rel=1e-4)


def _masked_for_a_while(first: str, last: str, n: int = 300, seed: int = 0, **kw):
    """Points of 10 mm/yr + 5 mm annual (2 mm noise) on a 6-day calendar without winters
    (May-October), each missing ``first``..``last`` while the site is observed (a coherence
    mask), regularized across as by ``shards``: (acq, grid, displacement, regular)."""
    from insarclust.regularize import regularize

    acq = northern_acquisitions()
    grid = regular_grid(acq)
    rng = np.random.default_rng(seed)
    V = signal(acq, grid, trend=10.0, amplitude=5.0, peak_doy=200.0, **kw)[None, :] \
        + rng.normal(0, 2.0, (n, len(acq)))
    V[:, (acq >= _day(first)) & (acq <= _day(last))] = np.nan
    return acq, grid, V.astype(np.float32), regularize(V.astype(np.float32), acq, grid, "linear")


@pytest.mark.parametrize("first,last", [("2020-01-01", "2020-12-31"), ("2020-05-01", "2020-09-30")])
def test_point_missing_months_inside_its_span_is_fitted_without_them(first, last):
    """A point masked for a year (or a summer) while the site is observed: the line the grid
    holds across its hole, fitted as data, gave 8.9 mm/yr instead of 10, 4.0 mm instead of
    5 and a false step in 87 % of series (a summer: 4.4 mm and 25 %)."""
    from insarclust.spans import observed_holes, observed_spans

    acq, grid, V, R = _masked_for_a_while(first, last)
    holes = observed_holes(V, acq, grid, 36.0, acq)
    assert len(holes[0]) == len(V)                       # one hole per point
    D = compute_descriptors(R, grid, observed_dates=acq, spans=observed_spans(V, acq, grid), holes=holes)
    assert np.median(D[:, COL["trend_mm_yr"]]) == pytest.approx(10.0, abs=0.3)
    assert np.median(D[:, COL["annual_amplitude_mm"]]) == pytest.approx(5.0, abs=0.3)
    assert np.abs(np.median(D[:, COL["acceleration_mm_yr2"]])) < 0.3
    assert np.mean(D[:, COL["step_mm"]] != 0) < 0.01
    assert np.median(D[:, COL["residual_rms_mm"]]) == pytest.approx(2.0, rel=0.05)


def test_step_inside_a_points_own_hole_is_found_across_it():
    """A -12 mm step in the middle of a point's hole (the site observed, the point not) is found
    across the hole and dated inside it, as a step in a winter gap."""
    from insarclust.spans import observed_holes, observed_spans

    step_date = _day("2020-07-15")
    acq, grid, V, R = _masked_for_a_while("2020-06-01", "2020-08-31", n=100, seed=1, step=-12.0,
                                          step_date=step_date)
    D = compute_descriptors(R, grid, observed_dates=acq, spans=observed_spans(V, acq, grid),
                            holes=observed_holes(V, acq, grid, 36.0, acq))
    assert np.abs(D[:, COL["step_mm"]] + 12.0).max() < 2.5
    assert np.median(D[:, COL["trend_mm_yr"]]) == pytest.approx(10.0, abs=0.3)
    before, after = acq[acq < _day("2020-06-01")].max(), acq[acq > _day("2020-08-31")].min()
    assert ((D[:, COL["step_date"]] > before) & (D[:, COL["step_date"]] < after)).all()


def test_gaps_up_to_max_gap_days_are_no_holes_and_rows_without_holes_fit_as_before(northern):
    """Only a point's gaps of more than max_gap_days of the site's observed time are holes: a
    missing acquisition next to a winter or 36 days missing are not (the demo's points miss
    single epochs at random), and every row without a hole keeps its descriptors bit for bit."""
    from insarclust.regularize import regularize
    from insarclust.spans import observed_holes, observed_spans

    acq, grid = northern
    rng = np.random.default_rng(4)
    V = (signal(acq, grid, trend=5.0, amplitude=4.0, peak_doy=200.0)[None, :]
         + rng.normal(0, 1.5, (60, len(acq)))).astype(np.float32)
    autumn = np.flatnonzero(np.diff(acq) > 36)                 # last acquisition before each winter
    V[0, autumn[1]] = np.nan                                   # next to a winter
    V[1, autumn[1] + 1] = np.nan                               # first after it
    V[2, 40:45] = np.nan                                       # 5 missing: 36 days between values
    V[3, 10] = V[3, 50] = np.nan                               # single epochs at random
    V[4, 100:106] = np.nan                                     # 6 missing: 42 days, a hole
    V[5, autumn[2] - 2:autumn[2] + 4] = np.nan                 # 2 autumn + 3 spring: 30 observed days + winter
    R = regularize(V, acq, grid, "linear")
    rows, lo, hi = observed_holes(V, acq, grid, 36.0, acq)
    assert rows.tolist() == [4]
    assert grid[lo[0]] > acq[99] and grid[hi[0]] < acq[106]
    spans = observed_spans(V, acq, grid)
    model = DescriptorModel(grid, acq).fit()
    before = model.transform(R, spans)
    after = model.transform(R, spans, (rows, lo, hi))
    keep = np.arange(len(V)) != 4
    np.testing.assert_array_equal(after[keep], before[keep])
    assert not np.array_equal(after[4], before[4])


def test_many_distinct_hole_patterns_each_fitted_on_its_own_epochs(northern):
    """Every series misses another stretch of 7-30 acquisitions: one design per pattern, each
    series still gets the motion it was made of (trend, step found, no false step)."""
    from insarclust.regularize import regularize
    from insarclust.spans import observed_holes, observed_spans

    acq, grid = northern
    rng = np.random.default_rng(5)
    V = (signal(acq, grid, trend=-6.0, amplitude=3.0, peak_doy=100.0, step=10.0,
                step_date=_day("2020-08-01"))[None, :] + rng.normal(0, 1.5, (200, len(acq)))).astype(np.float32)
    V[100:] = (signal(acq, grid, trend=2.0)[None, :] + rng.normal(0, 1.5, (100, len(acq)))).astype(np.float32)
    for i in range(len(V)):
        a = rng.integers(5, len(acq) - 40)
        V[i, a:a + rng.integers(7, 30)] = np.nan
    args = (regularize(V, acq, grid, "linear"), observed_spans(V, acq, grid), observed_holes(V, acq, grid, 36.0, acq))
    model = DescriptorModel(grid, acq).fit()
    D = model.transform(*args)
    assert model.holed(args[2], len(V)).sum() >= 190
    assert np.mean(D[:100, COL["step_mm"]] != 0) > 0.95
    assert np.median(np.abs(D[:100, COL["step_mm"]] - 10.0)) < 1.0
    assert np.median(np.abs(D[:100, COL["trend_mm_yr"]] + 6.0)) < 0.5
    assert np.mean(D[100:, COL["step_mm"]] != 0) < 0.03
    assert np.median(np.abs(D[100:, COL["trend_mm_yr"]] - 2.0)) < 0.3


def test_write_descriptors_leaves_out_each_points_own_holes(tmp_path):
    """Every 4th point of a 5-year site misses a year (grid epochs 100-160) and is interpolated
    across it in /series/regular: write_descriptors reads /series/displacement and fits those
    points without the year; the others keep the fit they had."""
    from insarclust.spans import observed_spans

    shards_path, truth = make_shards_file(tmp_path / "shards.h5", n=1200, n_grid=300, shard_size=400,
                                          hole=(4, 100, 160))
    out = tmp_path / "descriptors.h5"
    model = write_descriptors(shards_path, out, block_rows=256)
    X, _ = h5io.read_features(out)
    holed = np.arange(1200) % 4 == 0
    trend, amp = X[:, COL["trend_mm_yr"]], X[:, COL["annual_amplitude_mm"]]
    assert np.median(trend[holed & (truth == 1)]) == pytest.approx(-8.0, abs=0.3)
    assert np.median(trend[holed & (truth == 3)]) == pytest.approx(5.0, abs=0.3)
    assert np.median(amp[holed & (truth == 2)]) == pytest.approx(6.0, abs=0.3)
    assert np.mean(X[holed, COL["step_mm"]] != 0) < 0.02
    shards = h5io.Shards(shards_path)
    plain = model.transform(shards.read("series/regular"), observed_spans(shards.read("series/displacement"),
                                                                          shards.dates, shards.grid_dates))
    # (to float32 rounding: the file is written in blocks of 256; the peak of a near-zero
    # amplitude moves most)
    other = [i for i in range(len(DESCRIPTOR_NAMES)) if i != COL["annual_peak_doy"]]
    np.testing.assert_allclose(X[~holed][:, other], plain[~holed][:, other], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(X[~holed, COL["annual_peak_doy"]], plain[~holed, COL["annual_peak_doy"]], atol=0.01)
    assert np.abs(X[holed, COL["annual_amplitude_mm"]] - plain[holed, COL["annual_amplitude_mm"]]).max() > 0.1


@pytest.mark.parametrize("keep", [5, 10, 20])
def test_a_point_seen_weeks_at_each_end_gets_only_the_terms_its_epochs_determine(keep):
    """A point masked all but its first and last ``keep`` acquisitions: its hole leaves two
    clumps of a few weeks 4 years apart, where the acceleration and annual cycle take any
    value (a 5 mm cycle on 10 mm/yr read as 111 mm and +-600 mm/yr^2 at 5 acquisitions, 13 mm
    and +-60 mm/yr^2 at 10); the terms such epochs cannot tell are not fitted."""
    from insarclust.regularize import regularize
    from insarclust.spans import observed_holes, observed_spans

    acq = northern_acquisitions()
    grid = regular_grid(acq)
    rng = np.random.default_rng(7)
    V = (signal(acq, grid, trend=10.0, amplitude=5.0, peak_doy=200.0)[None, :]
         + rng.normal(0, 2.0, (300, len(acq)))).astype(np.float32)
    V[:, keep:len(acq) - keep] = np.nan
    D = compute_descriptors(regularize(V, acq, grid, "linear"), grid, observed_dates=acq,
                            spans=observed_spans(V, acq, grid), holes=observed_holes(V, acq, grid, 36.0, acq))
    assert np.median(D[:, COL["trend_mm_yr"]]) == pytest.approx(10.0, abs=1.0)
    assert np.percentile(np.abs(D[:, COL["trend_mm_yr"]] - 10.0), 95) < 2.0
    assert np.percentile(D[:, COL["annual_amplitude_mm"]], 95) < 10.0
    assert np.percentile(np.abs(D[:, COL["acceleration_mm_yr2"]]), 95) < 2.0
    assert np.abs(D[:, COL["offset_mm"]]).max() < 15.0
    assert np.mean(D[:, COL["step_mm"]] != 0) < 0.02


def test_a_one_year_archive_is_fitted_without_the_acceleration_term(tmp_path):
    """A site of one year (19 acquisitions, April to November and one in April after the winter)
    was fitted with every term: trend, acceleration and annual cycle are nearly collinear there,
    so stable points got accelerations near 60 mm/yr^2 and every cluster of the run was labelled
    accelerating (-71 mm/yr^2); descriptors-kmeans scored ARI 0.006. The site's own archive now
    decides the terms (SITE_SPAN_YEARS), as a point's span already did."""
    import logging

    from insarclust.demo import generate
    from insarclust.formats import get_format, load_formats
    from insarclust.interpret import describe_clusters
    from insarclust.shards import ShardsConfig, build_shards

    from conftest import ROOT

    fmt = get_format("ngu", load_formats(ROOT / "config" / "formats.yaml"))
    table, truth = generate("short", "mainland", fmt, n_points=800, start="2022-04-20", years=1.0, seed=3)
    table.to_csv(tmp_path / "short.csv", index=False)
    shards_path = tmp_path / "shards.h5"
    build_shards([tmp_path / "short.csv"], fmt, shards_path, "short", ShardsConfig())
    model = write_descriptors(shards_path, tmp_path / "descriptors.h5", log=logging.getLogger("t"))
    assert model.tier_ == 1
    X, _ = h5io.read_features(tmp_path / "descriptors.h5")
    shards = h5io.Shards(shards_path)
    regime = truth.set_index("pid").loc[shards.read("points/pid", 0, shards.n_points), "regime"].to_numpy()
    assert np.all(X[:, COL["acceleration_mm_yr2"]] == 0.0)
    amp = X[:, COL["annual_amplitude_mm"]]
    assert np.median(amp[regime == "stable"]) < 2.0 and np.median(amp[regime == "seasonal"]) > 5.0
    assert np.median(X[regime == "subsiding", COL["trend_mm_yr"]]) < -10.0
    names = sorted(set(regime))
    means = np.stack([shards.read("series/regular", 0, shards.n_points)[regime == r].mean(0) for r in names])
    out = describe_clusters(means, shards.grid_dates, np.array([(regime == r).sum() for r in names]),
                            {}, observed_dates=shards.dates)
    labels = dict(zip(names, (o["label"] for o in out)))
    assert labels["stable"] == "stable" and labels["seasonal"] == "seasonal"
    assert "accelerating" not in labels.values()
    # a 4.5-year archive keeps every term
    acq = northern_acquisitions()
    assert DescriptorModel(regular_grid(acq), acq).fit().tier_ == 0
