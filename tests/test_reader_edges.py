"""CSV edge cases that used to be read silently wrong or stop with an unhelpful message.

Each case is a few lines of text through ``build_shards``: the file either
builds and reads back exactly what it says, or stops with an InputError that
names the row and column.
"""
from __future__ import annotations

import csv as pycsv
import dataclasses
import gzip
import re
import zipfile

import numpy as np
import pandas as pd
import pytest

from insarclust import h5io
from insarclust.errors import InputError
from insarclust.formats import get_format, load_formats
from insarclust.shards import ShardsConfig, build_shards

from conftest import ROOT

FORMATS = load_formats(ROOT / "config" / "formats.yaml")
NGU = get_format("ngu", FORMATS)
STATIC = "height,mean_velocity,temporal_coherence,amplitude_dispersion,incidence_angle,track_angle"
DATES = ["20200101", "20200113", "20200125", "20200206"]
HEADER = f"pid,latitude,longitude,{STATIC}," + ",".join(DATES)


def row(i: int, d: str = "1.25", height: str = "100") -> str:
    """Data row of point P{i}: displacements i.5, d, -2.5, 3.75 mm."""
    return f"P{i},69.0{i},20.0{i},{height},1.5,0.9,0.2,35,190,{i}.5,{d},-2.5,3.75"


def write(path, lines, newline="\n", encoding="utf-8"):
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def build(tmp_path, path, cfg=None, fmt=NGU):
    out = tmp_path / (path.name + ".h5")
    build_shards([path], fmt, out, "s", cfg or ShardsConfig())
    return h5io.Shards(out)


def stops(tmp_path, path, *needles, cfg=None, fmt=NGU):
    with pytest.raises(InputError) as err:
        build(tmp_path, path, cfg, fmt)
    text = str(err.value)
    for needle in needles:
        assert needle in text, (needle, text)
    assert not list(tmp_path.glob("*.h5")), "no partial output"
    return text


def by_pid(shards):
    """pid -> displacement row (mm, in date order)."""
    disp = shards.read("series/displacement")
    return dict(zip(shards.read("points/pid").tolist(), disp))


# --------------------------------------------------------------------------- #
# silently wrong before


@pytest.mark.parametrize("block_mb", [64, 0.0003])
def test_a_stray_quote_that_joins_lines_stops_whatever_the_block_size(tmp_path, block_mb):
    lines = [HEADER + ",comment"] + [row(i) + ",x" for i in range(6)]
    lines[2] = row(1) + ',"pipe, 5 in'      # opens a quote that the next lines never close properly
    lines[5] = row(4) + ',"y"'
    path = write(tmp_path / "a.csv", lines)
    stops(tmp_path, path, "row 2", "'comment'", "runs over lines 3-", "stray", cfg=ShardsConfig(read_block_mb=block_mb))


def test_a_line_break_inside_quotes_stops_with_its_row(tmp_path):
    lines = [HEADER + ",comment"] + [row(i) + ",x" for i in range(40)]
    lines[31] = row(30) + ',"line one'
    lines.insert(32, 'line two"')
    path = write(tmp_path / "a.csv", lines)
    for block_mb in (64, 0.0003):
        stops(tmp_path, path, "row 31", "'comment'", "lines 32-33", cfg=ShardsConfig(read_block_mb=block_mb))



def test_a_quote_that_never_closes_stops_with_its_row(tmp_path):
    # the "value" runs to the end of the file, past the csv module's field size limit
    lines = [HEADER + ",comment"] + [row(i) + ",x" for i in range(3000)]
    lines[2] = row(1) + ',"pipe, 5 in'
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 2", "never closes", "stray quote")

@pytest.mark.parametrize("spelling", ["25.01.2020", "25/01/2020", "01-25-2020", "2020 01 25", "200125",
                                      "25Jan2020", "Jan 25, 2020", "202001255"])
def test_date_headers_in_other_spellings_are_not_dropped(tmp_path, spelling):
    header = HEADER.replace("20200125", spelling) if "," not in spelling else \
        HEADER.replace("20200125", f'"{spelling}"')
    path = write(tmp_path / "a.csv", [header] + [row(i) for i in range(3)])
    stops(tmp_path, path, "row 0", "look like dates", "date_pattern")


def test_a_date_column_repeated_and_renamed_by_pandas_is_named(tmp_path):
    # pandas.read_csv turns a second '20200113' into '20200113.1'; to_csv writes that name
    header = HEADER + ",20200113.1"
    path = write(tmp_path / "a.csv", [header] + [row(i) + ",7" for i in range(3)])
    stops(tmp_path, path, "row 0", "'20200113.1' repeats the date column '20200113'", "keep one")
    # also where unmatched date-like columns are left out on purpose: one of the two would be kept silently
    warn = dataclasses.replace(NGU, unmatched_dates="warn")
    stops(tmp_path, path, "'20200113.1' repeats", fmt=warn)


def test_only_a_numbered_copy_of_a_date_column_is_taken_for_a_repeat(tmp_path):
    """'20200113.std' is a date-like column of another kind: left out with a warning where the
    format says so, not called a repeat; a dotted date pattern finds the repeat of its own name."""
    path = write(tmp_path / "a.csv", [HEADER + ",20200113.std"] + [row(i) + ",7" for i in range(3)])
    got = build(tmp_path, path, fmt=dataclasses.replace(NGU, unmatched_dates="warn"))
    assert len(got.read("series/dates")) == len(DATES)
    assert by_pid(got)["P1"].tolist() == [1.5, 1.25, -2.5, 3.75]
    dotted = dataclasses.replace(NGU, date_pattern=r"^disp\.(\d{8})$", unmatched_dates="warn")
    header = HEADER.replace(",2020", ",disp.2020") + ",disp.20200113.1"
    other = tmp_path / "dotted"
    other.mkdir()
    stops(other, write(other / "b.csv", [header] + [row(i) + ",7" for i in range(3)]),
          "'disp.20200113.1' repeats the date column 'disp.20200113'", fmt=dotted)


def test_dates_written_as_numbers_are_not_called_repeats(tmp_path):
    """Date headers written as floats ('20200113.0', column labels that went through a float)
    were called repeats of columns the file does not have, with the fix 'keep one of the two
    columns': they are date-like columns in another form."""
    header = HEADER.replace(",".join(DATES), ",".join(d + ".0" for d in DATES))
    text = stops(tmp_path, write(tmp_path / "a.csv", [header] + [row(i) for i in range(3)]),
                 "row 0", "column '20200101.0'", "4 column(s) look like dates", "rename them")
    assert "repeats" not in text


def test_a_date_outside_the_satellite_era_stops(tmp_path):
    path = write(tmp_path / "a.csv", [HEADER.replace("20200101", "30000101")] + [row(i) for i in range(3)])
    stops(tmp_path, path, "'30000101'", "year 3000", "1978-2100")


def test_keep_first_keeps_the_first_row_that_has_data(tmp_path):
    empty_p0 = "P0,69.0,20.0,100,1.5,0.9,0.2,35,190,,,,"
    later_p0 = "P0,69.5,20.5,100,1.5,0.9,0.2,35,190,1,2,3,4"
    path = write(tmp_path / "a.csv", [HEADER, empty_p0, row(1), row(2), later_p0])
    shards = build(tmp_path, path, ShardsConfig(duplicates="keep-first", all_nan="drop"))
    got = by_pid(shards)
    assert sorted(got) == ["P0", "P1", "P2"]
    np.testing.assert_array_equal(got["P0"], [1, 2, 3, 4])
    # two rows with the same data: the first is kept
    path = write(tmp_path / "b.csv", [HEADER, later_p0, row(1), row(2), later_p0])
    got = by_pid(build(tmp_path, path, ShardsConfig(duplicates="keep-first", all_nan="drop")))
    np.testing.assert_array_equal(got["P0"], [1, 2, 3, 4])


def test_a_repeat_with_other_values_stops_also_with_keep_first(tmp_path):
    """The same ids at the same positions and dates with other values are not repeats of one
    record: EGMS L3 vertical and east-west files under one glob share their point ids, and
    keep-first kept the file sorted first (east-west, 'E' < 'U') as the site's whole vertical
    motion. Both modes stop; identical repeats are still dropped."""
    up = write(tmp_path / "EGMS_L3_U.csv", [HEADER] + [row(i) for i in range(3)])
    east = write(tmp_path / "EGMS_L3_E.csv", [HEADER] + [row(i, d="7") for i in range(3)])
    for duplicates in ("error", "keep-first"):
        with pytest.raises(InputError) as err:
            build_shards([east, up], NGU, tmp_path / "out.h5", "s", ShardsConfig(duplicates=duplicates))
        for needle in ("EGMS_L3_U.csv, row 1", "'P0'", "EGMS_L3_E.csv row 1", "one site per component"):
            assert needle in str(err.value), (needle, str(err.value))
        assert not list(tmp_path.glob("*.h5"))
    assert "other values at the dates it holds" in str(err.value)
    build_shards([up, up], NGU, tmp_path / "out.h5", "s", ShardsConfig(duplicates="keep-first"))
    assert sorted(by_pid(h5io.Shards(tmp_path / "out.h5"))) == ["P0", "P1", "P2"]
    # a repeat holding fewer dates than its first row, with another value at one of them
    fewer = write(tmp_path / "fewer.csv", [HEADER, row(0), row(1), row(2), "P0,69.00,20.00,100,1.5,0.9,0.2,35,190,9,,-2.5,"])
    with pytest.raises(InputError, match="'P0' is repeated with other values at the dates it holds"):
        build_shards([fewer], NGU, tmp_path / "out.h5", "s", ShardsConfig(duplicates="keep-first"))
    same = write(tmp_path / "same.csv", [HEADER, row(0), row(1), row(2), "P0,69.00,20.00,100,1.5,0.9,0.2,35,190,0.5,,-2.5,"])
    build_shards([same], NGU, tmp_path / "out.h5", "s", ShardsConfig(duplicates="keep-first"))
    np.testing.assert_array_equal(by_pid(h5io.Shards(tmp_path / "out.h5"))["P0"], [0.5, 1.25, -2.5, 3.75])


