"""Known answers at the thresholds, boundaries and defaults of the numeric modules (a gap of
exactly ``max_gap_days``, a coordinate on its bound, a default the config must match).

Each test names, in its docstring, the plausible bug it catches.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from sklearn.cluster import MiniBatchKMeans
from threadpoolctl import threadpool_limits

from insarclust.dates import linear_trend_per_year
from insarclust.decompose import common_grid, covered, solve_up_east
from insarclust.descriptors import (DESCRIPTOR_NAMES, DescriptorModel, acquisition_dates,
                                    observed_grid_mask)
from insarclust.graph import GeodesicKNNGraph
from insarclust.interpret import (DEFAULT_THRESHOLDS, curving, describe_clusters, polynomial_range_mm,
                                  suggest_label)
from insarclust.kmeans import _NumpyMiniBatchUpdate, split_rows
from insarclust.regularize import regularize, robust_trend
from insarclust.spans import acquisition_gaps

from conftest import ROOT

COL = {n: i for i, n in enumerate(DESCRIPTOR_NAMES)}
THRESHOLDS = {"stable_trend_mm_yr": 2.0, "seasonal_amplitude_mm": 4.0, "step_mm": 8.0,
              "acceleration_mm_yr2": 1.5}


# --------------------------------------------------------------------------- regularize

def test_ransac_bridges_a_gap_of_exactly_36_days_along_the_residual():
    """Two missed 12-day acquisitions (a 36-day gap) are a short gap: bridged along the residual.
    (Catches RANSAC_SHORT_GAP_DAYS below 36, or `span < ...`.)"""
    d = np.arange(0, 361, 12).astype(np.float64)
    d = d[(d != 192) & (d != 204)]                       # gap 180 -> 216: 36 days
    y = 0.01 * d
    y[(d == 180) | (d == 216)] += 3.0                    # both ends of the gap 3 mm above the trend
    grid = np.arange(0, 361, 6).astype(np.float64)
    out = regularize(y[None].astype(np.float32), d, grid, "ransac", ransac_threshold_mm=0.5)[0]
    inside = (grid > 180) & (grid < 216)
    np.testing.assert_allclose(out[inside], 0.01 * grid[inside] + 3.0, atol=1e-4)


@pytest.mark.parametrize("method", ["pchip", "makima", "ransac"])
def test_all_nan_row_is_rejected_by_every_method(method):
    """Catches a dropped `count == 0` check: the row came back as NaN (or a held 0)."""
    values = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, np.nan]])
    with pytest.raises(ValueError, match="no observation"):
        regularize(values, np.array([0., 6, 12]), np.array([0., 6, 12]), method)


def test_robust_trend_default_threshold_is_2_5_robust_sigmas():
    """Docstring: the default threshold is 2.5 x the MAD *scale* (1.4826 x MAD) of the LS residuals.
    (Catches a dropped 1.4826 factor, which discards ~9 % of Gaussian inliers.)"""
    rng = np.random.default_rng(3)
    d = np.arange(0, 1200, 12).astype(np.float64)
    y = -0.02 * d + rng.normal(0, 1.0, len(d))
    y[::9] += 25.0
    A = np.stack([np.ones_like(d), d - d[0]], axis=1)
    res = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
    thr = 2.5 * 1.4826 * np.median(np.abs(res - np.median(res)))
    s0, i0 = robust_trend(y[None], d, seed=0)
    s1, i1 = robust_trend(y[None], d, threshold_mm=thr, seed=0)
    np.testing.assert_allclose([s0[0], i0[0]], [s1[0], i1[0]], rtol=1e-12)


# --------------------------------------------------------------------------- descriptors / spans

def test_residual_rms_without_a_kept_step_uses_n_minus_5_dof():
    """Full-span fit, step searched but not significant: RMS = sqrt(RSS_base / (n - 5)).
    (Catches the step's degree of freedom not being freed again.)"""
    rng = np.random.default_rng(0)
    grid = np.arange(18000, 18000 + 6 * 300, 6)
    y = rng.normal(0, 2.0, len(grid))
    out = DescriptorModel(grid, None, step_z_min=1e9).fit().transform(y[None].astype(np.float32))[0]
    assert out[COL["step_mm"]] == 0.0
    t = (grid - 0.5 * (grid[0] + grid[-1])) / 365.25
    ph = 2 * np.pi * grid / 365.25
    A = np.stack([np.ones_like(t), t, 0.5 * t ** 2, np.cos(ph), np.sin(ph)], axis=1)
    res = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
    assert out[COL["residual_rms_mm"]] == pytest.approx(np.sqrt(res @ res / (len(grid) - 5)), rel=1e-4)


def test_no_step_candidate_within_min_segment_days_of_either_end():
    """A jump in the last (first) 24 days may not be dated there: min_segment_days on *each* side.
    (Catches a dropped right-hand (left-hand) `enough` condition.)"""
    grid = np.arange(18000, 18000 + 6 * 300, 6)
    late, early = np.zeros(len(grid), np.float32), np.zeros(len(grid), np.float32)
    late[-4:] = 20.0
    early[:4] = 20.0
    out = DescriptorModel(grid, None).fit().transform(np.stack([late, early]))
    assert out[0, COL["step_date"]] <= grid[-1] - 90
    assert out[1, COL["step_date"]] >= grid[0] + 90


def test_observed_grid_mask_keeps_an_epoch_after_a_gap_of_exactly_max_gap_days():
    """Acquisitions 3 days off the grid, 27 -> 63 a 36-day gap: not *longer* than max_gap_days,
    so grid epoch 60 (nearest to 63) is backed. (Catches `gap < max_gap_days`.)"""
    grid = np.arange(0, 121, 6)
    obs = np.array([3, 15, 27, 63, 75, 87, 99, 111])
    mask = observed_grid_mask(grid, obs, max_gap_days=36)
    np.testing.assert_array_equal(np.flatnonzero(mask), [2, 4, 10, 12, 14, 16, 18])


def test_acquisition_dates_count_coverage_within_each_rows_span_only():
    """Multi-file site, 8 sampled rows from the early file, 2 from the late one: every date of
    both is an acquisition. (Catches coverage divided by all sampled rows: the late file's dates,
    20 % covered, were dropped as a winter.)"""
    dates = np.arange(20) * 12
    sample = np.full((10, 20), np.nan)
    sample[:8, :10] = 1.0
    sample[8:, 10:] = 2.0
    np.testing.assert_array_equal(acquisition_dates(dates, sample), dates)


def test_acquisition_gaps_are_only_those_longer_than_max_gap_days():
    """Catches `>=`: a 36-day stretch (two missed acquisitions) is no gap at max_gap_days 36."""
    assert acquisition_gaps([0, 12, 24, 60, 72], 36) == []
    assert acquisition_gaps([0, 12, 24, 61, 73], 36) == [(24, 61)]


# --------------------------------------------------------------------------- dates

def test_linear_trend_per_year_of_a_row_with_a_missing_epoch():
    """A cluster mean with a NaN epoch keeps the trend of the rest (docstring).
    (Catches the per-row fallback being skipped: the row became NaN.)"""
    days = np.array([0.0, 365.25, 730.5, 1095.75])
    got = linear_trend_per_year(np.array([[0.0, 2, 4, 6], [0.0, 1, np.nan, 3], [np.nan] * 4]), days)
    np.testing.assert_allclose(got[:2], [2.0, 1.0])
    assert np.isnan(got[2])


def test_unit_check_trend_is_per_year_and_needs_three_values():
    """The unit check compares each series' trend with mean_velocity in mm/yr: a line rising
    10 mm a year is 10, with or without a missing epoch; a row with two values (any slope
    fits two points: one noisy step read as a velocity) has no trend (NaN), as documented."""
    from insarclust.unit_checks import _trend_per_year

    days = np.array([100.0, 100 + 182.625, 100 + 365.25, 100 + 730.5])
    line = 10.0 * (days - days[0]) / 365.25 + 3.0
    rows = np.array([line, [line[0], np.nan, line[2], line[3]], [line[0], np.nan, np.nan, line[3]]])
    got = _trend_per_year(rows, days)
    np.testing.assert_allclose(got[:2], [10.0, 10.0], rtol=1e-12)
    assert np.isnan(got[2])


# --------------------------------------------------------------------------- interpret

def test_polynomial_range_includes_the_vertex_inside_the_period():
    """v = 2 mm/yr, a = 4 mm/yr^2 over 4 years: ends at -4 and +12 mm, vertex -0.5 mm at t = -0.5:
    range 12.5 mm. (Catches a sign error in the vertex value.)"""
    assert polynomial_range_mm(2.0, 4.0, 4.0) == pytest.approx(12.5)
    assert polynomial_range_mm(-2.0, -4.0, 4.0) == pytest.approx(12.5)


def test_curving_uses_the_velocity_at_the_ends_of_the_period():
    """v = 0 at mid-period, a = 1.5 mm/yr^2 over 4 years: +-3 mm/yr at the ends >= 2: a trend is
    present, the cluster is not stable. (Catches the half-span factor dropped from v +- a h.)"""
    assert curving(0.0, 1.5, 4.0, THRESHOLDS)
    d = dict.fromkeys(DESCRIPTOR_NAMES, 0.0)
    d["acceleration_mm_yr2"] = 1.5
    assert suggest_label(d, 4.0, THRESHOLDS) != "stable"


def test_default_thresholds_are_the_documented_ones():
    """The module defaults (used without an interpret: section) are config/config.yaml's, and a
    4.5 mm annual amplitude is seasonal under them. (Catches a drifted default constant.)"""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["interpret"]
    assert DEFAULT_THRESHOLDS == {k: float(cfg[k]) for k in DEFAULT_THRESHOLDS}
    d = dict.fromkeys(DESCRIPTOR_NAMES, 0.0)
    d["annual_amplitude_mm"] = 4.5
    assert suggest_label(d, 4.0) == "seasonal"


def test_a_step_between_acquisitions_36_days_apart_is_not_in_a_gap():
    """Two missed 12-day acquisitions around a -20 mm step: the step window is 36 days, which is
    not longer than max_gap_days. (Catches `step_in_gap` computed with `>=`.)"""
    grid = np.arange(18000, 18000 + 6 * 244, 6)
    acq = grid[::2]
    before = acq[60]
    acq = acq[(acq <= before) | (acq >= before + 36)]
    after = before + 36
    mean = np.interp(grid, acq, np.where(acq >= after, -20.0, 0.0))
    entry = describe_clusters(mean[None], grid, np.array([100]), THRESHOLDS, observed_dates=acq)[0]
    assert entry["label"] == "step"
    assert entry["step_window"] == [int(before), int(after)]
    assert entry["step_in_gap"] is False


def test_trend_evidence_of_a_partial_cluster_is_over_its_own_span():
    """A cluster covered for its last 3.5 of 6 years, 10 mm/yr: the trend moved the ground
    10 x 3.5 = 35 mm, not 60. (Catches span_years taken from the whole grid.)"""
    grid = np.arange(18000, 18000 + int(6 * 365.25), 6)
    first = len(grid) - int(3.5 * 365.25 / 6)
    mean = np.full(len(grid), np.nan)
    mean[first:] = 10.0 * (grid[first:] - grid[first]) / 365.25
    entry = describe_clusters(mean[None], grid, np.array([100]), THRESHOLDS, observed_dates=grid)[0]
    span = (grid[-1] - grid[first]) / 365.25
    assert entry["span"] == [int(grid[first]), int(grid[-1])]
    assert entry["evidence_mm"]["trend"] == pytest.approx(10.0 * span, rel=1e-3)


# --------------------------------------------------------------------------- graph

def test_max_distance_keeps_an_edge_of_exactly_that_length():
    """`max_distance_m` drops edges *longer* than it. (Catches `<` for `<=`.)"""
    lat, lon = np.array([60.0, 60.001, 60.003]), np.array([10.0, 10.0, 10.0])
    plain = GeodesicKNNGraph(k=1, weighting="binary").fit(lat, lon)
    capped = GeodesicKNNGraph(k=1, weighting="binary", max_distance_m=float(plain.distance_m_.max())).fit(lat, lon)
    assert capped.n_isolated_ == 0
    np.testing.assert_array_equal(capped.indices_, plain.indices_)


# --------------------------------------------------------------------------- k-means

def test_random_split_rounds_the_test_share():
    """Exactly round(test_fraction * n) test points: 0.3 x 9 = 2.7 -> 3. (Catches int() flooring.)"""
    assert int(split_rows(9, 0.3, seed=0).sum()) == 3
    assert int(split_rows(10, 0.25, seed=0).sum()) == 2


def test_numpy_update_reassigns_on_the_same_batch_as_sklearn():
    """Batches of 10, K = 4: sklearn reassigns when 10 K = 40 samples are reached (>=), i.e. every
    4th batch. (Catches `>` for `>=`, which reassigned one batch late, on other points.)"""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5)).astype(np.float32)
    with threadpool_limits(limits=1):
        model = MiniBatchKMeans(4, batch_size=10, random_state=3, compute_labels=False).fit(X[:1000])
    model._counts[1] = 0.5
    update = _NumpyMiniBatchUpdate(copy.deepcopy(model))
    with threadpool_limits(limits=1):
        for s in range(1000, 3000, 10):
            model.partial_fit(X[s:s + 10])
            update.partial_fit(X[s:s + 10])
    np.testing.assert_allclose(update.centers, model.cluster_centers_, atol=1e-5)
    np.testing.assert_array_equal(update.counts, model._counts)


