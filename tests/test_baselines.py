"""Peer methods on real files: scaler, incremental PCA with the knee, and the three baselines."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from insarclust import evaluate, h5io
from insarclust.baselines import (METHODS, StreamedPCA, StreamedScaler, build_features,
                                  centroid_spectrum, descriptor_scale, fit_baseline, knee_index,
                                  zscore_series)
from insarclust.labels import Labelling
from insarclust.batches import ArraySource
from insarclust.descriptors import write_descriptors

from conftest import make_shards_file

KMEANS_CFG = {"k": 4, "k_range": [2, 5], "batch_size": 128, "test_fraction": 0.2,
              "split": "random", "warm_start_size": 1024, "n_passes": 1, "silhouette_sample": 1000}
INTERPRET = {"stable_trend_mm_yr": 2.0, "seasonal_amplitude_mm": 4.0, "step_mm": 8.0,
             "acceleration_mm_yr2": 1.5}
REGIME_NAMES = np.array(["stable", "subsiding", "seasonal", "uplifting"])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """shards.h5 (2,000 points, four regimes), a k-NN graph, descriptors.h5 and the truth table."""
    tmp = tmp_path_factory.mktemp("site")
    shards_path, truth = make_shards_file(tmp / "shards.h5", n=2000, shard_size=512)
    lat, lon = h5io.Shards(shards_path).coords()
    xyz = np.stack([lat, lon * np.cos(np.radians(69.0))], axis=1)
    k = 6
    dist, idx = cKDTree(xyz).query(xyz, k + 1)
    n = len(lat)
    h5io.write_graph(tmp / "graph.h5", np.arange(0, n * k + 1, k), idx[:, 1:].ravel(),
                     dist[:, 1:].ravel() * 111e3, np.ones(n * k), {"k": k, "weighting": "binary"})
    write_descriptors(shards_path, tmp / "descriptors.h5")
    pids = h5io.Shards(shards_path).pids()
    pd.DataFrame({"pid": pids, "regime": REGIME_NAMES[truth]}).to_csv(tmp / "truth.csv", index=False)
    return {"shards": shards_path, "graph": tmp / "graph.h5", "descriptors": tmp / "descriptors.h5",
            "truth_csv": tmp / "truth.csv", "truth": truth, "dir": tmp}


def test_knee_index_known_answers():
    # saturating after 3 components
    assert knee_index(np.minimum(np.arange(1, 11), 3) / 3) == 3
    # one dominant component
    assert knee_index([0.9, 0.93, 0.95, 0.96, 0.97, 0.98]) == 1
    # a straight line (equal shares) has no knee: the first component
    assert knee_index(np.linspace(0.1, 1.0, 10)) == 1
    assert knee_index([0.5, 1.0]) == 1
    assert knee_index([0.8, 0.9, 1.0]) == 1 and knee_index([0.4, 0.8, 0.9, 1.0]) == 2


def test_streamed_scaler_matches_standard_scaler():
    rng = np.random.default_rng(0)
    X = (rng.normal(3, 2, (3000, 7)) * np.arange(1, 8)).astype(np.float32)
    X[:, 0] = 0.0  # a reference epoch: zero variance keeps scale 1
    source = ArraySource(X, shard_offsets=[0, 1000, 2100, 3000])
    scaler = StreamedScaler("epoch", block_rows=256).fit(source)
    np.testing.assert_allclose(scaler.transform(X), StandardScaler().fit_transform(X), atol=1e-4)
    rows = StreamedScaler("series").fit(source).transform(X[:, 1:])
    np.testing.assert_allclose(rows.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(rows.std(axis=1), 1, atol=1e-4)
    assert np.all(zscore_series(np.ones((2, 5))) == 0)
    # a constant row is zeros whatever its value (a float32 mean of 0.1s is not 0.1: the
    # rounding gap, divided by itself, made it a row of -1s, far from every real series)
    flat = np.vstack([np.full(120, v, dtype=np.float32) for v in (0.1, 1.7, 3.3, -2.9)])
    assert np.all(zscore_series(flat) == 0)
    with pytest.raises(ValueError, match="zscore"):
        StreamedScaler("global").fit(source)


def test_streamed_pca_matches_pca_and_keeps_the_knee():
    """Rank-3 signal + small noise: the knee is 3 and the subspace is PCA's."""
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(3, 40))
    X = (rng.normal(size=(5000, 3)) * [4.0, 3.5, 3.0]) @ basis + rng.normal(0, 0.05, (5000, 40))
    source = ArraySource(X.astype(np.float32), shard_offsets=[0, 1700, 3333, 5000])
    pca = StreamedPCA(max_components=10, block_rows=500).fit(source)
    ref = PCA(n_components=10).fit(X)
    assert pca.n_components_ == 3
    np.testing.assert_allclose(pca.explained_variance_ratio_[:3], ref.explained_variance_ratio_[:3],
                               rtol=1e-3)
    scores = pca.transform(X[:100])
    assert scores.shape == (100, 3) and scores.dtype == np.float32
    # same subspace: |cosines| between matched components are 1
    cos = np.abs(np.sum(pca.pca_.components_[:3] * ref.components_[:3], axis=1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-4)


def test_centroid_spectrum_finds_the_annual_period():
    grid = np.arange(17500, 17500 + 6 * 240, 6)
    t = (grid - grid[0]) / 365.25
    means = np.stack([5 * np.sin(2 * np.pi * t) - 3 * t, -8 * t + 0.01 * np.sin(40 * t)])
    spec = centroid_spectrum(means, grid)
    assert spec[0]["dominant_period_days"] == pytest.approx(6 * 240 / 4, rel=0.01)  # 4 cycles in 1440 d
    assert spec[0]["power_share"] > 0.5


def test_centroid_spectrum_reads_the_season_under_a_strong_trend():
    """A subsiding cluster (-10 mm/yr) with a 2 mm annual cycle: detrended, its spectrum peaks at
    the year; the ramp left in would put nearly all the power at the longest period."""
    grid = np.arange(17500, 17500 + 6 * 240, 6)
    t = (grid - grid[0]) / 365.25
    spec = centroid_spectrum(np.stack([2 * np.sin(2 * np.pi * t) - 10 * t]), grid)
    assert spec[0]["dominant_period_days"] == pytest.approx(360.0, rel=0.01)
    assert spec[0]["power_share"] > 0.9


def test_pca_keeps_at_least_min_components():
    """One dominant direction puts the knee at 1 component; the peer still keeps min_components
    (2), so k-means does not cluster a single score."""
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(3000, 1)) * 10) @ rng.normal(size=(1, 20)) + rng.normal(0, 0.01, (3000, 20))
    pca = StreamedPCA(max_components=10).fit(ArraySource(X.astype(np.float32)))
    assert knee_index(np.cumsum(pca.explained_variance_ratio_)) == 1
    assert pca.n_components_ == 2 and pca.transform(X[:5]).shape == (5, 2)


