"""H-hop smoothing: known answers on a hand-made graph, exact vs fanout, files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.utils import scatter

from insarclust import h5io
from insarclust.graph import GeodesicKNNGraph, build_graph_file
from insarclust.sampling import to_data
from insarclust.smooth import GraphSmoother, check_graph, smooth_feature_file
from insarclust.spatial import morans_i

# Hand-made directed graph: point -> its neighbours (weights). Point 4 has none.
EDGES = {0: {1: 1.0, 2: 0.5}, 1: {0: 2.0}, 2: {0: 1.0, 1: 1.0, 3: 4.0}, 3: {2: 0.25}, 4: {}}


def hand_graph():
    indptr, indices, weight = [0], [], []
    for i in range(5):
        for j, w in EDGES[i].items():
            indices.append(j)
            weight.append(w)
        indptr.append(len(indices))
    return np.array(indptr), np.array(indices), np.array(weight, dtype=np.float32)


def formula(X, H, alpha, aggregation):
    """x_i^(h) = a x_i^(h-1) + (1-a) AGG_j x_j^(h-1), written out point by point."""
    x = X.astype(np.float64)
    for _ in range(H):
        nxt = np.empty_like(x)
        for i in range(len(x)):
            nb = EDGES[i]
            if aggregation == "sum":
                agg = sum((x[j] for j in nb), np.zeros(x.shape[1]))
            elif nb:
                agg = sum(w * x[j] for j, w in nb.items()) / sum(nb.values())
            else:
                agg = x[i]                      # no neighbours: keep own features
            nxt[i] = alpha * x[i] + (1 - alpha) * agg
        x = nxt
    return x


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
@pytest.mark.parametrize("H", [1, 3])
@pytest.mark.parametrize("mode", ["exact", "fanout"])
def test_matches_formula_on_hand_made_graph(aggregation, H, mode):
    X = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, -1.0], [-2.0, 5.0], [7.0, 7.0]], dtype=np.float32)
    indptr, indices, weight = hand_graph()
    sm = GraphSmoother(H=H, alpha=0.3, aggregation=aggregation, mode=mode, fanout=[10], batch_size=2)
    out = sm.fit(indptr, indices, weight).transform(X)
    assert out.dtype == np.float32 and out.shape == X.shape
    np.testing.assert_allclose(out, formula(X, H, 0.3, aggregation), rtol=1e-5, atol=1e-5)
    if aggregation == "sum":
        np.testing.assert_allclose(out[4], 0.3 ** H * X[4], rtol=1e-6)
    else:
        np.testing.assert_array_equal(out[4], X[4])


@pytest.mark.parametrize("mode", ["exact", "fanout"])
def test_zero_hops_is_identity(mode):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 3)).astype(np.float32)
    indptr, indices, weight = hand_graph()
    for aggregation in ("sum", "mean"):
        out = GraphSmoother(H=0, aggregation=aggregation, mode=mode, fanout=[3]).fit(
            indptr, indices, weight).transform(X)
        np.testing.assert_array_equal(out, X)
        assert out is not X


@pytest.mark.parametrize("fixed_degree", [True, False])
def test_mean_of_subnormal_weights_is_finite(fixed_degree):
    """A far point whose gaussian weights all underflow to float32 subnormals still gets the
    weighted mean of its neighbours (a float32 reciprocal of their sum would be inf)."""
    w_far = np.float32(1e-44)                       # subnormal: 1 / w overflows float32
    with np.errstate(over="ignore"):
        assert w_far > 0 and not np.isfinite(np.float32(1) / w_far)
    if fixed_degree:                                # every row has 2 edges
        indptr, indices = np.array([0, 2, 4, 6]), np.array([1, 2, 0, 2, 0, 1])
        weight = np.array([w_far, 3 * w_far, 1, 1, 1, 1], np.float32)
    else:
        indptr, indices = np.array([0, 2, 3, 4]), np.array([1, 2, 0, 0])
        weight = np.array([w_far, 3 * w_far, 1, 1], np.float32)
    X = np.array([[0.0], [4.0], [8.0]], np.float32)
    out = GraphSmoother(H=1, alpha=0.0, aggregation="mean").fit(indptr, indices, weight).transform(X)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], [0.25 * 4 + 0.75 * 8], rtol=1e-5)


@pytest.mark.parametrize("mode", ["exact", "fanout"])
def test_far_point_is_averaged_however_large_the_graph(mode):
    """A point whose neighbours are all far away (tiny gaussian weights) in a graph of
    unequal degrees gets the weighted mean of its neighbours: its weight total is not
    lost below the rounding step of the whole graph's total."""
    n, k = 3001, 10
    deg = np.full(n, k)
    deg[0] = k - 1                                  # unequal degrees: the general path
    indptr = np.r_[0, np.cumsum(deg)]
    indices = (np.repeat(np.arange(n), deg) + np.concatenate([np.arange(1, d + 1) for d in deg])) % n
    weight = np.ones(indptr[-1], np.float32)
    weight[indptr[-2]:] = np.linspace(1e-13, 4e-13, k, dtype=np.float32)   # the last point: far
    X = np.zeros((n, 1), np.float32)
    X[:k, 0] = np.arange(k)                         # the last point's neighbours are 0..k-1
    kw = {"mode": mode, "fanout": [-1]} if mode == "fanout" else {}
    out = GraphSmoother(H=1, alpha=0.0, **kw).fit(indptr, indices, weight).transform(X)
    w = weight[indptr[-2]:].astype(np.float64)
    np.testing.assert_allclose(out[-1, 0], (w * np.arange(k)).sum() / w.sum(), rtol=1e-5)


