"""Streamed quality metrics and the shared evaluation record: known answers."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from insarclust import cluster_series, evaluate, h5io, metrics
from insarclust import labels as labels_mod
from insarclust.batches import ArraySource, ShardsSource
from insarclust.errors import InputError

REGIMES = np.array(["stable", "subsiding", "seasonal", "uplifting"])


def test_separated_blobs_score_near_perfect():
    X, y = make_blobs(n_samples=3000, centers=[[0, 0], [100, 0], [0, 100]], cluster_std=0.5,
                      random_state=0)
    q = metrics.quality_metrics(ArraySource(X), y, seed=0, silhouette_sample=1000)
    assert q["silhouette"] > 0.98
    assert q["davies_bouldin"] < 0.02
    assert q["calinski_harabasz"] > 1e5
    # centroids at the corners of a right triangle with legs 100: (100 + 100 + 141.42) / 3
    assert q["mean_intercentroid_distance"] == pytest.approx((200 + 100 * np.sqrt(2)) / 3, rel=1e-3)
    assert q["sizes"].tolist() == [1000, 1000, 1000]


@pytest.mark.parametrize("block_rows", [7, 100000])
def test_streamed_metrics_equal_sklearn(block_rows):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1500, 6)).astype(np.float32)
    labels = rng.integers(0, 4, 1500)
    labels[labels == 2] = 3  # an empty cluster id in the middle
    X[labels == 3] += 2.0
    source = ArraySource(X, shard_offsets=[0, 500, 1001, 1500])
    q = metrics.quality_metrics(source, labels, n_clusters=4, seed=0, silhouette_sample=10**6,
                                block_rows=block_rows)
    X64 = X.astype(np.float64)  # the streamed moments are float64; so is this reference
    assert q["davies_bouldin"] == pytest.approx(davies_bouldin_score(X64, labels), rel=1e-9)
    assert q["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(X64, labels), rel=1e-9)
    assert q["silhouette"] == pytest.approx(silhouette_score(X, labels), rel=1e-6)  # sample = all
    assert q["sizes"][2] == 0 and np.isnan(q["centroids"][2]).all()


def test_silhouette_sample_is_fixed():
    rows = metrics.sample_rows(100000, 500, seed=4)
    assert len(rows) == 500 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, metrics.sample_rows(100000, 500, seed=4))
    assert len(metrics.sample_rows(30, 500, seed=4)) == 30
    X = np.random.default_rng(0).normal(size=(200, 2))
    assert np.isnan(metrics.sampled_silhouette(ArraySource(X), np.zeros(200, int), 100, 0))


def test_cluster_series_stats_equal_numpy(shards_file):
    path, truth = shards_file
    labels = truth.copy()
    labels[labels == 2] = 5  # K = 6 with empty ids 2 and 4
    mean, std, counts = cluster_series.cluster_series_stats(path, labels)
    shards = h5io.Shards(path)
    regular = shards.read("series/regular").astype(np.float64)
    # a point counts from its first to its last observed epoch (5 % of epochs are missing,
    # so ~10 % of the points miss their first or last one)
    observed = ~np.isnan(shards.read("series/displacement"))
    cols = np.arange(observed.shape[1])
    first = observed.argmax(axis=1)[:, None]
    last = (observed.shape[1] - 1 - observed[:, ::-1].argmax(axis=1))[:, None]
    masked = np.where((cols >= first) & (cols <= last), regular, np.nan)
    assert np.isnan(masked[:, [0, -1]]).any()
    assert mean.shape == (6, regular.shape[1]) and counts.tolist() == np.bincount(labels).tolist()
    for k in (0, 1, 3, 5):
        want_mean, want_std = _carried_mean_std(masked[labels == k])
        np.testing.assert_allclose(mean[k], want_mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(std[k], want_std, rtol=1e-7, atol=1e-9)
    assert np.isnan(mean[2]).all() and np.isnan(std[4]).all()
    # members sharing one span: the plain mean and std
    full = labels.copy()
    full[(np.isnan(masked[:, 0]) | np.isnan(masked[:, -1])) & (labels == 0)] = 2
    mean, std, _ = cluster_series.cluster_series_stats(path, full)
    np.testing.assert_allclose(mean[0], regular[full == 0].mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(std[0], regular[full == 0].std(axis=0), rtol=1e-7, atol=1e-9)


def _carried_mean_std(masked):
    """Reference of a cluster's mean and std, members NaN outside their spans and in their holes:
    the plain mean at the first epoch, then the mean change of the members observed at both
    epochs and of those inside a hole (p..q, observed at p and q), each of these the others'
    mean change plus its own change across the hole less theirs, spread evenly (the plain mean
    where no member carries on; NaN where none is observed); the spread around it, members
    entering late shifted onto it."""
    m, G = masked.shape
    seen = ~np.isnan(masked)
    level = np.nanmean(masked, axis=0)
    bridges = []
    for i in range(m):
        idx = np.flatnonzero(seen[i])
        bridges += [(i, p, q) for p, q in zip(idx[:-1], idx[1:]) if q - p > 1]
    others = np.zeros(G)
    for g in range(1, G):
        both = seen[:, g - 1] & seen[:, g]
        if both.any():
            others[g] = np.mean(masked[both, g] - masked[both, g - 1])
    carried = np.zeros(G, dtype=bool)
    for g in range(1, G):
        both = seen[:, g - 1] & seen[:, g]
        changes = list(masked[both, g] - masked[both, g - 1])
        changes += [others[g] + (masked[i, q] - masked[i, p] - others[p + 1:q + 1].sum()) / (q - p)
                    for i, p, q in bridges if p < g <= q]
        if changes:
            carried[g] = True
            level[g] = level[g - 1] + np.mean(changes)
    level[~seen.any(axis=0)] = np.nan
    start = seen.argmax(axis=1)
    shift = np.zeros(m)
    for i in range(m):
        s = start[i]
        if s > 0 and carried[s]:
            shift[i] = level[s] - masked[i, s]
    std = np.sqrt(np.nanmean((masked + shift[:, None] - level) ** 2, axis=0))
    return level, std


def test_order_labels_by_trend(shards_file):
    path, truth = shards_file
    # truth: 0 stable, 1 subsiding (-8 mm/yr), 2 seasonal, 3 uplift (+5 mm/yr); scramble the ids
    scrambled = np.array([7, 2, 0, 4])[truth]
    ordered = labels_mod.order_labels(scrambled, path)
    assert ordered.dtype == np.int32
    assert np.all(ordered[truth == 1] == 0)  # subsiding first
    assert np.all(ordered[truth == 3] == 3)  # uplift last among the non-empty
    assert set(np.unique(ordered)) == {0, 1, 2, 3}  # empty ids 1, 3, 5, 6 of the scrambled set go last
    labels, order, (mean, _, counts) = labels_mod.order_labels_with_stats(scrambled, path)
    # subsiding (-8), seasonal (about -3 over its partial cycles), stable (0), uplift (+5)
    assert order[:4].tolist() == [2, 0, 7, 4]
    assert counts[4:].sum() == 0
    trend = labels_mod.trend_mm_yr(mean[:4], h5io.Shards(path).grid_dates)
    assert trend[0] == pytest.approx(-8.0, abs=0.3) and trend[3] == pytest.approx(5.0, abs=0.3)


def test_trend_order_puts_empty_and_undefined_clusters_last_and_breaks_ties_by_id():
    """Cluster ids go by ascending trend of their mean series; a cluster nobody chose (count 0)
    or whose mean has no trend (no member observed: NaN) comes after every real one, and equal
    trends keep their old order, so the numbering (and the colours) do not flip between runs."""
    grid = (17500 + 6 * np.arange(100)).astype(np.int32)
    t_yr = (grid - grid[0]) / 365.25
    mean = np.stack([2.0 * t_yr,               # 0: +2 mm/yr
                     -5.0 * t_yr,              # 1: -5
                     -9.0 * t_yr,              # 2: empty
                     2.0 * t_yr,               # 3: +2, a tie with 0
                     np.full(100, np.nan),     # 4: no trend
                     0.0 * t_yr])              # 5: 0
    counts = np.array([10, 10, 0, 10, 3, 10])
    assert labels_mod.trend_order(mean, grid, counts).tolist() == [1, 5, 0, 3, 2, 4]


def test_load_truth(tmp_path):
    p = tmp_path / "truth.csv"
    p.write_text("pid,regime\nb,subsiding\na,stable\nc,step\n")
    assert evaluate.load_truth(p, np.array(["a", "b", "c", "a"])).tolist() == \
        ["stable", "subsiding", "step", "stable"]
    with pytest.raises(InputError, match="no true regime"):
        evaluate.load_truth(p, np.array(["a", "zz"]))
    # a user's table of some known points: the others get None, rows of other points are left out
    assert evaluate.load_truth(p, np.array(["zz", "a"]), partial=True).tolist() == [None, "stable"]
    with pytest.raises(InputError, match=r"(?s)none of the 2 points.*fix: the pid column must hold the point ids"):
        evaluate.load_truth(p, np.array(["x", "zz"]), partial=True)
    # a pair site's points are its cells: a table of the tracks' point ids names none of them
    with pytest.raises(InputError, match=r"(?s)fix: .*ascending \+ descending pair: the ids of its cells"):
        evaluate.load_truth(p, np.array(["100mE1N2", "100mE1N3"]), partial=True)
    p.write_text("pid,regime\na,sinking\n")
    with pytest.raises(InputError, match="row 1.*unknown regime"):
        evaluate.load_truth(p, np.array(["a"]))
    p.write_text("pid,regime\na,stable\na,stable\n")
    with pytest.raises(InputError, match="more than once"):
        evaluate.load_truth(p, np.array(["a"]))
    p.write_text("id,regime\na,stable\n")
    with pytest.raises(InputError, match="column 'pid'"):
        evaluate.load_truth(p, np.array(["a"]))
    # the trend words follow the site's direction: vertical words on an east-west site (or the
    # reverse) would count every such point as mislabelled without a word
    p.write_text("pid,regime\na,stable\nb,subsiding\n")
    assert evaluate.load_truth(p, np.array(["a", "b"]), "up").tolist() == ["stable", "subsiding"]
    with pytest.raises(InputError, match=r"row 2, column 'regime'.*'subsiding' names a trend of another direction"
                                         r".*an east-west component.*'westward' and 'eastward'"):
        evaluate.load_truth(p, np.array(["a", "b"]), "east")
    p.write_text("pid,regime\na,westward\nb,eastward\n")
    assert evaluate.load_truth(p, np.array(["a", "b"]), "east").tolist() == ["westward", "eastward"]
    with pytest.raises(InputError, match="'westward' names a trend of another direction"):
        evaluate.load_truth(p, np.array(["a", "b"]))


def _graph(tmp_path, n, edges):
    src, dst = np.array(edges).T
    order = np.argsort(src, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    path = tmp_path / "graph.h5"
    h5io.write_graph(path, indptr, dst[order], np.ones(len(src)), np.ones(len(src)),
                     {"k": 1, "weighting": "binary"})
    return path


def _labelling(labels, split, source, path, centers=None, seed=0, silhouette_sample=500):
    """What a method rule writes: labels, split and the fit measured in ``source``'s space."""
    k = int(np.max(labels)) + 1 if centers is None else len(centers)
    quality = labels_mod.fit_metrics(source, labels, k, seed=seed, silhouette_sample=silhouette_sample,
                                     centers=centers)
    return labels_mod.Labelling(labels=np.asarray(labels, np.int32), split=np.asarray(split, np.uint8),
                                record={"k": k, "metrics": quality}, centers=centers)


