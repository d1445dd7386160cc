"""Geodesic k-NN graph: neighbours against brute-force haversine, weights, options, graph.h5."""
from __future__ import annotations

import numpy as np
import pytest

from insarclust import h5io
from insarclust.errors import InputError
from insarclust.geodesy import EARTH_RADIUS_M, chord_to_distance_m, haversine_m, unit_vectors
from insarclust.graph import GeodesicKNNGraph, _top_bits_histogram, build_graph_file, median_from_histogram
from conftest import town_and_hillside


def brute_knn(lat, lon, k):
    """k nearest neighbours by haversine over all pairs: (N, k) indices and metres."""
    d = haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, axis=1)


def rows(g):
    n = len(g.indptr_) - 1
    return [g.indices_[g.indptr_[i]:g.indptr_[i + 1]] for i in range(n)]


@pytest.mark.parametrize("region", ["mainland", "north_pole", "south_pole", "antimeridian", "globe"])
def test_neighbours_equal_brute_force_haversine(region):
    rng = np.random.default_rng(7)
    n, k = 1500, 8
    if region == "mainland":
        lat, lon = rng.uniform(69.0, 69.2, n), rng.uniform(19.5, 20.5, n)
    elif region == "north_pole":
        lat, lon = rng.uniform(89.95, 90.0, n), rng.uniform(-180, 180, n)
    elif region == "south_pole":
        lat, lon = rng.uniform(-90.0, -89.9, n), rng.uniform(-180, 180, n)
    elif region == "antimeridian":
        lat = rng.uniform(64.0, 64.05, n)
        lon = np.where(rng.random(n) < 0.5, rng.uniform(179.9, 180.0, n), rng.uniform(-180.0, -179.9, n))
    else:
        lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
        lon = rng.uniform(-180, 180, n)
    g = GeodesicKNNGraph(k=k, weighting="binary").fit(lat, lon)
    idx, dist = brute_knn(lat, lon, k)
    assert g.indptr_.tolist() == list(range(0, n * k + 1, k))
    np.testing.assert_array_equal(g.indices_.reshape(n, k), idx)
    np.testing.assert_allclose(g.distance_m_.reshape(n, k), dist, rtol=2e-6, atol=1e-3)
    assert g.indices_.dtype == np.int64 and g.distance_m_.dtype == np.float32


def test_degree_space_neighbours_would_be_wrong_near_the_pole():
    """The brute-force check above can fail: lat/lon-degree k-NN differs near the pole."""
    rng = np.random.default_rng(1)
    n, k = 500, 5
    lat, lon = rng.uniform(89.9, 90.0, n), rng.uniform(-180, 180, n)
    deg = (lat[:, None] - lat[None]) ** 2 + (lon[:, None] - lon[None]) ** 2
    np.fill_diagonal(deg, np.inf)
    naive = np.argsort(deg, axis=1)[:, :k]
    idx, _ = brute_knn(lat, lon, k)
    assert np.mean(naive == idx) < 0.5
    g = GeodesicKNNGraph(k=k).fit(lat, lon)
    np.testing.assert_array_equal(g.indices_.reshape(n, k), idx)


def test_distance_conversion_known_values():
    # A quarter of a great circle, and one arc-second of latitude (~30.9 m).
    assert chord_to_distance_m(np.sqrt(2.0)) == pytest.approx(np.pi / 2 * EARTH_RADIUS_M, rel=1e-6)
    xyz = unit_vectors(np.array([60.0, 60.0 + 1 / 3600]), np.array([10.0, 10.0]))
    d = chord_to_distance_m(np.linalg.norm(xyz[0] - xyz[1]))
    assert d == pytest.approx(EARTH_RADIUS_M * np.radians(1 / 3600), rel=1e-5)
    assert haversine_m(0.0, 179.9995, 0.0, -179.9995) == pytest.approx(EARTH_RADIUS_M * np.radians(0.001))


