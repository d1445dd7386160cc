"""Bad input stops with a message naming file, row/column and the fix; nothing is left behind."""
import zipfile

import numpy as np
import pytest

from insarclust.demo import generate
from insarclust.errors import InputError
from insarclust.formats import get_format, load_formats
from insarclust.shards import ShardsConfig, build_shards

from conftest import ROOT

FORMATS = load_formats(ROOT / "config" / "formats.yaml")
NGU = get_format("ngu", FORMATS)


@pytest.fixture(scope="module")
def table():
    return generate("bad", "mainland", NGU, n_points=120, years=1.5, seed=5)[0]


def _run(tmp_path, files, cfg=None):
    out = tmp_path / "out" / "shards.h5"
    try:
        build_shards(files, NGU, out, "bad", cfg or ShardsConfig())
    finally:
        # nothing may be left behind: no output, no temporary file or run directory
        leftovers = list((tmp_path / "out").glob("*")) + list((tmp_path / "out").glob(".*"))
        assert leftovers == [], leftovers


def _fails(tmp_path, files, *fragments, cfg=None):
    with pytest.raises(InputError) as err:
        _run(tmp_path, files, cfg)
    text = str(err.value)
    for frag in fragments:
        assert frag in text, text
    assert "fix:" in text
    return err.value


def test_missing_required_column(tmp_path, table):
    p = tmp_path / "a.csv"
    table.drop(columns=["latitude"]).to_csv(p, index=False)
    e = _fails(tmp_path, [p], str(p), "'latitude'", "formats.yaml")
    assert e.column == "latitude" and e.row == 0


def test_unparsable_number(tmp_path, table):
    t = table.copy()
    col = [c for c in t.columns if c.isdigit()][4]
    t[col] = t[col].astype(object)
    t.loc[t.index[37], col] = "1,5"
    p = tmp_path / "a.csv"
    t.to_csv(p, index=False)
    e = _fails(tmp_path, [p], str(p), "row 38", col, "'1,5'")
    assert e.row == 38 and e.column == col


def test_duplicate_ids_across_files(tmp_path, table):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    table.iloc[:80].to_csv(a, index=False)
    table.iloc[60:].to_csv(b, index=False)
    pid = table.pid.iloc[60]
    e = _fails(tmp_path, [a, b], pid, str(a), "row 61", str(b), "keep-first", "one site per component")
    assert e.row == 1 and e.file == str(b)


def test_duplicate_ids_within_a_file(tmp_path, table):
    t = table.copy()
    t.loc[t.index[9], "pid"] = t.pid.iloc[2]
    p = tmp_path / "a.csv"
    t.to_csv(p, index=False)
    e = _fails(tmp_path, [p], t.pid.iloc[2], "row 3", "row 10")
    assert e.row == 10 and "component" not in e.fix   # one file: no other component to blame


@pytest.mark.parametrize("col,value", [("latitude", 91.5), ("longitude", -200.0), ("latitude", np.nan)])
def test_coordinates_out_of_range(tmp_path, table, col, value):
    t = table.copy()
    t.loc[t.index[17], col] = value
    p = tmp_path / "a.csv"
    t.to_csv(p, index=False)
    e = _fails(tmp_path, [p], str(p), "row 18", col, "degrees")
    assert e.row == 18 and e.column == col


def test_longitudes_counted_0_to_360(tmp_path, table):
    """A Pacific site exported with longitudes 0-360 east (Kamchatka at 160-200) stopped with
    'outside [-180, 180] degrees' and the fix to check the format's lat/lon columns, which were
    the right columns; the message says the convention and how to convert it."""
    t = table.copy()
    t["longitude"] = t["longitude"] + 160.0          # 180.05 .. 180.4 east, counted 0-360
    p = tmp_path / "a.csv"
    t.to_csv(p, index=False)
    e = _fails(tmp_path, [p], str(p), "row 1", "longitude", "counted 0-360 east",
               "subtract 360 from values above 180")
    assert e.row == 1 and e.column == "longitude"


def test_no_date_columns(tmp_path, table):
    p = tmp_path / "a.csv"
    table[["pid", "latitude", "longitude", *NGU.static]].to_csv(p, index=False)
    _fails(tmp_path, [p], str(p), "no date columns", "date_pattern")


def test_empty_file(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"")
    _fails(tmp_path, [p], str(p), "empty")


def test_header_only(tmp_path, table):
    p = tmp_path / "a.csv"
    table.iloc[:0].to_csv(p, index=False)
    _fails(tmp_path, [p], str(p), "no data rows")


def test_unknown_format():
    with pytest.raises(InputError, match="(?s)unknown format 'egms2'.*fix:.*egms, egms-l3, ngu, svalbard"):
        get_format("egms2", FORMATS)


def test_unreadable_zip(tmp_path, table):
    p = tmp_path / "a.zip"
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.csv", table.to_csv(index=False))
    p.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # truncated download
    good.unlink()
    _fails(tmp_path, [p], str(p), "zip", "re-download")


def test_all_nan_series(tmp_path, table):
    t = table.copy()
    t.loc[t.index[25], [c for c in t.columns if c.isdigit()]] = np.nan
    p = tmp_path / "a.csv"
    t.to_csv(p, index=False)
    e = _fails(tmp_path, [p], str(p), "row 26", t.pid.iloc[25], "all_nan: drop")
    assert e.row == 26


def test_ragged_line(tmp_path, table):
    p = tmp_path / "a.csv"
    text = table.to_csv(index=False).splitlines()
    text[5] = text[5] + ",1.0,2.0"
    p.write_text("\n".join(text) + "\n")
    _fails(tmp_path, [p], str(p), "row 5", "fields")


def test_blank_point_id(tmp_path, table):
    t = table.copy()
    id_col = NGU.id
    t[id_col] = t[id_col].astype(object)
    t.loc[t.index[52], id_col] = "   "
    p = tmp_path / "a.csv"
    t.to_csv(p, index=False)
    e = _fails(tmp_path, [p], str(p), "empty point id", "row 53")
    assert e.row == 53 and e.column == id_col