def test_evaluate_labelling_and_outputs(tmp_path, shards_file):
    path, truth = shards_file
    n = len(truth)
    # hand-made graph: every point -> next point (n - 1 edges) + point 0 -> point n - 1;
    # rows are sorted by regime, so exactly 3 chain edges + the closing edge cross regimes
    edges = [(i, i + 1) for i in range(n - 1)] + [(0, n - 1)]
    graph = _graph(tmp_path, n, edges)
    truth_csv = tmp_path / "truth.csv"
    pids = h5io.Shards(path).pids()
    truth_csv.write_text("pid,regime\n" + "".join(f"{p},{REGIMES[t]}\n" for p, t in zip(pids, truth)))
    labels = labels_mod.order_labels(truth, path)
    split = (np.arange(n) % 5 == 0).astype(np.uint8)
    fit = _labelling(labels, split, ShardsSource(path), path)
    result = evaluate.evaluate_labelling(fit, graph_path=graph, shards_path=path, truth_path=truth_csv,
                                         thresholds={})
    m = result["metrics"]
    assert m["spatial_coherence"] == pytest.approx(1 - 4 / n)
    assert m["ari"] == pytest.approx(1.0) and m["nmi"] == pytest.approx(1.0)
    suggested = {c["cluster"]: c["label"] for c in result["clusters"]}
    expected = np.mean([suggested[lab] == REGIMES[t] for lab, t in zip(labels, truth)])
    assert m["label_match"] == pytest.approx(expected)
    assert suggested[0] == "subsiding" and suggested[3] == "uplifting"
    assert (result["k"], result["n_points"], result["n_train"], result["n_test"]) == (4, n, n - 400, 400)
    assert result["sizes"] == np.bincount(labels).tolist()
    assert 0.3 < m["silhouette"] <= 1 and m["davies_bouldin"] > 0

    fit.record["metrics"]["undefined"] = float("nan")
    fit.proba = np.full((n, 4), 0.25)
    h5, js = tmp_path / "clusters" / "m.h5", tmp_path / "clusters" / "m.json"
    fit.stamp("s", "m", {"seed": 0}).write(h5)
    stored = h5io.read_clusters(h5)
    assert stored["labels"].dtype == np.int32 and np.array_equal(stored["labels"], labels)
    assert stored["split"].dtype == np.uint8 and stored["proba"].shape == (n, 4)
    assert stored["attrs"]["method"] == "m"
    evaluate.evaluate_file(h5, js, graph_path=graph, shards_path=path, truth_path=truth_csv, thresholds={})
    back = json.loads(js.read_text())  # strict JSON: NaN written as null
    assert back["metrics"]["undefined"] is None and back["site"] == "s"
    assert back["metrics"]["ari"] == pytest.approx(1.0)
    assert sorted(p.name for p in h5.parent.iterdir()) == ["m.h5", "m.json"]


