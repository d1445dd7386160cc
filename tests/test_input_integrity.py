"""Input integrity through the workflow: bad input never exits 0, the error reaches the rule's
log, nothing partial is left under results/, and date columns in any order give the same data.

One Snakemake run (``--keep-going``) builds ``shards.h5`` for a site per case, good and bad,
so each case costs one job rather than one workflow start. Errors raised before any job
(formats.yaml, the site table, the configuration) get their own short dry-runs.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from insarclust import h5io
from insarclust.demo import generate
from insarclust.formats import get_format, load_formats
from insarclust.shards import build_shards

from conftest import ROOT
from test_workflow import make_workdir, write_sites

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
FORMATS = load_formats(ROOT / "config" / "formats.yaml")
NGU = get_format("ngu", FORMATS)
SERIES = ["series/dates", "series/grid_dates", "series/displacement", "series/regular",
          "points/pid", "points/lat", "points/lon", "points/static", "shards/offsets"]


def run(workdir: Path, *args: str, timeout: int = 600) -> tuple[int, str]:
    proc = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONHASHSEED": "0"})
    return proc.returncode, proc.stdout + proc.stderr


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def table():
    return generate("bad", "mainland", NGU, n_points=300, years=1.5, seed=5)[0]


def date_columns(t):
    return [c for c in t.columns if c.isdigit()]


def with_value(t, row: int, value: str):
    """Copy of ``t`` whose 5th date column holds ``value`` in data row ``row`` (1-based)."""
    t = t.copy()
    col = date_columns(t)[4]
    t[col] = t[col].astype(object)
    t.loc[t.index[row - 1], col] = value
    return t


def zipped(path: Path, t, member="a.csv") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, t.to_csv(index=False))
    return path


def gz(path: Path, t) -> Path:
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        t.to_csv(fh, index=False)
    return path


def csv(path: Path, t, **kw) -> Path:
    t.to_csv(path, index=False, **kw)
    return path


def latin1(path: Path, t, row: int) -> Path:
    lines = t.to_csv(index=False).splitlines()
    pid = t[NGU.id].iloc[row - 1]
    lines[row] = lines[row].replace(pid, pid + "\xe9", 1)
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return path


def reordered(t, order):
    cols = date_columns(t)
    fixed = [c for c in t.columns if c not in cols]
    return t[fixed + [cols[i] for i in order(len(cols))]]


def descending(n):
    return list(range(n))[::-1]


def shuffled(n):
    return list(np.random.default_rng(3).permutation(n))


# --------------------------------------------------------------------------- #
# one keep-going run over every case

BAD_SITES = sorted([
    "date-like", "huge", "inf", "minus-inf", "beyond-f32", "one-date", "two-dates", "three-points",
    "five-points", "semicolon", "latin1", "missing-column", "unparsable", "duplicate-id", "latitude",
    "no-dates", "empty", "header-only", "all-nan", "ragged", "blank-id", "truncated-zip", "truncated-gz"])


def good_cases(t, d: Path) -> dict:
    """site -> (files, format); shards.h5 must be built, /series equal to the sorted file's."""
    half = len(t) // 2
    return {
        "sorted": ([csv(d / "sorted.csv", t)], "ngu"),
        "desc": ([csv(d / "desc.csv", reordered(t, descending))], "ngu"),
        "shuffled-gz": ([gz(d / "shuf.csv.gz", reordered(t, shuffled))], "ngu"),
        "desc-zip": ([zipped(d / "desc.zip", reordered(t, descending))], "ngu"),
        # several files per site, each with its own column order
        "two-files": ([csv(d / "two-a.csv", reordered(t.iloc[:half], descending)),
                       csv(d / "two-b.csv", reordered(t.iloc[half:], shuffled))], "ngu"),
        "latin1-declared": ([latin1(d / "latin-ok.csv", t, 40)], "ngu-latin1"),
    }