def test_weights_gaussian_inverse_binary():
    rng = np.random.default_rng(2)
    lat, lon = rng.uniform(60, 60.01, 400), rng.uniform(10, 10.02, 400)
    g = GeodesicKNNGraph(k=6).fit(lat, lon)
    assert g.bandwidth_m_ == pytest.approx(np.median(g.distance_m_))
    np.testing.assert_allclose(g.weight_, np.exp(-0.5 * (g.distance_m_ / g.bandwidth_m_) ** 2), rtol=1e-6)
    assert g.weight_.dtype == np.float32 and np.all((g.weight_ > 0) & (g.weight_ <= 1))
    fixed = GeodesicKNNGraph(k=6, weighting="gaussian", bandwidth_m=50.0).fit(lat, lon)
    np.testing.assert_allclose(fixed.weight_, np.exp(-0.5 * (fixed.distance_m_ / 50.0) ** 2), rtol=1e-6)
    inv = GeodesicKNNGraph(k=6, weighting="inverse").fit(lat, lon)
    np.testing.assert_allclose(inv.weight_, inv.bandwidth_m_ / np.maximum(inv.distance_m_, 1.0), rtol=1e-6)
    binary = GeodesicKNNGraph(k=6, weighting="binary").fit(lat, lon)
    assert np.all(binary.weight_ == 1)
    with pytest.raises(ValueError, match="weighting"):
        GeodesicKNNGraph(weighting="cosine").fit(lat, lon)


def test_symmetric_graph_has_reverse_edges_and_more_than_k():
    rng = np.random.default_rng(3)
    n, k = 600, 5
    lat, lon = rng.uniform(69, 69.05, n), rng.uniform(20, 20.1, n)
    knn = GeodesicKNNGraph(k=k).fit(lat, lon)
    g = GeodesicKNNGraph(k=k, symmetric=True).fit(lat, lon)
    A = g.to_csr("distance_m")
    assert (A != A.T).nnz == 0
    deg = np.diff(g.indptr_)
    assert deg.min() >= k and deg.max() > k and g.max_degree_ == deg.max()
    # Union of the k-NN edges and their reverses, each once, no self loops.
    knn_pairs = {(i, j) for i, r in enumerate(rows(knn)) for j in r}
    pairs = [(i, j) for i, r in enumerate(rows(g)) for j in r]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == knn_pairs | {(j, i) for i, j in knn_pairs}
    assert all(i != j for i, j in pairs)
    # Rows nearest first; distances are those of the pair.
    for i in range(0, n, 50):
        d = g.distance_m_[g.indptr_[i]:g.indptr_[i + 1]]
        assert np.all(np.diff(d) >= 0)
        np.testing.assert_allclose(d, haversine_m(lat[i], lon[i], lat[rows(g)[i]], lon[rows(g)[i]]), rtol=1e-5)


def test_max_distance_isolates_far_points():
    rng = np.random.default_rng(4)
    # A cluster, a pair ~11 m apart ~55 km away, and a lone point ~110 km away.
    lat = np.r_[rng.uniform(69, 69.01, 300), 69.5, 69.5001, 70.0]
    lon = np.r_[rng.uniform(20, 20.02, 300), 20.0, 20.0, 20.0]
    g = GeodesicKNNGraph(k=5, max_distance_m=2000.0).fit(lat, lon)
    deg = np.diff(g.indptr_)
    assert np.all(deg[:300] == 5) and deg[300:].tolist() == [1, 1, 0] and g.n_isolated_ == 1
    assert g.indices_[g.indptr_[300]] == 301 and g.indices_[g.indptr_[301]] == 300
    assert g.distance_m_.max() <= 2000.0 and g.indices_.max() < len(lat)
    assert 302 not in set(g.indices_.tolist())
    # The cluster's edges are those of the uncapped graph.
    full = GeodesicKNNGraph(k=5).fit(lat, lon)
    np.testing.assert_array_equal(g.indices_[:1500], full.indices_[:1500])


def test_duplicate_coordinates_no_self_loops_and_deterministic():
    rng = np.random.default_rng(5)
    lat = np.r_[np.full(15, 69.0), rng.uniform(69, 69.01, 200), np.full(3, 69.005)]
    lon = np.r_[np.full(15, 20.0), rng.uniform(20, 20.02, 200), np.full(3, 20.01)]
    k = 6
    g1 = GeodesicKNNGraph(k=k).fit(lat, lon)
    g2 = GeodesicKNNGraph(k=k).fit(lat, lon)
    np.testing.assert_array_equal(g1.indices_, g2.indices_)
    np.testing.assert_array_equal(g1.weight_, g2.weight_)
    src = np.repeat(np.arange(len(lat)), np.diff(g1.indptr_))
    assert np.all(src != g1.indices_)
    assert np.all(np.diff(g1.indptr_) == k)
    # The 15 copies see only copies (distance 0, weight 1); no row repeats a neighbour.
    first = g1.indices_[:15 * k].reshape(15, k)
    assert np.all(first < 15) and np.all(g1.distance_m_[:15 * k] == 0) and np.all(g1.weight_[:15 * k] == 1)
    assert all(len(set(r.tolist())) == k for r in rows(g1))
    inv = GeodesicKNNGraph(k=k, weighting="inverse").fit(lat, lon)
    assert np.all(np.isfinite(inv.weight_))


