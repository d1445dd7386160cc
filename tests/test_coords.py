"""Coordinates in any CRS: pyproj transforms, projected formats (EGMS L3), optional static columns."""
import numpy as np
import pandas as pd
import pytest

from insarclust import coords, h5io
from insarclust.demo import generate
from insarclust.errors import InputError
from insarclust.formats import Format, get_format, load_formats
from insarclust.shards import ShardsConfig, build_shards

from conftest import ROOT

FORMATS = load_formats(ROOT / "config" / "formats.yaml")


def test_known_point_in_etrs89_laea():
    # the false origin of EPSG:3035 is 52 N, 10 E: (4321000, 3210000)
    x, y = coords.from_wgs84([52.0], [10.0], "EPSG:3035")
    assert x[0] == pytest.approx(4321000.0, abs=1e-6) and y[0] == pytest.approx(3210000.0, abs=1e-6)
    lat, lon = coords.to_wgs84(x, y, 3035)
    assert lat[0] == pytest.approx(52.0, abs=1e-12) and lon[0] == pytest.approx(10.0, abs=1e-12)


def test_round_trip_within_a_centimetre_across_europe():
    rng = np.random.default_rng(0)
    x = rng.uniform(2.6e6, 6.5e6, 10000)   # Portugal .. Finland, Crete .. Svalbard
    y = rng.uniform(1.4e6, 5.4e6, 10000)
    lat, lon = coords.to_wgs84(x, y, "EPSG:3035")
    xb, yb = coords.from_wgs84(lat, lon, "epsg:3035")
    assert np.max(np.hypot(xb - x, yb - y)) < 0.01


def test_crs_spellings_and_unknown_crs():
    assert coords.normalize_crs(3035) == "EPSG:3035" == coords.normalize_crs(" epsg:3035")
    assert coords.is_projected("EPSG:3035") and not coords.is_projected("EPSG:4326")
    with pytest.raises(InputError, match="unknown coordinate reference system 'EPSG:99999'.*\n  fix:"):
        coords.normalize_crs("EPSG:99999")


def test_cells():
    i, j = coords.cell_index([4321049.9, 4321050.0, -0.1], [3210000.0, 3210099.99, 0.0], 100)
    assert i.tolist() == [43210, 43210, -1] and j.tolist() == [32100, 32100, 0]
    key = coords.cell_key(i, j)
    ib, jb = coords.cell_of_key(key)
    assert ib.tolist() == i.tolist() and jb.tolist() == j.tolist()
    cx, cy = coords.cell_centre(i, j, 100)
    assert cx[0] == 4321050.0 and cy[0] == 3210050.0
    assert coords.cell_names(i[:1], j[:1], 100)[0] == "100mE43210N32100"


def test_los_vector_of_the_two_passes():
    # ascending (heading ~ -12 deg) looks east: the satellite is west of the ground point
    e, n, u = coords.los_vector(np.array([40.0, 40.0]), np.array([-12.0, 192.0]))
    assert e[0] < -0.6 and e[1] > 0.6
    assert np.allclose(e ** 2 + n ** 2 + u ** 2, 1.0) and np.allclose(u, np.cos(np.deg2rad(40)))
    assert abs(n[0]) < 0.2 and abs(n[1]) < 0.2


def test_format_needs_one_kind_of_position():
    base = {"id": "pid", "static": [], "date_pattern": r"^(\d{8})$", "displacement_unit": "mm"}
    with pytest.raises(InputError, match="either lat and lon, or x, y and crs"):
        Format.from_dict("bad", base)
    with pytest.raises(InputError, match="either lat and lon"):
        Format.from_dict("bad", {**base, "lat": "a", "lon": "b", "x": "e", "y": "n", "crs": "EPSG:3035"})
    fmt = Format.from_dict("ok", {**base, "x": "e", "y": "n", "crs": 3035})
    assert fmt.projected and fmt.position_columns == ("n", "e") and fmt.crs == "3035"


@pytest.fixture(scope="module")
def l3_table():
    return generate("l3-site", "mainland", get_format("egms-l3", FORMATS), n_points=1200, years=2.0, seed=5)