@pytest.mark.parametrize("first,repeat", [("0.0", "-0.0"), ("-0", "0"), ("0", "-0.00")])
@pytest.mark.parametrize("fewer", [False, True])
def test_keep_first_takes_minus_zero_for_zero(tmp_path, first, repeat, fewer):
    """-0.0 and 0.0 are one value: the hash of the repeats' values compared their bits, and a
    record repeated with '-0.0' for '0.0' stopped as 'repeated with other values' (also where the
    repeat holds fewer dates, compared in the second pass)."""
    head = "P9,69.09,20.09,100,1.5,0.9,0.2,35,190,0.5,"
    lines = [HEADER, row(0), row(1), head + f"1.25,-2.5,{first}",
             head + ("," if fewer else "1.25,") + f"-2.5,{repeat}"]
    got = by_pid(build(tmp_path, write(tmp_path / "a.csv", lines), ShardsConfig(duplicates="keep-first")))
    assert sorted(got) == ["P0", "P1", "P9"]
    np.testing.assert_array_equal(got["P9"], [0.5, 1.25, -2.5, 0.0])
    # another value still stops
    lines[-1] = head + ("," if fewer else "1.25,") + "-2.5,0.001"
    (tmp_path / "b").mkdir()
    stops(tmp_path / "b", write(tmp_path / "b" / "b.csv", lines), "'P9' is repeated with other values",
          cfg=ShardsConfig(duplicates="keep-first"))


@pytest.mark.parametrize("duplicates", ["error", "keep-first"])
def test_points_repeated_in_files_split_by_date_stop(tmp_path, duplicates):
    """Two parts of one export holding other dates of the same points: keep-first would drop
    the second part's epochs, so both modes stop and say the parts must be joined."""
    early = write(tmp_path / "early.csv", [HEADER] + [row(i) for i in range(3)])
    late_header = HEADER.replace(",".join(DATES), "20200218,20200301,20200313,20200325")
    late = write(tmp_path / "late.csv", [late_header] + [row(i) for i in range(3)])
    with pytest.raises(InputError) as err:
        build_shards([early, late], NGU, tmp_path / "out.h5", "s", ShardsConfig(duplicates=duplicates))
    for needle in ("late.csv, row 1", "'P0'", "early.csv row 1", "split by date", "join the parts"):
        assert needle in str(err.value), (needle, str(err.value))
    assert not list(tmp_path.glob("*.h5"))


def test_keep_first_still_drops_repeats_whose_dates_the_first_file_has(tmp_path):
    a = write(tmp_path / "a.csv", [HEADER] + [row(i) for i in range(3)])
    fewer = HEADER.replace("," + DATES[-1], "")
    b = write(tmp_path / "b.csv", [fewer] + [row(i).rsplit(",", 1)[0] for i in range(2, 5)])
    build_shards([a, b], NGU, tmp_path / "out.h5", "s", ShardsConfig(duplicates="keep-first"))
    got = by_pid(h5io.Shards(tmp_path / "out.h5"))
    assert sorted(got) == ["P0", "P1", "P2", "P3", "P4"]
    np.testing.assert_array_equal(got["P2"], [2.5, 1.25, -2.5, 3.75])
    np.testing.assert_array_equal(got["P4"], [4.5, 1.25, -2.5, np.nan])


@pytest.mark.parametrize("value", ["inf", "-inf", "1e39"])
def test_a_static_value_that_is_not_finite_stops(tmp_path, value):
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1, height=value), row(2)])
    stops(tmp_path, path, "row 2", "'height'", "'P1'", "not a finite")


@pytest.mark.parametrize("bound", [1e39, float("inf")])
def test_a_huge_bound_still_stops_inf(tmp_path, bound):
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1, d="inf"), row(2)])
    stops(tmp_path, path, "row 2", "'20200113'", "not a finite", cfg=ShardsConfig(max_abs_mm=bound))


def test_an_id_with_a_nul_character_stops(tmp_path):
    path = write(tmp_path / "a.csv", [HEADER, row(1), row(1).replace("P1", "P1\x00", 1), row(2)])
    stops(tmp_path, path, "row 2", "'pid'", "NUL")


def test_a_byte_order_mark_inside_the_data_stops(tmp_path):
    """A file saved with a byte-order mark (Excel's 'CSV UTF-8') joined below another without its
    header: the first id of its part was stored as '\ufeffP3', invisibly unlike 'P3'."""
    lines = [HEADER, row(0), row(1), row(2), "\ufeff" + row(3), row(4)]
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 4", "'pid'", "'\\ufeffP3'", "byte-order mark",
          "joined", "sed")


# --------------------------------------------------------------------------- #
# read as written, or stopped with row and column


def test_quoted_missing_cells_read_as_missing(tmp_path):
    frame = pd.read_csv(write(tmp_path / "plain.csv", [HEADER, row(0), row(1, d=""), row(2, d="NaN")]),
                        dtype={"pid": str})
    quoted = tmp_path / "quoted.csv"
    frame.to_csv(quoted, index=False, quoting=pycsv.QUOTE_ALL)   # "" and "" around every value
    assert '""' in quoted.read_text()
    got = by_pid(build(tmp_path, quoted))
    want = by_pid(build(tmp_path, tmp_path / "plain.csv"))
    assert sorted(got) == sorted(want) == ["P0", "P1", "P2"]
    for pid in want:
        np.testing.assert_array_equal(got[pid], want[pid])
    assert np.isnan(got["P1"][1]) and np.isnan(got["P2"][1])


def test_a_cell_of_spaces_names_row_and_column(tmp_path):
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1, d=" "), row(2)])
    stops(tmp_path, path, "row 2", "'20200113'", "only spaces")


@pytest.mark.parametrize("value", ["1_000", "\uff11"])   # Python's float() takes both, pyarrow neither
def test_numbers_python_takes_but_the_reader_does_not_are_named(tmp_path, value):
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1), row(2, d=value)])
    stops(tmp_path, path, "row 3", "'20200113'", f"'{value}'")


def test_a_bad_byte_in_an_early_row_is_not_blamed_on_the_header(tmp_path):
    lines = [HEADER, row(0), row(1).replace("P1", "P\xe9", 1), row(2)]
    stops(tmp_path, write(tmp_path / "a.csv", lines, encoding="latin-1"), "row 2", "'pid'", "0xe9", "iconv")


def test_a_blank_line_does_not_take_the_blame(tmp_path):
    path = write(tmp_path / "a.csv", [HEADER, row(0), "", row(1), row(2, d="abc")])
    stops(tmp_path, path, "row 3", "'20200113'", "'abc'")
    shards = build(tmp_path, write(tmp_path / "b.csv", [HEADER, row(0), "", row(1), "\r", row(2)]))
    assert sorted(by_pid(shards)) == ["P0", "P1", "P2"]



@pytest.mark.parametrize("tail, where", [(b"\x00" * 4096, ""), (b"\x00" * 40, "mid")], ids=["end", "mid"])
def test_nul_bytes_of_an_interrupted_copy_are_named(tmp_path, tail, where):
    """A download or copy cut short can leave the file's space unwritten (NUL bytes), at its end
    or inside it: 'expected 13 fields, found 1' and 'a missing or extra delimiter' told nothing."""
    data = ("\n".join([HEADER] + [row(i) for i in range(6)]) + "\n").encode()
    cut = len(data) - 2 * len(row(5)) if where else len(data)
    path = tmp_path / "a.csv"
    path.write_bytes(data[:cut] + tail + data[cut + len(tail):])
    stops(tmp_path, path, "row 5" if where else "row 7", "NUL byte(s)", "interrupted download or copy",
          "download or copy the file again")


@pytest.mark.parametrize("line", ["   ", "\x1a", "\t\x0c"])
def test_a_line_of_blanks_or_control_characters_is_named(tmp_path, line):
    """A DOS end-of-file mark (Ctrl-Z) or a line of spaces below the data."""
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1), line])
    stops(tmp_path, path, "row 3", "only blank or control characters", repr(line), "delete the line")


def test_a_lone_carriage_return_ends_a_line_as_for_the_parser(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(f"{HEADER}\n{row(0)}\n{row(1)}\r{row(2)}\r\n{row(3)}\n".encode())
    got = by_pid(build(tmp_path, path))
    assert sorted(got) == ["P0", "P1", "P2", "P3"]
    np.testing.assert_array_equal(got["P2"], [2.5, 1.25, -2.5, 3.75])

def test_compressed_files_are_known_by_content_not_name(tmp_path):
    text = "\n".join([HEADER] + [row(i) for i in range(4)]) + "\n"
    plain = tmp_path / "plain.csv"
    plain.write_text(text)
    with gzip.open(tmp_path / "upper.GZ", "wt") as fh:
        fh.write(text)
    with gzip.open(tmp_path / "gzip-named.csv", "wt") as fh:
        fh.write(text)
    with zipfile.ZipFile(tmp_path / "upper.ZIP", "w") as zf:
        zf.writestr("member.csv", text)
    want = by_pid(build(tmp_path, plain))
    for name in ("upper.GZ", "gzip-named.csv", "upper.ZIP"):
        got = by_pid(build(tmp_path, tmp_path / name))
        assert got.keys() == want.keys()
        for pid in want:
            np.testing.assert_array_equal(got[pid], want[pid])


def test_carriage_return_only_line_ends_are_named(tmp_path):
    path = write(tmp_path / "a.csv", [HEADER] + [row(i) for i in range(3)], newline="\r")
    stops(tmp_path, path, "row 0", "carriage return only", "tr ")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "cp500", "base64"])
def test_encodings_the_block_reader_cannot_split_are_refused(encoding):
    with pytest.raises(InputError, match=r"(?s)key 'encoding'.*single ASCII bytes.*iconv"):
        get_format("ngu", {"ngu": {**FORMATS["ngu"], "encoding": encoding}})
    assert get_format("ngu", {"ngu": {**FORMATS["ngu"], "encoding": "utf-8-sig"}}).encoding == "utf-8-sig"


# --------------------------------------------------------------------------- #
# projected positions, sources, empty sites

L3 = get_format("egms-l3", FORMATS)
L3_HEADER = "pid,easting,northing,height,mean_velocity," + ",".join(DATES)


def l3_rows(lat, lon, crs="EPSG:3035"):
    """EGMS L3 rows of points at ``lat, lon`` written in ``crs`` metres (or degrees: crs None)."""
    from insarclust.coords import from_wgs84

    x, y = (np.asarray(lon), np.asarray(lat)) if crs is None else from_wgs84(lat, lon, crs)
    return [f"C{i},{float(a)!r},{float(b)!r},100,1.5,0.5,1.25,-2.5,3.75" for i, (a, b) in enumerate(zip(x, y))]


OSLO = (59.9 + 0.001 * np.arange(5), 10.7 + 0.001 * np.arange(5))


def test_projected_positions_in_their_crs_read_exactly(tmp_path):
    shards = build(tmp_path, write(tmp_path / "a.csv", [L3_HEADER] + l3_rows(*OSLO)), fmt=L3)
    lat = dict(zip(shards.read("points/pid").tolist(), shards.read("points/lat")))
    np.testing.assert_allclose([lat[f"C{i}"] for i in range(5)], OSLO[0], atol=1e-9)