def test_fewer_points_than_k():
    g = GeodesicKNNGraph(k=10).fit(np.array([60.0, 60.001, 60.002]), np.array([10.0, 10.0, 10.0]))
    assert np.diff(g.indptr_).tolist() == [2, 2, 2]
    one = GeodesicKNNGraph(k=10).fit(np.array([60.0]), np.array([10.0]))
    assert one.indptr_.tolist() == [0, 0] and len(one.indices_) == 0


def test_build_graph_file_writes_contract(shards_file, tmp_path):
    path, _ = shards_file
    out = tmp_path / "graph.h5"
    cfg = {"k": 7, "weighting": "gaussian", "bandwidth_m": None, "symmetric": False, "max_distance_m": None}
    model = build_graph_file(path, out, cfg)
    g = h5io.read_graph(out)
    n = h5io.Shards(path).n_points
    assert g["indptr"].shape == (n + 1,) and g["indptr"].dtype == np.int64
    assert g["indices"].dtype == np.int64 and g["distance_m"].dtype == np.float32
    assert g["weight"].dtype == np.float32 and len(g["indices"]) == 7 * n
    assert g["attrs"]["k"] == 7 and g["attrs"]["weighting"] == "gaussian"
    assert g["attrs"]["bandwidth_m"] == pytest.approx(model.bandwidth_m_)
    assert g["attrs"]["symmetric"] is False or g["attrs"]["symmetric"] == 0
    assert "max_distance_m" not in g["attrs"]
    np.testing.assert_array_equal(g["indices"], model.indices_)
    lat, lon = h5io.Shards(path).coords()
    idx, dist = brute_knn(lat, lon, 7)
    np.testing.assert_array_equal(g["indices"].reshape(n, 7), idx)
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("cfg", [{}, {"symmetric": True}, {"max_distance_m": 400.0}, {"bandwidth_m": "local"},
                                 {"bandwidth_m": "local", "symmetric": True}])
