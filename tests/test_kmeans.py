"""Batched mini-batch k-means: the seed method, its split and warm start, engines, k choice, the stage."""
from __future__ import annotations

import copy
import json
import runpy

import numpy as np
import pytest
from scipy.stats import kstest
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from conftest import ROOT
from insarclust import h5io
from insarclust.batches import ArraySource, H5FeatureSource, ShardsSource, iter_batches
from insarclust.kmeans import (BatchedKMeans, _NumpyMiniBatchUpdate, fit_from_config, kmeans_params,
                               fit_stage, seed_stability, select_k, split_rows, sweep_k)

REGIMES = np.array(["stable", "subsiding", "seasonal", "uplifting"])


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=6000, centers=5, n_features=8, cluster_std=1.0, random_state=7)
    return X.astype(np.float32), y


# --------------------------------------------------------------------------- split


def test_random_split_sizes():
    split = split_rows(10001, 0.2, "random", seed=3)
    assert split.dtype == np.uint8 and set(np.unique(split)) == {0, 1}
    assert int(split.sum()) == round(0.2 * 10001)
    assert np.array_equal(split, split_rows(10001, 0.2, "random", seed=3))
    assert not np.array_equal(split, split_rows(10001, 0.2, "random", seed=4))
    assert split_rows(100, 0.0, "random").sum() == 0


def test_shard_split_holds_out_whole_shards():
    offsets = np.array([0, 100, 350, 400, 700, 1000, 1300, 1500, 2000])
    split = split_rows(2000, 0.25, "shard", offsets, seed=1)
    for a, b in zip(offsets[:-1], offsets[1:]):
        assert len(np.unique(split[a:b])) == 1  # a shard is all train or all test
    assert abs(split.mean() - 0.25) <= 0.1
    assert split_rows(2000, 0.9, "shard", [0, 2000], seed=0).sum() == 0  # one shard stays train
    with pytest.raises(ValueError, match="shard offsets"):
        split_rows(100, 0.2, "shard", None)


# --------------------------------------------------------------------------- the method


