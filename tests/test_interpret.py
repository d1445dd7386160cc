"""Suggested cluster labels on clear synthetic cluster means."""
from __future__ import annotations

import json

import numpy as np
import pytest

from insarclust.descriptors import (DESCRIPTOR_NAMES, infer_acquisition_dates, observed_grid_mask,
                                    step_or_trend)
from insarclust.interpret import (VOCABULARY, describe_clusters, polynomial_range_mm,
                                  suggest_label)

from test_descriptors import _day, northern_acquisitions, regular_grid, regularize_linear, signal

THRESHOLDS = {"stable_trend_mm_yr": 2.0, "seasonal_amplitude_mm": 4.0, "step_mm": 8.0,
              "acceleration_mm_yr2": 1.5}

# (expected label, signal parameters) over 4.5 years of northern acquisitions
CASES = [
    ("stable", dict(trend=0.6, amplitude=1.5, peak_doy=200.0)),
    ("subsiding", dict(trend=-8.0, amplitude=1.0, peak_doy=200.0)),
    ("uplifting", dict(trend=5.0)),
    ("seasonal", dict(trend=-0.5, amplitude=8.0, peak_doy=60.0)),
    # velocity from about -2 to -14 mm/yr over the period
    ("accelerating", dict(trend=-8.0, accel=-2.7)),
    # consolidation slowing down is subsidence, not acceleration
    ("subsiding", dict(trend=-8.0, accel=2.7)),
    ("step", dict(trend=0.5, step=-20.0, step_date=_day("2020-08-01"))),
    # trend of 3 mm/yr (13.5 mm over the period) beats a 5 mm amplitude (10 mm peak-to-peak)
    ("subsiding", dict(trend=-3.0, amplitude=5.0, peak_doy=200.0)),
    # ... but not a 10 mm amplitude (20 mm)
    ("seasonal", dict(trend=-3.0, amplitude=10.0, peak_doy=200.0)),
]


@pytest.fixture(scope="module")
def cluster_means():
    """Means of 400 noisy series (2 mm noise) per case, regularised like the shards stage."""
    acq = northern_acquisitions()
    grid = regular_grid(acq)
    rng = np.random.default_rng(0)
    means = []
    for _, params in CASES:
        observed = signal(acq, grid, **params)[None, :] + rng.normal(0, 2.0, (400, len(acq)))
        means.append(regularize_linear(acq, grid, observed).mean(axis=0))
    return acq, grid, np.stack(means)


@pytest.mark.parametrize("dates_given", [True, False])
def test_labels_of_clear_cluster_means(cluster_means, dates_given):
    """With the acquisition dates, or with the winter gaps recognised in the means."""
    acq, grid, means = cluster_means
    counts = np.full(len(means), 400)
    clusters = describe_clusters(means, grid, counts, THRESHOLDS,
                                 observed_dates=acq if dates_given else None)
    assert [c["label"] for c in clusters] == [label for label, _ in CASES]
    assert all(c["label"] in VOCABULARY for c in clusters)
    # the same means as east-west motion, through the grouping by each cluster's own dates
    east = describe_clusters(means, grid, counts, THRESHOLDS, observed_dates=acq if dates_given else None,
                             cluster_dates=[acq] * len(means), component="east")
    words = {"subsiding": "westward", "uplifting": "eastward"}
    assert [c["label"] for c in east] == [words.get(label, label) for label, _ in CASES]
    # the descriptors of the means carry the set values
    assert clusters[1]["descriptors"]["trend_mm_yr"] == pytest.approx(-8.0, abs=0.3)
    assert clusters[3]["descriptors"]["annual_amplitude_mm"] == pytest.approx(8.0, abs=0.3)
    # the step cluster is described by the step model (rule 2): no trend, the whole drop is the step
    assert clusters[6]["model"] == "step" and clusters[6]["descriptors"]["trend_mm_yr"] == 0.0
    assert clusters[6]["descriptors"]["step_mm"] == pytest.approx(-20.0, abs=1.5)
    assert [c["model"] for c in clusters].count("step") == 1
    assert clusters[4]["descriptors"]["acceleration_mm_yr2"] == pytest.approx(-2.7, abs=0.3)
    assert set(clusters[6]["evidence_mm"]) == {"step"}
    assert clusters[0]["evidence_mm"] == {}