def test_streamed_file_equals_the_fitted_graph(shards_file, tmp_path, cfg):
    """build_graph_file writes a plain k-NN graph block by block while querying (threads), and
    the other graphs in one go: either way the file holds exactly the graph that fit() builds,
    and the result does not depend on the block size or the number of threads."""
    path, _ = shards_file
    out = tmp_path / "graph.h5"
    cfg = {"k": 6, "weighting": "gaussian", **cfg}
    build_graph_file(path, out, cfg, workers=2)
    lat, lon = h5io.Shards(path).coords()
    ref = GeodesicKNNGraph(k=6, symmetric=cfg.get("symmetric", False), max_distance_m=cfg.get("max_distance_m"),
                           bandwidth_m=cfg.get("bandwidth_m"), block_size=97, workers=1).fit(lat, lon)
    g = h5io.read_graph(out)
    assert g["attrs"]["bandwidth"] == ("local" if cfg.get("bandwidth_m") else "median")
    for name, want in (("indptr", ref.indptr_), ("indices", ref.indices_), ("distance_m", ref.distance_m_),
                       ("weight", ref.weight_)):
        np.testing.assert_array_equal(g[name], want, err_msg=name)
    assert g["attrs"]["bandwidth_m"] == ref.bandwidth_m_ == float(np.median(ref.distance_m_))
    threaded = GeodesicKNNGraph(k=6, symmetric=cfg.get("symmetric", False), bandwidth_m=cfg.get("bandwidth_m"),
                                max_distance_m=cfg.get("max_distance_m"), block_size=50, workers=3).fit(lat, lon)
    np.testing.assert_array_equal(threaded.indices_, ref.indices_)
    np.testing.assert_array_equal(threaded.weight_, ref.weight_)


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 100_001])
def test_median_from_histogram_equals_numpy(n):
    rng = np.random.default_rng(n)
    v = (rng.lognormal(3, 2, n)).astype(np.float32)
    v[: n // 3] = v[-1]          # many ties
    parts = np.array_split(v, 7)
    hist = sum(_top_bits_histogram(p) for p in parts)
    got = median_from_histogram(v, hist)
    assert got == np.median(v) and got.dtype == np.float32


def test_bad_coordinates_name_the_row(tmp_path):
    with pytest.raises(InputError, match="row 3"):
        GeodesicKNNGraph(k=2).fit(np.array([60.0, 60.1, np.nan, 60.2]), np.array([10.0, 10.0, 10.0, 10.0]))
    with pytest.raises(InputError, match="row 1"):
        GeodesicKNNGraph(k=2).fit(np.array([91.0, 60.1, 60.2]), np.array([10.0, 10.0, 10.0]))


@pytest.mark.parametrize("copies", [1, 6])
@pytest.mark.parametrize("symmetric", [False, True])   # streamed histogram / whole-array median
def test_default_bandwidth_ignores_duplicate_positions(copies, symmetric):
    """Many points at one position (duplicate PS) leave the default bandwidth at the
    spacing of distinct positions; counted in, their zero-length links pulled it to ~1 m,
    and the gaussian weights of every real neighbour rounded to 0."""
    rng = np.random.default_rng(3)
    lat, lon = 60 + rng.normal(0, 0.02, 500), 10 + rng.normal(0, 0.04, 500)
    kw = {"symmetric": symmetric, "block_size": 97}
    ref = GeodesicKNNGraph(k=10, **kw).fit(lat, lon).bandwidth_m_
    g = GeodesicKNNGraph(k=10, **kw).fit(np.repeat(lat, copies), np.repeat(lon, copies))
    nonzero = g.distance_m_[g.distance_m_ > 0]
    assert g.bandwidth_m_ == pytest.approx(float(np.median(nonzero)))
    assert g.bandwidth_m_ > 0.3 * ref
    if copies > 1:
        assert (g.distance_m_ == 0).mean() > 0.4


@pytest.mark.parametrize("skip", [0, 1, 500, 999])
def test_median_from_histogram_skips_the_smallest(skip):
    rng = np.random.default_rng(skip)
    v = rng.lognormal(3, 2, 1000).astype(np.float32)
    v[rng.choice(1000, skip, replace=False)] = 0
    got = median_from_histogram(v, _top_bits_histogram(v), skip=skip)
    assert got == np.median(np.sort(v)[skip:])


def test_points_left_barely_smoothed_by_one_bandwidth_are_counted_and_warned_of(caplog):
    """The default bandwidth is the dense part's: most hillside points lean on one neighbour,
    which nothing said (they are not isolated)."""
    from insarclust.graph import effective_neighbours

    lat, lon = town_and_hillside()
    with caplog.at_level("INFO", logger="insarclust"):
        g = GeodesicKNNGraph(k=10).fit(lat, lon)
    eff = effective_neighbours(g.indptr_, g.weight_)
    w = g.weight_.astype(np.float64)
    for i in (0, 3500):   # brute force: (sum w)^2 / sum w^2 over the point's edges
        wi = w[g.indptr_[i]:g.indptr_[i + 1]]
        assert eff[i] == pytest.approx(wi.sum() ** 2 / (wi ** 2).sum() if wi.any() else 0.0)
    assert g.n_isolated_ == 0
    assert 0.7 * 1000 < g.n_one_neighbour_ < 1000 and (eff[:3000] < 1.5).mean() < 0.02
    assert g.graph_attrs()["n_one_neighbour"] == g.n_one_neighbour_
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "one neighbour" in r.getMessage()]
    assert warned and "graph.bandwidth_m" in warned[0].getMessage()

    caplog.clear()
    with caplog.at_level("INFO", logger="insarclust"):   # the hillside's spacing as bandwidth
        wide = GeodesicKNNGraph(k=10, bandwidth_m=240).fit(lat, lon)
    assert wide.n_one_neighbour_ < 40 and wide.n_zero_weight_ == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize("weighting", ["gaussian", "inverse", "binary"])