@pytest.fixture(scope="module")
def knn():
    rng = np.random.default_rng(1)
    n = 1200
    lat, lon = rng.uniform(69, 69.05, n), rng.uniform(20, 20.1, n)
    return lat, lon


@pytest.mark.parametrize("symmetric", [True, False])      # variable / fixed degree
def test_exact_equals_pyg_message_passing(knn, symmetric):
    g = GeodesicKNNGraph(k=6, symmetric=symmetric).fit(*knn)
    X = np.random.default_rng(2).normal(size=(g.n_points_, 4)).astype(np.float32)
    out = GraphSmoother(H=2, alpha=0.6).fit(g.indptr_, g.indices_, g.weight_).transform(X)
    data = to_data(g.indptr_, g.indices_, g.weight_)
    src, dst = data.edge_index
    w = data.edge_weight.double()
    x = torch.as_tensor(X, dtype=torch.float64)
    norm = scatter(w, dst, dim=0, dim_size=g.n_points_, reduce="sum")
    for _ in range(2):
        x = 0.6 * x + 0.4 * scatter(x[src] * w[:, None], dst, dim=0, dim_size=g.n_points_) / norm[:, None]
    np.testing.assert_allclose(out, x.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_fanout_with_full_fanout_equals_exact(knn, aggregation):
    g = GeodesicKNNGraph(k=5, symmetric=True, weighting="inverse").fit(*knn)
    X = np.random.default_rng(3).normal(size=(g.n_points_, 3)).astype(np.float32)
    max_degree = int(np.diff(g.indptr_).max())
    exact = GraphSmoother(H=3, aggregation=aggregation).fit(g.indptr_, g.indices_, g.weight_).transform(X)
    fan = GraphSmoother(H=3, aggregation=aggregation, mode="fanout", fanout=[max_degree], batch_size=100)
    np.testing.assert_allclose(fan.fit(g.indptr_, g.indices_, g.weight_).transform(X), exact, rtol=1e-4, atol=1e-4)


def test_fanout_sum_rescales_to_unbiased_sum(knn):
    # Every point has exactly k neighbours: a constant field's rescaled sampled sum is
    # the full sum, so even 2-of-6 sampling reproduces exact smoothing.
    g = GeodesicKNNGraph(k=6).fit(*knn)
    X = np.ones((g.n_points_, 2), dtype=np.float32)
    exact = GraphSmoother(H=3, alpha=0.5, aggregation="sum").fit(g.indptr_, g.indices_).transform(X)
    np.testing.assert_allclose(exact, (0.5 + 0.5 * 6) ** 3)
    fan = GraphSmoother(H=3, alpha=0.5, aggregation="sum", mode="fanout", fanout=[2, 2, 2]).fit(g.indptr_, g.indices_)
    np.testing.assert_allclose(fan.transform(X), exact, rtol=1e-5)


def test_fanout_is_seeded_and_batch_independent(knn):
    g = GeodesicKNNGraph(k=8).fit(*knn)
    X = np.random.default_rng(4).normal(size=(g.n_points_, 3)).astype(np.float32)
    make = lambda seed: GraphSmoother(H=2, mode="fanout", fanout=[3, 3], batch_size=256,  # noqa: E731
                                      random_state=seed).fit(g.indptr_, g.indices_, g.weight_)
    a, b, c = make(0).transform(X), make(0).transform(X), make(1).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    start, rows = make(0).transform_batch(2, lambda ids: X[ids])
    np.testing.assert_array_equal(rows, a[start:start + len(rows)])
    # Sampled smoothing is still smoothing: close to exact, much smoother than the input.
    exact = GraphSmoother(H=2).fit(g.indptr_, g.indices_, g.weight_).transform(X)
    assert np.abs(a - exact).mean() < 0.5 * np.abs(X - exact).mean()


def test_parameter_errors():
    indptr, indices, weight = hand_graph()
    with pytest.raises(ValueError, match="aggregation"):
        GraphSmoother(aggregation="max").fit(indptr, indices)
    with pytest.raises(ValueError, match="fanout has 2 entries but H = 3"):
        GraphSmoother(H=3, mode="fanout", fanout=[2, 2]).fit(indptr, indices)
    with pytest.raises(ValueError, match="rows"):
        GraphSmoother().fit(indptr, indices).transform(np.zeros((3, 2), dtype=np.float32))


def test_smoother_clones_and_an_unfitted_one_says_so():
    """GraphSmoother is a scikit-learn estimator (get_params, clone) and raises NotFittedError
    before fit (it was a bare AttributeError)."""
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    indptr, indices, weight = hand_graph()
    X = np.arange(10, dtype=np.float32).reshape(5, 2)
    sm = GraphSmoother(H=2, alpha=0.3, mode="fanout", fanout=[3], random_state=4).fit(indptr, indices, weight)
    twin = clone(sm)
    assert twin.get_params() == sm.get_params() and not hasattr(twin, "sampler_")
    np.testing.assert_array_equal(twin.fit(indptr, indices, weight).transform(X), sm.transform(X))
    for mode in ("exact", "fanout"):
        with pytest.raises(NotFittedError):
            GraphSmoother(mode=mode).transform(X)
    with pytest.raises(NotFittedError):
        GraphSmoother(mode="fanout").transform_batch(0, lambda ids: X[ids])


def test_a_neighbour_index_one_past_the_last_point_is_refused():
    """Points are 0..N-1: an index equal to N (an off-by-one in a graph writer) is outside the
    features as much as N + 100 and must stop the fit, not be read from beyond them."""
    indptr, indices, weight = hand_graph()
    n = len(indptr) - 1
    bad = indices.copy()
    bad[-1] = n
    with pytest.raises(ValueError, match=rf"indices must lie in 0\.\.{n - 1}"):
        check_graph(indptr, bad, weight)
    for mode in ("exact", "fanout"):
        with pytest.raises(ValueError, match="indices must lie in"):
            GraphSmoother(mode=mode).fit(indptr, bad, weight)


@pytest.mark.parametrize("mode", ["exact", "fanout"])
def test_smoother_checks_its_graph_and_features(mode):
    """A neighbour index outside the graph read memory beyond the features (the hop matrix is
    built unchecked) and a NaN spread to the neighbours' rows; both are errors that say so."""
    indptr, indices, weight = hand_graph()
    with pytest.raises(ValueError, match=r"indices must lie in 0\.\.4"):
        GraphSmoother(mode=mode).fit(indptr, indices + 100, weight)
    with pytest.raises(ValueError, match="indptr must rise"):
        GraphSmoother(mode=mode).fit(indptr[::-1].copy(), indices, weight)
    with pytest.raises(ValueError, match="3 edge weights for 7 edges"):
        GraphSmoother(mode=mode).fit(indptr, indices, weight[:3])
    sm = GraphSmoother(H=2, mode=mode, fanout=[3]).fit(indptr, indices, weight)
    X = np.arange(10, dtype=np.float32).reshape(5, 2)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"feature row 3 \(0-based\), column 1 is nan"):
        sm.transform(X)
    with pytest.raises(ValueError, match="rows expected"):
        sm.transform(np.zeros(5, dtype=np.float32))