def test_numpy_update_keeps_a_centre_at_exactly_the_reassignment_ratio():
    """sklearn reassigns the centres whose count is *below* reassignment_ratio x the largest
    (strictly). Centre 1 gets no point of the batch and its count, 20, is exactly 0.5 x 40:
    it stays where it is, in both engines. (Catches `<=`, which moved it onto a batch point.)"""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-5, 0.3, (200, 2)), rng.normal(5, 0.3, (200, 2))]).astype(np.float32)
    with threadpool_limits(limits=1):
        model = MiniBatchKMeans(2, batch_size=10, reassignment_ratio=0.5, random_state=3,
                                compute_labels=False).fit(X)
    near = int(np.argmin(model.cluster_centers_[:, 0]))        # the centre at -5
    far = 1 - near
    model._counts[near], model._counts[far] = 30.0, 20.0
    model._n_since_last_reassign = 10       # this batch of 10 reaches 10 K = 20: reassignment runs
    before = model.cluster_centers_[far].copy()
    update = _NumpyMiniBatchUpdate(copy.deepcopy(model))
    batch = rng.normal(-5, 0.3, (10, 2)).astype(np.float32)  # every point goes to the centre at -5
    with threadpool_limits(limits=1):
        model.partial_fit(batch)
    update.partial_fit(batch)
    assert update.counts[near] == 40.0 and update.counts[far] == 20.0
    np.testing.assert_array_equal(update.centers[far], before)
    np.testing.assert_allclose(update.centers, model.cluster_centers_, atol=1e-6)
    np.testing.assert_array_equal(update.counts, model._counts)


