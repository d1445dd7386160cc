from pathlib import Path

import h5py
import numpy as np
import pytest

from insarclust import h5io
from conftest import make_shards_file


def test_shards_contract(tmp_path):
    path, truth = make_shards_file(tmp_path / "s.h5", n=1000, n_grid=50, shard_size=300)
    with h5py.File(path) as f:
        assert f["points/pid"].dtype == h5io.STR
        assert f["points/lat"].dtype == np.float64
        assert f["points/static"].dtype == np.float32
        assert f["series/dates"].dtype == np.int32
        assert f["series/regular"].shape == (1000, 50)
        assert list(f["shards/offsets"][...]) == [0, 300, 600, 900, 1000]
        assert f.attrs["n_points"] == 1000
    s = h5io.Shards(path)
    assert s.n_shards == 4
    blocks = list(s.iter_blocks(block_rows=250))
    assert all(a < b for a, b, _ in blocks)
    assert sum(len(x) for *_, x in blocks) == 1000
    # no block crosses a shard boundary
    for a, b, _ in blocks:
        assert not any(a < o < b for o in s.offsets)
    rows = np.array([999, 3, 3, 500])
    np.testing.assert_array_equal(s.read_rows("series/regular", rows), s.read("series/regular")[rows])


def test_observed_spans_are_stored_per_component_and_derived_for_older_files(tmp_path):
    """/series/span and /components/{c}/span hold each row's first and last grid index with a
    value; a file without them (built before) gives the same spans from its displacements."""
    grid = np.arange(0, 60, 6, dtype=np.int32)           # 10 grid epochs
    dates = grid[::2]                                     # acquisitions every 12 days
    disp = np.zeros((4, len(dates)), dtype=np.float32)
    disp[1, :2] = np.nan                                  # starts at the third acquisition (day 24)
    disp[2, -1] = np.nan                                  # ends one acquisition early (day 36)
    disp[3] = np.nan                                      # no value: the whole grid
    east = disp[::-1].copy()
    path = tmp_path / "s.h5"
    with h5io.ShardsWriter(path, 4, dates, grid, [], {"site": "t"}, components=["up", "east"]) as w:
        w.write_series(0, disp, np.zeros((4, len(grid)), np.float32))
        w.write_component("east", 0, east, np.zeros((4, len(grid)), np.float32))
        w.write_points(["a", "b", "c", "d"], np.zeros(4), np.zeros(4), np.zeros((4, 0), np.float32))
    expected = np.array([[0, 8], [4, 8], [0, 6], [0, 9]])
    with h5py.File(path) as f:
        assert f["series/span"].dtype == np.int32
        np.testing.assert_array_equal(f["series/span"][...], expected)
        np.testing.assert_array_equal(f["components/east/span"][...], expected[::-1])
    s = h5io.Shards(path)
    np.testing.assert_array_equal(s.spans(1, 3), expected[1:3])
    np.testing.assert_array_equal(s.spans(0, 4, "components/east/regular"), expected[::-1])
    with h5py.File(path, "a") as f:
        del f["series/span"], f["components/east/span"]
    np.testing.assert_array_equal(s.spans(1, 3), expected[1:3])
    np.testing.assert_array_equal(s.spans(0, 4, "components/east/regular"), expected[::-1])


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "f.h5"
    with pytest.raises(RuntimeError):
        with h5io.FeatureWriter(target, 10, ["a", "b"]) as w:
            w.write(0, np.zeros((5, 2)))  # only half the rows
    assert list(tmp_path.iterdir()) == []



def test_atomic_path_keeps_the_suffix_and_drops_sqlite_companions_on_error(tmp_path):
    target = tmp_path / "clusters.gpkg"
    with pytest.raises(OSError):
        with h5io.atomic_path(target, keep_suffix=True) as tmp:
            assert tmp.name.endswith(".gpkg") and tmp.parent == tmp_path
            for suffix in ("", "-journal", "-wal"):
                Path(f"{tmp}{suffix}").write_bytes(b"partial")
            raise OSError("disk full")
    assert list(tmp_path.iterdir()) == [] and h5io.partial_bytes[str(target)] == 7
    with h5io.atomic_path(target, keep_suffix=True) as tmp:
        tmp.write_bytes(b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["clusters.gpkg"] and target.read_bytes() == b"whole"

def test_features_roundtrip(tmp_path):
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    h5io.write_features(tmp_path / "x.h5", X, ["a", "b"], {"kind": "test"})
    f = h5io.Features(tmp_path / "x.h5")
    assert f.names == ["a", "b"] and f.attrs["kind"] == "test"
    np.testing.assert_array_equal(f.read_rows([9, 0]), X[[9, 0]])


def _damaged_copies(tmp_path):
    """A features file cut short (an interrupted copy) and a graph file without /weight (an
    older layout, or another kind of file in its place)."""
    good = tmp_path / "dyn.h5"
    h5io.write_features(good, np.ones((3000, 4), dtype=np.float32), ["a", "b", "c", "d"])
    cut = tmp_path / "cut" / "dyn.h5"
    cut.parent.mkdir()
    data = good.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    old = tmp_path / "old" / "graph.h5"
    old.parent.mkdir()
    with h5py.File(old, "w") as f:
        f["indptr"] = np.arange(3001, dtype=np.int64)
        f["indices"] = np.zeros(3000, dtype=np.int64)
        f["distance_m"] = np.ones(3000, dtype=np.float32)
    return cut, old


def test_damaged_and_incomplete_files_are_named(tmp_path):
    from insarclust.errors import InputError

    cut, old = _damaged_copies(tmp_path)
    with pytest.raises(InputError, match=rf"file {cut}: cannot be read as HDF5 .*truncated.*\n  fix: delete {cut}"):
        h5io.Features(cut)
    with pytest.raises(InputError, match=rf"file {old}: lacks .*'weight'.*\n  fix: delete {old}"):
        h5io.read_graph(old)
    with pytest.raises(InputError, match=rf"file {cut}"):
        h5io.read_attrs(cut)
    with pytest.raises(FileNotFoundError):
        h5io.Features(tmp_path / "absent.h5")


def test_a_rule_stopped_by_a_damaged_file_writes_why_to_its_log(tmp_path):
    """The message reaches the rule's log (not only a traceback naming neither file nor fix),
    and no output is left."""
    import os
    import subprocess
    import sys

    cut, old = _damaged_copies(tmp_path)
    root = Path(__file__).resolve().parents[1]
    log, out = tmp_path / "smooth.log", tmp_path / "out" / "dyn_smoothed.h5"
    smk = (f"N(log=[{str(log)!r}], threads=1, output=[{str(out)!r}], "
           f"input=N(features={str(cut)!r}, graph={str(old)!r}), params=N(cfg={{'H': 2}}), "
           "config={'seed': 0, 'smooth': {'moran_features': 2}})")
    code = ("import runpy\nfrom types import SimpleNamespace as N\n"
            f"runpy.run_path({str(root / 'scripts' / 'smooth.py')!r}, init_globals={{'snakemake': {smk}}})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root / "src")})
    assert proc.returncode != 0
    text = log.read_text()
    assert f"file {cut}:" in text and f"fix: delete {cut}" in text, text
    assert "Traceback" not in text
    assert not out.exists()