@pytest.mark.parametrize("written_in, needle", [
    (None, "look like degrees"),              # lon/lat degrees in the easting/northing columns
    ("EPSG:32633", "far outside the CRS's area of use"),   # UTM 33N metres read as EPSG:3035
])
def test_projected_positions_of_another_crs_stop(tmp_path, written_in, needle):
    path = write(tmp_path / "a.csv", [L3_HEADER] + l3_rows(*OSLO, crs=written_in))
    stops(tmp_path, path, "row 1", "'easting, northing'", needle, "crs of format 'egms-l3'", fmt=L3)


def test_a_source_glob_that_takes_a_folder_stops(tmp_path):
    from insarclust.readers import expand_inputs

    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match=r"(?s)sub: is a folder.*\*\.csv"):
        expand_inputs([write(tmp_path / "a.csv", [HEADER, row(0)]), tmp_path / "sub"])


def test_a_site_whose_rows_are_all_dropped_names_its_files(tmp_path):
    path = write(tmp_path / "a.csv", [HEADER] + [f"P{i},69.0,20.0,100,1.5,0.9,0.2,35,190,,,," for i in range(3)])
    stops(tmp_path, path, str(path), "all 3 rows have no displacement", cfg=ShardsConfig(all_nan="drop"))


@pytest.mark.parametrize("value", ["-9999", "-9999.0", "9999"])
def test_a_no_data_code_in_a_date_column_stops(tmp_path, value):
    """-9999 is inside the plausibility bound: read as a number it is a 10 m motion."""
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1, d=value), row(2)])
    stops(tmp_path, path, "row 2", "'20200113'", "'P1'", "no-data code", "na_values")


@pytest.mark.parametrize("value", ["-9999", "-99999", "-32768", "-32767", "1.70141e+38", "1e30", "-1e+30"])
def test_a_no_data_code_in_a_static_column_stops(tmp_path, value):
    """-32768 (16-bit DEMs), Surfer's 1.70141e+38 and 1e30 fills were stored as heights."""
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1), row(2, height=value)])
    stops(tmp_path, path, "row 3", "'height'", "'P2'", "no-data code")


def test_the_docs_name_every_no_data_code_of_a_static_column():
    """The formats' na_values comment and the README list the codes that stop the stage."""
    from insarclust.block_checks import NODATA_STATIC

    comment = " ".join(line.lstrip("# ") for line in (ROOT / "config/formats.yaml").read_text().splitlines()
                       if line.startswith("#"))
    readme = (ROOT / "README.md").read_text()
    for code in NODATA_STATIC:
        assert f"{code:g}" in comment and f"{code:g}" in readme, code


@pytest.mark.parametrize("value", ["-999", "-999.0", "-999.00"])
def test_a_lone_minus_999_in_a_static_column_is_a_no_data_code(tmp_path, value):
    """No height lies 999 m below sea level: kept, it was a height of -999 m, and standardising
    the column squeezed every other point's height towards 0."""
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1), row(2, height=value)])
    stops(tmp_path, path, "row 3", "'height'", "'P2'", "no-data code", "'-999'", "na_values")


def test_minus_999_among_values_of_its_size_is_kept(tmp_path):
    """A fast landslide: -999 beside other values beyond -500 in its column is a reading; so are
    -999.5 and -998 (no code)."""
    path = write(tmp_path / "a.csv", [HEADER, row(0, height="-999"), row(1, height="-612.5"),
                                      row(2, height="-999.5"), row(3, height="-998")])
    stored = build(tmp_path, path)
    assert stored.n_points == 4
    heights = dict(zip(stored.read("points/pid").tolist(), stored.read("points/static")[:, 0].tolist()))
    assert heights == {"P0": -999.0, "P1": -612.5, "P2": -999.5, "P3": -998.0}


def test_minus_999_beside_a_value_of_exactly_half_its_size_is_kept(tmp_path):
    """-999 is a code only where no other value comes within half of it; -499.5 is exactly
    half, so it reaches that far and -999 is a reading, in a static column and among the
    displacements alike. (Catches `<` for `<=`, which stopped these files as no-data codes.)"""
    path = write(tmp_path / "a.csv", [HEADER, row(0, height="-999"), row(1, height="-499.5"), row(2)])
    stored = build(tmp_path, path)
    heights = dict(zip(stored.read("points/pid").tolist(), stored.read("points/static")[:, 0].tolist()))
    assert heights == {"P0": -999.0, "P1": -499.5, "P2": 100.0}
    path = write(tmp_path / "b.csv", [HEADER, row(0), row(1, d="-999"), row(2, d="-499.5")])
    series = by_pid(build(tmp_path, path))
    assert series["P1"][1] == -999.0 and series["P2"][1] == -499.5

@pytest.mark.parametrize("value", ["-999", "-999.0"])
def test_a_lone_minus_999_in_a_date_column_is_a_no_data_code(tmp_path, value):
    """Read as a number it was a 1 m drop and back within one acquisition; in centimetres
    (-9,990 mm) it is inside the +-10 m bound too."""
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1, d=value), row(2)])
    stops(tmp_path, path, "row 2", "'20200113'", "'P1'", "no-data code", "na_values")
    fmt = get_format("ngu", {"ngu": {**FORMATS["ngu"], "displacement_unit": "cm"}})
    path = write(tmp_path / "b.csv", [HEADER, row(0, d="0.12"), row(1, d=value), row(2, d="-0.3")])
    stops(tmp_path, path, "row 2", "'20200113'", "'P1'", "no-data code", fmt=fmt)


def test_a_landslide_series_through_minus_999_is_kept(tmp_path):
    """A point that reached -999 mm passed -500 on its way: its series is read as written."""
    slide = "P9,69.09,20.09,100,-250,0.9,0.2,35,190,-620.5,-999,-1104.25,-1250"
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1), slide])
    assert by_pid(build(tmp_path, path))["P9"].tolist() == [-620.5, -999.0, -1104.25, -1250.0]


def test_large_but_real_static_values_are_kept(tmp_path):
    """Radar line/pixel numbers and heights are large, but nowhere near a fill value."""
    path = write(tmp_path / "a.csv", [HEADER, row(0, height="32768"), row(1, height="9999"),
                                      row(2, height="-420")])
    assert build(tmp_path, path).n_points == 3


@pytest.mark.parametrize("value", ["-3.4028235e+38", "-3.40282346639e+38", "-3.40282e+38", "3.4028235e+38"])
def test_the_float32_extreme_of_gis_tools_is_a_no_data_code(tmp_path, value):
    """GDAL's and ArcGIS's no-data value of float rasters (a height sampled from a DEM) is finite:
    in a static column it was kept as a height of -3.4e38; as a displacement it passed with
    shards.max_abs_mm: null."""
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1), row(2, height=value)])
    stops(tmp_path, path, "row 3", "'height'", "'P2'", "no-data code", "float32 extreme")
    path = write(tmp_path / "b.csv", [HEADER, row(0), row(1, d=value), row(2)])
    stops(tmp_path, path, "row 2", "'20200113'", "'P1'", "no-data code", cfg=ShardsConfig(max_abs_mm=None))


def test_a_no_data_code_declared_in_na_values_is_missing(tmp_path):
    fmt = get_format("ngu", {"ngu": {**FORMATS["ngu"], "na_values": ["", "NaN", "-9999"]}})
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1, d="-9999", height="-9999"), row(2)])
    shards = build(tmp_path, path, fmt=fmt)
    got = by_pid(shards)
    np.testing.assert_array_equal(got["P1"], [1.5, np.nan, -2.5, 3.75])
    assert np.isnan(shards.read("points/static")[shards.read("points/pid").tolist().index("P1"), 0])


def test_a_no_data_code_in_another_unit_is_found_as_written(tmp_path):
    fmt = get_format("ngu", {"ngu": {**FORMATS["ngu"], "displacement_unit": "cm"}})
    path = write(tmp_path / "a.csv", [HEADER, row(0, d="0.5"), row(1, d="-9999"), row(2, d="0.5")])
    stops(tmp_path, path, "row 2", "displacement -9999 ", "no-data code",
          cfg=ShardsConfig(max_abs_mm=None), fmt=fmt)


@pytest.mark.parametrize("what, needle", [("deflate64", "compression method"), ("encrypted", "encrypted")])
def test_a_zip_python_cannot_unpack_is_named(tmp_path, what, needle):
    """Windows Explorer writes large zips with Deflate64, which zipfile cannot read."""
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.csv", "\n".join([HEADER] + [row(i) for i in range(3)]) + "\n")
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    if what == "deflate64":   # compression method 9 in the local and central headers
        data[8:10] = data[central + 10:central + 12] = (9).to_bytes(2, "little")
    else:                     # the encryption flag
        data[6] |= 1
        data[central + 8] |= 1
    path.write_bytes(bytes(data))
    stops(tmp_path, path, "a.zip", needle, "7-Zip")


@pytest.mark.parametrize("pack, needle", [
    (lambda b: __import__("bz2").compress(b), "bzip2-compressed"),
    (lambda b: __import__("lzma").compress(b), "xz-compressed"),
    (lambda b: b.decode().encode("utf-16"), "UTF-16"),
    (lambda b: gzip.compress(b.decode().encode("utf-16")), "UTF-16"),
    (lambda b: gzip.compress(gzip.compress(b)), "compressed twice: unpacked, it is gzip data again"),
    (lambda b: gzip.compress(_zipped(b)), "compressed twice: unpacked, it is a zip archive")],
    ids=["bz2", "xz", "utf16", "utf16-gz", "gz-of-gz", "gz-of-zip"])
def test_other_archives_and_utf16_are_named_not_blamed_on_the_encoding(tmp_path, pack, needle):
    """They used to stop with a latin-1 iconv or a line-end fix, both wrong (a second layer of
    compression, as a download saved with the server's gzip on has, too)."""
    path = tmp_path / "a.csv"
    path.write_bytes(pack(("\n".join([HEADER] + [row(i) for i in range(3)]) + "\n").encode()))
    text = stops(tmp_path, path, "a.csv", needle)
    assert "latin1" not in text and "carriage return" not in text


def _zipped(data: bytes) -> bytes:
    buf = __import__("io").BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.csv", data)
    return buf.getvalue()


def test_a_zip_member_that_is_compressed_again_is_named(tmp_path):
    """A gzip stored in a zip under a .csv name: not 'the header is not valid utf-8 text'."""
    data = ("\n".join([HEADER] + [row(i) for i in range(3)]) + "\n").encode()
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("a.csv", gzip.compress(data))
    text = stops(tmp_path, tmp_path / "a.zip", "a.zip!a.csv", "row 0", "compressed twice", "gzip data again")
    assert "utf-8" not in text


def test_rows_of_delimiters_only_are_named_as_empty_rows(tmp_path):
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1), "," * 12, "," * 12])
    stops(tmp_path, path, "row 3", "the row is empty", "delete the empty rows")