def test_a_truth_table_of_some_points_scores_those_points(tmp_path, shards_file, caplog):
    """The site table's truth column: an inventory of some points (and of points the site lacks)
    scores the labels on the points it names, and says how many."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    path, truth = shards_file
    n = len(truth)
    graph = _graph(tmp_path, n, [(i, i + 1) for i in range(n - 1)])
    pids = h5io.Shards(path).pids()
    rng = np.random.default_rng(3)
    known = rng.random(n) < 0.3
    noisy = np.where(rng.random(n) < 0.2, (truth + 1) % 4, truth)      # labels that are partly wrong
    labels = labels_mod.order_labels(noisy, path)
    fit = _labelling(labels, np.zeros(n), ShardsSource(path), path)
    truth_csv = tmp_path / "inventory.csv"
    truth_csv.write_text("pid,regime\n" + "".join(f"{p},{REGIMES[t]}\n" for p, t, k in zip(pids, truth, known) if k)
                         + "elsewhere-1,stable\n")
    with caplog.at_level("INFO", logger="insarclust.evaluate"):
        m = evaluate.evaluate_labelling(fit, graph_path=graph, shards_path=path, truth_path=truth_csv,
                                        thresholds={}, partial_truth=True)["metrics"]
    assert m["n_truth"] == known.sum()
    assert m["ari"] == pytest.approx(adjusted_rand_score(truth[known], labels[known]))
    assert m["nmi"] == pytest.approx(normalized_mutual_info_score(truth[known], labels[known]))
    assert m["ari"] != pytest.approx(adjusted_rand_score(truth, labels))
    assert f"{known.sum()} of {n} points have a true regime" in caplog.text
    assert "1 rows of the truth table" in caplog.text and "elsewhere-1" in caplog.text
    # every point known: no n_truth, the same numbers as a demo site's complete table
    full = tmp_path / "full.csv"
    full.write_text("pid,regime\n" + "".join(f"{p},{REGIMES[t]}\n" for p, t in zip(pids, truth)))
    both = [evaluate.evaluate_labelling(fit, graph_path=graph, shards_path=path, truth_path=full, thresholds={},
                                        partial_truth=partial)["metrics"] for partial in (True, False)]
    assert "n_truth" not in both[0] and both[0] == both[1]
    with pytest.raises(InputError, match="points of shards.h5 have no true regime"):
        evaluate.evaluate_labelling(fit, graph_path=graph, shards_path=path, truth_path=truth_csv, thresholds={})


def test_evaluate_with_member_spread_and_centers(tmp_path, shards_file):
    path, truth = shards_file
    n = len(truth)
    graph = _graph(tmp_path, n, [(i, (i + 1) % n) for i in range(n)])
    descriptors = tmp_path / "descriptors.h5"
    values = np.stack([truth * 1.0, np.arange(n) % 2], axis=1)
    h5io.write_features(descriptors, values, ["a", "b"])
    centers = np.zeros((4, 120))
    fit = _labelling(truth, np.zeros(n, np.uint8), ShardsSource(path), path, centers=centers, silhouette_sample=200)
    result = evaluate.evaluate_labelling(fit, graph_path=graph, shards_path=path, descriptors_path=descriptors,
                                         thresholds={})
    assert result["metrics"]["mean_intercentroid_distance"] == 0.0  # from the given centres
    assert "ari" not in result["metrics"]
    spread = [c["spread"] for c in result["clusters"]]
    assert all(s["a"] == pytest.approx(0.0) for s in spread)
    assert all(s["b"] == pytest.approx(0.5, abs=0.01) for s in spread)


def test_a_threshold_changes_the_names_not_the_fit(tmp_path, shards_file):
    path, truth = shards_file
    n = len(truth)
    graph = _graph(tmp_path, n, [(i, (i + 1) % n) for i in range(n)])
    fit = _labelling(labels_mod.order_labels(truth, path), np.zeros(n, np.uint8), ShardsSource(path), path)
    low = evaluate.evaluate_labelling(fit, graph_path=graph, shards_path=path, thresholds={})
    high = evaluate.evaluate_labelling(fit, graph_path=graph, shards_path=path,
                                       thresholds={"stable_trend_mm_yr": 20.0, "seasonal_amplitude_mm": 40.0})
    assert [c["label"] for c in low["clusters"]] == ["subsiding", "seasonal", "stable", "uplifting"]
    assert {c["label"] for c in high["clusters"]} == {"stable"}
    assert low["metrics"]["silhouette"] == high["metrics"]["silhouette"]


def test_an_east_west_site_names_its_trends_by_direction(tmp_path, shards_file):
    """An EGMS L3 east-west site (its component recorded in shards.h5): the same clusters as
    the vertical site above, their trends named westward/eastward, not subsiding/uplifting."""
    import shutil

    import h5py

    path = shutil.copy(shards_file[0], tmp_path / "east.h5")
    truth = shards_file[1]
    with h5py.File(path, "a") as f:
        f.attrs.create("components", ["east"], dtype=h5io.STR)
    n = len(truth)
    graph = _graph(tmp_path, n, [(i, (i + 1) % n) for i in range(n)])
    fit = _labelling(labels_mod.order_labels(truth, path), np.zeros(n, np.uint8), ShardsSource(path), path)
    out = evaluate.evaluate_labelling(fit, graph_path=graph, shards_path=path, thresholds={})
    assert [c["label"] for c in out["clusters"]] == ["westward", "seasonal", "stable", "eastward"]


def test_peak_day_spread_is_circular(tmp_path):
    """Peaks on 29 December and 2 January are 4 days apart, not 361: the spread is the
    circular one (the plain std gave ~180 days for a cluster peaking around New Year)."""
    from insarclust.descriptors import DESCRIPTOR_NAMES

    peak = DESCRIPTOR_NAMES.index("annual_peak_doy")
    D = np.zeros((400, len(DESCRIPTOR_NAMES)), np.float32)
    D[:200, peak] = np.where(np.arange(200) % 2, 363.25, 2.0)     # cluster 0: 4 days apart across New Year
    D[200:, peak] = np.where(np.arange(200) % 2, 180.0, 186.0)    # cluster 1: around 1 July
    D[:, 0] = np.arange(400)
    h5io.write_features(tmp_path / "d.h5", D, DESCRIPTOR_NAMES)
    labels = np.r_[np.zeros(200, int), np.ones(200, int)]
    spread = evaluate.member_spread(tmp_path / "d.h5", labels, 2)
    np.testing.assert_allclose(spread["annual_peak_doy"], [2.0, 3.0], rtol=0.01)
    np.testing.assert_allclose(spread["trend_mm_yr"], [np.arange(200).std(), np.arange(200).std()], rtol=1e-6)


def test_quality_metrics_with_more_centres_than_used_labels():
    """k = 3 centres, labels only 0 and 1 (an empty cluster last), n_clusters not given."""
    X = np.r_[np.zeros((50, 2)), np.ones((50, 2)) * 10].astype(np.float32)
    labels = np.r_[np.zeros(50, int), np.ones(50, int)]
    centers = np.array([[0, 0], [10, 10], [10, 10]], np.float64)
    q = metrics.quality_metrics(ArraySource(X), labels, seed=0, silhouette_sample=50, centers=centers)
    assert q["mean_intercentroid_distance"] == pytest.approx(np.hypot(10, 10))


def _late_start_site(path, n: int = 600, n_grid: int = 270, step_days: int = 6, own_reference: bool = False):
    """Two -10 mm/yr clusters on a 6-day grid: in cluster 0 half the points, in cluster 1 all,
    are observed from 60 % of the period on only (held before, as ``shards`` writes them).
    ``own_reference``: the late points start at 0 on their first date (a later release of a
    product, each release referenced to its own first date)."""
    rng = np.random.default_rng(3)
    grid = (17500 + step_days * np.arange(n_grid)).astype(np.int32)
    t_yr = (grid - grid[0]) / 365.25
    truth = np.repeat([0, 1], n // 2)
    displacement = (-10.0 * t_yr + rng.normal(0, 1.0, (n, n_grid))).astype(np.float32)
    late = np.zeros(n, dtype=bool)
    late[: n // 4] = True          # half of cluster 0
    late[n // 2:] = True           # all of cluster 1
    start = int(0.6 * n_grid)
    if own_reference:
        displacement[late] += np.float32(10.0 * t_yr[start])
    displacement[late, :start] = np.nan
    regular = displacement.copy()
    regular[late, :start] = regular[late, start][:, None]   # the first value held
    pid = np.array([f"P{i:05d}" for i in range(n)], dtype=object)
    lat, lon = 60 + np.arange(n) * 1e-4, np.full(n, 10.0)
    attrs = {"site": "late", "format": "ngu", "source_sha256": "0" * 64, "insarclust_version": "test",
             "regularization": "linear"}
    with h5io.ShardsWriter(path, n, grid, grid, [], attrs) as w:
        for a in range(0, n, 256):
            b = min(n, a + 256)
            w.write(pid[a:b], lat[a:b], lon[a:b], np.zeros((b - a, 0), np.float32), displacement[a:b],
                    regular[a:b])
    return path, truth, grid, start


def test_cluster_mean_counts_each_point_on_its_observed_span_only(tmp_path):
    from insarclust.figures import _model_curve
    from insarclust.interpret import describe_clusters

    path, truth, grid, start = _late_start_site(tmp_path / "shards.h5")
    mean, std, counts = cluster_series.cluster_series_stats(path, truth)
    assert counts.tolist() == [300, 300]
    # held values used to flatten cluster 0's first 60 % (trend about -7 mm/yr instead of -10)
    trend = labels_mod.trend_mm_yr(mean, grid)
    assert trend[0] == pytest.approx(-10.0, abs=0.2) and trend[1] == pytest.approx(-10.0, abs=0.3)
    assert np.all(std[0, :start] < 1.5)                     # only the full-span half counts there
    assert np.isnan(mean[1, :start]).all() and np.isfinite(mean[1, start:]).all()
    clusters = describe_clusters(mean, grid, counts, {})
    assert [c["label"] for c in clusters] == ["subsiding", "subsiding"]
    assert "span" not in clusters[0]
    assert clusters[1]["span"] == [int(grid[start]), int(grid[-1])]
    assert clusters[1]["descriptors"]["trend_mm_yr"] == pytest.approx(-10.0, abs=0.3)
    curve = _model_curve(clusters[1], grid)
    assert np.isnan(curve[:start]).all()
    assert np.nanmax(np.abs(curve[start:] - mean[1, start:])) < 1.0    # drawn where the data are


def test_cluster_mean_of_members_referenced_at_their_own_start_does_not_jump(tmp_path):
    """Half of cluster 0 comes from a later release, at 0 on its own first date: a plain mean
    over the members present jumped there by half their offset (+13 mm), its trend (the label
    order) read -5.7 mm/yr and its std 13 mm."""
    from insarclust.interpret import describe_clusters

    path, truth, grid, start = _late_start_site(tmp_path / "shards.h5", own_reference=True)
    mean, std, counts = cluster_series.cluster_series_stats(path, truth)
    trend = labels_mod.trend_mm_yr(mean, grid)
    assert trend[0] == pytest.approx(-10.0, abs=0.3) and trend[1] == pytest.approx(-10.0, abs=0.3)
    assert abs(mean[0, start] - mean[0, start - 1]) < 1.0
    assert np.all(std[0] < 2.0)
    clusters = describe_clusters(mean, grid, counts, {})
    assert [(c["label"], c["model"]) for c in clusters] == [("subsiding", "trend")] * 2
    assert clusters[0]["descriptors"]["trend_mm_yr"] == pytest.approx(-10.0, abs=0.3)


def test_a_season_a_clusters_members_miss_is_left_out_of_its_fit(tmp_path):
    """Every point of the seasonal regime misses a year (grid epochs 100-160) while the site is
    observed: its cluster mean is an interpolated line there, which the fit of the mean took as
    data (amplitude too small). The cluster's own dates leave it out; the other clusters are
    described as before."""
    from conftest import assert_same_tree, make_shards_file
    from insarclust.cluster_series import cluster_acquisition_dates, cluster_series_stats
    from insarclust.descriptors import site_acquisition_dates
    from insarclust.interpret import describe_clusters

    path, truth = make_shards_file(tmp_path / "shards.h5", n=1200, n_grid=300, shard_size=400,
                                   hole=(1, 100, 160), hole_regime=2)
    shards = h5io.Shards(path)
    site = site_acquisition_dates(shards)
    dates = cluster_acquisition_dates(path, truth, 4, site)
    for j in (0, 1, 3):
        np.testing.assert_array_equal(dates[j], site)
    np.testing.assert_array_equal(dates[2], np.setdiff1d(site, shards.dates[100:161]))
    mean, _, counts = cluster_series_stats(path, truth, 4)
    grid = shards.grid_dates
    own = describe_clusters(mean, grid, counts, {}, observed_dates=site, cluster_dates=dates)
    plain = describe_clusters(mean, grid, counts, {}, observed_dates=site)
    assert own[2]["descriptors"]["annual_amplitude_mm"] == pytest.approx(6.0, abs=0.2)
    assert plain[2]["descriptors"]["annual_amplitude_mm"] < 5.5
    assert own[2]["acquisition_gaps"] == [[int(shards.dates[99]), int(shards.dates[161])]]
    assert_same_tree([own[j] for j in (0, 1, 3)], [plain[j] for j in (0, 1, 3)])


def _winter_site(path, n: int = 400, n_grid: int = 300, p_obs: float = 0.45, seed: int = 0):
    """A site with winters (no acquisition from late October to mid April), half stable, half
    a 6 mm annual cycle whose points each have a value at a random ``p_obs`` of the dates (a
    coherence-masked export: scattered misses, no long hole). Returns ``truth`` (n,)."""
    rng = np.random.default_rng(seed)
    grid = (17500 + 6 * np.arange(n_grid)).astype(np.int32)
    days = grid.astype("datetime64[D]")
    doy = (days - days.astype("datetime64[Y]")).astype(int)
    obs = np.flatnonzero((doy <= 300) & (doy >= 110))
    dates = grid[obs]
    truth = np.repeat([0, 1], n // 2)
    base = np.stack([np.zeros(n_grid), 6.0 * np.sin(2 * np.pi * (grid - 17460) / 365.25)])
    disp = (base[truth] + rng.normal(0, 1.0, (n, n_grid)))[:, obs].astype(np.float32)
    miss = (rng.random(disp.shape) > p_obs) & (truth == 1)[:, None]
    miss[:, [0, -1]] = False
    disp[miss] = np.nan
    regular = np.stack([np.interp(grid, dates[~np.isnan(r)], r[~np.isnan(r)]) for r in disp]).astype(np.float32)
    attrs = {"site": "s", "format": "ngu", "source_sha256": "0" * 64, "insarclust_version": "test",
             "regularization": "linear"}
    with h5io.ShardsWriter(path, n, dates, grid, [], attrs) as w:
        w.write(np.array([f"P{i:06d}" for i in range(n)], dtype=object), np.full(n, 69.0), np.full(n, 20.0),
                np.zeros((n, 0), np.float32), disp, regular)
    return truth


def test_scattered_misses_leave_a_clusters_dates_alone(tmp_path):
    """Members that each miss most dates at random (no hole longer than max_gap_days) still give
    a mean that is data at every date: the cluster keeps the site's dates. Counting every missing
    value left it 27 of the 159 dates and nine "gaps of its own" to hatch (at 40 % observed: 2
    dates, fitted on every grid epoch, winters included: amplitude 2.6 mm, "stable")."""
    from insarclust.cluster_series import cluster_acquisition_dates, cluster_series_stats
    from insarclust.descriptors import site_acquisition_dates
    from insarclust.interpret import describe_clusters

    path = tmp_path / "shards.h5"
    truth = _winter_site(path)
    shards = h5io.Shards(path)
    site = site_acquisition_dates(shards)
    np.testing.assert_array_equal(site, shards.dates)
    dates = cluster_acquisition_dates(path, truth, 2, site)
    for j in range(2):
        np.testing.assert_array_equal(dates[j], site)
    mean, _, counts = cluster_series_stats(path, truth, 2)
    own = describe_clusters(mean, shards.grid_dates, counts, {}, observed_dates=site, cluster_dates=dates)
    assert own[1]["label"] == "seasonal"
    assert own[1]["descriptors"]["annual_amplitude_mm"] == pytest.approx(6.0, abs=0.6)
    assert "acquisition_gaps" not in own[1]


def test_a_cluster_whose_own_dates_cannot_carry_the_fit_keeps_the_sites(tmp_path):
    """Members observed at 15 % of the dates each have holes nearly everywhere: the cluster's
    own dates were 8 scattered acquisitions, on which the five terms and a step were fitted
    (amplitude 9.8 mm, "subsiding" from a seasonal cluster). Where its own dates no longer
    determine the model's terms as the per-point fit requires of a point's holes, the cluster
    is fitted on the site's dates, as before, without gaps of its own."""
    from insarclust.cluster_series import cluster_acquisition_dates, cluster_series_stats
    from insarclust.descriptors import site_acquisition_dates
    from insarclust.interpret import describe_clusters

    path = tmp_path / "shards.h5"
    truth = _winter_site(path, p_obs=0.15)
    shards = h5io.Shards(path)
    site = site_acquisition_dates(shards)
    dates = cluster_acquisition_dates(path, truth, 2, site)
    assert len(dates[1]) < 20
    mean, _, counts = cluster_series_stats(path, truth, 2)
    own = describe_clusters(mean, shards.grid_dates, counts, {}, observed_dates=site, cluster_dates=dates)
    plain = describe_clusters(mean, shards.grid_dates, counts, {}, observed_dates=site)
    assert own == plain