def test_every_point_one_label_and_split_sizes(blobs):
    X, y = blobs
    model = BatchedKMeans(5, batch_size=128, warm_start_size=1000, random_state=0).fit(X)
    assert model.labels_.shape == (6000,) and model.labels_.dtype == np.int32
    assert model.labels_.min() >= 0 and model.labels_.max() < 5
    assert model.split_.dtype == np.uint8 and int(model.split_.sum()) == 1200
    assert model.cluster_centers_.shape == (5, 8)
    assert model.n_steps_ == -(-4800 // 128)
    assert np.array_equal(model.predict(X), model.labels_)
    assert adjusted_rand_score(y, model.labels_) > 0.99
    # held-out points fit about as well as train points: no overfitting on blobs
    assert 0.8 < model.inertia_test_ / model.inertia_train_ < 1.25


def test_warm_start_is_uniform_sample_of_train_stream_prefix(blobs):
    X, _ = blobs
    S, B = 700, 256
    model = BatchedKMeans(5, batch_size=B, warm_start_size=S, random_state=2).fit(X)
    warm = model.warm_start_rows_
    assert len(warm) == S and len(np.unique(warm)) == S
    assert np.all(model.split_[warm] == 0)  # train points only
    # the prefix of the train stream: the first ceil(S / B) batches
    train = np.flatnonzero(model.split_ == 0)
    stream = iter_batches(ArraySource(X), train, B, shuffle=True, seed=model._seeds()["warm"])
    prefix = np.concatenate([next(stream)[0] for _ in range(-(-S // B))])
    position = {row: i for i, row in enumerate(prefix)}
    assert set(warm) <= set(prefix)
    # uniform over the prefix: positions of the kept points ~ U(0, len(prefix))
    kept = np.array([position[r] for r in warm]) / len(prefix)
    assert kstest(kept, "uniform").pvalue > 0.01
    # and the prefix itself is spread over the whole train set, not its first rows
    assert kstest(prefix / len(X), "uniform").pvalue > 0.01
    small = BatchedKMeans(5, warm_start_size=10**6, random_state=2).fit(X)
    assert len(small.warm_start_rows_) == len(train)  # S capped at the train size


def test_follows_the_seed_recipe_exactly(blobs):
    """engine="sklearn" == MiniBatchKMeans.fit on the warm sample (from the centres of a
    full-batch KMeans of it) + partial_fit per train batch."""
    X, _ = blobs
    model = BatchedKMeans(4, batch_size=200, warm_start_size=900, n_passes=2, random_state=5,
                          engine="sklearn").fit(X)
    seeds = model._seeds()
    train = np.flatnonzero(model.split_ == 0)
    with threadpool_limits(limits=1):  # only for speed on a shared machine
        warm = X[model.warm_start_rows_]
        start = KMeans(n_clusters=4, n_init=10, random_state=seeds["model"]).fit(warm).cluster_centers_
        recipe = MiniBatchKMeans(n_clusters=4, batch_size=200, init=start, n_init=1,
                                 random_state=seeds["model"], compute_labels=False).fit(warm)
        for pass_seed in seeds["passes"]:
            for _, batch in iter_batches(ArraySource(X), train, 200, shuffle=True, seed=pass_seed):
                recipe.partial_fit(batch)
    assert np.array_equal(recipe.cluster_centers_, model.cluster_centers_)
    assert np.array_equal(recipe.predict(X), model.labels_)


def test_the_warm_start_converges_its_seedings_so_the_fit_does_not_depend_on_the_seed():
    """Seven blobs of unequal size and spread for k = 4: several merges nearly as good. Picking
    the warm start's seeding by its inertia before convergence left fits up to 4 % worse than
    full-batch k-means and as unlike one another as ARI 0.48 between seeds; converging every
    seeding on the S points gives the same clusters for any seed (ARI >= 0.99 here)."""
    from itertools import combinations

    rng = np.random.default_rng(7)
    centres = rng.normal(0, 4, (7, 8))
    parts = [c + rng.normal(0, s, (n, 8)) for c, n, s in
             zip(centres, [3000, 2500, 2000, 1500, 1000, 600, 400], [1, 1.5, 0.8, 1.2, 1, 0.7, 1.3])]
    X = np.concatenate(parts).astype(np.float32)
    rng.shuffle(X)
    with threadpool_limits(limits=1):
        full = KMeans(4, n_init=10, random_state=0).fit(X).inertia_ / len(X)
        fits = [BatchedKMeans(4, random_state=s, warm_start_size=4000).fit(X) for s in range(6)]
    assert max(f.inertia_train_ for f in fits) < 1.02 * full
    assert min(adjusted_rand_score(a.labels_, b.labels_) for a, b in combinations(fits, 2)) > 0.95


def test_numpy_engine_matches_sklearn_update(blobs):
    X, _ = blobs
    a = BatchedKMeans(6, batch_size=256, warm_start_size=1000, random_state=1, engine="numpy").fit(X)
    b = BatchedKMeans(6, batch_size=256, warm_start_size=1000, random_state=1, engine="sklearn").fit(X)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-4)
    assert np.array_equal(a.labels_, b.labels_)
    assert a.inertia_train_ == pytest.approx(b.inertia_train_, rel=1e-5)


def test_numpy_update_reassigns_starved_centres_like_sklearn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 5)).astype(np.float32)
    with threadpool_limits(limits=1):
        model = MiniBatchKMeans(4, batch_size=256, random_state=3, compute_labels=False).fit(X[:1000])
    model._counts[1] = 0.5  # below 1 % of the largest count: re-seeded on a random batch point
    update = _NumpyMiniBatchUpdate(copy.deepcopy(model))
    before = model.cluster_centers_[1].copy()
    with threadpool_limits(limits=1):
        for s in range(1000, 5000, 256):
            model.partial_fit(X[s:s + 256])
            update.partial_fit(X[s:s + 256])
    assert not np.allclose(model.cluster_centers_[1], before)
    np.testing.assert_allclose(update.centers, model.cluster_centers_, atol=1e-5)
    np.testing.assert_array_equal(update.counts, model._counts)


def test_deterministic_and_seed_stable(shards_file):
    path, truth = shards_file
    source = ShardsSource(path)
    params = dict(n_clusters=4, warm_start_size=800, random_state=11)
    a = BatchedKMeans(**params).fit(source)
    b = BatchedKMeans(**params).fit(source)
    assert np.array_equal(a.labels_, b.labels_) and np.array_equal(a.cluster_centers_, b.cluster_centers_)
    c = BatchedKMeans(**{**params, "random_state": 12}).fit(source)
    assert not np.array_equal(a.split_, c.split_)  # a different run ...
    ari = adjusted_rand_score(a.labels_, c.labels_)
    print(f"\nARI between seeds 11 and 12: {ari:.4f}")
    assert ari > 0.95  # ... with the same partition
    assert adjusted_rand_score(truth, a.labels_) > 0.95


def test_bad_parameters(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="engine"):
        BatchedKMeans(engine="torch").fit(X)
    with pytest.raises(ValueError, match="train points"):
        BatchedKMeans(n_clusters=50).fit(X[:40])
    with pytest.raises(ValueError, match="shard offsets"):
        BatchedKMeans(split="shard").fit(X)


def test_shard_split_fit(shards_file):
    path, _ = shards_file
    model = BatchedKMeans(4, warm_start_size=500, split="shard", test_fraction=0.25).fit(ShardsSource(path))
    offsets = h5io.Shards(path).offsets
    for a, b in zip(offsets[:-1], offsets[1:]):
        assert len(np.unique(model.split_[a:b])) == 1
    assert 0 < model.split_.sum() < len(model.split_)


# --------------------------------------------------------------------------- k choice


def test_k_auto_finds_the_number_of_blobs(blobs):
    X, _ = blobs
    selection = select_k(X, [2, 7], seed=0, silhouette_sample=2000, warm_start_size=1000)
    assert selection["chosen"] == 5 and selection["k"] == [2, 3, 4, 5, 6, 7]
    assert max(selection["silhouette"]) == selection["silhouette"][3]
    model, sel = fit_from_config(X, {"k": "auto", "k_range": [4, 6], "silhouette_sample": 2000,
                                     "warm_start_size": 1000}, seed=0)
    assert model.n_clusters == 5 and sel["chosen"] == 5
    model, sel = fit_from_config(X, {"k": 3}, seed=0)
    assert model.n_clusters == 3 and sel is None


def test_sweep_table(blobs):
    X, _ = blobs
    table = sweep_k(X, [3, 5], seed=0, silhouette_sample=1000, warm_start_size=1000)
    assert table["k"].tolist() == [3, 5]
    assert {"silhouette", "davies_bouldin", "calinski_harabasz", "inertia_train",
            "inertia_test", "mean_intercentroid_distance"} <= set(table.columns)
    assert table["inertia_train"].iloc[1] < table["inertia_train"].iloc[0]
    assert table["silhouette"].iloc[1] > table["silhouette"].iloc[0]


def test_sweep_stops_on_a_graph_of_other_points(blobs, tmp_path):
    """Its spatial coherence was measured on a subset of the points without a word."""
    from insarclust import h5io
    from insarclust.errors import InputError

    X, _ = blobs
    n = len(X) - 7
    graph = tmp_path / "graph.h5"
    h5io.write_graph(graph, np.arange(n + 1), (np.arange(n) + 1) % n, np.ones(n), np.ones(n), {})
    with pytest.raises(InputError, match=rf"file {graph}: a graph of {n} points, but the features have {len(X)} rows"):
        sweep_k(X, [3], seed=0, silhouette_sample=1000, warm_start_size=1000, graph_path=graph)


def test_kmeans_params_from_config():
    p = kmeans_params({"k": 4, "batch_size": 64, "split": "shard", "engine": "sklearn"})
    assert p["batch_size"] == 64 and p["split"] == "shard" and p["engine"] == "sklearn"
    assert BatchedKMeans(**p).get_params()["warm_start_size"] == 25600


# --------------------------------------------------------------------------- the stage


def _site(tmp_path, shards_file):
    """features/dyn.h5, graph.h5, descriptors.h5 and the truth table of the shards fixture."""
    path, truth = shards_file
    shards = h5io.Shards(path)
    regular = shards.read("series/regular")
    t_yr = (shards.grid_dates - shards.grid_dates[0]) / 365.25
    features = tmp_path / "features" / "dyn.h5"
    h5io.write_features(features, regular[:, ::4], [f"f{j}" for j in range(regular[:, ::4].shape[1])])
    trend = np.polyfit(t_yr, regular.T, 1)[0]
    descriptors = tmp_path / "features" / "descriptors.h5"
    h5io.write_features(descriptors, np.stack([trend, regular.std(axis=1)], axis=1),
                        ["trend_mm_yr", "residual_rms_mm"])
    # a chain graph along the (quadrant-sorted) rows: neighbours share the regime
    n = len(regular)
    src = np.repeat(np.arange(n), 2)
    dst = np.clip(src + np.tile([-1, 1], n), 0, n - 1)
    graph = tmp_path / "graph.h5"
    h5io.write_graph(graph, np.arange(0, 2 * n + 1, 2), dst, np.ones(2 * n), np.ones(2 * n),
                     {"k": 2, "weighting": "binary"})
    truth_csv = tmp_path / "truth.csv"
    pids = shards.pids()
    order = np.random.default_rng(0).permutation(n)  # rows matched by pid, not position
    truth_csv.write_text("pid,regime\n" + "".join(f"{pids[i]},{REGIMES[truth[i]]}\n" for i in order))
    return features, graph, descriptors, truth_csv


CFG = {"k": 4, "batch_size": 128, "test_fraction": 0.2, "split": "random", "warm_start_size": 1000,
       "n_passes": 1, "silhouette_sample": 1000, "engine": "numpy", "seed_stability": True}


def fit_and_evaluate(features, path, graph, cfg, seed, descriptors=None, truth_csv=None):
    """The two rules in a row: kmeans (fit) then evaluate."""
    from insarclust.evaluate import evaluate_labelling

    fit = fit_stage(features, path, cfg=cfg, seed=seed)
    return fit, evaluate_labelling(fit, graph_path=graph, shards_path=path, descriptors_path=descriptors,
                                   truth_path=truth_csv, thresholds={})


def test_fit_stage_then_evaluate(tmp_path, shards_file):
    path, truth = shards_file
    features, graph, descriptors, truth_csv = _site(tmp_path, shards_file)
    fit, result = fit_and_evaluate(features, path, graph, CFG, 3, descriptors, truth_csv)
    labels, split = fit.labels, fit.split
    assert labels.dtype == np.int32 and split.dtype == np.uint8 and len(labels) == 2000
    assert fit.centers.shape == (4, h5io.Features(features).n_features)
    m = result["metrics"]
    assert m["ari"] > 0.95 and m["nmi"] > 0.9
    assert m["spatial_coherence"] > 0.95
    assert m["inertia_train"] > 0 and m["inertia_test"] > 0
    assert result["seed_stability_ari"] > 0.95
    assert result["n_train"] == 1600 and result["n_test"] == 400 and sum(result["sizes"]) == 2000
    # ids by trend: 0 = the subsiding regime, 3 = the uplifting one
    assert np.mean(labels[truth == 1] == 0) > 0.95 and np.mean(labels[truth == 3] == 3) > 0.95
    assert [c["cluster"] for c in result["clusters"]] == [0, 1, 2, 3]
    assert set(result["clusters"][0]["spread"]) == {"trend_mm_yr", "residual_rms_mm"}
    # the fit itself reads no threshold, truth or graph
    assert set(fit.record) == {"k", "metrics", "seed_stability_ari"}
    assert "spatial_coherence" not in fit.record["metrics"]


def test_the_rule_leaves_its_diagnostics_to_evaluate_with_equal_results(tmp_path, shards_file):
    """The kmeans rule fits without measuring (measure=False); its evaluate job measures the
    silhouette etc. and the seed stability from the stored labels and centres: the JSON is the
    one the fit measuring itself gives, to the bit (so a diagnostic setting refits nothing)."""
    from insarclust.evaluate import evaluate_labelling
    from insarclust.labels import Labelling

    path, _ = shards_file
    features, graph, descriptors, truth_csv = _site(tmp_path, shards_file)
    measured = fit_stage(features, path, cfg=CFG, seed=3)
    bare = fit_stage(features, path, cfg=CFG, seed=3, measure=False)
    assert set(bare.record["metrics"]) == {"inertia_train", "inertia_test"} and "seed_stability_ari" not in bare.record
    np.testing.assert_array_equal(bare.labels, measured.labels)
    for fit in (measured, bare):
        fit.stamp("s", "kmeans-dyn", {"kmeans": CFG, "seed": 3})
        fit.write(tmp_path / f"{id(fit)}.h5")
    kw = dict(graph_path=graph, shards_path=path, descriptors_path=descriptors, truth_path=truth_csv, thresholds={})
    want = evaluate_labelling(Labelling.read(tmp_path / f"{id(measured)}.h5"), **kw)
    got = evaluate_labelling(Labelling.read(tmp_path / f"{id(bare)}.h5"), features_path=features, seed=3,
                             kmeans_cfg=CFG, **kw)
    assert json.dumps(got) == json.dumps(want)
    assert want["seed_stability_ari"] > 0.95 and 0 < want["metrics"]["silhouette"] <= 1
    # without seed_stability no refit is measured
    off = evaluate_labelling(Labelling.read(tmp_path / f"{id(bare)}.h5"), features_path=features, seed=3,
                             kmeans_cfg={**CFG, "seed_stability": False}, **kw)
    assert "seed_stability_ari" not in off and off["metrics"] == want["metrics"]


def test_the_json_config_names_the_diagnostic_settings_evaluate_measured_with(tmp_path, shards_file):
    """As the rules run them: the kmeans job's config has no silhouette_sample / seed_stability
    (fixed k), the evaluate job gets them (without k): the JSON records them as when the fit
    measured itself, so the silhouette and seed_stability_ari name the settings behind them."""
    from insarclust.evaluate import evaluate_labelling
    from insarclust.labels import Labelling

    path, _ = shards_file
    features, graph, descriptors, truth_csv = _site(tmp_path, shards_file)
    diagnostics = ("silhouette_sample", "seed_stability")
    fit_cfg = {k: v for k, v in CFG.items() if k not in diagnostics}
    measured = fit_stage(features, path, cfg=CFG, seed=3).stamp("s", "kmeans-dyn", {"kmeans": CFG, "seed": 3})
    bare = fit_stage(features, path, cfg=fit_cfg, seed=3, measure=False)
    bare.stamp("s", "kmeans-dyn", {"kmeans": fit_cfg, "seed": 3})
    for name, fit in (("measured", measured), ("bare", bare)):
        fit.write(tmp_path / f"{name}.h5")
    kw = dict(graph_path=graph, shards_path=path, descriptors_path=descriptors, truth_path=truth_csv, thresholds={})
    want = evaluate_labelling(Labelling.read(tmp_path / "measured.h5"), **kw)
    got = evaluate_labelling(Labelling.read(tmp_path / "bare.h5"), features_path=features, seed=3,
                             kmeans_cfg={k: v for k, v in CFG.items() if k != "k"}, **kw)
    assert got["config"]["kmeans"] == CFG
    assert json.dumps(got) == json.dumps(want)


def test_kmeans_scripts(tmp_path, shards_file):
    from snakemake.iocontainers import Namedlist

    path, _ = shards_file
    features, graph, descriptors, truth_csv = _site(tmp_path, shards_file)

    class Snakemake:
        def __init__(self, input, output, params, wildcards):
            self.input, self.output = Namedlist(fromdict=input), Namedlist(fromdict=output)
            self.params, self.wildcards = Namedlist(fromdict=params), Namedlist(fromdict=wildcards)
            self.log, self.threads, self.config = [str(tmp_path / "rule.log")], 1, {}

    def run(script, *args):
        runpy.run_path(str(ROOT / "scripts" / script), init_globals={"snakemake": Snakemake(*args)})

    out = tmp_path / "clusters"
    wildcards = {"site": "demo-x", "variant": "dyn", "method": "kmeans-dyn"}
    # as the rules hand them over: the fit without its diagnostics (fixed k), which the
    # evaluate job measures in the variant's features (workflow/rules/common.smk)
    diagnostics = ("silhouette_sample", "seed_stability")
    fit_args = ({"features": str(features), "shards": str(path)}, {"labels": str(out / "kmeans-dyn.h5")},
                {"cfg": {k: v for k, v in CFG.items() if k not in diagnostics}, "seed": 3}, wildcards)
    eval_args = ({"labels": str(out / "kmeans-dyn.h5"), "graph": str(graph), "shards": str(path),
                  "descriptors": str(descriptors), "truth": [str(truth_csv)], "features": [str(features)]},
                 {"metrics": str(out / "kmeans-dyn.json")},
                 {"thresholds": {}, "fit": {"seed": 3, "kmeans_cfg": {k: v for k, v in CFG.items() if k != "k"}},
                  "partial_truth": False},
                 wildcards)
    run("kmeans.py", *fit_args)
    run("evaluate.py", *eval_args)
    stored = h5io.read_clusters(out / "kmeans-dyn.h5")
    assert stored["labels"].dtype == np.int32 and stored["split"].dtype == np.uint8
    result = json.loads((out / "kmeans-dyn.json").read_text())
    assert result["site"] == "demo-x" and result["method"] == "kmeans-dyn" and result["variant"] == "dyn"
    assert result["metrics"]["ari"] > 0.95 and result["config"]["kmeans"] == CFG
    assert 0 < result["metrics"]["silhouette"] <= 1 and result["seed_stability_ari"] > 0.95
    assert sorted(p.name for p in out.iterdir()) == ["kmeans-dyn.h5", "kmeans-dyn.json"]  # no temp files

    # same input + config => identical labels
    run("kmeans.py", *fit_args)
    assert np.array_equal(h5io.read_clusters(out / "kmeans-dyn.h5")["labels"], stored["labels"])

    run("kmeans_sweep.py", {"features": str(features), "graph": str(graph), "shards": str(path)},
        {"table": str(out / "kmeans-dyn_k.tsv")}, {"cfg": {**CFG, "k_range": [2, 5]}, "seed": 3}, wildcards)
    run("k_sweep_figure.py", {"table": str(out / "kmeans-dyn_k.tsv")}, {"figure": str(tmp_path / "k.png")},
        {"dpi": 80}, wildcards)
    import pandas as pd

    table = pd.read_csv(out / "kmeans-dyn_k.tsv", sep="\t")
    assert table["k"].tolist() == [2, 3, 4, 5] and "spatial_coherence" in table
    assert int(table.loc[table["silhouette"].idxmax(), "k"]) == 4
    assert (tmp_path / "k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_h5_feature_source_with_shard_split(tmp_path, shards_file):
    path, _ = shards_file
    features, *_ = _site(tmp_path, shards_file)
    source = H5FeatureSource(features, shard_offsets=h5io.Shards(path).offsets)
    model = BatchedKMeans(4, warm_start_size=500, split="shard", random_state=0).fit(source)
    assert model.labels_.shape == (2000,)


def test_fit_stage_on_a_derived_source(tmp_path, shards_file):
    """The baselines' path: a MapSource over shards.h5 instead of a feature file."""
    from insarclust.batches import MapSource

    path, truth = shards_file
    _, graph, _, truth_csv = _site(tmp_path, shards_file)
    centred = MapSource(ShardsSource(path), lambda b: b - b.mean(axis=1, keepdims=True))
    _, result = fit_and_evaluate(centred, path, graph, {**CFG, "seed_stability": False}, 0,
                                 truth_csv=truth_csv)
    assert result["metrics"]["ari"] > 0.95 and "seed_stability_ari" not in result
    assert result["clusters"][0]["label"] == "subsiding"


def test_more_clusters_than_distinct_rows_warns_and_metric_skips_empty(caplog):
    """k = 5 on 3 distinct rows: two clusters stay empty; the fit says so, and the mean
    inter-centroid distance is over the 3 real centres, not biased by idle duplicates."""
    from insarclust import metrics

    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(3, 4)).astype(np.float32) * 10
    X = np.repeat(distinct, 400, axis=0)
    with caplog.at_level("WARNING", logger="insarclust"):
        model = BatchedKMeans(n_clusters=5, warm_start_size=500, random_state=0).fit(ArraySource(X))
    sizes = np.bincount(model.labels_, minlength=5)
    assert (sizes == 0).sum() == 2 and sorted(sizes[sizes > 0]) == [400, 400, 400]
    assert "2 cluster(s) hold no point" in caplog.text
    q = metrics.quality_metrics(ArraySource(X), model.labels_, n_clusters=5, seed=0,
                                silhouette_sample=300, centers=model.cluster_centers_)
    d = np.linalg.norm(distinct[:, None] - distinct[None], axis=-1)[np.triu_indices(3, 1)]
    assert q["mean_intercentroid_distance"] == pytest.approx(d.mean(), rel=1e-4)


def test_non_finite_feature_stops_kmeans_with_its_row(blobs):
    """A NaN row would get label 0 without a word; the fit names it."""
    X = blobs[0].copy()
    X[4321, 5] = np.inf
    with pytest.raises(ValueError, match=r"feature row 4321 \(0-based\), column 'x5' is inf"):
        BatchedKMeans(n_clusters=3, warm_start_size=500).fit(ArraySource(X))


def test_predict_checks_the_rows_it_labels(blobs):
    """predict names a wrong width or a NaN row (it was a numpy matmul error, and label 0)."""
    X = blobs[0]
    model = BatchedKMeans(n_clusters=3, warm_start_size=500).fit(X)
    assert model.n_features_in_ == 8
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    with pytest.raises(ValueError, match=r"expected \(n, 8\)"):
        model.predict(X[:, :5])
    with pytest.raises(ValueError, match=r"expected \(n, 8\)"):
        model.predict(X[0])
    bad = X[:10].copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"feature row 7 \(0-based\), column 2 is nan"):
        model.predict(bad)


def test_seed_stability_is_the_ari_against_a_refit_with_the_next_seed():
    """On structureless noise k-means partitions depend on the seed, so the diagnostic must be
    below 1 and equal to the ARI between the labels and an independent fit with seed + 1 (a
    refit with the same seed reproduces the labels and always reported a perfect 1.0)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 6)).astype(np.float32)
    cfg = {"k": 6, "batch_size": 128, "warm_start_size": 600, "n_init": 2, "n_passes": 1,
           "test_fraction": 0.2, "split": "random", "engine": "numpy"}
    params = {k: v for k, v in cfg.items() if k != "k"}
    with threadpool_limits(limits=1):
        labels = BatchedKMeans(6, random_state=3, **params).fit(X).labels_
        other = BatchedKMeans(6, random_state=4, **params).fit(X).labels_
        value = seed_stability(ArraySource(X), labels, 6, cfg, seed=3)
    want = adjusted_rand_score(labels, other)
    assert want < 0.9                       # the two seeds really disagree here
    assert value == pytest.approx(want, abs=1e-12)


def test_every_pass_is_a_fresh_shuffle_of_the_train_rows(monkeypatch):
    """n_passes: each pass visits every train row once, in its own seeded order (replaying one
    order, the later passes only repeated the first one's batches)."""
    orders = []
    stream = BatchedKMeans._stream

    def recording(self, source, rows, seed):
        order = []
        orders.append(order)
        for idx, X in stream(self, source, rows, seed):
            order.extend(np.asarray(idx).tolist())
            yield idx, X

    monkeypatch.setattr(BatchedKMeans, "_stream", recording)
    X = np.random.default_rng(1).normal(size=(800, 3)).astype(np.float32)
    with threadpool_limits(limits=1):
        model = BatchedKMeans(3, batch_size=50, warm_start_size=100, n_passes=3, n_init=1,
                              random_state=0).fit(X)
    train = np.flatnonzero(model.split_ == 0)
    passes = orders[1:]                     # the first stream feeds the warm start
    assert len(passes) == 3 and model.n_steps_ == 3 * -(-len(train) // 50)
    for order in passes:
        assert sorted(order) == train.tolist()
    assert passes[0] != passes[1] and passes[1] != passes[2] and passes[0] != passes[2]