def test_points_a_distance_cap_leaves_with_one_link_are_warned_of_naming_the_cap(caplog, weighting):
    """Points left with a single link by max_distance_m lean on it whatever the weights: the
    warning names the cap, not a bandwidth (binary weights have none) nor the weighting in use."""
    lat, lon = town_and_hillside()
    lat, lon = lat[3000:], lon[3000:]             # the hillside, ~190 m apart
    with caplog.at_level("INFO", logger="insarclust"):
        g = GeodesicKNNGraph(k=10, weighting=weighting, max_distance_m=150).fit(lat, lon)
    single = int(np.count_nonzero(np.diff(g.indptr_) == 1))
    assert single > 0.1 * len(lat) and g.n_one_neighbour_ >= single
    (told,) = [r for r in caplog.records if "one neighbour" in r.getMessage()]
    msg = told.getMessage()
    assert told.levelname == "WARNING"
    assert f"{single} have a single link within graph.max_distance_m (150 m)" in msg
    assert "raise graph.max_distance_m" in msg
    if weighting == "binary":
        assert "bandwidth" not in msg
    if weighting != "gaussian":
        assert f"graph.weighting: {weighting}" not in msg and "graph.weighting: inverse" not in msg


def test_points_a_distance_cap_isolates_are_warned_of_above_a_tenth_of_the_site(caplog):
    """A cap below the spacing leaves most points without links: their smoothed features are
    their own and spatial_coherence counts the few links left (1.0 on 4 links of 4,000 points)."""
    lat, lon = town_and_hillside()
    with caplog.at_level("INFO", logger="insarclust"):
        g = GeodesicKNNGraph(k=10, max_distance_m=150).fit(lat[3000:], lon[3000:])
    assert g.n_isolated_ > 100
    (told,) = [r for r in caplog.records if "no neighbour within" in r.getMessage()]
    assert told.levelname == "WARNING" and f"{g.n_isolated_} of 1000 points" in told.getMessage()
    assert "graph.max_distance_m (150 m)" in told.getMessage() and "spatial_coherence" in told.getMessage()
    caplog.clear()
    with caplog.at_level("INFO", logger="insarclust"):
        GeodesicKNNGraph(k=10, max_distance_m=1000).fit(lat[3000:], lon[3000:])
        GeodesicKNNGraph(k=10).fit(lat, lon)
    assert not [r for r in caplog.records if "no neighbour within" in r.getMessage()]


def test_a_point_whose_weights_all_vanish_is_counted():
    """Gaussian weights beyond ~14 bandwidths are exactly 0 in float32: the mean smoothing
    leaves such a point as it is, like an isolated one."""
    lat = np.r_[np.full(11, 69.6) + np.arange(11) * 1e-5, 69.7]   # a 10 km outlier
    lon = np.full(12, 20.2)
    g = GeodesicKNNGraph(k=3).fit(lat, lon)
    assert g.n_isolated_ == 0 and g.n_zero_weight_ == 1 and g.n_one_neighbour_ >= 1
    assert g.graph_attrs()["n_zero_weight"] == 1


def test_local_bandwidth_weighs_each_point_on_its_own_spacing(caplog):
    """bandwidth_m: local weighs edge i-j on sqrt(s_i s_j), s = a point's median link (links to
    its own position left out): the hillside keeps ~k effective neighbours, as the town does."""
    from insarclust.graph import effective_neighbours, local_scales

    lat, lon = town_and_hillside()
    lat[1:4], lon[1:4] = lat[0], lon[0]          # three points at one position
    with caplog.at_level("INFO", logger="insarclust"):
        g = GeodesicKNNGraph(k=10, bandwidth_m="local", symmetric=True).fit(lat, lon)
    d = g.distance_m_.astype(np.float64)
    s = np.empty(len(lat))
    for i in range(len(lat)):                    # brute force
        row = d[g.indptr_[i]:g.indptr_[i + 1]]
        s[i] = np.median(row[row > 0])
    np.testing.assert_allclose(local_scales(g.indptr_, g.distance_m_, 1.0), s, rtol=1e-6)
    rows = np.repeat(np.arange(len(lat)), np.diff(g.indptr_))
    np.testing.assert_allclose(g.weight_, np.exp(-d ** 2 / (2 * s[rows] * s[g.indices_])), rtol=2e-6, atol=1e-7)
    eff = effective_neighbours(g.indptr_, g.weight_)
    assert eff[3000:].mean() > 8 and g.n_one_neighbour_ == 0 and g.n_zero_weight_ == 0
    assert g.graph_attrs()["bandwidth"] == "local"
    assert g.bandwidth_m_ == pytest.approx(float(np.median(d[d > 0])))   # the site median, reported
    assert not [r for r in caplog.records if r.levelname == "WARNING" and "one neighbour" in r.getMessage()]
    (told,) = [r.getMessage() for r in caplog.records if "one neighbour" in r.getMessage()]
    assert "far out on the local bandwidth" in told   # not on the site median, which no edge uses
    # the plain k-NN fast path (no duplicate positions, k links a row)
    plain = GeodesicKNNGraph(k=10, bandwidth_m="local").fit(lat[5:], lon[5:])
    np.testing.assert_allclose(local_scales(plain.indptr_, plain.distance_m_, 1.0),
                               np.median(plain.distance_m_.reshape(-1, 10).astype(np.float64), axis=1), rtol=1e-6)
    inv = GeodesicKNNGraph(k=10, bandwidth_m="local", weighting="inverse").fit(lat, lon)
    s_inv = local_scales(inv.indptr_, inv.distance_m_, 1.0).astype(np.float64)
    rows = np.repeat(np.arange(len(lat)), np.diff(inv.indptr_))
    np.testing.assert_allclose(inv.weight_, np.sqrt(s_inv[rows] * s_inv[inv.indices_])
                               / np.maximum(inv.distance_m_, 1.0), rtol=2e-6)
    assert GeodesicKNNGraph(k=10).fit(lat, lon).graph_attrs()["bandwidth"] == "median"
    assert GeodesicKNNGraph(k=10, bandwidth_m=40.0).fit(lat, lon).graph_attrs()["bandwidth"] == "fixed"