def test_describe_clusters_contract(cluster_means):
    acq, grid, means = cluster_means
    K = 3
    spread = {name: np.arange(K, dtype=float) + 0.5 for name in DESCRIPTOR_NAMES}
    clusters = describe_clusters(means[:K], grid, np.array([10, 20, 30]), THRESHOLDS, spread,
                                 observed_dates=acq)
    assert len(clusters) == K
    for j, c in enumerate(clusters):
        assert set(c) >= {"cluster", "size", "descriptors", "spread", "label"}
        assert c["cluster"] == j and c["size"] == [10, 20, 30][j]
        assert list(c["descriptors"]) == DESCRIPTOR_NAMES
        assert c["spread"]["trend_mm_yr"] == j + 0.5
    json.dumps(clusters, allow_nan=False)  # JSON-ready
    # without member spread: empty dict
    assert describe_clusters(means[:1], grid, np.array([5]), THRESHOLDS)[0]["spread"] == {}


def test_thresholds_come_from_the_config(cluster_means):
    acq, grid, means = cluster_means
    subsiding = means[1:2]
    assert describe_clusters(subsiding, grid, [1], THRESHOLDS, observed_dates=acq)[0]["label"] == "subsiding"
    lenient = dict(THRESHOLDS, stable_trend_mm_yr=10.0)
    assert describe_clusters(subsiding, grid, [1], lenient, observed_dates=acq)[0]["label"] == "stable"
    # an empty config uses the documented defaults
    assert describe_clusters(subsiding, grid, [1], {}, observed_dates=acq)[0]["label"] == "subsiding"
    with pytest.raises(ValueError, match="unknown"):
        describe_clusters(subsiding, grid, [1], {"stable_trend": 2.0})


def test_suggest_label_rules():
    base = {name: 0.0 for name in DESCRIPTOR_NAMES}
    span = 4.0
    assert suggest_label(base, span) == "stable"
    assert suggest_label(dict(base, trend_mm_yr=-1.9, annual_amplitude_mm=3.9, step_mm=7.9), span) == "stable"
    assert suggest_label(dict(base, trend_mm_yr=-2.1), span) == "subsiding"
    assert suggest_label(dict(base, trend_mm_yr=2.1), span) == "uplifting"
    # creep starting from rest: mean velocity 1.5 (below 2) but end velocity 3 -> accelerating
    assert suggest_label(dict(base, trend_mm_yr=-1.5, acceleration_mm_yr2=-0.75 * 2), span) == "accelerating"
    assert suggest_label(dict(base, trend_mm_yr=-3.0, step_mm=-14.0), span) == "step"
    assert suggest_label(dict(base, trend_mm_yr=-4.0, step_mm=-14.0), span) == "subsiding"
    # subsidence turning to rebound (-12 -> +10 mm/yr over 5.5 years): mid velocity -1.6,
    # but the ground moved ~18 mm: not stable (slowing down: not accelerating)
    assert suggest_label(dict(base, trend_mm_yr=-1.6, acceleration_mm_yr2=4.0), 5.5) == "subsiding"
    # a small curvature with small velocities throughout stays stable
    assert suggest_label(dict(base, trend_mm_yr=-0.5, acceleration_mm_yr2=0.5), span) == "stable"
    # an east-west component (EGMS L3 E): its trends move west or east, never subside
    assert suggest_label(dict(base, trend_mm_yr=-2.1), span, component="east") == "westward"
    assert suggest_label(dict(base, trend_mm_yr=2.1), span, component="east") == "eastward"
    assert suggest_label(dict(base, trend_mm_yr=-2.1), span, component="up") == "subsiding"
    assert suggest_label(dict(base, trend_mm_yr=-1.5, acceleration_mm_yr2=-1.5), span,
                         component="east") == "accelerating"


def test_polynomial_range():
    assert polynomial_range_mm(-5.0, 0.0, 4.0) == pytest.approx(20.0)
    # velocity 0 at the start, acceleration 2: x(t) = (t + 2)^2 - 4 ... range a T^2 / 2 = 16
    assert polynomial_range_mm(4.0, 2.0, 4.0) == pytest.approx(16.0)
    # vertex in the middle: x = t^2, range h^2 = 4
    assert polynomial_range_mm(0.0, 2.0, 4.0) == pytest.approx(4.0)