def bad_cases(t, d: Path) -> dict:
    """site -> (files, format, fragments the message must hold)."""
    f = lambda name: d / name  # noqa: E731
    col5 = date_columns(t)[4]
    pid = lambda row: t[NGU.id].iloc[row - 1]  # noqa: E731
    extra = t.copy()
    extra.insert(12, "2020013", 1.0)   # a 7-digit "date"
    ragged = t.to_csv(index=False).splitlines()
    ragged[5] += ",1.0,2.0"
    f("ragged.csv").write_text("\n".join(ragged) + "\n")
    f("empty.csv").write_bytes(b"")
    good_zip = zipped(f("whole.zip"), t)
    f("trunc.zip").write_bytes(good_zip.read_bytes()[: good_zip.stat().st_size // 2])
    good_gz = gz(f("whole.csv.gz"), t)
    f("trunc.csv.gz").write_bytes(good_gz.read_bytes()[: good_gz.stat().st_size // 2])
    dup = t.copy()
    dup.loc[dup.index[9], NGU.id] = dup[NGU.id].iloc[2]
    lat = t.copy()
    lat.loc[lat.index[17], "latitude"] = 95.0
    nan_row = t.copy()
    nan_row.loc[nan_row.index[25], date_columns(t)] = np.nan
    blank = t.copy()
    blank[NGU.id] = blank[NGU.id].astype(object)
    blank.loc[blank.index[52], NGU.id] = "  "
    return {
        # silently wrong before
        "date-like": ([csv(f("datelike.csv"), extra)], "ngu", ["'2020013'", "date_pattern", "unmatched_dates: warn"]),
        "huge": ([csv(f("huge.csv"), with_value(t, 38, "1e30"))], "ngu",
                 ["row 38", f"'{col5}'", pid(38), "max_abs_mm"]),
        "inf": ([csv(f("inf.csv"), with_value(t, 12, "inf"))], "ngu", ["row 12", f"'{col5}'", pid(12), "not a finite"]),
        "minus-inf": ([csv(f("minf.csv"), with_value(t, 7, "-inf"))], "ngu", ["row 7", pid(7), "not a finite"]),
        "beyond-f32": ([csv(f("f32.csv"), with_value(t, 3, "1e39"))], "ngu", ["row 3", pid(3), "float32 range"]),
        "one-date": ([csv(f("one.csv"), t.drop(columns=date_columns(t)[1:]))], "ngu",
                     ["too small", "1 acquisition date(s)", "at least 8", "descriptors"]),
        "two-dates": ([csv(f("two.csv"), t.drop(columns=date_columns(t)[2:]))], "ngu",
                      ["too small", "2 acquisition date(s)", "embed.washout"]),
        "three-points": ([csv(f("three.csv"), t.iloc[:3])], "ngu", ["too small", "3 point(s)", "graph.k: 10"]),
        "five-points": ([csv(f("five.csv"), t.iloc[:5])], "ngu", ["5 point(s)", "at least 11", "graph.k: 10"]),
        # messages a user can act on
        "semicolon": ([csv(f("semi.csv"), t, sep=";")], "ngu", ["row 0", "delimiter: ';'"]),
        "latin1": ([latin1(f("latin.csv"), t, 40)], "ngu", ["row 40", f"'{NGU.id}'", "utf-8", "iconv", "encoding:"]),
        # the classes that already stopped (now through the workflow, into the log)
        "missing-column": ([csv(f("nolat.csv"), t.drop(columns=["latitude"]))], "ngu", ["'latitude'", "formats.yaml"]),
        "unparsable": ([csv(f("comma.csv"), with_value(t, 37, "1,5"))], "ngu", ["row 37", f"'{col5}'", "'1,5'"]),
        "duplicate-id": ([csv(f("dup.csv"), dup)], "ngu", [pid(3), "row 3", "row 10", "keep-first"]),
        "latitude": ([csv(f("lat.csv"), lat)], "ngu", ["row 18", "'latitude'", "degrees"]),
        "no-dates": ([csv(f("nodates.csv"), t.drop(columns=date_columns(t)))], "ngu", ["no date columns"]),
        "empty": ([f("empty.csv")], "ngu", ["empty"]),
        "header-only": ([csv(f("header.csv"), t.iloc[:0])], "ngu", ["no data rows"]),
        "all-nan": ([csv(f("allnan.csv"), nan_row)], "ngu", ["row 26", "all_nan: drop"]),
        "ragged": ([f("ragged.csv")], "ngu", ["row 5", "fields"]),
        "blank-id": ([csv(f("blank.csv"), blank)], "ngu", ["row 53", "empty point id"]),
        "truncated-zip": ([f("trunc.zip")], "ngu", ["zip", "re-download"]),
        "truncated-gz": ([f("trunc.csv.gz")], "ngu", ["truncated"]),
    }


@pytest.fixture(scope="module")
def keep_going(tmp_path_factory, table):
    """``(workdir, returncode, output, good, bad)`` of one --keep-going run over all cases."""
    workdir = make_workdir(tmp_path_factory.mktemp("integrity") / "repo", changes={"graph": {"k": 10}})
    data = workdir / "data"
    data.mkdir()
    good, bad = good_cases(table, data), bad_cases(table, data)
    formats = yaml.safe_load((workdir / "config/formats.yaml").read_text())
    formats["ngu-latin1"] = {**formats["ngu"], "encoding": "latin-1"}
    (workdir / "config/formats.yaml").write_text(yaml.safe_dump(formats, sort_keys=False))
    rows = []
    for site, (files, fmt, *_) in {**good, **bad}.items():
        folder = data / site
        folder.mkdir()
        for i, path in enumerate(files):   # one folder per site, so a glob picks exactly its files
            shutil.move(path, folder / f"{i}-{path.name}")
        rows.append((site, f"data/{site}/*", fmt))
    write_sites(workdir, rows)
    # a killed earlier job of "sorted" left its temporaries behind
    stale = workdir / "results/sorted"
    stale.mkdir(parents=True)
    pid = dead_pid()
    (stale / f".shards.h5.tmp-{h5io._HOST}-{pid}").write_bytes(b"x" * 1000)
    (stale / f".shards.h5.runs-{h5io._HOST}-{pid}").mkdir()
    (stale / f".shards.h5.runs-{h5io._HOST}-{pid}" / "run00000.disp.npy").write_bytes(b"x" * 1000)
    targets = [f"results/{site}/shards.h5" for site in {**good, **bad}]
    rc, out = run(workdir, "--keep-going", *targets)
    return workdir, rc, out, good, bad


def failed_sites(output: str) -> set:
    return set(re.findall(r"Error in rule shards:.*?log: logs/shards/([^ ]+)\.log", output, re.S))


def test_the_run_fails_exactly_on_the_bad_sites(keep_going):
    workdir, rc, out, good, bad = keep_going
    assert sorted(bad) == BAD_SITES
    assert rc != 0
    assert failed_sites(out) == set(bad), out[-3000:]
    for site in good:
        assert (workdir / f"results/{site}/shards.h5").exists(), site


@pytest.mark.parametrize("site", BAD_SITES)
def test_bad_input_stops_with_its_message_in_the_log(keep_going, site):
    workdir, _, out, _, bad = keep_going
    fragments = bad[site][2]
    log = (workdir / f"logs/shards/{site}.log").read_text()
    for frag in fragments + ["fix:", "file data/" + site + "/"]:
        assert frag in log, f"{frag!r} not in the log of {site}:\n{log[-2000:]}"
        assert frag in out, f"{frag!r} not on stderr for {site}"
    # nothing partial: no output, no temporary file or run directory
    leftovers = list((workdir / "results" / site).glob("*")) + list((workdir / "results" / site).glob(".*"))
    assert leftovers == []


def test_date_columns_in_any_order_give_identical_series(keep_going):
    workdir = keep_going[0]
    ref = h5io.read_datasets(workdir / "results/sorted/shards.h5", SERIES)
    for site in ("desc", "shuffled-gz", "desc-zip", "two-files", "latin1-declared"):
        got = h5io.read_datasets(workdir / f"results/{site}/shards.h5", SERIES)
        for name in SERIES:
            if site == "latin1-declared" and name == "points/pid":
                continue   # one id carries the accented letter
            assert got[name].tobytes() == ref[name].tobytes() if got[name].dtype.kind != "O" \
                else list(got[name]) == list(ref[name]), (site, name)


def test_a_latin1_file_reads_when_the_format_says_so(keep_going, table):
    workdir = keep_going[0]
    pids = set(h5io.Shards(workdir / "results/latin1-declared/shards.h5").pids())
    assert table[NGU.id].iloc[39] + "\xe9" in pids


def test_stale_temporaries_of_killed_jobs_are_removed(keep_going):
    workdir = keep_going[0]
    assert [p.name for p in (workdir / "results/sorted").iterdir()] == ["shards.h5"]
    assert "left by a killed job" in (workdir / "logs/shards/sorted.log").read_text()


# --------------------------------------------------------------------------- #
# the library: date order for every container, unmatched dates on purpose, SIGKILL


@pytest.mark.parametrize("container", ["plain", "gz", "zip"])
@pytest.mark.parametrize("order", [descending, shuffled])
def test_date_order_library(tmp_path, table, container, order):
    write = {"plain": lambda p, t: csv(p.with_suffix(".csv"), t), "gz": lambda p, t: gz(p.with_suffix(".csv.gz"), t),
             "zip": lambda p, t: zipped(p.with_suffix(".zip"), t)}[container]
    build_shards([write(tmp_path / "sorted", table)], NGU, tmp_path / "a.h5", "s")
    build_shards([write(tmp_path / "other", reordered(table, order))], NGU, tmp_path / "b.h5", "s")
    a, b = (h5io.read_datasets(tmp_path / n, SERIES) for n in ("a.h5", "b.h5"))
    for name in SERIES:
        if a[name].dtype.kind == "O":
            assert list(a[name]) == list(b[name])
        else:
            assert a[name].tobytes() == b[name].tobytes(), name


def test_unmatched_dates_warn_leaves_them_out_with_a_warning(tmp_path, table, caplog):
    extra = table.copy()
    extra.insert(12, "2020013", 1.0)
    fmt = get_format("ngu", {"ngu": {**FORMATS["ngu"], "unmatched_dates": "warn"}})
    with caplog.at_level("WARNING"):
        build_shards([csv(tmp_path / "a.csv", extra)], fmt, tmp_path / "a.h5", "s")
    assert "2020013" in caplog.text and "left out" in caplog.text
    assert len(h5io.Shards(tmp_path / "a.h5").dates) == len(date_columns(table))


def test_a_killed_writer_leaves_a_temporary_that_the_next_job_removes(tmp_path):
    out = tmp_path / "features" / "dyn.h5"
    code = ("import os, numpy as np; from insarclust import h5io\n"
            f"w = h5io.FeatureWriter({str(out)!r}, 100, ['a', 'b']).__enter__()\n"
            "w.write(0, np.ones((50, 2), np.float32)); os.kill(os.getpid(), 9)\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == -9
    stale = list(out.parent.glob(".dyn.h5.tmp-*"))
    assert len(stale) == 1 and not out.exists()
    with h5io.FeatureWriter(out, 10, ["a", "b"]) as w:
        w.write(0, np.zeros((10, 2), np.float32))
    assert [p.name for p in out.parent.iterdir()] == ["dyn.h5"]


def test_stale_temporaries_of_other_hosts_and_geopackages_are_removed(tmp_path):
    gpkg = tmp_path / "clusters.gpkg"
    pid = dead_pid()
    names = [f".clusters.gpkg.tmp-{h5io._HOST}-{pid}.gpkg", f".clusters.gpkg.tmp-{h5io._HOST}-{pid}.gpkg-journal",
             f".clusters.gpkg.tmp-othernode-{os.getpid()}.gpkg"]       # a live PID, but on another node
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    mine = h5io.temp_name(gpkg, keep_suffix=True)
    mine.write_bytes(b"x")                                         # this process's own: kept
    live = tmp_path / f".clusters.gpkg.tmp-{h5io._HOST}-{os.getppid()}.gpkg"
    live.write_bytes(b"x")                                         # alive on this host: kept
    removed = {p.name for p in h5io.remove_stale_temporaries(gpkg)}
    assert removed == set(names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, live.name])


# --------------------------------------------------------------------------- #
# errors before any job: configuration, formats.yaml, site table


@pytest.fixture
def small_site(tmp_path, table):
    """A workflow copy with one 14-point site: enough for k = 4, too small for k = 6."""
    workdir = make_workdir(tmp_path / "repo")
    (workdir / "data").mkdir()
    csv(workdir / "data/small.csv", table.iloc[:14])
    write_sites(workdir, [("small", "data/small.csv", "ngu")])
    return workdir


def test_nested_config_overrides_reach_the_stages(small_site):
    # 'kmeans={"k": 6}' arrives as {"k": "6"}: coerced, then used by the size check
    rc, out = run(small_site, "-n", "--config", 'kmeans={"k": 6}', 'dsc={"enabled": false}')
    assert rc == 0, out[-3000:]
    assert "rule dsc:" not in out and "rule kmeans:" in out
    rc, out = run(small_site, "results/small/shards.h5", "--config", 'kmeans={"k": 6}')
    assert rc != 0
    log = (small_site / "logs/shards/small.log").read_text()
    assert "14 point(s)" in log and "kmeans.k = 6" in log and "fix:" in log
    assert not (small_site / "results/small/shards.h5").exists()
    # the default k = 4 fits; raising k afterwards stops the workflow before any job
    rc, out = run(small_site, "results/small/shards.h5")
    assert rc == 0, out[-3000:]
    rc, out = run(small_site, "-n", "--config", 'kmeans={"k": 6}')
    assert rc != 0 and "results/small/shards.h5" in out and "kmeans.k = 6" in out
    rc, out = run(small_site, "-n", "--config", 'kmeans={"k": "six"}')
    assert rc != 0 and "six" in out


def test_invalid_date_pattern_is_named_at_start(small_site):
    formats = yaml.safe_load((small_site / "config/formats.yaml").read_text())
    formats["ngu"]["date_pattern"] = r"^(\d{8}$"
    (small_site / "config/formats.yaml").write_text(yaml.safe_dump(formats))
    rc, out = run(small_site, "-n")
    assert rc != 0
    assert "format 'ngu', key 'date_pattern'" in out and "not a valid regular expression" in out
    assert "fix:" in out


def test_site_table_errors_name_the_site_table(small_site):
    write_sites(small_site, [("ok", "data/small.csv", "ngu"), ("my site/1", "data/small.csv", "ngu")])
    rc, out = run(small_site, "-n")
    assert rc != 0
    assert "config/sites.tsv, row 2" in out and "my site/1" in out and "config file" not in out


# --------------------------------------------------------------------------- #
# a full disk


def _can_mount() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _can_mount(), reason="needs unprivileged user/mount namespaces (unshare -rm)")
def test_full_disk_is_said_plainly(small_site, table):
    csv(small_site / "data/small.csv", table)   # 300 points: shards.h5 is larger than the disk
    (small_site / "results").mkdir()
    script = (f"mount -t tmpfs -o size=96k tmpfs {small_site / 'results'} && "
              f"{SNAKEMAKE} --cores 1 results/small/shards.h5")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=small_site, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    log = (small_site / "logs/shards/small.log").read_text()
    assert "no space left on the device holding results/small" in log, log[-3000:]
    assert "fix:" in log and "free space" in log


# --------------------------------------------------------------------------- #
# the pieces on their own


def test_disk_full_is_told_apart_from_other_errors(tmp_path, monkeypatch):
    import errno

    from insarclust.logs import explain_disk_full

    from insarclust import h5io
    from insarclust import logs

    out = [tmp_path / "x.h5"]
    full = explain_disk_full(OSError(errno.ENOSPC, "No space left on device"), out)
    assert full is not None and f"device holding {tmp_path}" in str(full)
    # numpy's short write carries no errno: decided by whether the partial files took the free space
    short = OSError("40000 requested and 39904 written")
    total, free = 200 << 30, 3 << 30
    monkeypatch.setattr(logs.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(total, total - free, free))
    monkeypatch.setitem(h5io.partial_bytes, str(out[0]), free - (1 << 20))
    message = explain_disk_full(short, out)
    assert message is not None and "had reached 3.0 GB" in str(message)
    h5io.partial_bytes.clear()
    # the same wording with room on the disk is some other failure: left as it is
    assert explain_disk_full(short, out) is None
    assert explain_disk_full(ValueError("bad value"), out) is None
    # a corrupt model file (no write failure) on a big, nearly full disk is not a full disk
    assert explain_disk_full(RuntimeError("PytorchStreamReader failed reading zip archive: "
                                          "inline_container.cc:290"), out) is None
    # found through the chain of causes (h5py and torch wrap the OS error)
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as inner:
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos") from inner
    except RuntimeError as err:
        assert explain_disk_full(err, out) is not None


def test_config_strings_become_the_schema_types():
    from insarclust.config import coerce_to_schema

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["kmeans"].update(k="6", k_range=["3", "9"], variants=["dyn"])
    cfg["dsc"]["enabled"] = "false"
    cfg["graph"]["bandwidth_m"] = "null"
    cfg["embed"]["static_weight"] = {"height": "0.5"}
    out = coerce_to_schema(cfg, schema)
    assert out["kmeans"]["k"] == 6 and out["kmeans"]["k_range"] == [3, 9] and out["kmeans"]["variants"] == ["dyn"]
    assert out["dsc"]["enabled"] is False and out["graph"]["bandwidth_m"] is None
    assert out["embed"]["static_weight"] == {"height": 0.5}
    cfg["kmeans"]["k"] = "auto"
    assert coerce_to_schema(cfg, schema)["kmeans"]["k"] == "auto"
    cfg["shards"]["max_abs_mm"] = "1e5"   # YAML reads this as text
    assert coerce_to_schema(cfg, schema)["shards"]["max_abs_mm"] == 1e5
    cfg["kmeans"]["k"] = "six"   # not coercible: left for validation to reject
    assert coerce_to_schema(cfg, schema)["kmeans"]["k"] == "six"


@pytest.mark.parametrize("key,value,needle", [
    ("date_pattern", r"^(\d{8}$", "not a valid regular expression"),
    ("date_pattern", r"^(\d{4})(\d{4})$", "has 2 groups"),
    ("displacement_unit", "inch", "unknown unit"),
    ("encoding", "utf-99", "unknown text encoding"),
    ("unmatched_dates", "ignore", "not error or warn"),
    ("delimiter", ".", "part of numbers, dates or quoting"),
    ("delimiter", "2", "part of numbers, dates or quoting"),
    ("crs", "EPSG:99999", "unknown coordinate reference system"),   # stopped before any job, not in shards
])
def test_format_values_are_checked_naming_format_and_key(key, value, needle):
    from insarclust.errors import InputError

    spec = {**FORMATS["ngu"], key: value}
    if key == "crs":   # projected positions instead of lat/lon
        spec = {**{k: v for k, v in spec.items() if k not in ("lat", "lon")}, "x": "easting", "y": "northing"}
    with pytest.raises(InputError) as err:
        get_format("ngu", {"ngu": spec})
    assert f"format 'ngu', key '{key}'" in str(err.value) and needle in str(err.value)
    assert "fix:" in str(err.value)


def test_header_fields_with_spaces_are_read(tmp_path, table):
    path = tmp_path / "a.csv"
    text = table.to_csv(index=False).splitlines()
    text[0] = ", ".join(text[0].split(","))   # "pid, latitude, longitude, ..."
    path.write_text("\n".join(text) + "\n")
    build_shards([path], NGU, tmp_path / "a.h5", "s")
    assert h5io.Shards(tmp_path / "a.h5").n_points == len(table)


def test_a_date_pattern_without_group_says_so(tmp_path, table):
    from insarclust.errors import InputError

    t = table.rename(columns={c: "D" + c for c in date_columns(table)})
    fmt = get_format("ngu", {"ngu": {**FORMATS["ngu"], "date_pattern": r"^D\d{8}$"}})
    with pytest.raises(InputError, match=r"(?s)is not a valid YYYYMMDD date.*has no group"):
        build_shards([csv(tmp_path / "a.csv", t)], fmt, tmp_path / "a.h5", "s")


def test_numbered_columns_that_are_not_dates_pass(tmp_path, table):
    t = table.copy()
    t.insert(9, "band_10001", 1.0)
    build_shards([csv(tmp_path / "a.csv", t)], NGU, tmp_path / "a.h5", "s")