# --------------------------------------------------------------------------- readers / shards

def test_coordinates_on_the_edge_of_the_valid_range_are_read(tmp_path):
    """lat -90 and lon +-180 are valid WGS84 degrees. (Catches exclusive range bounds.)"""
    import dataclasses

    from test_reader_edges import HEADER, NGU, build, write
    rows = [f"P{i},{lat},{lon},100,1.5,0.9,0.2,35,190,0.5,1.25,-2.5,3.75"
            for i, (lat, lon) in enumerate([(-90.0, 0.0), (10.0, 180.0), (10.0, -180.0), (90.0, 5.0)])]
    # a format without an area (InSAR Norway's would stop these)
    shards = build(tmp_path, write(tmp_path / "edge.csv", [HEADER, *rows]), fmt=dataclasses.replace(NGU, area=None))
    lat, lon = shards.coords()
    assert sorted(lat.tolist()) == [-90.0, 10.0, 10.0, 90.0]
    assert sorted(np.abs(lon).tolist()) == [0.0, 5.0, 180.0, 180.0]


# --------------------------------------------------------------------------- decompose

def _track(name, dates):
    return SimpleNamespace(name=name, path=name, shards=SimpleNamespace(dates=np.asarray(dates)))


def test_common_grid_ends_on_the_last_common_date():
    """Catches a dropped `+ 1` in the grid length: the last common epoch was lost."""
    grid = common_grid(_track("asc", np.arange(100, 500, 6)), _track("desc", np.arange(106, 600, 12)), 6)
    np.testing.assert_array_equal(grid, np.arange(106, 497, 6))