def test_gaps_are_recognised_in_linearly_interpolated_means(cluster_means):
    acq, grid, means = cluster_means
    inferred = infer_acquisition_dates(means, grid)
    # every acquisition is kept, every grid epoch strictly inside a winter gap is not
    assert set(acq.tolist()) <= set(inferred.tolist())
    winter = ~observed_grid_mask(grid, acq)
    assert not np.isin(grid[winter], inferred).any()
    np.testing.assert_array_equal(observed_grid_mask(grid, inferred), observed_grid_mask(grid, acq))
    # a noise-free straight line looks interpolated everywhere: the fit falls back to every epoch
    line = (0.01 * np.arange(len(grid)))[None, :]
    clusters = describe_clusters(line, grid, [1], THRESHOLDS)
    assert clusters[0]["descriptors"]["trend_mm_yr"] == pytest.approx(0.01 * 365.25 / 6, rel=1e-3)


def test_a_step_in_a_winter_gap_is_dated_to_the_gap():
    """The data say a winter step happened between the last autumn and the first spring
    acquisition; the cluster entry says so instead of claiming the gap's middle day."""
    acq = northern_acquisitions()
    grid = regular_grid(acq)
    rng = np.random.default_rng(4)
    winter, summer = _day("2021-01-15"), _day("2020-08-01")
    means = np.concatenate([
        regularize_linear(acq, grid, signal(acq, grid, step=-20.0, step_date=d)[None, :]
                          + rng.normal(0, 0.5, (1, len(acq))))
        for d in (winter, summer)])
    clusters = describe_clusters(means, grid, [100, 100], THRESHOLDS, observed_dates=acq)
    gap, revisit = (c["step_window"] for c in clusters)
    assert gap == [acq[acq < winter].max(), acq[acq > winter].min()]
    assert gap[1] - gap[0] > 150 and clusters[0]["step_in_gap"]
    assert revisit == [acq[acq < summer].max(), acq[acq >= summer].min()]
    assert revisit[1] - revisit[0] == 6 and not clusters[1]["step_in_gap"]
    # no step, no window
    flat = describe_clusters(np.zeros((1, len(grid))), grid, [1], THRESHOLDS, observed_dates=acq)[0]
    assert "step_window" not in flat


def test_a_cluster_of_steps_at_different_dates_is_a_step_cluster():
    """The mean of steps at dates within a year looks like a ramp; the step model still fits it better."""
    acq = northern_acquisitions()
    grid = regular_grid(acq)
    rng = np.random.default_rng(7)
    dates = [_day(d) for d in ("2020-06-15", "2020-08-20", "2021-01-10", "2021-06-01")]
    observed = np.concatenate([
        signal(acq, grid, step=-18.0, step_date=d)[None, :] + rng.normal(0, 2.0, (150, len(acq)))
        for d in dates])
    mean = regularize_linear(acq, grid, observed).mean(axis=0, keepdims=True)
    alt = step_or_trend(mean, grid, observed_dates=acq)
    assert alt["rss_step"][0] < alt["rss_trend"][0]
    cluster = describe_clusters(mean, grid, [600], THRESHOLDS, observed_dates=acq)[0]
    assert cluster["label"] == "step" and cluster["model"] == "step"
    assert cluster["step_instead_of_trend"]["rss_ratio"] < 1
    assert cluster["descriptors"]["step_mm"] < -8.0
    # the acquisitions around the step: across the 2020-21 winter gap when it falls there
    before, after = cluster["step_window"]
    step_date = cluster["descriptors"]["step_date"]
    assert before == acq[acq < step_date].max() and after == acq[acq > step_date].min()
    assert cluster["step_in_gap"] == (after - before > 36)
    # a linear subsider is not mistaken for a step
    ramp = regularize_linear(acq, grid, signal(acq, grid, trend=-6.0)[None, :])
    alt = step_or_trend(ramp, grid, observed_dates=acq)
    assert alt["rss_trend"][0] < 1e-6 < alt["rss_step"][0]
    assert describe_clusters(ramp, grid, [1], THRESHOLDS, observed_dates=acq)[0]["label"] == "subsiding"


def test_an_empty_cluster_gets_no_regime(cluster_means):
    """A k-means centre nobody chose (or a DSC cluster no point's argmax picks) has no mean
    series: its all-NaN mean was filled with 0 and reported as 'stable, trend 0.0 mm/yr'.
    No regime and no descriptors are read from no points (the GeoPackage then has NULL)."""
    acq, grid, means = cluster_means
    mean = np.vstack([means[1:2], np.full((1, means.shape[1]), np.nan)])
    first, empty = describe_clusters(mean, grid, np.array([50, 0]), THRESHOLDS, observed_dates=acq)
    assert first["label"] == "subsiding"
    assert empty["size"] == 0 and empty["label"] is None and empty["model"] is None
    assert set(empty["descriptors"].values()) == {None} and empty["evidence_mm"] == {}
    json.dumps([first, empty], allow_nan=False)
