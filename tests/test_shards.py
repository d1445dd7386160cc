"""shards stage: readers, formats, spatial ordering, the shards.h5 contract."""
import gzip
import zipfile

import h5py
import numpy as np
import pytest

from insarclust import h5io
from insarclust.demo import generate
from insarclust.dates import parse_date
from insarclust.formats import get_format, load_formats
from insarclust.ordering import spatial_keys
from insarclust.shards import ShardsConfig, build_shards

from conftest import ROOT

FORMATS = load_formats(ROOT / "config" / "formats.yaml")


@pytest.fixture(scope="module")
def demo_table():
    return generate("unit-site", "mainland", get_format("ngu", FORMATS), n_points=1500, years=2.5, seed=3)


def _write(table, path):
    table.to_csv(path, index=False)
    return path


def test_contract_and_values(tmp_path, demo_table):
    table, truth = demo_table
    csv = _write(table, tmp_path / "a.csv")
    out = tmp_path / "shards.h5"
    summary = build_shards([csv], get_format("ngu", FORMATS), out, "unit-site", ShardsConfig(shard_size=400))
    assert summary["n_points"] == 1500 and summary["n_shards"] == 4
    with h5py.File(out) as f:
        assert f["points/pid"].dtype == h5io.STR and f["points/pid"].shape == (1500,)
        assert f["points/lat"].dtype == np.float64 and f["points/lon"].dtype == np.float64
        assert f["points/static"].dtype == np.float32 and f["points/static"].shape == (1500, 6)
        ngu = get_format("ngu", FORMATS)   # static, then the geometry columns the file has
        assert list(f["points/static"].attrs["names"]) == [*ngu.static, *ngu.geometry]
        assert list(f.attrs["geometry_columns"]) == ["incidence_angle", "track_angle"]
        assert f["series/dates"].dtype == np.int32 and f["series/grid_dates"].dtype == np.int32
        assert f["series/displacement"].dtype == np.float32
        assert f["series/displacement"].chunks[1] == f["series/displacement"].shape[1]
        assert f["series/regular"].dtype == np.float32
        assert f["shards/offsets"].dtype == np.int64
        assert list(f["shards/offsets"][...]) == [0, 400, 800, 1200, 1500]
        for key in ("site", "format", "source_sha256", "n_points", "insarclust_version", "regularization"):
            assert key in f.attrs
        assert f.attrs["regularization"] == "linear" and len(f.attrs["source_sha256"]) == 64
        regular = f["series/regular"][...]
        disp = f["series/displacement"][...]
        dates, grid = f["series/dates"][...], f["series/grid_dates"][...]
        pid = f["points/pid"].asstr()[...]
        lat = f["points/lat"][...]
    assert not np.isnan(regular).any()
    assert np.all(np.diff(grid) == 6)
    # linear: equals observed values at observed epochs that lie on the grid
    on_grid = np.isin(dates, grid)
    gi = np.searchsorted(grid, dates[on_grid])
    obs = disp[:, on_grid]
    ok = ~np.isnan(obs)
    np.testing.assert_allclose(regular[:, gi][ok], obs[ok], atol=1e-5)
    # every input row once, values preserved
    src = table.set_index("pid")
    assert sorted(pid) == sorted(src.index)
    np.testing.assert_allclose(lat, src.loc[pid, "latitude"].to_numpy())
    date_cols = [c for c in table.columns if c.isdigit()]
    assert [parse_date(c) for c in date_cols] == list(dates)
    np.testing.assert_allclose(disp, src.loc[pid, date_cols].to_numpy(np.float32), equal_nan=True)


def test_rows_follow_the_hilbert_curve_and_shards_are_compact(tmp_path, demo_table):
    table, _ = demo_table
    out = tmp_path / "s.h5"
    build_shards([_write(table, tmp_path / "a.csv")], get_format("ngu", FORMATS), out, "u",
                 ShardsConfig(shard_size=150))
    s = h5io.Shards(out)
    lat, lon = s.coords()
    keys = spatial_keys(lat, lon)
    assert np.all(np.diff(keys) >= 0)
    # shard bounding boxes are far smaller than the site's
    site_area = np.ptp(lat) * np.ptp(lon)
    areas = [np.ptp(lat[a:b]) * np.ptp(lon[a:b]) for a, b in s.shard_bounds()]
    assert np.median(areas) < 0.35 * site_area
    # the same points in input order would give shard boxes about as large as the site
    shuffled = [np.ptp(table.latitude[a:b]) * np.ptp(table.longitude[a:b]) for a, b in s.shard_bounds()]
    assert np.median(areas) < 0.5 * np.median(shuffled)