def test_egms_l3_reads_as_downloaded(tmp_path, l3_table):
    table, truth = l3_table
    assert list(table.columns[:11]) == ["pid", "easting", "northing", "height", "mean_velocity",
                                        "mean_velocity_std", "acceleration", "acceleration_std",
                                        "seasonality", "seasonality_std", "rmse"]
    csv = tmp_path / "EGMS_L3_E44N52_100km_U.csv"
    table.to_csv(csv, index=False)
    out = tmp_path / "shards.h5"
    build_shards([csv], get_format("egms-l3", FORMATS), out, "l3", ShardsConfig(shard_size=500))
    s = h5io.Shards(out)
    assert s.crs == "EPSG:3035" and s.n_points == 1200
    assert s.static_names == ["height", "mean_velocity", "mean_velocity_std", "acceleration",
                              "acceleration_std", "seasonality", "seasonality_std", "rmse"]
    x, y, crs = s.xy()
    by_pid = table.set_index("pid").loc[s.pids()]
    # the original coordinates are kept exactly, in shard order
    np.testing.assert_array_equal(x, by_pid["easting"].to_numpy())
    np.testing.assert_array_equal(y, by_pid["northing"].to_numpy())
    # WGS84 positions go back to the same easting/northing within 1 cm
    lat, lon = s.coords()
    assert np.all((lat > 69) & (lat < 70.2)) and np.all((lon > 19.5) & (lon < 21))
    xb, yb = coords.from_wgs84(lat, lon, crs)
    assert np.max(np.hypot(xb - x, yb - y)) < 0.01


def test_missing_optional_column_is_skipped_missing_required_is_an_error(tmp_path, l3_table, caplog):
    table, _ = l3_table
    fmt = get_format("egms-l3", FORMATS)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    table.iloc[:600].drop(columns=["seasonality", "rmse"]).to_csv(a, index=False)
    table.iloc[600:].drop(columns=["rmse"]).to_csv(b, index=False)
    out = tmp_path / "s.h5"
    with caplog.at_level("INFO", logger="insarclust.shards"):
        build_shards([a, b], fmt, out, "l3")
    line = next(r.getMessage() for r in caplog.records if "optional static columns" in r.getMessage())
    assert "geometry columns read: none" in line and line.endswith("skipped: seasonality, rmse"), line
    # seasonality is in one file only, rmse in none: both skipped, the rest kept
    assert h5io.Shards(out).static_names == ["height", "mean_velocity", "mean_velocity_std", "acceleration",
                                             "acceleration_std", "seasonality_std"]
    table.drop(columns=["northing"]).to_csv(a, index=False)
    with pytest.raises(InputError, match="missing required column.*'northing'.*egms-l3"):
        build_shards([a], fmt, tmp_path / "t.h5", "l3")
    assert not (tmp_path / "t.h5").exists()


def test_unprojectable_coordinates_name_the_row(tmp_path, l3_table):
    table, _ = l3_table
    bad = table.copy()
    bad.loc[7, "easting"] = np.nan
    path = tmp_path / "a.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"row 8, column 'easting, northing'.*not a valid position in EPSG:3035"):
        build_shards([path], get_format("egms-l3", FORMATS), tmp_path / "s.h5", "l3")


def test_egms_l2b_static_columns_usable_without_edits(tmp_path):
    fmt = get_format("egms", FORMATS)
    table, _ = generate("l2b", "mainland", fmt, n_points=300, years=1.5, seed=1)
    table.insert(1, "mp_type", "PS")   # text columns of the product are not read
    path = tmp_path / "EGMS_L2b_088_0286_IW2_VV.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "s.h5"
    build_shards([path], fmt, out, "l2b")
    s = h5io.Shards(out)
    assert {"los_east", "los_north", "los_up", "mean_velocity_std"} <= set(s.static_names)
    assert s.attrs["geometry_columns"] == ["incidence_angle", "track_angle", "los_east", "los_north", "los_up"]  # kept, not features
    static = pd.DataFrame(s.read("points/static"), columns=s.static_names)
    norm = np.sqrt(static.los_east ** 2 + static.los_north ** 2 + static.los_up ** 2)
    assert np.allclose(norm, 1.0, atol=1e-3)
    assert s.crs is None