def test_an_empty_latitude_is_named_as_missing(tmp_path):
    path = write(tmp_path / "a.csv", [HEADER, row(0), row(1).replace("69.01", ""), row(2)])
    stops(tmp_path, path, "row 2", "'latitude'", "'P1' has no latitude")


def test_a_value_in_the_unnamed_last_column_stops(tmp_path):
    """A header ending in a delimiter names no last column: a value there was dropped unseen."""
    path = write(tmp_path / "a.csv", [HEADER + ",", row(0) + ",", row(1) + ',""', row(2) + ",9.9", row(3) + ","])
    stops(tmp_path, path, "row 3", "'9.9'", "unnamed", "'20200206'")


def test_trailing_delimiters_on_every_line_read(tmp_path):
    path = write(tmp_path / "a.csv", [HEADER + ","] + [row(i) + "," for i in range(3)] + [row(3) + ',""'])
    got = by_pid(build(tmp_path, path))
    np.testing.assert_array_equal(got["P3"], [3.5, 1.25, -2.5, 3.75])


def test_ascending_and_descending_files_in_one_site_stop(tmp_path):
    """A glob over a whole download mixes orbits: their LOS series are different projections of
    one motion, and the clusters would follow the orbit."""
    desc = write(tmp_path / "desc.csv", [HEADER] + [row(i) for i in range(3)])             # track 190
    asc = write(tmp_path / "asc.csv", [HEADER] + [row(i).replace(",35,190,", ",35,-10,").replace(f"P{i},", f"A{i},")
                                                  for i in range(3)])
    with pytest.raises(InputError) as err:
        build_shards([asc, desc], NGU, tmp_path / "out.h5", "s", ShardsConfig())
    text = str(err.value)
    for needle in ("mixes points of ascending and descending", "asc.csv: 3 ascending, 0 descending",
                   "desc.csv: 0 ascending, 3 descending", "'track_angle'", "asc=<glob>;desc=<glob>"):
        assert needle in text, (needle, text)
    assert not list(tmp_path.glob("*.h5"))
    # one orbit in several files (two descending tracks) reads
    other = write(tmp_path / "other.csv", [HEADER] + [row(i).replace(f"P{i},", f"B{i},") for i in range(3)])
    build_shards([desc, other], NGU, tmp_path / "ok.h5", "s", ShardsConfig())
    assert h5io.Shards(tmp_path / "ok.h5").n_points == 6


def test_a_file_covering_part_of_the_period_is_logged(tmp_path, caplog):
    early = write(tmp_path / "early.csv", [HEADER] + [row(i) for i in range(3)])
    late_dates = ["20200218", "20200301", "20200313", "20200325", "20200406", "20200418", "20200430", "20200512"]
    late_header = HEADER.replace(",".join(DATES), ",".join(late_dates))
    late = write(tmp_path / "late.csv", [late_header] + [row(i).replace(f"P{i},", f"L{i},") + ",1,2,3,4"
                                                         for i in range(3)])
    with caplog.at_level("WARNING", logger="insarclust.shards"):
        build_shards([early, late], NGU, tmp_path / "out.h5", "s", ShardsConfig())
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("early.csv covers 2020-01-01..2020-02-06" in m and "held" in m for m in warned), warned
    assert any("late.csv covers 2020-02-18..2020-05-12" in m for m in warned), warned
    # each point's span, stored by the stage: early points end, late points start part-way
    shards = h5io.Shards(tmp_path / "out.h5")
    spans = dict(zip(shards.read("points/pid").tolist(), shards.read("series/span").tolist()))
    grid = shards.grid_dates
    assert spans["P0"] == [0, int(np.searchsorted(grid, shards.dates[3]))]
    assert spans["L0"] == [int(np.searchsorted(grid, shards.dates[4])), len(grid) - 1]
    from insarclust.spans import observed_spans
    assert np.array_equal(shards.read("series/span"),
                          observed_spans(shards.read("series/displacement"), shards.dates, grid))


def test_the_site_extent_is_logged(tmp_path, caplog):
    """Swapped latitude/longitude columns read as valid positions far away: the log shows where."""
    path = write(tmp_path / "a.csv", [HEADER] + [row(i) for i in range(4)])
    with caplog.at_level("INFO", logger="insarclust.shards"):
        build(tmp_path, path)
    line = next(r.getMessage() for r in caplog.records if "positions within" in r.getMessage())
    assert "latitude 69.0000..69.0300, longitude 20.0000..20.0300 (WGS84)" in line, line


def test_the_extent_of_a_site_astride_the_180th_meridian(tmp_path, caplog):
    """A 2 km site at 180 degrees (Chukotka) was logged 'longitude -179.9900..179.9900': the whole
    globe, for the line that is there to show where a site lies."""
    spec = {k: v for k, v in load_formats(ROOT / "config" / "formats.yaml")["ngu"].items() if k != "area"}
    fmt = get_format("pacific", {"pacific": spec})
    rows = [row(i).replace(",20.0", ",179.9" if i < 2 else ",-179.9") for i in range(4)]
    path = write(tmp_path / "a.csv", [HEADER] + rows)
    with caplog.at_level("INFO", logger="insarclust.shards"):
        build(tmp_path, path, fmt=fmt)
    line = next(r.getMessage() for r in caplog.records if "positions within" in r.getMessage())
    assert ("latitude 69.0000..69.0300, longitude 179.9000..180.0800 (WGS84, longitudes counted 0-360: "
            "the site lies astride the 180th meridian)") in line, line


def test_lines_above_the_header_are_named_with_the_line_to_start_from(tmp_path):
    lines = ["# exported 2026-01-02 by the portal", "# units: mm", HEADER] + [row(i) for i in range(3)]
    text = stops(tmp_path, write(tmp_path / "a.csv", lines), "row 0", "the header is on line 3",
                 "the 2 line(s) above it", "'# exported 2026-01-02 by the portal'", "tail -n +3 in.csv")
    assert "missing required column" not in text


def test_a_comment_first_line_is_named_when_no_header_follows(tmp_path):
    lines = ["# another export", "id;lat;lon"] + ["A;1;2"]
    stops(tmp_path, write(tmp_path / "a.csv", lines), "the first line is a comment", "grep -v '^#'")


def test_a_first_line_with_the_columns_keeps_its_own_error(tmp_path):
    lines = [HEADER + ",height"] + [row(i) + ",1" for i in range(3)] + [HEADER + ",height"]
    stops(tmp_path, write(tmp_path / "a.csv", lines), "repeated column name(s) ['height']")


def test_a_repeated_header_mid_file_is_named(tmp_path):
    lines = [HEADER] + [row(i) for i in range(3)] + [HEADER] + [row(i) for i in range(3, 6)]
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 4", "the header line is repeated on line 5",
          "head -n 1 a.csv; tail -q -n +2")


def test_utf8_ids_read_as_latin1_stop(tmp_path):
    latin1 = dataclasses.replace(NGU, encoding="latin-1")
    lines = [HEADER] + [row(i) for i in range(3)] + [row(3).replace("P3,", "Tromsø-3,")]
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 4", "column 'pid'", "'TromsÃ¸-3'",
          "UTF-8 text ('Tromsø-3')", "set encoding: utf-8", fmt=latin1)
    # the same ids written in latin-1 read as written
    shards = build(tmp_path, write(tmp_path / "b.csv", lines, encoding="latin-1"), fmt=latin1)
    assert "Tromsø-3" in shards.read("points/pid").tolist()


def test_ids_differing_only_in_surrounding_spaces_are_one_point(tmp_path):
    a = write(tmp_path / "a.csv", [HEADER] + [row(i) for i in range(3)])
    b = write(tmp_path / "b.csv", [HEADER] + [row(i).replace(f"P{i},", f"X{i},") for i in range(2)]
              + [row(1).replace("P1,", "P1  ,")])
    with pytest.raises(InputError) as err:
        build_shards([a, b], NGU, tmp_path / "out.h5", "s", ShardsConfig())
    text = str(err.value)
    for needle in ("point id 'P1  ' is repeated", "as 'P1' (the two differ only in surrounding spaces)",
                   "a.csv row 2", "b.csv, row 3"):
        assert needle in text, (needle, text)
    build_shards([a, b], NGU, tmp_path / "out.h5", "s", ShardsConfig(duplicates="keep-first"))
    pids = sorted(h5io.Shards(tmp_path / "out.h5").read("points/pid").tolist())
    assert pids == ["P0", "P1", "P2", "X0", "X1"]
    # spaces alone do not make ids equal
    c = write(tmp_path / "c.csv", [HEADER] + [row(i).replace(f"P{i},", f"Q {i},") for i in range(2)])
    build_shards([a, c], NGU, tmp_path / "two.h5", "s", ShardsConfig())
    assert h5io.Shards(tmp_path / "two.h5").n_points == 5


@pytest.mark.parametrize("encoding,pid", [("utf-8-sig", "Tromsø-3"), ("gbk", "一-3"), ("shift_jis", "凜三-3"),
                                          ("iso-2022-jp", "観測点-3")])
def test_ids_of_other_encodings_are_not_taken_for_utf8(tmp_path, encoding, pid):
    """UTF-8 with a byte-order mark, multi-byte encodings whose bytes happen to be valid UTF-8
    ('一' is D2 BB in GBK, 'һ' in UTF-8) and ISO-2022 (kanji as ASCII bytes) read as written."""
    fmt = dataclasses.replace(NGU, encoding=encoding)
    lines = [HEADER] + [row(i) for i in range(3)] + [row(3).replace("P3,", pid + ",")]
    shards = build(tmp_path, write(tmp_path / "a.csv", lines, encoding=encoding), fmt=fmt)
    assert pid in shards.read("points/pid").tolist()