def test_covered_includes_a_gap_of_exactly_max_gap_days():
    """Catches `gap < max_gap_days`: a 36-day gap is not longer than 36 days."""
    assert covered(np.arange(0, 61, 6), np.array([0, 12, 24, 60]), 36).all()
    assert not covered(np.arange(0, 62, 6), np.array([0, 12, 24, 61]), 36)[5:10].any()


def test_nearly_parallel_line_of_sight_vectors_give_nan():
    """|det| = 0.05 < MIN_DETERMINANT: no solution rather than noise amplified 20x.
    (Catches the determinant check dropped.)"""
    a, b = np.array([[0.10, 0.0, 0.99]]), np.array([[0.15, 0.0, 0.99]])
    up, east = solve_up_east(a, b, np.ones((1, 3)), np.ones((1, 3)))
    assert np.isnan(up).all() and np.isnan(east).all()
    up, east = solve_up_east(np.array([[0.6, 0.0, 0.8]]), np.array([[-0.6, 0.0, 0.8]]),
                             np.array([[0.8]]), np.array([[0.8]]))
    np.testing.assert_allclose([up[0, 0], east[0, 0]], [1.0, 0.0], atol=1e-12)


def test_parse_date_known_days():
    """Days since 1970-01-01 of YYYYMMDD dates, leap days included (numpy's calendar as reference)."""
    from insarclust.dates import days_to_iso, parse_date

    assert parse_date("19700101") == 0 and parse_date("19700102") == 1
    for text in ("20141003", "20200229", "20211223", "20240301"):
        want = int(np.datetime64(f"{text[:4]}-{text[4:6]}-{text[6:]}", "D").astype(np.int64))
        assert parse_date(text) == want
        assert days_to_iso(want) == f"{text[:4]}-{text[4:6]}-{text[6:]}"


def test_a_huge_finite_displacement_stops_the_build(tmp_path):
    """-1e30 mm is finite, so no inf check sees it: the plausibility bound (shards.max_abs_mm) must,
    on the negative side too."""
    from test_reader_edges import HEADER, build, write

    from insarclust.errors import InputError

    rows = [f"P{i},69.0,20.{i},100,1.5,0.9,0.2,35,190,0.5,1.25,{v},3.75"
            for i, v in enumerate(["-2.5", "-1e30", "-2.5"])]
    with pytest.raises(InputError, match=r"displacement -1e\+30 mm of point 'P1' is beyond the plausibility"):
        build(tmp_path, write(tmp_path / "huge.csv", [HEADER, *rows]))
