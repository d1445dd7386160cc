"""Stage embed on real shards.h5 files: fit, parts, gather, dyn+static, rule scripts."""
import runpy
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from conftest import make_shards_file
from insarclust import embed, h5io

ROOT = Path(__file__).resolve().parents[1]
CFG = {
    "representation": "reservoir", "n_units": 40, "spectral_radius": 0.59, "leak": 0.6,
    "connectivity": 0.25, "input_scaling": 0.1, "noise_level": 0.01, "washout": 5,
    "bidirectional": True, "n_pca": 8, "ridge": 10.0, "out_dim": 8, "scaling": "series",
    "scale_features": True, "scale_weight": 1.0, "fit_sample": 300, "batch_size": 100,
    "mode": "default", "matrix": "auto", "n_jobs": 1, "reference_site": None, "static_weight": 1.0,
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A 900-point shards.h5 (shards of 256 rows), its truth and a fitted model.pt."""
    tmp = tmp_path_factory.mktemp("site")
    shards, truth = make_shards_file(tmp / "shards.h5", n=900, n_grid=80, shard_size=256)
    model = embed.fit_site(shards, CFG, seed=42)
    embed.save_model(model, tmp / "model.pt", meta={"site": "synthetic"})
    return SimpleNamespace(tmp=tmp, shards=shards, truth=truth, model=tmp / "model.pt")


def embed_in_parts(site, n_parts, out):
    paths = []
    for part in range(1, n_parts + 1):
        path = site.tmp / f"parts{n_parts}" / f"{part}-of-{n_parts}.h5"
        embed.embed_part(site.shards, site.model, part, n_parts, path)
        paths.append(path)
    embed.gather_parts(paths[::-1], out)  # any order
    return paths


def test_part_ranges_tile_rows_on_shard_boundaries():
    offsets = [0, 256, 512, 768, 900]
    for n in (1, 2, 3, 4, 7):
        ranges = [embed.part_range(offsets, p, n) for p in range(1, n + 1)]
        assert ranges[0][0] == 0 and ranges[-1][1] == 900
        assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:]))
        assert all(a in offsets and b in offsets for a, b in ranges)
    assert embed.part_range(offsets, 2, 3) == (256, 512)
    # more parts than shards: some are empty, none overlaps
    assert sum(b - a == 0 for a, b in (embed.part_range(offsets, p, 7) for p in range(1, 8))) == 3
    with pytest.raises(ValueError):
        embed.part_range(offsets, 0, 3)


def test_one_part_and_three_parts_give_identical_dyn(site):
    one, three = site.tmp / "dyn1.h5", site.tmp / "dyn3.h5"
    embed_in_parts(site, 1, one)
    paths = embed_in_parts(site, 3, three)
    X1, names1 = h5io.read_features(one)
    X3, names3 = h5io.read_features(three)
    assert X1.shape == (900, 10) and X1.dtype == np.float32
    assert names1 == names3 == [f"emb_{i:03d}" for i in range(8)] + ["log_std_mm", "trend_mm_yr"]
    assert np.array_equal(X1, X3)
    assert np.isfinite(X1).all()
    # a missing part is an error, not a shorter file
    with pytest.raises(ValueError, match="missing|follow"):
        embed.gather_parts(paths[:1] + paths[2:], site.tmp / "bad.h5")
    assert not (site.tmp / "bad.h5").exists()


def test_parts_of_different_models_do_not_gather(site):
    """A part left from an earlier model (copied back from a cluster, or kept by --touch)
    has the same rows and feature names: its origin tells it apart."""
    paths = embed_in_parts(site, 2, site.tmp / "dyn2.h5")
    other = embed.fit_site(site.shards, {**CFG, "spectral_radius": 0.9}, seed=42)
    embed.save_model(other, site.tmp / "other.pt", meta={"site": "synthetic"})
    stale = site.tmp / "stale-2-of-2.h5"
    embed.embed_part(site.shards, site.tmp / "other.pt", 2, 2, stale)
    with pytest.raises(ValueError, match="model_sha256 differs.*different models"):
        embed.gather_parts([paths[0], stale], site.tmp / "mixed.h5")
    assert not (site.tmp / "mixed.h5").exists()
    assert h5io.Features(paths[0]).attrs["shards_regularization"] == "linear"


def test_more_parts_than_shards_write_empty_parts_and_gather(site):
    """embed.n_jobs sized for a big site (7 parts) on a 4-shard site: the empty parts are
    valid 0-row files (h5py refused a 1-row chunk on 0 rows) and the gathered file equals one part."""
    one = site.tmp / "dyn1b.h5"
    embed_in_parts(site, 1, one)
    paths = embed_in_parts(site, 7, site.tmp / "dyn7.h5")
    assert sum(h5io.Features(p).n_rows == 0 for p in paths) == 3
    assert np.array_equal(h5io.read_features(one)[0], h5io.read_features(site.tmp / "dyn7.h5")[0])


def test_state_pca_is_fitted_on_a_random_subset_of_the_sample():
    """The fit sample is sorted by row and rows follow space: its first rows are one corner
    of the site. With rows ordered by regime (first 600 stable), the PCA must still see all."""
    from insarclust.reservoir import ReservoirEmbedder

    rng = np.random.default_rng(0)
    t = np.arange(120) / 30
    X = np.r_[rng.normal(0, 1, (600, 120)), (-8 * t + rng.normal(0, 1, (600, 120)))].astype(np.float32)
    seen = {}
    model = ReservoirEmbedder(n_units=30, n_pca=4, out_dim=4, fit_sample=1200, pca_sample=200, seed=3)
    real = ReservoirEmbedder._fit_pca

    def spy(self, X_pca, rows):
        seen["rows"] = rows
        return real(self, X_pca, rows)

    ReservoirEmbedder._fit_pca = spy
    try:
        model.fit(X)
    finally:
        ReservoirEmbedder._fit_pca = real
    assert len(seen["rows"]) == 200 and 60 < np.sum(seen["rows"] >= 600) < 140


def test_embedding_separates_the_regimes(site):
    out = site.tmp / "dyn_quality.h5"
    embed_in_parts(site, 1, out)
    X, names = h5io.read_features(out)
    labels = KMeans(4, n_init=10, random_state=0).fit_predict(X)
    assert adjusted_rand_score(site.truth, labels) > 0.9
    # trend column is in mm/yr: the subsiding regime (-8 mm/yr) and uplift (+5 mm/yr)
    model = embed.load_model(site.model)
    trend = X[:, names.index("trend_mm_yr")] * model.scale_std_[1] + model.scale_mean_[1]
    assert np.median(trend[site.truth == 1]) == pytest.approx(-8.0, abs=0.5)
    assert np.median(trend[site.truth == 3]) == pytest.approx(5.0, abs=0.5)


def test_model_file_is_plain_tensors_and_reloads_identically(site):
    state = torch.load(site.model, weights_only=True)
    assert state["params"]["seed"] == 42 and state["params"]["n_units"] == 40
    assert state["fitted"]["recurrent_weights_"].shape == (40, 40)
    assert state["fitted"]["pca_components_"].shape == (80, 8)
    assert state["meta"]["site"] == "synthetic"
    model = embed.load_model(site.model, batch_size=37)
    again = embed.load_model(site.model)
    X = h5io.Shards(site.shards).read("series/regular", 0, 150)
    np.testing.assert_allclose(model.transform(X), again.transform(X), rtol=1e-5, atol=1e-5)
    # same seed, same config -> same reservoir on another site
    other, _ = make_shards_file(site.tmp / "other.h5", n=300, n_grid=80, shard_size=128, seed=5)
    refit = embed.fit_site(other, CFG, seed=42)
    np.testing.assert_array_equal(refit.recurrent_weights_, state["fitted"]["recurrent_weights_"].numpy())


def test_reused_model_needs_the_same_grid_step(site):
    other, _ = make_shards_file(site.tmp / "weekly.h5", n=300, n_grid=80, shard_size=128, step_days=7)
    with pytest.raises(ValueError, match="grid step 7 days"):
        embed.embed_part(other, site.model, 1, 1, site.tmp / "weekly_part.h5")


def test_dyn_static_standardised_and_weighted(site, tmp_path):
    dyn = tmp_path / "dyn.h5"
    h5io.write_features(dyn, np.arange(1800, dtype=np.float32).reshape(900, 2), ["a", "b"])
    out = tmp_path / "dyn+static.h5"
    embed.write_dyn_static(dyn, site.shards, out, static_weight={"height": 2.0, "mean_velocity": 0.5},
                           block_rows=200)
    X, names = h5io.read_features(out)
    assert names == ["a", "b", "static_height", "static_mean_velocity", "static_temporal_coherence"]
    np.testing.assert_array_equal(X[:, :2], np.arange(1800, dtype=np.float32).reshape(900, 2))
    np.testing.assert_allclose(X[:, 2:].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(X[:, 2:].std(0), [2.0, 0.5, 1.0], rtol=1e-5)
    static = h5io.Shards(site.shards).read("points/static")
    expected = (static[:, 0] - static[:, 0].mean()) / static[:, 0].std() * 2
    np.testing.assert_allclose(X[:, 2], expected, rtol=1e-4, atol=1e-4)
    # a name this site lacks (one config for sites of several formats) is ignored
    embed.write_dyn_static(dyn, site.shards, out, static_weight={"nope": 1.0, "height": 2.0})
    assert h5io.read_features(out)[1] == names


def test_geometry_columns_are_not_features(tmp_path):
    path, _ = make_shards_file(tmp_path / "s.h5", n=200, n_grid=30, shard_size=64)
    with h5py.File(path, "r+") as f:    # call the third static column a LOS component
        f.attrs["geometry_columns"] = ["temporal_coherence"]
    dyn = tmp_path / "dyn.h5"
    h5io.write_features(dyn, np.zeros((200, 1), np.float32), ["a"])
    embed.write_dyn_static(dyn, path, tmp_path / "out.h5")
    assert h5io.read_features(tmp_path / "out.h5")[1] == ["a", "static_height", "static_mean_velocity"]
    embed.write_dyn_static(dyn, path, tmp_path / "out.h5", static_weight={"temporal_coherence": 1.0})
    assert h5io.read_features(tmp_path / "out.h5")[1][-1] == "static_temporal_coherence"


def test_dyn_static_missing_and_constant_columns(tmp_path):
    path, _ = make_shards_file(tmp_path / "s.h5", n=200, n_grid=30, shard_size=64)
    with h5py.File(path, "r+") as f:
        st = f["points/static"]
        st[:10, 0] = np.nan
        st[:, 2] = 0.75
    dyn = tmp_path / "dyn.h5"
    h5io.write_features(dyn, np.zeros((200, 1), np.float32), ["a"])
    embed.write_dyn_static(dyn, path, tmp_path / "out.h5", static_weight=3.0)
    X, _ = h5io.read_features(tmp_path / "out.h5")
    assert np.isfinite(X).all()
    np.testing.assert_array_equal(X[:10, 1], 0.0)       # missing -> column mean
    np.testing.assert_array_equal(X[:, 3], 0.0)         # constant column
    assert X[10:, 1].std() == pytest.approx(3.0, rel=0.05)


def test_rule_scripts(site, tmp_path):
    """The thin scripts, run as Snakemake runs them (a ``snakemake`` object in their globals)."""
    def run(script, **kw):
        log = tmp_path / f"{script}.log"
        config = {"device": "cpu", "seed": 42, "embed": {**CFG, "batch_size": 256, "n_jobs": 2}}
        snk = SimpleNamespace(log=[str(log)], threads=1, config=config, **kw)
        runpy.run_path(str(ROOT / "scripts" / f"{script}.py"), init_globals={"snakemake": snk})
        assert log.exists()

    model = tmp_path / "embed" / "model.pt"
    run("embed_fit", input=[str(site.shards)], output=[str(model)],
        params=SimpleNamespace(cfg=CFG, seed=42), wildcards=SimpleNamespace(site="synthetic"))
    parts = [tmp_path / "embed" / "parts" / f"{p}-of-2.h5" for p in (1, 2)]
    for p, path in enumerate(parts, 1):
        run("embed_part", input=SimpleNamespace(shards=str(site.shards), model=str(model)),
            output=[str(path)],
            wildcards=SimpleNamespace(site="synthetic", part=str(p), n="2"))
    dyn = tmp_path / "features" / "dyn.h5"
    run("embed_gather", input=[str(p) for p in parts], output=[str(dyn)])
    out = tmp_path / "features" / "dyn+static.h5"
    run("static_features", input=SimpleNamespace(dyn=str(dyn), shards=str(site.shards)),
        output=[str(out)], params=SimpleNamespace(static_weight=1.0))
    X, names = h5io.read_features(out)
    assert X.shape == (900, 13) and names[-3:] == ["static_height", "static_mean_velocity",
                                                    "static_temporal_coherence"]
    assert "series embedded" in (tmp_path / "embed_part.log").read_text()


def test_shipped_config_is_the_embedder_defaults():
    """config/config.yaml and ReservoirEmbedder() agree, so what the tests and
    bench/validity.py check on the defaults is what the workflow runs."""
    import yaml

    from insarclust.reservoir import ReservoirEmbedder

    from insarclust.config import stage_kwargs

    shipped = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["embed"]
    defaults = ReservoirEmbedder().get_params()
    # every embedder parameter that has a config key; the run-time device is not one
    for param, value in stage_kwargs("embed", shipped).items():
        assert value == defaults[param], f"embed.{param}: config {value!r}, default {defaults[param]!r}"
    assert set(defaults) - set(stage_kwargs("embed", shipped)) <= {"device", "dtype", "step", "seed"}


ACQUISITION_COLUMNS = {"incidence_angle", "track_angle", "los_east", "los_north", "los_up", "RANGE", "AZIMUTH",
                       "line", "pixel"}


def test_shipped_formats_keep_acquisition_geometry_out_of_the_features(tmp_path):
    """Incidence and track angles and radar image coordinates vary with position across the
    swath and say nothing about the motion: as dyn+static features they split regimes by
    place (docs/validity.md, "Static columns"). They are read as geometry, features only
    when static_weight names them."""
    from insarclust.demo import generate
    from insarclust.formats import get_format, load_formats
    from insarclust.shards import build_shards

    formats = load_formats(ROOT / "config" / "formats.yaml")
    for name in formats:
        fmt = get_format(name, formats)
        assert not ACQUISITION_COLUMNS & set(fmt.static + fmt.optional_static), name
    fmt = get_format("svalbard", formats)
    table, _ = generate("sv", "arctic", fmt, n_points=300, years=2, seed=1)
    table.to_csv(tmp_path / "sv.csv", index=False)
    build_shards([tmp_path / "sv.csv"], fmt, tmp_path / "s.h5", "sv")
    dyn = tmp_path / "dyn.h5"
    h5io.write_features(dyn, np.zeros((300, 1), np.float32), ["a"])
    embed.write_dyn_static(dyn, tmp_path / "s.h5", tmp_path / "out.h5")
    names = h5io.read_features(tmp_path / "out.h5")[1]
    assert names == ["a"] + [f"static_{c}" for c in ("ELEVATION", "MAXDISP", "COHERENCE", "DEMERR", "SLOPE",
                                                      "DOYMAX")]
    embed.write_dyn_static(dyn, tmp_path / "s.h5", tmp_path / "out.h5", static_weight={"incidence_angle": 1.0})
    assert h5io.read_features(tmp_path / "out.h5")[1][-1] == "static_incidence_angle"


def test_a_damaged_model_file_is_named(site, tmp_path):
    from insarclust.errors import InputError

    cut = tmp_path / "model.pt"
    data = site.model.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(InputError, match=rf"file {cut}: cannot be read as an embedding model.*\n  fix: delete {cut}"):
        embed.embed_part(site.shards, cut, 1, 1, tmp_path / "part.h5")
    assert not (tmp_path / "part.h5").exists()


def test_a_non_finite_embedding_stops_static_features_naming_dyn(site, tmp_path):
    """It was passed on, and then reported as a fault of dyn+static.h5."""
    dyn = tmp_path / "dyn.h5"
    X = np.ones((900, 3), dtype=np.float32)
    X[321, 1] = np.nan
    h5io.write_features(dyn, X, ["a", "b", "c"])
    with pytest.raises(ValueError, match=rf"{dyn}: feature row 321 \(0-based\), column 'b' is nan"):
        embed.write_dyn_static(dyn, site.shards, tmp_path / "dyn+static.h5")
    assert not (tmp_path / "dyn+static.h5").exists()


def test_worker_threads_give_the_bits_of_one_thread_in_row_order(site):
    """embed_range on 1 or 3 worker threads (torch single-threaded in each) writes the same
    file bit for bit, rows in order; torch's thread count is restored after."""
    model = embed.load_model(site.model)
    paths = {}
    for workers in (1, 3):
        paths[workers] = site.tmp / f"dyn-workers{workers}.h5"
        torch.set_num_threads(2)
        try:
            embed.embed_range(site.shards, model, 0, 900, paths[workers], workers=workers)
            assert torch.get_num_threads() == 2
        finally:
            torch.set_num_threads(1)
    X1, _ = h5io.read_features(paths[1])
    X3, _ = h5io.read_features(paths[3])
    assert X1.shape == (900, 10) and np.array_equal(X1, X3)
    with h5py.File(site.shards) as f:
        first = f["series/regular"][:100]
    assert np.array_equal(X3[:100], model.transform(first, rows=np.arange(100)))


def test_worker_errors_reach_the_caller(site):
    model = embed.load_model(site.model)
    blocks = [(0, 2, np.zeros((2, 80), np.float32)), (2, 4, np.zeros((2, 7), np.float32))]
    with pytest.raises(ValueError):
        list(embed.embedded_blocks(model, iter(blocks), workers=2))


def test_worker_blocks_come_back_in_the_order_given(site):
    """embed_range writes each block at its offset, so its file cannot tell; embedded_blocks
    itself promises the order given, also when later blocks finish first (the first block of
    the pool, the second given, is slowed)."""
    model = embed.load_model(site.model)
    with h5py.File(site.shards) as f:
        X = f["series/regular"][:200]

    def transform(block, rows=None):
        if rows[0] == 20:
            time.sleep(0.3)
        return model.transform(block, rows=rows)

    def blocks():
        for a in range(0, 200, 20):
            yield a, a + 20, X[a:a + 20]
            time.sleep(0.02)  # the blocks after the first finish while it waits

    slowed = SimpleNamespace(device=model.device, transform=transform)
    got = list(embed.embedded_blocks(slowed, blocks(), workers=3))
    assert [(a, b) for a, b, _ in got] == [(a, a + 20) for a in range(0, 200, 20)]
    for a, b, features in got:
        assert np.array_equal(features, model.transform(X[a:b], rows=np.arange(a, b)))


def test_the_first_block_runs_alone_on_the_calling_thread(site):
    """Every kernel's first call of a process on one thread (vml.py): the pool starts after it."""
    import threading

    model = embed.load_model(site.model)
    seen = []
    transform = model.transform

    def recording(X, rows=None):
        workers = [t for t in threading.enumerate() if t.name.startswith("embed")]
        seen.append((int(rows[0]), threading.current_thread().name, len(workers)))
        return transform(X, rows=rows)

    model.transform = recording
    with h5py.File(site.shards) as f:
        X = f["series/regular"][:400]
    blocks = [(a, a + 100, X[a:a + 100]) for a in range(0, 400, 100)]
    out = [a for a, _, _ in embed.embedded_blocks(model, blocks, workers=2)]
    assert out == [0, 100, 200, 300]
    first = min(seen)
    assert first == (0, threading.current_thread().name, 0)
    assert {name.startswith("embed") for row, name, _ in seen if row > 0} == {True}