def test_streamed_scaler_and_pca_are_transformers_to_scikit_learn():
    """TransformerMixin comes before BaseEstimator, so scikit-learn's tags mark both as
    transformers (in the other order BaseEstimator's tags hid the mixin's)."""
    from sklearn.utils import get_tags
    from sklearn.utils.estimator_checks import check_mixin_order

    for est in (StreamedScaler(), StreamedPCA()):
        check_mixin_order(type(est).__name__, est)
        assert get_tags(est).transformer_tags is not None


def test_streamed_pca_checks_the_rows_it_scores():
    """Rows of another width or with a NaN are an error naming the problem, not a numpy
    broadcast error or NaN scores."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    pca = StreamedPCA(max_components=5).fit(ArraySource(X))
    assert pca.n_features_in_ == 8
    with pytest.raises(ValueError, match=r"expected \(n, 8\)"):
        pca.transform(X[:, :5])
    bad = X[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pca.transform(bad)


def test_descriptor_scale_takes_the_configured_scale_over_the_default():
    """baselines.descriptor_scale overrides the default scale of a descriptor it names (a user's
    4 mm/yr for the trend, not the default 2); a descriptor without a scale is divided by its
    std, and zscore divides every one by its std."""
    names = ["trend_mm_yr", "annual_amplitude_mm", "rmse"]
    std = np.array([5.0, 3.0, 0.5])
    assert descriptor_scale(std, names, {"trend_mm_yr": 4.0}, "threshold").tolist() == [4.0, 4.0, 0.5]
    assert descriptor_scale(std, names, None, "threshold").tolist() == [2.0, 4.0, 0.5]
    assert descriptor_scale(std, names, {"trend_mm_yr": 4.0}, "zscore").tolist() == [5.0, 3.0, 0.5]


def test_features_of_each_method(site):
    cfg = {"pca_max_components": 12}
    src, extras = build_features("pca-kmeans", site["shards"], baselines_cfg=cfg)
    assert extras["pca"]["n_components"] == src.n_features >= 2
    assert len(extras["pca"]["explained_variance_ratio"]) == 12
    assert np.all(np.diff(extras["pca"]["cumulative_explained_variance"]) >= 0)
    assert src.read(0, 10).shape == (10, src.n_features)
    raw, extras = build_features("raw-kmeans", site["shards"], baselines_cfg={})
    assert raw.n_features == 120 and extras["zscore"] == "epoch"
    X = raw.read(0, raw.n_rows)
    np.testing.assert_allclose(X[:, 1:].mean(axis=0), 0, atol=1e-3)
    desc, extras = build_features("descriptors-kmeans", site["shards"], site["descriptors"],
                                  baselines_cfg={"descriptor_features": ["trend_mm_yr", "step_mm"],
                                                 "descriptor_scaling": "zscore"})
    assert desc.names == ["trend_mm_yr", "step_mm"]
    D = desc.read(0, desc.n_rows)
    np.testing.assert_allclose(D.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(D[:, 0].std(), 1.0, atol=1e-3)
    with pytest.raises(ValueError, match="descriptor_scaling"):
        build_features("descriptors-kmeans", site["shards"], site["descriptors"],
                       baselines_cfg={"descriptor_scaling": "minmax"})
    with pytest.raises(ValueError, match="unknown peer method"):
        build_features("tsne-kmeans", site["shards"], baselines_cfg={})
    with pytest.raises(ValueError, match="lacks"):
        build_features("descriptors-kmeans", site["shards"], site["descriptors"],
                       baselines_cfg={"descriptor_features": ["velocity"]})


def run_baseline(method, site, baselines_cfg, seed, truth=False):
    """Fit a peer, then evaluate it as the workflow's two rules do: ``(labels, split, result)``."""
    fit = fit_baseline(method, site["shards"], site["descriptors"], kmeans_cfg=KMEANS_CFG,
                       baselines_cfg=baselines_cfg, seed=seed, graph_path=site["graph"],
                       smooth_cfg={"H": 2, "alpha": 0.5})
    result = evaluate.evaluate_labelling(fit, graph_path=site["graph"], shards_path=site["shards"],
                                         descriptors_path=site["descriptors"],
                                         truth_path=site["truth_csv"] if truth else None, thresholds=INTERPRET)
    return fit.labels, fit.split, result, fit