def make_feature_file(path, shards_path):
    """A dyn+static-like feature file: 6 noisy series columns + a static column in metres."""
    shards = h5io.Shards(shards_path)
    regular = shards.read("series/regular")
    height = shards.read("points/static")[:, :1]
    X = np.concatenate([regular[:, ::20], height], axis=1).astype(np.float32)
    names = [f"d{i}" for i in range(X.shape[1] - 1)] + ["height"]
    h5io.write_features(path, X, names)
    return X, names


@pytest.mark.parametrize("mode", ["exact", "fanout"])
def test_smooth_feature_file_writes_real_files(shards_file, tmp_path, mode):
    shards_path, _ = shards_file
    graph_path = tmp_path / "graph.h5"
    build_graph_file(shards_path, graph_path, {"k": 8, "weighting": "gaussian"})
    X, names = make_feature_file(tmp_path / "dyn.h5", shards_path)
    out = tmp_path / "dyn_smoothed.h5"
    cfg = {"H": 3, "alpha": 0.5, "aggregation": "mean", "mode": mode, "fanout": [8, 8, 8],
           "batch_size": 300, "standardize": True, "moran_features": 3}
    attrs = smooth_feature_file(tmp_path / "dyn.h5", graph_path, out, cfg, seed=5, block_rows=500)
    Y, out_names = h5io.read_features(out)
    assert out_names == names and Y.shape == X.shape and Y.dtype == np.float32
    stored = h5io.read_attrs(out)
    assert stored["H"] == 3 and stored["alpha"] == 0.5 and stored["aggregation"] == "mean"
    assert stored["mode"] == mode and stored["moran_features"] == names[:3]
    np.testing.assert_allclose(stored["standardise_mean"], X.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stored["standardise_scale"], X.std(0), rtol=1e-4)
    before, after = np.asarray(stored["morans_i_before"]), np.asarray(stored["morans_i_after"])
    assert before.shape == after.shape == (3,)
    assert np.all(after > before + 0.1) and np.all(after > 0.6)
    np.testing.assert_allclose(attrs["morans_i_after"], after)
    # The known answer: exact smoothing of the z-scored columns.
    g = h5io.read_graph(graph_path)
    Z = (X - X.mean(0)) / X.std(0)
    expected = GraphSmoother(H=3, alpha=0.5).fit(g["indptr"], g["indices"], g["weight"]).transform(Z)
    if mode == "exact":
        np.testing.assert_allclose(Y, expected, rtol=1e-4, atol=1e-4)
    else:
        assert np.abs(Y - expected).mean() < 0.25 * np.abs(Z - expected).mean()
    np.testing.assert_allclose(after, morans_i(g["indptr"], g["indices"], Y[:, :3], g["weight"]), rtol=1e-6)
    # Same input + seed => identical output.
    smooth_feature_file(tmp_path / "dyn.h5", graph_path, tmp_path / "again.h5", cfg, seed=5, block_rows=500)
    np.testing.assert_array_equal(h5io.read_features(tmp_path / "again.h5")[0], Y)
    assert not list(tmp_path.glob(".*tmp*"))