def test_a_missing_column_of_a_truncated_gzip_is_still_named(tmp_path):
    """The header search behind the missing-column error reads on into the file: a truncated
    or corrupt .gz there leaves the missing-column error as it is."""
    lines = [HEADER.replace("latitude", "lat")] + [row(i) for i in range(60)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    path = tmp_path / "a.csv.gz"
    path.write_bytes(data[: len(data) // 4])
    stops(tmp_path, path, "missing required column(s) 'latitude'")
    corrupt = bytearray(data)
    corrupt[len(data) // 3: len(data) // 3 + 40] = b"\0" * 40
    path.write_bytes(bytes(corrupt))
    stops(tmp_path, path, "missing required column(s) 'latitude'")


def test_a_repeated_header_with_its_byte_order_mark_is_named(tmp_path):
    """Exports saved as 'CSV UTF-8' start with a byte-order mark; joined with cat, the second
    file's header carries it mid-file."""
    a = "\n".join([HEADER] + [row(i) for i in range(3)]) + "\n"
    b = "\n".join([HEADER] + [row(i) for i in range(3, 6)]) + "\n"
    path = tmp_path / "a.csv"
    path.write_bytes(a.encode("utf-8-sig") + b.encode("utf-8-sig"))
    stops(tmp_path, path, "row 4", "the header line is repeated on line 5")


def test_a_last_row_without_line_end_is_read_and_named_in_the_log(tmp_path, caplog):
    """A copy cut inside the last value ('3.75' -> '3.') still parses: the missing line end is
    the only trace, so the log names the row; a file that ends in a line end says nothing."""
    lines = [HEADER] + [row(i) for i in range(3)]
    whole = write(tmp_path / "whole.csv", lines)
    cut = tmp_path / "cut.csv"
    cut.write_bytes(whole.read_bytes()[:-3])      # '...,3.75\n' -> '...,3.'
    with caplog.at_level("WARNING", logger="insarclust"):
        build(tmp_path, whole)
    assert "no line end" not in caplog.text
    with caplog.at_level("WARNING", logger="insarclust"):
        shards = build(tmp_path, cut)
    assert f"file {cut}: its last row (row 3) has no line end" in caplog.text
    assert by_pid(shards)["P2"][-1] == pytest.approx(3.0)   # read as it stands


# --------------------------------------------------------------------------- #
# the displacement unit against the file's own mean_velocity


@pytest.fixture(scope="module")
def moving_site():
    from insarclust.demo import generate

    return generate("units", "mainland", NGU, n_points=200, years=1.5, seed=5)[0]


@pytest.mark.parametrize("factor,unit", [(1000, "m"), (10, "cm")])
def test_displacements_in_another_unit_than_the_format_says_stop(tmp_path, moving_site, factor, unit):
    """Metres or centimetres read as millimetres passed every check: motions 1000 (10) times
    too small, every rate and cluster wrong. The series' trend must match mean_velocity."""
    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    t[dates] = t[dates] / factor
    t.to_csv(tmp_path / "a.csv", index=False)
    text = stops(tmp_path, tmp_path / "a.csv", "'mean_velocity'", f"{1 / factor:g} times",
                 f"look like they are in {unit}, not mm", f"displacement_unit: {unit}")
    assert "a.csv" in text


@pytest.mark.parametrize("negated, factor", [("series", 1), ("velocity", 1), ("series", 1000)])
def test_displacements_opposite_to_the_files_velocity_stop(tmp_path, moving_site, negated, factor):
    """Series negated against the file's own mean_velocity (subsidence written positive in one of
    them) passed without a word, and a negative ratio ended the unit check: a file in metres whose
    series also had the other sign was read as millimetres."""
    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    t[dates] = t[dates] / factor
    t[dates if negated == "series" else "mean_velocity"] *= -1
    t.to_csv(tmp_path / "a.csv", index=False)
    text = stops(tmp_path, tmp_path / "a.csv", "'mean_velocity'", f"trend is {-1 / factor:g} times",
                 "run opposite to mean_velocity", "negate")
    assert ("look like they are in m, not mm" in text) == (factor == 1000)


def test_a_velocity_of_another_sign_by_no_units_factor_is_logged_not_stopped(tmp_path, moving_site, caplog):
    """A motion that reversed between the velocity's period and the file's dates is no sign error."""
    t = moving_site.copy()
    t["mean_velocity"] = t["mean_velocity"] / -0.3
    t.to_csv(tmp_path / "a.csv", index=False)
    with caplog.at_level("WARNING", logger="insarclust"):
        build(tmp_path, tmp_path / "a.csv")
    assert "trend is -0.3 times the mean_velocity column" in caplog.text


def test_the_unit_message_names_a_point_that_reads_as_the_median(tmp_path, moving_site):
    """The example point was the fastest one, which can be an outlier whose velocity says nothing
    of the file's unit (here 10 m/yr on a point whose series barely moves)."""
    import re

    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    t[dates] = t[dates] / 1000
    outlier = t["pid"].iloc[7]
    t.loc[7, "mean_velocity"] = 1e4
    t.to_csv(tmp_path / "a.csv", index=False)
    text = stops(tmp_path, tmp_path / "a.csv", "look like they are in m, not mm")
    pid, trend, velocity = re.search(r"e\.g\. point '([^']+)' \(row \d+\): trend (\S+) mm/yr .*?, "
                                     r"mean_velocity (\S+)\)", text).groups()
    assert pid != outlier
    assert 0.5e-3 < float(trend) / float(velocity) < 2e-3


def test_the_unit_message_names_one_of_the_fastest_points(tmp_path, moving_site):
    """The median is over the fastest quarter; the example is one of them, with its own trend and
    velocity (here the slower points' velocities are off by ten, and none of them is named)."""
    import re

    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    t[dates] = t[dates] / 1000
    speed = t["mean_velocity"].abs()
    slow = speed < speed.quantile(0.75)
    t.loc[slow, "mean_velocity"] /= 10
    t.to_csv(tmp_path / "a.csv", index=False)
    text = stops(tmp_path, tmp_path / "a.csv", "look like they are in m, not mm")
    pid, trend, velocity = re.search(r"e\.g\. point '([^']+)' \(row \d+\): trend (\S+) mm/yr .*?, "
                                     r"mean_velocity (\S+)\)", text).groups()
    assert pid in set(t.loc[~slow, "pid"])
    assert 0.5e-3 < float(trend) / float(velocity) < 2e-3


def test_displacements_in_the_declared_unit_read(tmp_path, moving_site):
    moving_site.to_csv(tmp_path / "mm.csv", index=False)
    build(tmp_path, tmp_path / "mm.csv")
    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    t[dates] = t[dates] / 10
    t.to_csv(tmp_path / "cm.csv", index=False)
    fmt = dataclasses.replace(NGU, displacement_unit="cm")
    got = by_pid(build(tmp_path, tmp_path / "cm.csv", fmt=fmt))
    want = by_pid(h5io.Shards(tmp_path / "mm.csv.h5"))
    for pid in want:
        np.testing.assert_allclose(got[pid], want[pid], rtol=1e-5, atol=1e-4)


def test_a_velocity_column_in_another_unit_is_logged_not_stopped(tmp_path, moving_site, caplog):
    """mean_velocity in m/yr: a static feature (standardised), the series are right."""
    t = moving_site.copy()
    t["mean_velocity"] = t["mean_velocity"] / 1000
    t.to_csv(tmp_path / "a.csv", index=False)
    with caplog.at_level("WARNING", logger="insarclust"):
        build(tmp_path, tmp_path / "a.csv")
    assert "mean_velocity column does not match the displacements read as mm" in caplog.text


def test_a_format_in_cm_with_its_velocity_in_cm_per_year_reads(tmp_path, moving_site, caplog):
    """A provider writing displacements in cm and mean_velocity in cm/yr, its format saying
    displacement_unit: cm: the trend (mm/yr) is 10 times the velocity, which stopped the file as
    'look like they are in mm', and the fix offered (mm) would have read every value 10 times too
    small. The file agrees with its format: read as declared, with a warning."""
    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    t[dates] = t[dates] / 10
    t["mean_velocity"] = t["mean_velocity"] / 10
    t.to_csv(tmp_path / "cm.csv", index=False)
    moving_site.to_csv(tmp_path / "mm.csv", index=False)
    with caplog.at_level("WARNING", logger="insarclust"):
        got = by_pid(build(tmp_path, tmp_path / "cm.csv", fmt=dataclasses.replace(NGU, displacement_unit="cm")))
    assert "mean_velocity column does not match" in caplog.text
    want = by_pid(build(tmp_path, tmp_path / "mm.csv"))
    for pid in want:
        np.testing.assert_allclose(got[pid], want[pid], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("ratio", [0.17, 0.04])
def test_a_velocity_of_another_period_is_logged_not_stopped(tmp_path, moving_site, caplog, ratio):
    """mean_velocity over the product's whole archive, the file cut to its later dates, where a
    slowing motion (consolidation, a landslide calming down) moves at a fraction of it: the
    trends are 0.17 (0.04) times the velocities at every moving point, which stopped the file
    ('look like they are in cm', 'values 25 times smaller') with no setting past it. Only a
    unit's exact factor (within x1.25) stops; the rest is a warning."""
    t = moving_site.copy()
    t["mean_velocity"] = t["mean_velocity"] / ratio
    t.to_csv(tmp_path / "a.csv", index=False)
    with caplog.at_level("WARNING", logger="insarclust"):
        build(tmp_path, tmp_path / "a.csv")
    assert f"trend is {ratio:.3g} times the mean_velocity column" in caplog.text


def test_a_position_of_zero_zero_stops(tmp_path):
    """0, 0 is a missing position as exports write it, not a place: within range, it was kept."""
    lines = [HEADER] + [row(i) for i in range(4)]
    lines[3] = lines[3].replace("69.02,20.02", "0,0.0")
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 3", "'latitude, longitude'", "'P2'",
          "latitude 0, longitude 0")
    lines[3] = row(2).replace("69.02,20.02", "0,20.02")   # on the equator: a place (of a format without area)
    build(tmp_path, write(tmp_path / "b.csv", lines), fmt=dataclasses.replace(NGU, area=None))


@pytest.mark.parametrize("duplicates", ["error", "keep-first"])
def test_a_repeated_id_at_another_position_stops_also_with_keep_first(tmp_path, duplicates):
    """Two points that share an id (tiles whose ids restart at 1): keep-first dropped the second
    point with a count in the log; the same point repeated (one position) is still dropped."""
    a = write(tmp_path / "a.csv", [HEADER] + [row(i) for i in range(3)])
    b = write(tmp_path / "b.csv", [HEADER, row(1).replace("69.01,20.01", "62.5,7.25"), row(7)])
    with pytest.raises(InputError) as err:
        build_shards([a, b], NGU, tmp_path / "out.h5", "s", ShardsConfig(duplicates=duplicates))
    for needle in ("b.csv, row 1", "'P1'", "a.csv row 2", "at another position", "62.50000, 7.25000",
                   "km apart", "unique ids"):
        assert needle in str(err.value), (needle, str(err.value))
    assert not list(tmp_path.glob("*.h5"))
    b = write(tmp_path / "b.csv", [HEADER, row(1).replace("69.01,20.01", "69.0105,20.0102"), row(7)])
    build_shards([a, b], NGU, tmp_path / "out.h5", "s", ShardsConfig(duplicates="keep-first"))
    assert sorted(by_pid(h5io.Shards(tmp_path / "out.h5"))) == ["P0", "P1", "P2", "P7"]


@pytest.mark.parametrize("mode,name", [("w", "a.tar"), ("w:gz", "a.tar.gz"), ("w:gz", "a.csv.gz")])
def test_a_tar_archive_is_named(tmp_path, mode, name):
    """A tar (or .tar.gz) of the export stopped with 'missing required column 'pid'' and a header of
    NUL bytes: the tar header read as the CSV's first line."""
    import io
    import tarfile

    data = ("\n".join([HEADER] + [row(i) for i in range(3)]) + "\n").encode()
    with tarfile.open(tmp_path / name, mode) as tar:
        info = tarfile.TarInfo("export/a.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    text = stops(tmp_path, tmp_path / name, name, "tar archive", "tar xf")
    assert "\x00" not in text and "missing required" not in text


def test_macos_resource_forks_in_a_zip_are_not_read(tmp_path):
    """'._a.csv' (AppleDouble, binary) beside a.csv stopped the site as a CSV missing every column."""
    text = "\n".join([HEADER] + [row(i) for i in range(3)]) + "\n"
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("export/a.csv", text)
        zf.writestr("export/._a.csv", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 40)
        zf.writestr("export/", b"")
    assert sorted(by_pid(build(tmp_path, tmp_path / "a.zip"))) == ["P0", "P1", "P2"]


def test_a_zip_without_csv_names_what_it_holds(tmp_path):
    text = "\n".join([HEADER] + [row(i) for i in range(3)]) + "\n"
    with zipfile.ZipFile(tmp_path / "inner.zip", "w") as zf:
        zf.writestr("a.csv", text)
    with zipfile.ZipFile(tmp_path / "outer.zip", "w") as zf:
        zf.write(tmp_path / "inner.zip", "tiles/inner.zip")
    stops(tmp_path, tmp_path / "outer.zip", "no .csv file (it holds: tiles/inner.zip)", "unzip it")
    with zipfile.ZipFile(tmp_path / "tsv.zip", "w") as zf:
        zf.writestr("a.tsv", text)
    stops(tmp_path, tmp_path / "tsv.zip", "(it holds: a.tsv)", "name it .csv")


def test_decimal_commas_are_named_with_their_fix(tmp_path):
    """A semicolon or tab file from a spreadsheet in a decimal-comma locale: 'correct the value'
    was no fix for a file whose every number is so."""
    fmt = dataclasses.replace(NGU, delimiter=";")
    lines = [HEADER.replace(",", ";")] + [row(i).replace(",", ";").replace(".", ",") for i in range(3)]
    text = stops(tmp_path, write(tmp_path / "a.csv", lines), "row 1", "'latitude'", "'69,00'",
                 "decimal commas", "sed 's/,/./g'", fmt=fmt)
    assert "';'" in text


def test_decimal_commas_with_thousands_points_get_no_sed_fix(tmp_path):
    """A decimal-comma export that also groups thousands with points (a height of 1.234 for
    1234 m): the sed offered turned every comma into a point and the file then read, with that
    height 1000 times too small. The fix says so, and offers no sed."""
    fmt = dataclasses.replace(NGU, delimiter=";")
    lines = [HEADER.replace(",", ";")] + [row(i).replace(",", ";").replace(".", ",") for i in range(4)]
    lines[3] = lines[3].replace(";100;", ";1.234;")
    text = stops(tmp_path, write(tmp_path / "a.csv", lines), "row 1", "'latitude'", "decimal commas",
                 "thousands separators ('1.234' in row 3, column 'height')", "1234, as 1.234", fmt=fmt)
    assert "sed 's/" not in text


def test_a_thousands_separator_is_not_taken_for_a_decimal_comma(tmp_path):
    """'1,234.5' holds a comma but is no decimal-comma number: replacing commas by points would
    make it '1.234.5'; the fix is to correct the value."""
    fmt = dataclasses.replace(NGU, delimiter=";")
    lines = [HEADER.replace(",", ";")] + [row(i).replace(",", ";") for i in range(3)]
    lines[2] = lines[2].replace(";100;", ";1,234.5;")
    text = stops(tmp_path, write(tmp_path / "a.csv", lines), "row 2", "column 'height'", "cannot parse '1,234.5'",
                 "correct the value", fmt=fmt)
    assert "decimal comma" not in text and "sed" not in text


def test_a_bad_cell_in_the_last_date_column_is_named(tmp_path):
    lines = [HEADER] + [row(i) for i in range(4)]
    lines[3] = lines[3].replace(",3.75", ",3.7.5")
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 3", "column '20200206'", "cannot parse '3.7.5'")


@pytest.mark.parametrize("column,char", [("height", "\u200e"), ("20200113", "\ufeff"), ("20200113", "\u200b")])
def test_a_needed_column_written_with_an_invisible_character_is_named(tmp_path, column, char):
    """'missing column height (header has: ..., height, ...)' or 'column 20200113 looks like a
    date but does not match' gave no clue: the character is invisible."""
    header = HEADER.replace(f",{column}", f",{char}{column}" if char == "\ufeff" else f",{column}{char}")
    path = write(tmp_path / "a.csv", [header] + [row(i) for i in range(3)])
    stops(tmp_path, path, "row 0", f"column '{column}'", "invisible character", f"U+{ord(char):04X}")
    # an ignored column may hold one
    build(tmp_path, write(tmp_path / "b.csv", [HEADER + ",note\u200b"] + [row(i) + ",x" for i in range(3)]))


def test_a_utf8_byte_order_mark_read_as_latin1_is_named(tmp_path):
    path = write(tmp_path / "a.csv", [HEADER] + [row(i) for i in range(3)], encoding="utf-8-sig")
    stops(tmp_path, path, "column 'pid'", "byte-order mark", "the file is UTF-8", "encoding: utf-8",
          fmt=dataclasses.replace(NGU, encoding="latin-1"))


def test_a_point_split_over_two_rows_stops_with_keep_first(tmp_path):
    """One point's epochs over two rows of one file: keep-first kept the first row and dropped
    the values only the second has (the file-level split-by-date check sees one date set)."""
    first_half = "P0,69.0,20.0,100,1.5,0.9,0.2,35,190,1,2,,"
    second_half = "P0,69.0,20.0,100,1.5,0.9,0.2,35,190,,,3,4"
    path = write(tmp_path / "a.csv", [HEADER, first_half, row(1), row(2), second_half])
    stops(tmp_path, path, "row 4", "'P0'", "row 1", "values at dates its first row lacks (2020-01-25, ...)",
          "join the rows", cfg=ShardsConfig(duplicates="keep-first"))
    # a repeat with no value the first row lacks is dropped as before
    path = write(tmp_path / "b.csv", [HEADER, row(0), row(1), row(2), row(0, d="")])
    assert sorted(by_pid(build(tmp_path, path, ShardsConfig(duplicates="keep-first")))) == ["P0", "P1", "P2"]


@pytest.mark.parametrize("text", ["", "NaN", "nan"])
def test_a_missing_latitude_is_named_whether_empty_or_written_nan(tmp_path, text):
    """A latitude written 'NaN' was reported as '(empty cell)', which the file's cell is not."""
    lines = [HEADER, row(0), row(1).replace("69.01", text, 1), row(2)]
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 2", "column 'latitude'", "'P1' has no latitude",
          "an empty cell, or a missing-value text", "fill in the cell or remove the row")


# --------------------------------------------------------------------------- #
# the format's area: latitude and longitude swapped are still valid degrees


def test_latitude_and_longitude_swapped_stop_naming_the_swap(tmp_path):
    """Norway's 69 N, 20 E read as 20 N, 69 E passed every check and built the site in Asia."""
    swapped = HEADER.replace("pid,latitude,longitude", "pid,longitude,latitude")
    path = write(tmp_path / "a.csv", [swapped] + [row(i) for i in range(4)])
    text = stops(tmp_path, path, "row 1", "'latitude, longitude'", "'P0'", "outside the area of format 'ngu'",
                 "look swapped", "set lat: longitude and lon: latitude")
    assert "latitude 20.0000, longitude 69.0000" in text


def test_a_point_outside_the_formats_area_stops_and_a_format_without_one_reads_it(tmp_path):
    lines = [HEADER] + [row(i) for i in range(4)]
    lines[2] = lines[2].replace("69.01,20.01", "45.5,9.2")   # Milan in an InSAR Norway export
    path = write(tmp_path / "a.csv", lines)
    text = stops(tmp_path, path, "row 2", "'P1'", "outside the area of format 'ngu' (longitude -10 to 36, "
                 "latitude 56 to 82; 1 such rows", "copy the 'ngu' block")
    assert "swapped" not in text
    got = by_pid(build(tmp_path, path, fmt=dataclasses.replace(NGU, area=None)))
    assert sorted(got) == ["P0", "P1", "P2", "P3"]
    # on the area's edge is inside
    lines[2] = row(1).replace("69.01,20.01", "56,36")
    build(tmp_path, write(tmp_path / "b.csv", lines))


def test_projected_positions_outside_the_formats_area_stop(tmp_path):
    from insarclust.coords import from_wgs84

    fmt = get_format("egms-l3", FORMATS)
    x, y = from_wgs84(np.array([50.0, 50.0, 50.0]), np.array([10.0, 10.2, 50.0]), fmt.crs)   # 50 N 50 E: Kazakhstan
    header = "pid,easting,northing,height,mean_velocity,20200101,20200113,20200125"
    lines = [header] + [f"P{i},{x[i]:.1f},{y[i]:.1f},100,1.5,1,2,3" for i in range(3)]
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 3", "'easting, northing'", "'P2'",
          "outside the area of format 'egms-l3'", fmt=fmt)


@pytest.mark.parametrize("area", [[10, 0, 5, 1], [0, 0, 1], [0, 80, 1, 95], "Norway", [0, 0, True, 1],
                                  [5, 0, 5, 1], [0, 3, 1, 3], [-200, 0, 10, 1], [0, -95, 1, 0], [170, 0, 190, 1]])
def test_a_bad_format_area_stops_naming_the_key(area):
    with pytest.raises(InputError) as err:
        get_format("ngu", {"ngu": {**FORMATS["ngu"], "area": area}})
    assert "format 'ngu', key 'area'" in str(err.value) and "[west, south, east, north]" in str(err.value)


def test_a_job_reads_the_area_from_the_runs_formats_file(tmp_path):
    """The area is no rule param (changing it reruns nothing): the shards job takes it from the
    formats file the run names, for that format only."""
    import yaml

    from insarclust.formats import job_format

    params = {k: v for k, v in FORMATS["ngu"].items() if k not in ("description", "area")}
    path = tmp_path / "formats.yaml"
    path.write_text(yaml.safe_dump({"ngu": {**FORMATS["ngu"], "area": [0, 60, 30, 75]}, "mine": params}))
    fmt = job_format("ngu", params, path)
    assert fmt.area == (0, 60, 30, 75) and fmt.id == NGU.id and fmt.date_pattern == NGU.date_pattern
    assert job_format("mine", params, path).area is None
    lines = [HEADER] + [row(i) for i in range(3)]
    lines[2] = lines[2].replace("69.01,20.01", "58.5,20.01")    # inside ngu's area, south of this one
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 2", "'P1'", "latitude 60 to 75", fmt=fmt)


def test_a_few_rows_with_swapped_positions_are_not_called_swapped_columns(tmp_path):
    """One row of nine written as 20 N, 69 E: the row is wrong, not the format's columns (setting
    lat: longitude and lon: latitude would move the eight good rows)."""
    lines = [HEADER] + [row(i) for i in range(9)]
    lines[3] = lines[3].replace("69.02,20.02", "20.02,69.02")
    text = stops(tmp_path, write(tmp_path / "a.csv", lines), "row 3", "'P2'", "1 such rows",
                 "with its latitude and longitude swapped it lies inside", "correct the row's position")
    assert "set lat: longitude" not in text and "columns look swapped" not in text
    assert "among 8 rows of the block that lie inside as written" in text


def test_a_block_outside_the_area_that_a_swap_does_not_bring_inside_is_not_called_swapped(tmp_path):
    """Every row in Milan (45.5 N, 9.2 E) under a format for Norway: swapped they are no nearer,
    so the area is the matter, not the columns; half the rows swapped is no majority."""
    lines = [HEADER] + [row(i).replace(f"69.0{i},20.0{i}", f"45.5{i},9.2{i}") for i in range(4)]
    text = stops(tmp_path, write(tmp_path / "a.csv", lines), "row 1", "'P0'", "4 such rows",
                 "outside the area of format 'ngu'", "copy the 'ngu' block")
    assert "swapped" not in text
    lines = [HEADER] + [row(i) for i in range(4)]
    for k in (1, 3):
        lines[k] = lines[k].replace(f"69.0{k - 1},20.0{k - 1}", f"20.0{k - 1},69.0{k - 1}")
    text = stops(tmp_path, write(tmp_path / "b.csv", lines), "row 1", "'P0'", "2 such rows",
                 "with its latitude and longitude swapped it lies inside, among 2 rows")
    assert "columns look swapped" not in text


@pytest.mark.parametrize("order", ["milan first", "swapped first"])
def test_the_row_named_outside_the_area_is_judged_by_its_own_swap(tmp_path, order):
    """Two rows outside among good ones: one in Milan, one with latitude and longitude swapped.
    The earliest is named, and called swapped only if its own swap brings it inside."""
    lines = [HEADER] + [row(i) for i in range(9)]
    milan, swapped = (2, 6) if order == "milan first" else (6, 2)
    lines[milan] = lines[milan].replace(f"69.0{milan - 1},20.0{milan - 1}", "45.5,9.2")
    lines[swapped] = lines[swapped].replace(f"69.0{swapped - 1},20.0{swapped - 1}",
                                            f"20.0{swapped - 1},69.0{swapped - 1}")
    text = stops(tmp_path, write(tmp_path / "a.csv", lines), "row 2", f"'P1'", "2 such rows")
    if order == "milan first":
        assert "latitude 45.5000, longitude 9.2000" in text and "swapped" not in text
    else:
        assert "with its latitude and longitude swapped it lies inside" in text


def test_projected_positions_with_easting_and_northing_swapped_are_named(tmp_path):
    """An EGMS L3 file whose easting and northing columns are swapped, here around 31 N, 0 E:
    read as written it lies west of the area, swapped back inside."""
    from insarclust.coords import from_wgs84

    fmt = get_format("egms-l3", FORMATS)
    x, y = from_wgs84(np.array([31.0, 31.1, 31.2]), np.array([0.0, 0.1, 0.2]), fmt.crs)
    header = "pid,easting,northing,height,mean_velocity,20200101,20200113,20200125"
    lines = [header] + [f"P{i},{y[i]:.1f},{x[i]:.1f},100,1.5,1,2,3" for i in range(3)]
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 1", "'P0'", "outside the area of format 'egms-l3'",
          "the two columns look swapped", "set x: northing and y: easting", fmt=fmt)


def test_the_earliest_row_with_an_unparsable_cell_is_named_whatever_column_pyarrow_names(tmp_path):
    """pyarrow names the leftmost column that fails in its block (height, row 4); the earlier row 2
    holds a bad cell in a column to the right, and is the one to name."""
    lines = [HEADER] + [row(i) for i in range(6)]
    lines[2] = row(1, d="x1")            # 20200113 of P1
    lines[4] = row(3, height="abc")      # height of P3
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 2", "column '20200113'", "cannot parse 'x1'")


def test_the_fast_row_check_accepts_only_rows_of_readable_cells():
    """The bad-cell search takes a row in one regex call and checks cell by cell only what it
    does not take: a row it takes must hold no cell the cell check refuses."""
    from insarclust.readers import _readable_row, _unreadable

    vocab = ["1", "-2.5", "+.5", "3e4", "1E-3", "inf", "-Infinity", "NaN", "nan", "NA", "na", "", " ", " 1.5 ",
             "\t2", "1,5", "1.5x", "--1", "1_000", "\u0661", "-9999", "N/A", "1.", ".", "e5", "1e", "٣"]
    rng = np.random.default_rng(0)
    for na in ({"", "NaN", "nan", "NA"}, {"-9999", "N/A"}, set()):
        fine = _readable_row(na)
        for _ in range(3000):
            cells = [vocab[j] for j in rng.integers(0, len(vocab), rng.integers(1, 5))]
            took = fine.fullmatch("\x00".join(cells)) is not None
            readable = not any(_unreadable(c, na) for c in cells)
            assert not took or readable, (na, cells)
            if len(cells) == 1 and readable and cells[0].strip(" \t") == cells[0].strip():
                assert took, (na, cells)   # the fast path takes the plain readable cells


@pytest.mark.parametrize("cell,needles", [
    ('" NA"', ["cannot parse ' NA' as a number", "'NA' is a missing-value text of the format",
               "add ' NA' to na_values"]),
    ('"NA "', ["cannot parse 'NA ' as a number", "'NA' is a missing-value text"]),
    ("\x0b1.5", ["cannot parse '\\x0b1.5' as a number", "correct the value"]),
])
def test_a_cell_pyarrow_refuses_but_a_stripped_reading_takes_is_named(tmp_path, cell, needles):
    """pyarrow trims spaces and tabs around a number, not around a missing-value text, nor other
    blank characters: such a cell stopped with 'cannot parse the CSV' and no row or column."""
    lines = [HEADER] + [row(i) for i in range(4)]
    lines[3] = row(2, d=cell)
    stops(tmp_path, write(tmp_path / "a.csv", lines), "row 3", "column '20200113'", *needles)


# --------------------------------------------------------------------------- #
# series too still to be millimetres (no mean_velocity to check the unit against)


@pytest.fixture(scope="module")
def svalbard_site():
    from insarclust.demo import generate

    return generate("units", "arctic", get_format("svalbard", FORMATS), n_points=200, years=1.5, seed=5)[0]


def test_metres_without_a_velocity_column_stop(tmp_path, svalbard_site):
    """The Svalbard layout has no mean_velocity, so the unit check had nothing to compare with: a
    file in metres was read as millimetres without a word, every motion 1000 times too small."""
    svalbard = get_format("svalbard", FORMATS)
    assert "mean_velocity" not in svalbard.static
    t = svalbard_site.copy()
    dates = [c for c in t.columns if c.startswith("D") and c[1:].isdigit()]
    t[dates] = t[dates] / 1000
    t.to_csv(tmp_path / "a.csv", index=False)
    text = stops(tmp_path, tmp_path / "a.csv", "the displacement series barely move",
                 "look like metres (or centimetres), not mm", "displacement_unit: m", "shards.min_spread_mm",
                 fmt=svalbard)
    assert "a.csv" in text
    # the same numbers in mm build; with the check off (null) the metres build too, as written
    t[dates] = t[dates] * 1000
    t.to_csv(tmp_path / "b.csv", index=False)
    assert build(tmp_path, tmp_path / "b.csv", fmt=svalbard).n_points == len(t)
    t[dates] = t[dates] / 1000
    t.to_csv(tmp_path / "c.csv", index=False)
    shards = build(tmp_path, tmp_path / "c.csv", cfg=ShardsConfig(min_spread_mm=None), fmt=svalbard)
    assert np.nanmax(np.abs(shards.read("series/displacement"))) < 0.5


def test_constant_series_are_not_taken_for_metres(tmp_path):
    """Series that do not move at all (a model, a test) say nothing of their unit."""
    lines = [HEADER] + [f"P{i},69.0{i % 10},20.0{i // 10},100,1.5,0.9,0.2,35,190,0,0,0,0" for i in range(40)]
    assert build(tmp_path, write(tmp_path / "a.csv", lines)).n_points == 40


def test_a_header_alone_ending_in_a_delimiter_is_named(tmp_path):
    """A header with one more field than every row ('...,20200206,') read as a ragged row 1."""
    path = write(tmp_path / "a.csv", [HEADER + ",", row(0), row(1)])
    stops(tmp_path, path, "row 1", "expected 14 fields, found 13", "the header line ends in a delimiter",
          "remove the delimiter at the end of the header line")


@pytest.mark.parametrize("share", [0.5, 0.3])
def test_a_file_mixing_two_sign_conventions_stops(tmp_path, moving_site, share):
    """Half (or a third) of the points negated against their own mean_velocity: the median ratio
    said nothing (or +1), and the file was read with two conventions."""
    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    flip = np.random.default_rng(0).random(len(t)) < share
    t.loc[flip, dates] *= -1
    t.to_csv(tmp_path / "a.csv", index=False)
    stops(tmp_path, tmp_path / "a.csv", "'mean_velocity'", "mixes two sign conventions", "at the same speed")


def test_a_few_points_against_their_velocity_are_no_mixed_convention(tmp_path, moving_site):
    """A handful of points whose motion reversed is no second convention."""
    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    t.loc[t.index[:10], dates] *= -1
    t.to_csv(tmp_path / "a.csv", index=False)
    assert build(tmp_path, tmp_path / "a.csv").n_points == len(t)


# --------------------------------------------------------------------------- #
# one export given twice under other ids


def test_a_file_repeating_an_earlier_files_points_under_other_ids_stops(tmp_path, moving_site):
    """A second version of an export, its points renumbered, read as more ground: every point twice."""
    t = moving_site.copy()
    t.to_csv(tmp_path / "v1.csv", index=False)
    t["pid"] = [f"NEW{i}" for i in range(len(t))]
    t.to_csv(tmp_path / "v2.csv", index=False)
    with pytest.raises(InputError) as err:
        build_shards([tmp_path / "v1.csv", tmp_path / "v2.csv"], NGU, tmp_path / "out.h5", "s", ShardsConfig())
    text = str(err.value)
    for needle in ("v2.csv", f"{len(t)} of its {len(t)} points (100%)", "'NEW0'", "v1.csv (row", "other ids",
                   "keep one version"):
        assert needle in text, (needle, text)
    assert not list(tmp_path.glob("*.h5"))


def test_files_of_neighbouring_ground_and_a_few_shared_positions_build(tmp_path, moving_site):
    """Two halves of a site, and a few points of one repeated in the other under new ids (tiles
    overlapping at their edge), are more ground, not a second version."""
    t = moving_site.copy()
    a, b = t.iloc[:100].copy(), t.iloc[100:].copy()
    edge = a.iloc[:10].copy()
    edge["pid"] = [f"EDGE{i}" for i in range(10)]
    a.to_csv(tmp_path / "a.csv", index=False)
    pd.concat([b, edge]).to_csv(tmp_path / "b.csv", index=False)
    build_shards([tmp_path / "a.csv", tmp_path / "b.csv"], NGU, tmp_path / "out.h5", "s", ShardsConfig())
    assert h5io.Shards(tmp_path / "out.h5").n_points == len(t) + 10


def test_a_file_given_twice_is_still_named_as_repeated_ids(tmp_path, moving_site):
    moving_site.to_csv(tmp_path / "a.csv", index=False)
    moving_site.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(InputError) as err:
        build_shards([tmp_path / "a.csv", tmp_path / "b.csv"], NGU, tmp_path / "out.h5", "s", ShardsConfig())
    assert "other ids" not in str(err.value)


def _tile_name(lat, lon):
    from insarclust.coords import from_wgs84

    x, y = (float(np.ravel(v)[0]) for v in from_wgs84([np.median(lat)], [np.median(lon)], "EPSG:3035"))
    return f"EGMS_L3_E{int(x // 100000)}N{int(y // 100000)}_100km_U_2018_2022_1.csv"


CLUSTER = (60.45 + 0.0005 * (np.arange(40) % 8), 9.2 + 0.001 * (np.arange(40) // 8))


def test_easting_and_northing_swapped_stop_by_the_files_tile(tmp_path):
    """Swapped easting/northing land inside EPSG:3035's area and the format's (here central Norway
    read as Finland): only the tile the file is named after shows it."""
    name = _tile_name(*CLUSTER)
    good = write(tmp_path / name, [L3_HEADER] + l3_rows(*CLUSTER))
    assert build(tmp_path, good, fmt=L3).n_points == 40
    for p in tmp_path.glob("*.h5"):
        p.unlink()
    swapped = ["pid,northing,easting,height,mean_velocity," + ",".join(DATES)] + l3_rows(*CLUSTER)
    (tmp_path / "sw").mkdir()
    path = write(tmp_path / "sw" / name, swapped)
    stops(tmp_path / "sw", path, "named after EGMS tile", "the two columns look swapped", "'easting, northing'",
          "set x: northing and y: easting", fmt=L3)


def test_a_file_not_named_after_a_tile_is_not_checked_against_one(tmp_path):
    swapped = ["pid,northing,easting,height,mean_velocity," + ",".join(DATES)] + l3_rows(*CLUSTER)
    assert build(tmp_path, write(tmp_path / "mine.csv", swapped), fmt=L3).n_points == 40


def test_the_egms_l3_component_is_read_from_the_file_names(tmp_path):
    """EGMS L3 files say their component (U vertical, E east-west) only in their names: it is kept
    as the site's component, and vertical and east-west files under one glob stop (with other
    ids they were read as one site; with shared ids they stopped as repeated points)."""
    from insarclust.egms_tiles import component_of, site_component

    assert component_of("EGMS_L3_E42N40_100km_E_2018_2022_1.csv") == "east"
    assert component_of("data/x.zip:EGMS_L3_E42N40_100km_U.csv") == "up"
    assert component_of("EGMS_L3_E42N40_100km_Up.csv") is None and component_of("a.csv") is None
    assert site_component(["EGMS_L3_E42N40_100km_U.csv", "mine.csv"]) is None
    name = _tile_name(*CLUSTER)
    (tmp_path / "u").mkdir()
    up = write(tmp_path / "u" / name, [L3_HEADER] + l3_rows(*CLUSTER))
    assert build(tmp_path / "u", up, fmt=L3).components == ["up"]
    (tmp_path / "e").mkdir()
    east = write(tmp_path / "e" / name.replace("_U_", "_E_"), [L3_HEADER] + l3_rows(*CLUSTER))
    assert build(tmp_path / "e", east, fmt=L3).components == ["east"]
    renamed = write(tmp_path / "mine.csv", [L3_HEADER] + l3_rows(*CLUSTER))
    assert build(tmp_path, renamed, fmt=L3).components == []
    for p in tmp_path.glob("*.h5"):
        p.unlink()
    with pytest.raises(InputError) as err:
        build_shards([up, east], L3, tmp_path / "out.h5", "s", ShardsConfig())
    for needle in ("mixes EGMS L3 components", "1 file(s) named after the east-west (E) one",
                   "1 file(s) named after the vertical (U) one", "two sites in config/sites.tsv"):
        assert needle in str(err.value), (needle, str(err.value))
    assert not (tmp_path / "out.h5").exists()


def test_one_file_of_a_site_in_centimetres_stops(tmp_path, moving_site):
    """A file in cm with its mean_velocity in cm too (so its own unit check agrees) among files in
    mm: its series change a tenth as much between acquisitions as the other files', where the
    files of one area share their noise. A file twice as noisy builds; null turns the check off."""
    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    parts = [t.iloc[i::3].copy() for i in range(3)]
    cm = parts[2].copy()
    cm[dates + ["mean_velocity"]] = cm[dates + ["mean_velocity"]] / 10
    for name, part in zip("abc", parts[:2] + [cm]):
        part.to_csv(tmp_path / f"{name}.csv", index=False)
    files = [tmp_path / f"{n}.csv" for n in "abc"]
    with pytest.raises(InputError) as err:
        build_shards(files, NGU, tmp_path / "out.h5", "s", ShardsConfig())
    text = str(err.value)
    for needle in ("c.csv, column 'displacement'", "times less from one acquisition to the next than the site's "
                   "other 2 files", "looks like centimetres", "shards.max_noise_ratio"):
        assert needle in text, (needle, text)
    assert float(re.search(r"change ([\d.]+) times", text).group(1)) >= 8
    assert not (tmp_path / "out.h5").exists()
    build_shards(files, NGU, tmp_path / "out.h5", "s", ShardsConfig(max_noise_ratio=None))
    assert h5io.Shards(tmp_path / "out.h5").n_points == len(t)

    noisy = parts[2].copy()
    rng = np.random.default_rng(0)
    noisy[dates] = noisy[dates] + rng.normal(0, 3.0, noisy[dates].shape).round(1)
    noisy.to_csv(tmp_path / "c.csv", index=False)
    build_shards(files, NGU, tmp_path / "noisy.h5", "s", ShardsConfig())
    assert h5io.Shards(tmp_path / "noisy.h5").n_points == len(t)


@pytest.mark.parametrize("cm_first", [False, True])
def test_of_two_files_the_one_in_centimetres_is_named(tmp_path, moving_site, cm_first):
    """Two files, one in cm: each differs from the other by the same factor, so the quieter one
    is named as centimetres read as mm (the first file was named, in mm, as moving more than the
    'other files', whichever it was)."""
    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    mm, cm = t.iloc[0::2].copy(), t.iloc[1::2].copy()
    cm[dates + ["mean_velocity"]] = cm[dates + ["mean_velocity"]] / 10
    mm.to_csv(tmp_path / "mm.csv", index=False)
    cm.to_csv(tmp_path / "cm.csv", index=False)
    files = [tmp_path / "mm.csv", tmp_path / "cm.csv"]
    with pytest.raises(InputError) as err:
        build_shards(files[::-1] if cm_first else files, NGU, tmp_path / "out.h5", "s", ShardsConfig())
    text = str(err.value)
    for needle in ("cm.csv, column 'displacement'", "times less from one acquisition to the next than the "
                   "site's other file (", "looks like centimetres"):
        assert needle in text, (needle, text)


def test_a_zip_members_own_name_gives_its_tile_and_component(tmp_path):
    """A zip member is read under the label ``a.zip!member.csv``: the member's own name says
    what it holds (the zip's name only where the member's says nothing), so a zip named after
    the vertical file that also holds the east-west one stops as a site mixing both (it was
    taken as all vertical: the zip's name came first in the label)."""
    from insarclust.egms_tiles import component_of, tile_of

    zipped = "d/EGMS_L3_E32N34_100km_U.zip!EGMS_L3_E33N35_100km_E_2018_2022_1.csv"
    assert component_of(zipped) == "east" and tile_of(zipped) == (3_300_000.0, 3_500_000.0)
    assert component_of("d/EGMS_L3_E32N34_100km_E.zip!data.csv") == "east"
    assert tile_of("d/EGMS_L3_E32N34_100km_E.zip!data.csv") == (3_200_000.0, 3_400_000.0)
    # a "!" in a folder's name is not the zip's: the member is what follows the last one
    in_bang = "new!/EGMS_L3_E32N34_100km_U.zip!EGMS_L3_E33N35_100km_E_2018_2022_1.csv"
    assert component_of(in_bang) == "east" and tile_of(in_bang) == (3_300_000.0, 3_500_000.0)
    assert component_of("new!/EGMS_L3_E32N34_100km_E_2018_2022_1.csv") == "east"
    name = _tile_name(*CLUSTER)
    path = tmp_path / name.replace(".csv", ".zip")
    rows = "\n".join([L3_HEADER] + l3_rows(*CLUSTER)) + "\n"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, rows)
        zf.writestr(name.replace("_U_", "_E_"), rows)
    with pytest.raises(InputError, match="mixes EGMS L3 components"):
        build_shards([path], L3, tmp_path / "out.h5", "s", ShardsConfig())


def test_a_file_mixing_mm_and_cm_rows_stops(tmp_path, moving_site):
    """Half of a file's rows in cm (exports joined), its velocity in mm/yr throughout: the median
    ratio of trend to velocity matches no unit, and the file was read as mm without a word."""
    t = moving_site.copy()
    dates = [c for c in t.columns if c.isdigit()]
    t.loc[t.index[1::2], dates] = t.loc[t.index[1::2], dates] / 10
    t.to_csv(tmp_path / "a.csv", index=False)
    text = stops(tmp_path, tmp_path / "a.csv", "'mean_velocity'", "the file mixes units", "as mm and",
                 "as cm", "convert the rows in another unit to mm")
    assert "a.csv" in text