def test_gzip_zip_and_several_files_give_the_same_result(tmp_path, demo_table):
    table, _ = demo_table
    fmt = get_format("ngu", FORMATS)
    plain = _write(table, tmp_path / "all.csv")
    build_shards([plain], fmt, tmp_path / "plain.h5", "u")
    gz = tmp_path / "part1.csv.gz"
    with gzip.open(gz, "wt") as fh:
        table.iloc[:700].to_csv(fh, index=False)
    zp = tmp_path / "part2.zip"
    with zipfile.ZipFile(zp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("export/part2.csv", table.iloc[700:1100].to_csv(index=False))
        # a gzipped CSV inside the zip, with CRLF line ends and trailing blanks without a newline
        zf.writestr("export/part3.csv.gz", gzip.compress(
            table.iloc[1100:].to_csv(index=False, lineterminator="\r\n").encode() + b"  "))
    build_shards([gz, zp], fmt, tmp_path / "split.h5", "u", ShardsConfig(read_block_mb=0.02))
    a, b = h5io.Shards(tmp_path / "plain.h5"), h5io.Shards(tmp_path / "split.h5")
    np.testing.assert_array_equal(a.pids(), b.pids())
    np.testing.assert_array_equal(a.read("series/regular"), b.read("series/regular"))


def test_files_with_different_dates_are_merged_on_the_union(tmp_path, demo_table):
    table, _ = demo_table
    date_cols = [c for c in table.columns if c.isdigit()]
    first = table.iloc[:500].drop(columns=date_cols[-5:])
    second = table.iloc[500:].drop(columns=date_cols[:3])
    out = tmp_path / "s.h5"
    build_shards([_write(first, tmp_path / "a.csv"), _write(second, tmp_path / "b.csv")],
                 get_format("ngu", FORMATS), out, "u")
    s = h5io.Shards(out)
    assert len(s.dates) == len(date_cols)
    disp = s.read("series/displacement")
    pids = s.pids()
    in_first = np.isin(pids, first.pid)
    assert np.isnan(disp[in_first][:, -5:]).all() and np.isnan(disp[~in_first][:, :3]).all()


def test_svalbard_format_and_units(tmp_path):
    fmt = get_format("svalbard", FORMATS)
    table, _ = generate("sv", "arctic", fmt, n_points=300, years=2, seed=1)
    out = tmp_path / "s.h5"
    build_shards([_write(table, tmp_path / "sv.csv")], fmt, out, "sv")
    s = h5io.Shards(out)
    assert s.static_names == [*fmt.static, *fmt.geometry] and s.n_points == 300
    lat, _ = s.coords()
    assert 77 < lat.min() and lat.max() < 79
    # a metre-unit copy of the format scales to mm (the mm values read as metres are
    # implausible, which the default bound catches: see test_bad_input)
    fmt_m = get_format("svalbard", {"svalbard": {**FORMATS["svalbard"], "displacement_unit": "m"}})
    build_shards([tmp_path / "sv.csv"], fmt_m, tmp_path / "m.h5", "sv", ShardsConfig(max_abs_mm=None))
    np.testing.assert_allclose(h5io.Shards(tmp_path / "m.h5").read("series/regular"),
                               1000 * s.read("series/regular"), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("method", ["linear", "pchip", "makima", "ransac"])
def test_every_method_fills_every_gap(tmp_path, demo_table, method):
    table, _ = demo_table
    out = tmp_path / f"{method}.h5"
    build_shards([_write(table.iloc[:300], tmp_path / "a.csv")], get_format("ngu", FORMATS), out, "u",
                 ShardsConfig(method=method))
    s = h5io.Shards(out)
    reg = s.read("series/regular")
    assert not np.isnan(reg).any() and s.attrs["regularization"] == method


@pytest.mark.parametrize("method", ["linear", "pchip", "ransac"])
def test_regular_equals_regularize_of_the_stored_series(tmp_path, demo_table, method):
    """/series/regular is the method applied to /series/displacement shard by shard (ransac
    seeded per shard), whatever the read block size (many blocks here, with dropped all-NaN
    rows inside them)."""
    from insarclust.regularize import regularize

    table, _ = demo_table
    t = table.copy()
    date_cols = [c for c in t.columns if c.isdigit()]
    t.loc[t.index[[7, 400, 1201]], date_cols] = np.nan
    out = tmp_path / "s.h5"
    build_shards([_write(t, tmp_path / "a.csv")], get_format("ngu", FORMATS), out, "u",
                 ShardsConfig(method=method, shard_size=256, read_block_mb=0.05, all_nan="drop"))
    s = h5io.Shards(out)
    assert s.n_points == 1497
    disp, dates, grid = s.read("series/displacement"), s.dates, s.grid_dates
    expected = np.concatenate([regularize(disp[a:b], dates, grid, method, seed=i)
                               for i, (a, b) in enumerate(zip(s.offsets[:-1], s.offsets[1:]))])
    np.testing.assert_array_equal(s.read("series/regular"), expected)


def test_all_nan_rows_can_be_dropped(tmp_path, demo_table):
    table, _ = demo_table
    t = table.iloc[:200].copy()
    date_cols = [c for c in t.columns if c.isdigit()]
    t.loc[t.index[[3, 50]], date_cols] = np.nan
    out = tmp_path / "s.h5"
    build_shards([_write(t, tmp_path / "a.csv")], get_format("ngu", FORMATS), out, "u",
                 ShardsConfig(all_nan="drop"))
    s = h5io.Shards(out)
    assert s.n_points == 198 and s.attrs["n_dropped"] == 2
    assert not set(t.pid.iloc[[3, 50]]) & set(s.pids())


def test_duplicates_keep_first(tmp_path, demo_table):
    table, _ = demo_table
    a = table.iloc[:300]
    b = table.iloc[250:400].copy()
    b.iloc[:50, 3] = -123.0  # the later copies of repeated ids differ: the first must win
    out = tmp_path / "s.h5"
    build_shards([_write(a, tmp_path / "a.csv"), _write(b, tmp_path / "b.csv")],
                 get_format("ngu", FORMATS), out, "u", ShardsConfig(duplicates="keep-first"))
    s = h5io.Shards(out)
    assert s.n_points == 400 and len(set(s.pids())) == 400
    assert not (s.read("points/static") == -123.0).any()


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_shipped_format_reads(tmp_path, name):
    fmt = get_format(name, FORMATS)
    preset = "arctic" if name == "svalbard" else "mainland"   # inside the format's area
    table, truth = generate(f"f-{name}", preset, fmt, n_points=250, years=1.5, seed=2)
    out = tmp_path / "s.h5"
    build_shards([_write(table, tmp_path / "x.csv")], fmt, out, name)
    s = h5io.Shards(out)
    # the demo writes every optional column of the format: all of them are read
    assert s.static_names == list(fmt.static) + [c for c in (*fmt.optional_static, *fmt.geometry) if c not in fmt.static]
    assert s.n_points == 250 and s.attrs["format"] == name
    assert sorted(s.pids()) == sorted(truth.pid)


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("trailing_newline", [True, False])
def test_byte_blocks_cut_whole_lines(block_bytes, trailing_newline):
    """The reader's blocks are whole lines whose concatenation is the body of the file,
    whatever the block size (smaller than a line included) and with or without a final newline."""
    import io

    from insarclust.readers import _byte_blocks

    rng = np.random.default_rng(block_bytes)
    lines = [b"pid,lat,lon"] + [b"P%d,%s" % (i, b"x" * int(rng.integers(0, 40))) for i in range(300)]
    body = b"\n".join(lines[1:]) + (b"\n" if trailing_newline else b"")
    blocks = [bytes(b) for b in _byte_blocks(io.BytesIO(lines[0] + b"\n" + body), block_bytes)]
    assert b"".join(blocks) == body
    # blanks after the last line end are not a line, whatever the block size
    padded = [bytes(b) for b in _byte_blocks(io.BytesIO(lines[0] + b"\n" + body + b"\n \t "), block_bytes)]
    assert b"".join(padded) == body + b"\n"
    assert all(b.endswith(b"\n") for b in blocks[:-1]) and all(blocks)
    if block_bytes == 1 << 20:
        assert len(blocks) == 1