def test_smooth_feature_file_h0_and_no_standardisation(shards_file, tmp_path):
    shards_path, _ = shards_file
    build_graph_file(shards_path, tmp_path / "graph.h5", {"k": 5})
    X, _ = make_feature_file(tmp_path / "dyn.h5", shards_path)
    smooth_feature_file(tmp_path / "dyn.h5", tmp_path / "graph.h5", tmp_path / "z.h5", {"H": 0})
    np.testing.assert_allclose(h5io.read_features(tmp_path / "z.h5")[0], (X - X.mean(0)) / X.std(0),
                               rtol=1e-4, atol=1e-4)
    smooth_feature_file(tmp_path / "dyn.h5", tmp_path / "graph.h5", tmp_path / "raw.h5",
                        {"H": 0, "standardize": False})
    np.testing.assert_array_equal(h5io.read_features(tmp_path / "raw.h5")[0], X)


def test_smooth_feature_file_rejects_mismatched_graph(shards_file, tmp_path):
    shards_path, _ = shards_file
    build_graph_file(shards_path, tmp_path / "graph.h5", {"k": 5})
    h5io.write_features(tmp_path / "small.h5", np.zeros((10, 2), dtype=np.float32), ["a", "b"])
    with pytest.raises(ValueError, match="same shards.h5"):
        smooth_feature_file(tmp_path / "small.h5", tmp_path / "graph.h5", tmp_path / "out.h5", {})
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("H", [1, 2, 3, 4])
def test_transform_leaves_input_and_earlier_results_untouched(H):
    """transform reuses one work buffer between calls: neither the input nor the array an
    earlier call returned may change, and the spare's old content must not leak in."""
    indptr, indices, weight = hand_graph()
    X = np.arange(10, dtype=np.float32).reshape(5, 2)
    sm = GraphSmoother(H=H, alpha=0.4).fit(indptr, indices, weight)
    first = sm.transform(X)
    kept = first.copy()
    if getattr(sm, "_spare", None) is not None:
        sm._spare.fill_(float("nan"))
    second = sm.transform(X[::-1].copy())
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_array_equal(X, np.arange(10, dtype=np.float32).reshape(5, 2))
    np.testing.assert_allclose(first, formula(X, H, 0.4, "mean"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(second, formula(X[::-1], H, 0.4, "mean"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["exact", "fanout"])
def test_non_finite_feature_stops_smoothing_with_its_row(shards_file, tmp_path, mode):
    """One NaN would spread to its neighbours' rows after a hop; the stage names it instead."""
    shards_path, _ = shards_file
    build_graph_file(shards_path, tmp_path / "graph.h5", {"k": 5})
    X, names = make_feature_file(tmp_path / "ok.h5", shards_path)
    X[17, 2] = np.nan
    h5io.write_features(tmp_path / "dyn.h5", X, names)
    with pytest.raises(ValueError, match=r"dyn\.h5: feature row 17 \(0-based\), column 'd2' is nan"):
        smooth_feature_file(tmp_path / "dyn.h5", tmp_path / "graph.h5", tmp_path / "out.h5",
                            {"H": 2, "mode": mode, "fanout": [5, 5]})
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("mode", ["exact", "fanout"])
def test_sum_on_a_graph_of_uneven_degrees_is_warned_of(knn, caplog, mode):
    """sum scales a point by ~(alpha + (1 - alpha) degree)^H: with graph.symmetric (or a distance
    cap) the degrees differ and clustering sees them; the run says so, naming the settings."""
    sym = GeodesicKNNGraph(k=6, symmetric=True).fit(*knn)
    plain = GeodesicKNNGraph(k=6).fit(*knn)
    with caplog.at_level("INFO", logger="insarclust"):
        GraphSmoother(H=3, alpha=0.5, aggregation="sum", mode=mode, fanout=[6]).fit(
            sym.indptr_, sym.indices_, sym.weight_)
    (told,) = [r for r in caplog.records if "aggregation 'sum'" in r.getMessage()]
    assert told.levelname == "WARNING" and "graph.symmetric" in told.getMessage()
    assert f"{sym.max_degree_} neighbours" in told.getMessage()
    caplog.clear()
    with caplog.at_level("INFO", logger="insarclust"):
        GraphSmoother(H=3, alpha=0.5, aggregation="sum", mode=mode, fanout=[6]).fit(
            plain.indptr_, plain.indices_, plain.weight_)            # every degree k: as documented
        GraphSmoother(H=3, alpha=0.5, mode=mode, fanout=[6]).fit(sym.indptr_, sym.indices_, sym.weight_)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