@pytest.mark.parametrize("method", METHODS)
def test_each_baseline_recovers_the_regimes(site, method, tmp_path):
    labels, split, result, fit = run_baseline(method, site, {"pca_max_components": 12}, seed=3, truth=True)
    n = len(site["truth"])
    assert labels.shape == (n,) and labels.dtype == np.int32 and set(np.unique(labels)) <= set(range(4))
    assert split.shape == (n,) and int(split.sum()) == 400
    assert result["k"] == 4 and sum(result["sizes"]) == n
    assert adjusted_rand_score(site["truth"], labels) > 0.9
    m = result["metrics"]
    assert m["ari"] > 0.9 and m["label_match"] > 0.9
    assert m["spatial_coherence"] > 0.8
    assert sorted(c["label"] for c in result["clusters"]) == ["seasonal", "stable", "subsiding", "uplifting"]
    # ids ordered by trend: 0 subsides, 3 uplifts
    assert result["clusters"][0]["label"] == "subsiding" and result["clusters"][3]["label"] == "uplifting"
    if method == "pca-kmeans":
        assert result["pca"]["n_components"] >= 2
        assert len(result["centroid_spectrum"]) == 4
    if method == "descriptors-kmeans":
        assert result["features"] == ["trend_mm_yr", "acceleration_mm_yr2", "annual_amplitude_mm",
                                      "step_mm"]
        # threshold units: trend / 2 mm/yr, acceleration / 1.5, amplitude / 4 mm, step / 8 mm
        assert result["feature_scale"] == pytest.approx([2.0, 1.5, 4.0, 8.0])
        assert result["feature_std"][3] < 1.0  # no step on this site
    # the clusters file keeps labels, centres and the fit record; evaluating it gives the same JSON
    h5, js = tmp_path / f"{method}.h5", tmp_path / f"{method}.json"
    fit.stamp("t", method, {"seed": 3}).write(h5)
    back = Labelling.read(h5)
    np.testing.assert_array_equal(back.labels, labels)
    assert back.centers.shape[0] == 4 and back.record["method"] == method
    evaluate.evaluate_file(h5, js, graph_path=site["graph"], shards_path=site["shards"],
                           descriptors_path=site["descriptors"], truth_path=site["truth_csv"], thresholds=INTERPRET)
    stored = json.loads(js.read_text())
    assert stored["method"] == method and stored["metrics"]["ari"] == pytest.approx(m["ari"])