@pytest.mark.parametrize("bad", ["auto", "Local", 0, -5.0, True, float("nan")])
def test_bandwidth_other_than_a_length_null_or_local_is_refused(bad):
    lat, lon = town_and_hillside()
    with pytest.raises(ValueError, match="'local'"):
        GeodesicKNNGraph(k=5, bandwidth_m=bad).fit(lat[:50], lon[:50])
    assert GeodesicKNNGraph(k=5, bandwidth_m=np.float32(40)).fit(lat[:50], lon[:50]).bandwidth_m_ == 40.0


@pytest.mark.parametrize("bandwidth", [1.1, 37.3, 41.7, 23.44360902255639, np.float32(40.2)])
def test_a_fixed_bandwidth_gives_the_weights_it_always_gave(bandwidth):
    """One bandwidth: exp(-(d * float32(1 / b))^2 / 2), its reciprocal taken in float64 as before
    the per-edge (local) scales; 1 / float32(b) moved the last bit of the weights for b = 1.1."""
    from insarclust.graph import edge_weights

    d = np.linspace(0, 500, 100_001, dtype=np.float32)
    w = d * np.float32(1.0 / bandwidth)
    want = np.exp(np.float32(-0.5) * (w * w))
    np.testing.assert_array_equal(edge_weights(d, "gaussian", bandwidth), want)
    lat, lon = town_and_hillside()
    g = GeodesicKNNGraph(k=6, bandwidth_m=bandwidth).fit(lat[:400], lon[:400])
    w = g.distance_m_ * np.float32(1.0 / bandwidth)
    np.testing.assert_array_equal(g.weight_, np.exp(np.float32(-0.5) * (w * w)))


def test_a_far_point_with_tiny_weights_is_not_counted_as_weightless():
    """A lone point 8 km from a line of points 10 m apart: under bandwidth_m: local its weights
    are ~1e-32, not 0, and the smoothing (normalised in float64) gives it its nearest neighbour's
    value; its effective neighbours are 1, not 0 (float32 squares of such weights underflow)."""
    from insarclust.graph import effective_neighbours
    from insarclust.smooth import GraphSmoother

    m = 1 / 111_320.0
    lat, lon = np.r_[69.6 + np.arange(20) * 10 * m, 69.6 + 8190 * m], np.full(21, 20.2)
    g = GeodesicKNNGraph(k=10, bandwidth_m="local").fit(lat, lon)
    w = g.weight_[g.indptr_[20]:].astype(np.float64)
    assert 0 < w.max() < 1e-20
    eff = effective_neighbours(g.indptr_, g.weight_)
    assert eff[20] == pytest.approx(w.sum() ** 2 / (w ** 2).sum())
    assert g.n_zero_weight_ == 0 and g.n_one_neighbour_ == 1
    X = np.r_[np.ones((20, 1)), np.zeros((1, 1))].astype(np.float32)
    moved = GraphSmoother(H=3, alpha=0.5, aggregation="mean").fit(g.indptr_, g.indices_, g.weight_).transform(X)
    assert moved[20, 0] == pytest.approx(0.875)


