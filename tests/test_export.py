import csv
import json

import numpy as np
import pytest

from conftest import make_shards_file
from insarclust import h5io
from insarclust.export import export_labels


def _labels(tmp_path, n, methods, seed=0):
    rng = np.random.default_rng(seed)
    paths, arrays = {}, {}
    for i, m in enumerate(methods):
        labels = rng.integers(0, 3 + i, n).astype(np.int32)
        split = (rng.random(n) < 0.2).astype(np.uint8)
        paths[m] = tmp_path / "clusters" / f"{m}.h5"
        h5io.write_clusters(paths[m], labels, split)
        arrays[m] = labels
    return paths, arrays


def test_csv_and_geojson_carry_every_point_once(tmp_path):
    shards, _ = make_shards_file(tmp_path / "shards.h5", n=1300, n_grid=20, shard_size=512)
    methods = ["kmeans-dyn", "kmeans-dyn+static_smoothed", "dsc"]
    paths, arrays = _labels(tmp_path, 1300, methods)
    n = export_labels(shards, paths, tmp_path / "clusters.csv", tmp_path / "clusters.geojson",
                      layer_name="demo-x")
    assert n == 1300
    s = h5io.Shards(shards)
    pid, (lat, lon) = s.pids(), s.coords()

    with open(tmp_path / "clusters.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["pid", "lat", "lon", *methods]
    body = rows[1:]
    assert len(body) == 1300
    assert [r[0] for r in body] == list(pid)  # shard order of shards.h5
    # coordinates round-trip exactly to the float64 of shards.h5
    np.testing.assert_array_equal(np.array([float(r[1]) for r in body]), lat)
    np.testing.assert_array_equal(np.array([float(r[2]) for r in body]), lon)
    for j, m in enumerate(methods):
        np.testing.assert_array_equal(np.array([int(r[3 + j]) for r in body]), arrays[m])

    gj = json.loads((tmp_path / "clusters.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and gj["name"] == "demo-x"
    feats = gj["features"]
    assert len(feats) == 1300
    assert feats[0]["geometry"] == {"type": "Point", "coordinates": [lon[0], lat[0]]}
    assert list(feats[0]["properties"]) == ["pid", "lat", "lon", *methods]
    for j, m in enumerate(methods):
        np.testing.assert_array_equal([f["properties"][m] for f in feats], arrays[m])
    assert [f["properties"]["pid"] for f in feats] == list(pid)
    np.testing.assert_array_equal([f["geometry"]["coordinates"][1] for f in feats], lat)


def test_export_is_deterministic(tmp_path):
    shards, _ = make_shards_file(tmp_path / "shards.h5", n=600, n_grid=10, shard_size=256)
    paths, _ = _labels(tmp_path, 600, ["a", "b"])
    export_labels(shards, paths, tmp_path / "1.csv", tmp_path / "1.geojson")
    export_labels(shards, paths, tmp_path / "2.csv", tmp_path / "2.geojson")
    assert (tmp_path / "1.csv").read_bytes() == (tmp_path / "2.csv").read_bytes()
    assert (tmp_path / "1.geojson").read_bytes() == (tmp_path / "2.geojson").read_bytes()


def test_stale_labels_fail_and_leave_nothing(tmp_path):
    shards, _ = make_shards_file(tmp_path / "shards.h5", n=600, n_grid=10, shard_size=256)
    paths, _ = _labels(tmp_path, 599, ["kmeans-dyn"])
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"kmeans-dyn\.h5.*599.*600 points"):
        export_labels(shards, paths, out / "clusters.csv", out / "clusters.geojson")
    assert not out.exists() or list(out.iterdir()) == []


def test_odd_pids_are_quoted(tmp_path):
    # pids with commas or quotes must survive the CSV and the GeoJSON
    n = 5
    pid = np.array(['a,1', 'b"2', "c3", "d 4", "é5"], dtype=object)
    grid = np.arange(4, dtype=np.int32)
    with h5io.ShardsWriter(tmp_path / "s.h5", n, grid, grid, [], {"site": "x"}) as w:
        w.write(pid, np.linspace(60, 61, n), np.linspace(10, 11, n), np.zeros((n, 0)),
                np.zeros((n, 4)), np.zeros((n, 4)))
    h5io.write_clusters(tmp_path / "m.h5", np.arange(n), np.zeros(n))
    export_labels(tmp_path / "s.h5", {"m": tmp_path / "m.h5"}, tmp_path / "c.csv", tmp_path / "c.geojson")
    with open(tmp_path / "c.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    assert [r[0] for r in rows] == list(pid)
    gj = json.loads((tmp_path / "c.geojson").read_text(encoding="utf-8"))
    assert [f["properties"]["pid"] for f in gj["features"]] == list(pid)


def test_reserved_method_name_rejected(tmp_path):
    shards, _ = make_shards_file(tmp_path / "shards.h5", n=300, n_grid=10, shard_size=256)
    paths, _ = _labels(tmp_path, 300, ["lat"])
    with pytest.raises(ValueError, match="reserved"):
        export_labels(shards, paths, tmp_path / "c.csv")


# --------------------------------------------------------------------------- #
# GeoPackage


def _metrics(tmp_path, methods, arrays):
    paths = {}
    for m in methods:
        k = int(arrays[m].max()) + 1
        clusters = [{"cluster": j, "size": int((arrays[m] == j).sum()),
                     "label": ["subsiding", "stable", "uplifting", "seasonal", "step"][j % 5]} for j in range(k)]
        paths[m] = tmp_path / "clusters" / f"{m}.json"
        paths[m].write_text(json.dumps({"k": k, "clusters": clusters}))
    return paths


def test_geopackage_layer_schema_crs_and_rows(tmp_path):
    import pyogrio
    import pyogrio.raw

    from insarclust.descriptors import DESCRIPTOR_NAMES
    from insarclust.export import write_geopackage

    n = 1300
    shards, _ = make_shards_file(tmp_path / "shards.h5", n=n, n_grid=20, shard_size=512)
    methods = ["kmeans-dyn", "kmeans-dyn+static_smoothed", "dsc"]
    paths, arrays = _labels(tmp_path, n, methods)
    metrics = _metrics(tmp_path, methods, arrays)
    rng = np.random.default_rng(1)
    D = rng.normal(0, 5, (n, len(DESCRIPTOR_NAMES))).astype(np.float32)
    D[:, DESCRIPTOR_NAMES.index("step_date")] = 18000 + rng.integers(0, 900, n)
    D[5, DESCRIPTOR_NAMES.index("step_date")] = np.nan     # no step: an empty date
    D[6, DESCRIPTOR_NAMES.index("step_mm")] = 0.0          # not significant: the candidate date means nothing
    h5io.write_features(tmp_path / "descriptors.h5", D, DESCRIPTOR_NAMES)
    out = tmp_path / "clusters.gpkg"
    # small blocks: the layer is streamed in many pieces
    assert write_geopackage(shards, paths, out, metrics_paths=metrics, descriptors_path=tmp_path / "descriptors.h5",
                            layer_name="demo-x", block_rows=200) == n
    assert not list(tmp_path.glob(".clusters*"))

    info = pyogrio.read_info(out)
    assert info["layer_name"] == "demo-x" and info["geometry_type"] == "Point" and info["features"] == n
    assert info["crs"] == "EPSG:4326"
    expected = ["pid", "lat", "lon"]
    for m in methods:
        expected += [m, f"{m}_regime"]
    expected += DESCRIPTOR_NAMES
    assert list(info["fields"]) == expected
    types = dict(zip(info["fields"], info["ogr_types"]))
    assert types["kmeans-dyn"] == "OFTInteger" and types["step_date"] == "OFTDate"
    assert types["trend_mm_yr"] == "OFTReal" and types["dsc_regime"] == "OFTString"

    s = h5io.Shards(shards)
    pid, (lat, lon) = s.pids(), s.coords()
    rows = [0, 5, 777, n - 1]
    meta, _, geometry, values = pyogrio.raw.read(out, skip_features=0, max_features=n)
    col = dict(zip(meta["fields"], values))
    assert list(col["pid"][rows]) == list(pid[rows])
    np.testing.assert_array_equal(col["lat"], lat)
    for m in methods:
        np.testing.assert_array_equal(col[m], arrays[m])
        names = {c["cluster"]: c["label"] for c in json.loads(metrics[m].read_text())["clusters"]}
        assert [col[f"{m}_regime"][r] for r in rows] == [names[arrays[m][r]] for r in rows]
    # float32 descriptors as their shortest decimal: the same float32, without widening's digits
    np.testing.assert_allclose(col["trend_mm_yr"], D[:, 0].astype(np.float64), rtol=1e-7)
    assert (col["trend_mm_yr"].astype(np.float32) == D[:, 0]).all()
    assert [repr(float(v)) for v in col["trend_mm_yr"][rows]] == [str(v) for v in D[rows, 0]]
    step = col["step_date"]
    assert np.isnat(step[5]) and np.isnat(step[6]) and (~np.isnat(step)).sum() == n - 2
    assert step[0] == np.datetime64("1970-01-01") + np.timedelta64(int(D[0, 5]), "D")
    # point geometry: WKB of (lon, lat)
    import struct
    assert struct.unpack("<dd", bytes(geometry[777])[5:21]) == (lon[777], lat[777])


def test_geopackage_of_a_projected_site_keeps_its_crs(tmp_path):
    import pyogrio
    import pyogrio.raw

    from insarclust.demo import generate
    from insarclust.export import write_geopackage
    from insarclust.formats import get_format, load_formats
    from insarclust.shards import build_shards

    from conftest import ROOT

    fmt = get_format("egms-l3", load_formats(ROOT / "config" / "formats.yaml"))
    table, _ = generate("l3", "mainland", fmt, n_points=400, years=1.0, seed=3)
    table.to_csv(tmp_path / "l3.csv", index=False)
    build_shards([tmp_path / "l3.csv"], fmt, tmp_path / "shards.h5", "l3")
    paths, _ = _labels(tmp_path, 400, ["kmeans-dyn"])
    write_geopackage(tmp_path / "shards.h5", paths, tmp_path / "clusters.gpkg")
    info = pyogrio.read_info(tmp_path / "clusters.gpkg")
    assert info["crs"] == "EPSG:3035" and list(info["fields"]) == ["pid", "lat", "lon", "x", "y", "kmeans-dyn"]
    meta, _, geometry, values = pyogrio.raw.read(tmp_path / "clusters.gpkg")
    col = dict(zip(meta["fields"], values))
    by_pid = table.set_index("pid").loc[col["pid"]]
    np.testing.assert_array_equal(col["x"], by_pid["easting"].to_numpy())
    import struct
    assert struct.unpack("<dd", bytes(geometry[0])[5:21]) == (col["x"][0], col["y"][0])


def test_geopackage_failure_mid_stream_keeps_its_cause(tmp_path, monkeypatch):
    """GDAL reports a failure inside the Arrow stream only as 'Error while accessing batch from
    stream'; the original error (file, cause) reaches the user, and no file is left."""
    from insarclust.export import write_geopackage

    n = 900
    shards, _ = make_shards_file(tmp_path / "shards.h5", n=n, n_grid=20, shard_size=256)
    paths, _ = _labels(tmp_path, n, ["kmeans-dyn"])
    real_read, calls = h5io.Shards.read, []

    def failing_read(self, name, *args, **kwargs):
        if name == "points/lat":
            calls.append(1)
            if len(calls) == 3:
                raise OSError("shards.h5: can't read data (boom mid-stream)")
        return real_read(self, name, *args, **kwargs)

    monkeypatch.setattr(h5io.Shards, "read", failing_read)
    with pytest.raises(OSError, match="boom mid-stream"):
        write_geopackage(shards, paths, tmp_path / "clusters.gpkg", block_rows=100)
    assert [p.name for p in tmp_path.iterdir() if "clusters" in p.name and p.is_file()] == []


def test_float32_as_decimal_equals_the_shortest_repr():
    """Each float32 becomes the float64 of its shortest round-trip decimal (numpy's float32 repr),
    over eight decades either side of 1 and the edge values; the float32 is unchanged."""
    from insarclust.export import float32_as_decimal

    rng = np.random.default_rng(0)
    x = (rng.standard_normal(20000) * 10.0 ** rng.integers(-8, 9, 20000)).astype(np.float32)
    x[:10] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 0.1, -2.5, 1e-8, 3.4e38, 18262.0]
    out = float32_as_decimal(x)
    assert out.dtype == np.float64
    finite = np.isfinite(x)
    assert (out[finite].astype(np.float32) == x[finite]).all()
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf and np.signbit(out[4])
    expected = np.array([float(np.format_float_positional(v, unique=True)) if np.isfinite(v) else v
                         for v in x], dtype=np.float64)
    np.testing.assert_array_equal(out, expected)
    assert repr(out[5].item()) == "0.1" and x[5].astype(np.float64) != 0.1


def test_geopackage_cluster_without_regime_is_null(tmp_path):
    """A cluster whose JSON has no suggested regime is NULL in the layer, not an empty text."""
    import pyogrio.raw

    from insarclust.export import write_geopackage

    n = 300
    shards, _ = make_shards_file(tmp_path / "shards.h5", n=n, n_grid=20, shard_size=128)
    paths, arrays = _labels(tmp_path, n, ["kmeans-dyn"])
    k = int(arrays["kmeans-dyn"].max()) + 1
    metrics = tmp_path / "kmeans-dyn.json"
    metrics.write_text(json.dumps({"k": k, "clusters": [{"cluster": j, "label": "stable" if j else None}
                                                         for j in range(k)]}))
    write_geopackage(shards, paths, tmp_path / "clusters.gpkg", metrics_paths={"kmeans-dyn": metrics})
    meta, _, _, values = pyogrio.raw.read(tmp_path / "clusters.gpkg")
    regime = dict(zip(meta["fields"], values))["kmeans-dyn_regime"]
    zero = arrays["kmeans-dyn"] == 0
    assert zero.any() and (~zero).any()
    assert all(v is None for v in regime[zero]) and all(v == "stable" for v in regime[~zero])


def test_float32_as_decimal_is_exact_at_every_magnitude():
    """Beyond the decades where 10**d is an exact float64 (|d| > 22: magnitudes under 1e-13 or
    over 1e22, subnormals, near the float32 maximum), each value is still the float64 of numpy's
    shortest float32 decimal (7.80198e-18, not 7.801980000000001e-18), without overflow warnings."""
    import warnings

    from insarclust.export import float32_as_decimal

    rng = np.random.default_rng(1)
    x = (rng.standard_normal(4000) * 10.0 ** rng.integers(-45, 39, 4000)).astype(np.float32)
    x = np.concatenate([x, np.float32([7.80198e-18, 2.1191486e34, 1e-45, 3.4028235e38, -1.1754944e-38])])
    x = x[np.isfinite(x) & (x != 0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = float32_as_decimal(x)
    assert (out.astype(np.float32) == x).all()
    np.testing.assert_array_equal(out, [float(np.format_float_scientific(v, unique=True)) for v in x])
    assert repr(float32_as_decimal(np.float32([7.80198e-18]))[0].item()) == "7.80198e-18"


def test_regime_of_an_unassigned_point_is_null():
    """A negative label (noise, as density-based methods write it) gets a NULL regime; the
    layer's writing failed on it before (arrow: index -1 out of bounds)."""
    from insarclust.export import _regime_column

    column = _regime_column(np.array([0, -1, 2, 1, -1], dtype=np.int32), {0: "stable", 1: "subsiding",
                                                                          2: "seasonal"})
    assert column.to_pylist() == ["stable", None, "seasonal", "subsiding", None]
    assert _regime_column(np.array([-1, -1]), {}).to_pylist() == [None, None]


def test_a_pid_with_a_carriage_return_stays_one_csv_field(tmp_path):
    """A point id holding a carriage return (a catalogue exported on Windows, a stray \\r before
    a separator) is quoted like one with a comma or a newline: unquoted, a CSV reader ends the
    row there and every later column shifts."""
    n = 3
    pid = np.array(["a\r1", "b\r\n2", "c3"], dtype=object)
    grid = np.arange(4, dtype=np.int32)
    with h5io.ShardsWriter(tmp_path / "s.h5", n, grid, grid, [], {"site": "x"}) as w:
        w.write(pid, np.linspace(60, 61, n), np.linspace(10, 11, n), np.zeros((n, 0)),
                np.zeros((n, 4)), np.zeros((n, 4)))
    h5io.write_clusters(tmp_path / "m.h5", np.arange(n), np.zeros(n))
    export_labels(tmp_path / "s.h5", {"m": tmp_path / "m.h5"}, tmp_path / "c.csv")
    with open(tmp_path / "c.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    assert [r[0] for r in rows] == list(pid)
    assert [r[3] for r in rows] == ["0", "1", "2"]