def test_baseline_is_deterministic_and_k_auto(site):
    a = run_baseline("descriptors-kmeans", site, {}, seed=5)
    b = run_baseline("descriptors-kmeans", site, {}, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2]["metrics"] == b[2]["metrics"]
    labels, _, result, _ = run_baseline("pca-kmeans", site, {"k": "auto", "pca_max_components": 12}, seed=5)
    sel = result["k_selection"]
    assert sel["k"] == [2, 3, 4, 5] and len(sel["silhouette"]) == 4
    assert sel["chosen"] == result["k"] == int(labels.max()) + 1
    assert result["k"] == 4  # four well separated regimes


@pytest.mark.parametrize("smooth_cfg", [{"H": 3, "alpha": 0.5, "aggregation": "mean", "batch_size": 300},
                                        {"H": 2, "alpha": 0.3, "aggregation": "sum", "batch_size": 4096}])
def test_raw_smoothed_features_equal_the_exact_smoothing(site, tmp_path, smooth_cfg, one_thread):
    """Streamed by batches on their halos, the smoothed raw series are the stage's exact product."""
    from insarclust.smooth import GraphSmoother

    raw, _ = build_features("raw-kmeans", site["shards"], baselines_cfg={})
    smoothed, extras = build_features("raw-kmeans_smoothed", site["shards"], baselines_cfg={},
                                      graph_path=site["graph"], smooth_cfg=smooth_cfg, workdir=tmp_path)
    assert extras["smooth"]["H"] == smooth_cfg["H"] and extras["smooth"]["mode"] == "exact"
    g = h5io.read_graph(site["graph"])
    exact = GraphSmoother(H=smooth_cfg["H"], alpha=smooth_cfg["alpha"], aggregation=smooth_cfg["aggregation"])
    expected = exact.fit(g["indptr"], g["indices"], g["weight"]).transform(raw.read(0, raw.n_rows))
    got = smoothed.read(0, smoothed.n_rows)
    assert smoothed.names == raw.names and np.array_equal(smoothed.shard_offsets, raw.shard_offsets)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    if smooth_cfg["aggregation"] == "mean":  # neighbours' noise averaged away
        assert got.std() < 0.95 * raw.read(0, raw.n_rows).std()
    with pytest.raises(ValueError, match="graph_path and workdir"):
        build_features("raw-kmeans_smoothed", site["shards"], baselines_cfg={})


def test_raw_smoothed_peer_leaves_no_temporary_files(site, tmp_path):
    import shutil

    shards = tmp_path / "shards.h5"
    shutil.copy(site["shards"], shards)
    fit = fit_baseline("raw-kmeans_smoothed", shards, kmeans_cfg=KMEANS_CFG, baselines_cfg={}, seed=3,
                       graph_path=site["graph"], smooth_cfg={"H": 2, "alpha": 0.5})
    labels, result = fit.labels, fit.record
    assert result["smooth"] == {"H": 2, "alpha": 0.5, "aggregation": "mean", "mode": "exact",
                                "fanout": [-1, -1]}
    assert adjusted_rand_score(site["truth"], labels) > 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards.h5"]


def test_raw_smoothed_peer_keeps_its_work_where_a_killed_job_is_cleaned_up(site, tmp_path, monkeypatch):
    """The rule's job names its temporary series after its output: SIGKILL (out of memory, a
    SLURM time limit) leaves a directory of N x G floats that the next job for that output
    removes (start_rule -> remove_stale_temporaries), instead of one beside shards.h5 for ever."""
    import insarclust.smooth as smooth

    out = tmp_path / "clusters" / "raw-kmeans_smoothed.h5"
    seen = []
    real = smooth.smooth_source_to_file

    def spy(source, graph, cfg, out_path, **kw):
        seen.append(Path(out_path).parent)
        return real(source, graph, cfg, out_path, **kw)

    monkeypatch.setattr(smooth, "smooth_source_to_file", spy)
    fit_baseline("raw-kmeans_smoothed", site["shards"], kmeans_cfg=KMEANS_CFG, baselines_cfg={}, seed=3,
                 graph_path=site["graph"], smooth_cfg={"H": 2, "alpha": 0.5}, out_path=out)
    assert seen == [h5io.temp_name(out, "runs")]
    assert not seen[0].exists() and list(out.parent.iterdir()) == []
    # what a killed job on another node leaves is what the next job removes
    stale = out.parent / f".{out.name}.runs-node7-4242"
    (stale / "deep").mkdir(parents=True)
    assert h5io.remove_stale_temporaries(out) == [stale] and not stale.exists()