def test_effective_neighbours_of_a_plain_graph_match_float64():
    """The k-edges-a-point path sums in float32: rows of weights ~1e-20 (the hillside's far
    neighbours on the town's bandwidth) lost their squares and counted up to 0.7 apart."""
    from insarclust.graph import effective_neighbours

    lat, lon = town_and_hillside()
    g = GeodesicKNNGraph(k=10).fit(lat, lon)
    w = g.weight_.reshape(-1, 10).astype(np.float64)
    s1, s2 = w.sum(axis=1), (w * w).sum(axis=1)
    want = np.divide(s1 * s1, s2, out=np.zeros_like(s1), where=s2 > 0)
    np.testing.assert_allclose(effective_neighbours(g.indptr_, g.weight_), want, rtol=1e-5)
    assert g.n_zero_weight_ == int(np.count_nonzero(s2 == 0)) and g.n_one_neighbour_ == int(np.count_nonzero(want < 1.5))


def test_local_scales_of_unsorted_rows_coincident_and_empty_ones():
    """The median of each row's non-zero links whatever their order; the fallback where a row
    has none (every link to its own position, or no link at all: max_distance_m)."""
    from insarclust.graph import local_scales

    indptr = np.array([0, 3, 7, 9, 9, 10])
    d = np.array([30, 10, 20,   0, 40, 10, 0,   0, 0,   5], dtype=np.float32)
    np.testing.assert_array_equal(local_scales(indptr, d, 7.5), [20, 25, 7.5, 7.5, 5])
    # a plain k-NN graph whose rows are out of order goes the general way
    np.testing.assert_array_equal(local_scales([0, 3, 6], np.float32([9, 1, 3, 2, 4, 6]), 1.0), [3, 4])


@pytest.mark.parametrize("weighting, bandwidth, warned", [("binary", None, True), ("inverse", None, True),
                                                          ("gaussian", "local", True), ("gaussian", None, False)])
def test_a_point_far_from_the_rest_is_counted_and_named(caplog, weighting, bandwidth, warned):
    """A lone point 10 km from a line of points 1 m apart: gaussian weights on the site's
    bandwidth leave it as it is; binary and inverse weights and local bandwidths average its
    features with those of the line, which the graph stage says, naming max_distance_m."""
    lat = np.r_[np.full(11, 69.6) + np.arange(11) * 1e-5, 69.7]
    lon = np.full(12, 20.2)
    with caplog.at_level("INFO", logger="insarclust"):
        g = GeodesicKNNGraph(k=3, weighting=weighting, bandwidth_m=bandwidth).fit(lat, lon)
    assert g.n_far_ == 1 and g.graph_attrs()["n_far"] == 1
    far = [r.getMessage() for r in caplog.records if "farther than" in r.getMessage()]
    assert bool(far) == warned
    if warned:
        assert far[0].startswith("graph: 1 of 12 points have every neighbour farther than 16 m")
        assert "graph.max_distance_m" in far[0] and caplog.records[-1].levelname == "WARNING"
    capped = GeodesicKNNGraph(k=3, weighting=weighting, bandwidth_m=bandwidth, max_distance_m=100).fit(lat, lon)
    assert capped.n_far_ == 0 and capped.n_isolated_ == 1


@pytest.mark.parametrize("symmetric", [False, True])
def test_far_points_match_a_direct_count(symmetric):
    """Town and hillside: hillside points whose nearest neighbour lies beyond 14 town bandwidths,
    counted from each point's own nearest neighbour (rows unsorted once reverse links are added)."""
    from scipy.spatial import cKDTree

    from insarclust.geodesy import EARTH_RADIUS_M, unit_vectors

    lat, lon = town_and_hillside()
    g = GeodesicKNNGraph(k=10, weighting="binary", symmetric=symmetric).fit(lat, lon)
    chord = cKDTree(unit_vectors(lat, lon)).query(unit_vectors(lat, lon), k=2)[0][:, 1]
    nearest_m = 2 * EARTH_RADIUS_M * np.arcsin(chord / 2)
    want = int(np.count_nonzero(nearest_m > 14 * g.bandwidth_m_ * (1 + 1e-6)))
    assert g.n_far_ == want and 0 < want < 20
    even = GeodesicKNNGraph(k=10, weighting="binary").fit(*map(np.ravel, np.meshgrid(
        69.6 + np.arange(30) * 2e-4, 20.2 + np.arange(30) * 5e-4, indexing="ij")))
    assert even.n_far_ == 0