def test_members_own_holes_are_left_out_of_the_cluster_mean(tmp_path):
    """A third of a seasonal cluster's members miss a year (grid epochs 100-160) while the site is
    observed: ``shards`` interpolated them across it, and their straight lines pulled the mean
    towards a line (amplitude 5.6 mm for 6) and widened the std there (5.2 mm for 1.5). With
    ``max_gap_days`` the holes count as beyond the members' spans: the mean and std equal the
    reference with the holes masked, and the clusters without a holed member are bit for bit
    those of the plain call (which the labels' order uses)."""
    from conftest import make_shards_file
    from insarclust.cluster_series import cluster_series_stats
    from insarclust.descriptors import site_acquisition_dates
    from insarclust.interpret import describe_clusters
    from insarclust.spans import observed_holes, span_mask

    path, truth = make_shards_file(tmp_path / "shards.h5", n=1200, n_grid=300, shard_size=400,
                                   hole=(3, 100, 160), hole_regime=2)
    shards = h5io.Shards(path)
    site = site_acquisition_dates(shards)
    mean, std, counts = cluster_series_stats(path, truth, 4, max_gap_days=36.0, site_dates=site)
    plain_mean, plain_std, plain_counts = cluster_series_stats(path, truth, 4)
    assert counts.tolist() == plain_counts.tolist()
    for j in (0, 1, 3):
        np.testing.assert_array_equal(mean[j], plain_mean[j])
        np.testing.assert_array_equal(std[j], plain_std[j])
    rows, lo, hi = observed_holes(shards.read("series/displacement"), shards.dates, shards.grid_dates,
                                  36.0, site)
    assert set(truth[rows]) == {2} and len(rows) == len(np.arange(0, 1200, 3)[truth[::3] == 2])
    assert set(lo) == {100} and set(hi) == {160}
    spans = shards.spans()
    masked = np.where(span_mask(spans, 300), shards.read("series/regular").astype(np.float64), np.nan)
    masked[rows, 100:161] = np.nan
    want_mean, want_std = _carried_mean_std(masked[truth == 2])
    np.testing.assert_allclose(mean[2], want_mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(std[2], want_std, rtol=1e-7, atol=1e-9)
    assert np.nanmax(std[2][100:161]) < 2.0 < 5.0 < np.nanmax(plain_std[2][100:161])
    grid = shards.grid_dates
    own = describe_clusters(mean, grid, counts, {}, observed_dates=site)
    plain = describe_clusters(plain_mean, grid, counts, {}, observed_dates=site)
    assert own[2]["descriptors"]["annual_amplitude_mm"] == pytest.approx(6.0, abs=0.1)
    assert plain[2]["descriptors"]["annual_amplitude_mm"] < 5.7


def test_cluster_dates_without_the_sites_take_the_winters_as_the_sites(tmp_path):
    """``describe_clusters(cluster_dates=...)`` called without ``observed_dates``: every winter was
    a gap "of the cluster's own" (acquisition_gaps on every entry, hatched as unobserved
    members). The site's dates are then every date of some cluster: the same entries as with
    the site's dates given."""
    from insarclust.cluster_series import cluster_acquisition_dates, cluster_series_stats
    from insarclust.descriptors import site_acquisition_dates
    from insarclust.interpret import describe_clusters

    path = tmp_path / "shards.h5"
    truth = _winter_site(path)
    shards = h5io.Shards(path)
    site = site_acquisition_dates(shards)
    dates = cluster_acquisition_dates(path, truth, 2, site)
    mean, _, counts = cluster_series_stats(path, truth, 2)
    given = describe_clusters(mean, shards.grid_dates, counts, {}, observed_dates=site, cluster_dates=dates)
    alone = describe_clusters(mean, shards.grid_dates, counts, {}, cluster_dates=dates)
    assert all("acquisition_gaps" not in entry for entry in given)
    assert alone == given


def _write_series(path, displacement, shard_size=128):
    """shards.h5 of ``displacement`` (n, G) on a 6-day grid (the dates), each row linearly
    interpolated across its missing epochs and held beyond its span, as the shards stage does."""
    n, G = displacement.shape
    grid = (17500 + 6 * np.arange(G)).astype(np.int32)
    cols = np.arange(G)
    regular = np.stack([np.interp(cols, cols[np.isfinite(r)], r[np.isfinite(r)]) for r in displacement])
    attrs = {"site": "s", "format": "ngu", "source_sha256": "0" * 64, "insarclust_version": "test",
             "regularization": "linear"}
    with h5io.ShardsWriter(path, n, grid, grid, ["height"], attrs) as w:
        for a in range(0, n, shard_size):
            b = min(n, a + shard_size)
            w.write(np.array([f"P{i}" for i in range(a, b)], dtype=object), np.full(b - a, 69.0),
                    np.full(b - a, 20.0), np.zeros((b - a, 1), np.float32), displacement[a:b].astype(np.float32),
                    regular[a:b].astype(np.float32))
    return path


def test_a_members_hole_keeps_its_reference(tmp_path):
    """A hole does not reset a member's reference as a late start does. Chained without the holed
    members' own change across the hole, the mean of a cluster whose faster third (-30 mm/yr
    against -10, decorrelating) misses a year was 6.6 mm short for the rest of the series (velocity
    -14.7 mm/yr for -16.7), although every member is observed there; and a cluster with late
    members that all miss a summer jumped +3.1 mm across it (the chain broke, restarting from the
    plain mean). The mean wherever all members are observed is now their plain mean, and the
    chain runs on through a hole no member is observed in (NaN there)."""
    from insarclust.cluster_series import cluster_series_stats
    from insarclust.descriptors import site_acquisition_dates

    rng = np.random.default_rng(2)
    G = 300
    t = np.arange(G) * 6 / 365.25
    fast = np.arange(300) >= 200
    a = np.where(fast, -30.0, -10.0)[:, None] * t + rng.normal(0, 1.5, (300, G))
    a[fast, 100:161] = np.nan
    b = -10.0 * t + rng.normal(0, 1.0, (200, G))
    late = np.arange(200) >= 100
    b[late, :40] = np.nan
    b[late] -= b[late, 40:41]                       # referenced to 0 at their own first date
    b[:, 60:76] = np.nan                            # every member misses 16 epochs
    stable = rng.normal(0, 1.0, (700, G))          # the site observes throughout
    disp = np.concatenate([a, b, stable])
    disp -= np.where(np.isnan(disp[:, :1]), 0.0, disp[:, :1])
    labels = np.repeat([0, 1, 2], [300, 200, 700])
    path = _write_series(tmp_path / "shards.h5", disp)
    site = site_acquisition_dates(h5io.Shards(path))
    mean, std, _ = cluster_series_stats(path, labels, 3, max_gap_days=36.0, site_dates=site)
    plain, _, _ = cluster_series_stats(path, labels, 3)
    # every member of cluster 0 observed: the plain mean there (no offset after the hole)
    np.testing.assert_allclose(mean[0, :100], plain[0, :100], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mean[0, 161:], plain[0, 161:], rtol=1e-9, atol=1e-9)
    # cluster 1: the same change across the common hole as the interpolated members give
    assert np.isnan(mean[1, 60:76]).all() and np.isfinite(mean[1, [59, 76]]).all()
    assert mean[1, 76] - mean[1, 59] == pytest.approx(plain[1, 76] - plain[1, 59], abs=1e-9)
    assert mean[1, -1] == pytest.approx(-10.0 * t[-1], abs=0.5)


def test_a_season_half_a_clusters_members_observe_stays_one_of_its_dates(tmp_path):
    """A date leaves a cluster's own dates only when fewer than min_share (0.5) of the members
    covering it are observed there: with exactly half of them inside a hole of their own it
    stays; with a higher min_share it goes."""
    from conftest import make_shards_file
    from insarclust.cluster_series import cluster_acquisition_dates
    from insarclust.descriptors import site_acquisition_dates

    path, truth = make_shards_file(tmp_path / "shards.h5", n=800, n_grid=300, shard_size=400,
                                   hole=(1, 100, 160), hole_regime=2)
    shards = h5io.Shards(path)
    site = site_acquisition_dates(shards)
    holed = np.flatnonzero(truth == 2)
    others = np.flatnonzero(truth != 2)[:len(holed)]
    labels = np.ones(len(truth), dtype=np.int64)
    labels[holed], labels[others] = 0, 0          # cluster 0: half its members miss epochs 100-160
    inner = shards.dates[105:156]
    half = cluster_acquisition_dates(path, labels, 2, site)[0]
    assert np.isin(inner, half).all()
    stricter = cluster_acquisition_dates(path, labels, 2, site, min_share=0.6)[0]
    assert not np.isin(inner, stricter).any()


def test_members_holes_are_looked_up_per_shard_not_site_wide(tmp_path, monkeypatch):
    """Each shard's rows looked through every hole found so far (the mean's pass) and every hole
    of the site (the std's pass): quadratic in the number of shards (9.8M rows in 600 shards,
    30 % holed: 29 s in hole_mask, 10 s now). Each hole is now looked at about once per pass;
    the statistics are the same."""
    from insarclust.cluster_series import cluster_series_stats
    from insarclust.descriptors import site_acquisition_dates
    from insarclust.spans import observed_holes

    rng = np.random.default_rng(4)
    n, G = 2000, 120
    disp = rng.normal(0, 1.0, (n, G)) + np.sin(np.arange(G) / 8.0)
    holed = rng.random(n) < 0.3
    disp[holed, 40:80] = np.nan
    labels = rng.integers(0, 3, n)
    path = _write_series(tmp_path / "shards.h5", disp, shard_size=50)
    shards = h5io.Shards(path)
    site = site_acquisition_dates(shards)
    n_holes = len(observed_holes(shards.read("series/displacement"), shards.dates, shards.grid_dates, 36.0,
                                 site)[0])
    assert n_holes == holed.sum() and len(shards.shard_bounds()) == 40
    looked = []
    isin = np.isin
    monkeypatch.setattr(np, "isin", lambda a, b, *args, **kw: looked.append(len(a)) or isin(a, b, *args, **kw))
    mean, std, counts = cluster_series_stats(path, labels, 3, max_gap_days=36.0, site_dates=site)
    assert sum(looked) <= 2 * n_holes
    monkeypatch.setattr(np, "isin", isin)
    masked = np.where(np.isnan(disp), np.nan, shards.read("series/regular").astype(np.float64))
    for j in range(3):
        want_mean, want_std = _carried_mean_std(masked[labels == j])
        np.testing.assert_allclose(mean[j], want_mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(std[j], want_std, rtol=1e-7, atol=1e-9)


def test_a_member_whose_span_opens_with_its_own_hole_is_a_late_start_in_mean_and_std(tmp_path):
    """Dates 4 days off a 6-day grid: a member with a value on the first date, then none for
    half a year, has its span's first grid epoch inside its own hole. The mean takes it as
    starting after the hole (no observed epoch before it); the std shifted it onto the mean at
    the masked first epoch instead, and counted its change across the hole as spread."""
    from insarclust.cluster_series import cluster_series_stats
    from insarclust.spans import observed_holes, span_mask

    rng = np.random.default_rng(0)
    n, G = 300, 150
    grid = (17500 + 6 * np.arange(G)).astype(np.int32)
    dates = grid[:-1] + 4
    t = (dates - dates[0]) / 365.25
    velocity = rng.normal(-10.0, 4.0, n)
    disp = (velocity[:, None] * t + rng.normal(0, 0.5, (n, len(dates)))).astype(np.float32)
    holed = np.arange(n) % 3 == 0
    disp[np.ix_(holed, np.arange(1, 30))] = np.nan
    regular = np.stack([np.interp(grid, dates[~np.isnan(r)], r[~np.isnan(r)]) for r in disp]).astype(np.float32)
    attrs = {"site": "s", "format": "ngu", "source_sha256": "0" * 64, "insarclust_version": "test",
             "regularization": "linear"}
    path = tmp_path / "shards.h5"
    with h5io.ShardsWriter(path, n, dates, grid, [], attrs) as w:
        for a in range(0, n, 100):
            w.write(np.array([f"P{i:04d}" for i in range(a, a + 100)], dtype=object), np.full(100, 69.0),
                    np.full(100, 20.0), np.zeros((100, 0), np.float32), disp[a:a + 100], regular[a:a + 100])
    shards = h5io.Shards(path)
    rows, lo, hi = observed_holes(disp, dates, grid, 36.0, dates)
    spans = shards.spans()
    assert set(rows) == set(np.flatnonzero(holed)) and set(lo) == {1} and spans[holed, 0].tolist() == [1] * 100
    labels = np.zeros(n, dtype=np.int64)
    mean, std, _ = cluster_series_stats(path, labels, 1, max_gap_days=36.0, site_dates=dates)
    masked = np.where(span_mask(spans, G), regular.astype(np.float64), np.nan)
    masked[rows, 1:31] = np.nan
    assert np.isnan(masked[:, 0]).all()       # the first grid epoch is no member's nearest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # the reference's nanmean of that epoch
        want_mean, want_std = _carried_mean_std(masked)
    np.testing.assert_allclose(mean[0], want_mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(std[0], want_std, rtol=1e-7, atol=1e-9)


def test_files_of_other_points_put_in_place_stop_evaluate_and_figures(tmp_path, shards_file):
    """A labels or graph file of another site or build of this one: with fewer points the
    coherence was measured on a subset without a word, with more it failed on an IndexError;
    a graph of another site with as many points was used as this site's."""
    from insarclust import figures

    path, truth = shards_file
    n = len(truth)
    chain = [(i, i + 1) for i in range(n - 1)]
    graph = _graph(tmp_path, n, chain)
    labels = labels_mod.order_labels(truth, path)
    fit = _labelling(labels, np.zeros(n), ShardsSource(path), path).stamp("synthetic", "m", {})
    good = tmp_path / "clusters" / "m.h5"
    fit.write(good)
    js = tmp_path / "clusters" / "m.json"
    evaluate.evaluate_file(good, js, graph_path=graph, shards_path=path, thresholds={})

    (tmp_path / "fewer").mkdir()
    fewer = _graph(tmp_path / "fewer", n - 10, chain[:n - 11])
    with pytest.raises(InputError, match=rf"file {fewer}: a graph of {n - 10} points, but {path} holds {n}"):
        evaluate.evaluate_file(good, tmp_path / "x.json", graph_path=fewer, shards_path=path, thresholds={})
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / "graph.h5"
    g = h5io.read_graph(graph)
    h5io.write_graph(other, g["indptr"], g["indices"], g["distance_m"], g["weight"], {"site": "elsewhere"})
    with pytest.raises(InputError, match=rf"file {other}: a graph of site 'elsewhere', but {path} is site 'synthetic'"):
        evaluate.evaluate_file(good, tmp_path / "x.json", graph_path=other, shards_path=path, thresholds={})

    short = tmp_path / "clusters" / "short.h5"
    labels_mod.Labelling(labels=labels[:-5], split=np.zeros(n - 5), record=fit.record).write(short)
    with pytest.raises(InputError, match=rf"file {short}: labels of {n - 5} points, but {path} holds {n}"):
        evaluate.evaluate_file(short, tmp_path / "x.json", graph_path=graph, shards_path=path, thresholds={})
    with pytest.raises(InputError, match=rf"file {short}: labels of {n - 5} points"):
        figures.method_figures(short, js, path, tmp_path / "map.png", tmp_path / "series.png")
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "map.png").exists()


def test_a_non_finite_feature_row_is_named_where_evaluate_measures_a_fit(tmp_path, shards_file):
    """DSC's fit is measured in dyn.h5 by evaluate: scikit-learn said 'Input X contains NaN'."""
    path, truth = shards_file
    n = len(truth)
    graph = _graph(tmp_path, n, [(i, i + 1) for i in range(n - 1)])
    labels = labels_mod.order_labels(truth, path)
    fit = labels_mod.Labelling(labels=labels, split=np.zeros(n, np.uint8), record={"k": 4})
    dyn = tmp_path / "dyn.h5"
    X = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    X[777, 2] = np.inf
    h5io.write_features(dyn, X, ["a", "b", "c"])
    with pytest.raises(ValueError, match=rf"{dyn}: feature row 777 \(0-based\), column 'c' is inf"):
        evaluate.evaluate_labelling(fit, graph_path=graph, shards_path=path, thresholds={}, features_path=dyn,
                                    silhouette_sample=n)


def test_load_truth_keeps_point_ids_that_read_like_missing_values(tmp_path):
    """The site's ids are kept as written (NA, None, null are ids there); read with pandas'
    default missing-value texts, the truth table's rows for them named no point, and an empty
    regime cell was reported as the regime nan."""
    p = tmp_path / "truth.csv"
    p.write_text("pid,regime\nNA,stable\nNone,subsiding\nnull,step\n007,seasonal\n")
    assert evaluate.load_truth(p, np.array(["null", "NA", "007", "None"])).tolist() == \
        ["step", "stable", "seasonal", "subsiding"]
    p.write_text("pid,regime\na,stable\nb,\n")
    with pytest.raises(InputError, match=r"row 2, column 'regime': unknown regime ''"):
        evaluate.load_truth(p, np.array(["a", "b"]))


def test_a_truth_table_of_one_regime_leaves_ari_and_nmi_undefined(tmp_path, shards_file, caplog):
    """An inventory of one regime (the known subsiding points, say) cannot tell partitions
    apart: ARI and NMI were 1 for any labels that put its points in one cluster, whatever
    that cluster's regime, and 0 for labels that split them. They are undefined there
    (label match still says whether the points got their regime)."""
    path, truth = shards_file
    n = len(truth)
    graph = _graph(tmp_path, n, [(i, i + 1) for i in range(n - 1)])
    pids = h5io.Shards(path).pids()
    labels = labels_mod.order_labels(truth.copy(), path)
    fit = _labelling(labels, np.zeros(n), ShardsSource(path), path)
    one = tmp_path / "inventory.csv"
    known = truth == 1
    one.write_text("pid,regime\n" + "".join(f"{p},subsiding\n" for p in pids[known]))
    with caplog.at_level("WARNING", logger="insarclust.evaluate"):
        m = evaluate.evaluate_labelling(fit, graph_path=graph, shards_path=path, truth_path=one,
                                        thresholds={}, partial_truth=True)["metrics"]
    assert np.isnan(m["ari"]) and np.isnan(m["nmi"])
    assert 0.0 <= m["label_match"] <= 1.0 and m["n_truth"] == known.sum()
    assert "one regime only" in caplog.text
