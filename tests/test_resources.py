"""Resource requests: from the measured costs, scaled to the site, times the safety factor."""
from __future__ import annotations

import csv
import gzip
import math
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from insarclust import resources
from insarclust.demo import generate
from insarclust.formats import get_format, load_formats

from conftest import ROOT, WORKFLOW_FILES, copy_workflow

FORMATS = load_formats(ROOT / "config" / "formats.yaml")
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
N, T, D = 1_000_000, 270, 160


def write_sized_shards(path: Path, n_points: int, n_dates: int, n_epochs: int) -> None:
    """A ``shards.h5`` holding only what sizes a built site (points, dates, regular epochs)."""
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        f.attrs["n_points"] = n_points
        f["series/dates"] = np.arange(n_dates, dtype=np.int32)
        f["series/grid_dates"] = np.arange(n_epochs, dtype=np.int32)


def largest_records():
    """Per rule: the per-job seconds, MB and units of the largest measured site."""
    out = {}
    for rule, u, r in resources._measured_rules(resources.load_measurements()):
        # a rule that asks for one core did the CPU time of its two threads on it
        seconds = max(r["wall_s"], r["cpu_s"]) if resources.threads(rule) == 1 else r["wall_s"]
        if rule not in out or u > out[rule][2]:
            out[rule] = (seconds / r["jobs"], r["max_rss_mb"], u)
    return out


def test_every_rule_has_a_cost_and_the_measurements_are_real():
    records = resources.load_measurements()
    assert records, "no bench/site.py record in src/insarclust/costs/"
    for rec in records:
        assert rec["n_points"] > 0 and rec["n_grid"] > 0 and rec["rules"]
    rules_with_resources = set()
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        rules_with_resources |= set(re.findall(r'\*\*requests\("(\w+)"\)', smk.read_text()))
    assert rules_with_resources and rules_with_resources <= set(resources.costs())


@pytest.mark.parametrize("rule", sorted(largest_records()))
def test_a_million_point_request_covers_the_benchmarked_rate(rule):
    """For N = 1,000,000 and T = 270: run time >= the measured seconds per unit (at the largest
    site measured) x the units of this site x the safety factor; memory >= the largest measured
    peak x the safety factor."""
    seconds, mb, u_measured = largest_records()[rule]
    u = resources.units(rule, N, T, D, CONFIG)
    req = resources.request(rule, N, T, D, CONFIG)
    assert req["runtime"] * 60 >= seconds / u_measured * u * resources.SAFETY["runtime"] - 1e-6, rule
    assert req["mem_mb"] >= mb * resources.SAFETY["mem_mb"] * min(1.0, u / u_measured) - 1, rule
    # and a retry asks for more
    again = resources.request(rule, N, T, D, CONFIG, attempt=2)
    assert again["runtime"] == 2 * req["runtime"] and again["mem_mb"] == 2 * req["mem_mb"]


def test_quoted_date_names_and_a_byte_order_mark_are_read_as_dates(tmp_path):
    """A header written with every name quoted ("20200101", as some exporters do) or opened by a
    UTF-8 byte-order mark found no date columns and guessed a 4.5-year archive's epochs."""
    fmt = get_format("egms", FORMATS)
    table, _ = generate("est", "mainland", fmt, n_points=500, years=1.0, seed=3)
    plain = tmp_path / "plain.csv"
    table.to_csv(plain, index=False)
    quoted = tmp_path / "quoted.csv"
    table.to_csv(quoted, index=False, quoting=csv.QUOTE_ALL)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    want = resources.estimate_site([plain], fmt.date_pattern, 6)
    assert want.n_dates == sum(c.isdigit() for c in table.columns) and want.n_epochs < resources.GUESSED_EPOCHS
    for path in (quoted, bom):
        got = resources.estimate_site([path], fmt.date_pattern, 6)
        assert (got.n_dates, got.n_epochs) == (want.n_dates, want.n_epochs), path.name


def test_costs_fit_two_sizes_exactly_and_never_below_the_largest():
    rec = lambda n, s, mb: {"n_points": n, "n_grid": 10, "n_dates": 10,  # noqa: E731
                            "rules": {"graph": {"jobs": 1, "wall_s": s, "cpu_s": s, "max_rss_mb": mb}}}
    cost = resources.fit_costs([rec(100, 12.0, 300.0), rec(400, 30.0, 900.0)])["graph"]
    assert cost.seconds(100) == pytest.approx(12.0) and cost.seconds(400) == pytest.approx(30.0)
    assert cost.mb(400) == pytest.approx(900.0)
    # scaling up never falls below the rate of the largest size (30 s per 400 points)
    assert cost.seconds(4000) >= 30.0 * 10 - 1e-9


def _record(n, rules):
    return {"n_points": n, "n_grid": 10, "n_dates": 10,
            "rules": {rule: {"jobs": 1, "wall_s": wall, "cpu_s": cpu, "max_rss_mb": 100.0}
                      for rule, (wall, cpu) in rules.items()}}


def test_a_rule_asks_for_two_cores_only_where_its_threads_pay_at_the_largest_site():
    records = [_record(100, {"graph": (10.0, 20.0), "smooth": (10.0, 10.0), "kmeans": (10.0, 20.0)}),
               _record(400, {"graph": (40.0, 50.0), "smooth": (40.0, 52.0), "kmeans": (40.0, 49.0)})]
    # at 400 points: graph 1.25 (pays), smooth 1.30, kmeans 1.225 (the small site's 2.0 does not count)
    assert resources.fit_threads(records) == {"graph": 2, "smooth": 2, "kmeans": 1}


def test_a_one_core_rule_is_timed_by_the_cpu_time_its_threads_did():
    records = [_record(100, {"graph": (10.0, 12.0), "kmeans": (10.0, 12.0), "baseline": (10.0, 6.0)}),
               _record(400, {"graph": (40.0, 60.0), "kmeans": (40.0, 48.0), "baseline": (40.0, 20.0)})]
    costs = resources.fit_costs(records)
    assert resources.fit_threads(records) == {"graph": 2, "kmeans": 1, "baseline": 1}
    assert costs["graph"].seconds(400) == pytest.approx(40.0)      # two cores: its wall time
    assert costs["kmeans"].seconds(100) == pytest.approx(12.0)     # one core: the CPU time
    assert costs["kmeans"].seconds(400) == pytest.approx(48.0)
    assert costs["baseline"].seconds(400 * 10) == pytest.approx(40.0)   # waiting on reads: wall time


def test_the_shipped_records_give_two_cores_to_the_threaded_stages_only():
    two = {rule for rule in resources.SCALE if resources.threads(rule) == 2}
    # the CSV reader and assembly threads, the tree query's threads, torch's intra-op threads
    assert two == {"shards", "los_shards", "graph", "embed_part", "dsc"}
    assert resources.threads("no_such_rule") == 1


def test_each_job_asks_for_the_cores_of_its_rule(tmp_path):
    """`snakemake -n --cores 2` on the demo sites: every job's threads are its rule's
    ``resources.threads`` (DSC's: ``dsc.cpu_threads``; the table-only jobs: one)."""
    work = copy_workflow(tmp_path / "w")
    out = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "-n", "--cores", "2"], cwd=work,
                         capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    jobs = re.findall(r"\nrule (\w+):\n((?:    .*\n)*)", text)
    assert len(jobs) > 40
    seen = {}
    for rule, body in jobs:
        m = re.search(r"^    threads: (\d+)$", body, re.M)
        seen.setdefault(rule, set()).add(int(m.group(1)) if m else 1)
    for rule, got in seen.items():
        if rule == "dsc":
            want = int(CONFIG["dsc"]["cpu_threads"])
        elif rule in resources.SCALE:
            want = resources.threads(rule)
        else:
            want = 1
        assert got == {want}, (rule, got)
    assert seen["embed_part"] == {2} and seen["kmeans"] == {1} and seen["evaluate"] == {1}


@pytest.mark.parametrize("container", ["plain", "gz", "zip", "GZ", "gzip named .csv", "ZIP", "zip of .csv.gz",
                                       "zip named .csv", "zip of two .csv"])
def test_site_size_estimated_from_header_and_bytes(tmp_path, container):
    """Compressed files are known by their content, as the shards stage reads them (a .GZ, a
    gzip saved as .csv, a .ZIP, a zip of .csv.gz members), not sized by their compressed bytes
    (which gave 8x the points and a 78 GB shards request for a 3,000,000-point .CSV.GZ)."""
    fmt = get_format("egms", FORMATS)
    table, _ = generate("est", "mainland", fmt, n_points=3000, years=2.0, seed=3)
    text = table.to_csv(index=False)
    path = tmp_path / "a.csv"
    if container == "plain":
        path.write_text(text)
    elif container in ("gz", "GZ", "gzip named .csv"):
        path = tmp_path / {"gz": "a.csv.gz", "GZ": "A.CSV.GZ", "gzip named .csv": "a.csv"}[container]
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    elif container in ("zip", "ZIP"):
        path = tmp_path / ("a.zip" if container == "zip" else "A.ZIP")
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a.csv", text)
    elif container == "zip named .csv":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a.csv", text)
    elif container == "zip of two .csv":
        path = tmp_path / "a.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a1.csv", table.iloc[:1500].to_csv(index=False))
            zf.writestr("a2.csv", table.iloc[1500:].to_csv(index=False))
    else:
        path = tmp_path / "a.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("a.csv.gz", gzip.compress(text.encode()))
    size = resources.estimate_site([path], fmt.date_pattern, 6)
    n_dates = sum(c.isdigit() for c in table.columns)
    assert size.n_dates == n_dates
    assert size.n_epochs > n_dates   # the 6-day grid fills the winter gaps and 12-day revisits
    assert abs(size.n_points - 3000) < 0.1 * 3000, size


@pytest.mark.parametrize("name, data", [("a.zip", b"PK\x03\x04 cut short"), ("a.csv.gz", b"\x1f\x8b\x08 cut"),
                                        ("a.csv", b"")])
def test_an_unreadable_file_gets_a_guess_not_an_error(tmp_path, name, data):
    # requests are computed while the DAG is built; the shards job reports the fault itself
    path = tmp_path / name
    path.write_bytes(data + bytes(5000))
    size = resources.estimate_site([path], get_format("egms", FORMATS).date_pattern, 6)
    assert size.n_points >= 1 and size.n_epochs == resources.GUESSED_EPOCHS


def test_the_workflow_asks_for_the_model_requests(tmp_path):
    """`snakemake --profile slurm -n` on a site whose shards.h5 says 1,000,000 points and 270
    epochs shows, per rule, the model's request."""
    work = copy_workflow(tmp_path / "w", (*WORKFLOW_FILES, "profiles"))
    (work / "data").mkdir()
    (work / "data/site.csv").write_text("pid,latitude,longitude\n")   # the source exists; shards.h5 says the size
    (work / "config/sites.tsv").write_text("site\tsource\tformat\nbig\tdata/site.csv\tegms\n")
    shards = work / "results/big/shards.h5"
    shards.parent.mkdir(parents=True)
    with h5py.File(shards, "w") as f:     # only what the size check and the requests read
        f.attrs["n_points"] = N
        f["series/dates"] = np.arange(D, dtype=np.int32)
        f["series/grid_dates"] = np.arange(T, dtype=np.int32)
    os.utime(shards, (2e9, 2e9))          # newer than the source: not rebuilt
    env = {**os.environ, "INSARCLUST_SLURM_CONDA": "0"}
    out = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "-n", "--profile", "profiles/slurm",
                          "--config", 'dsc={"enabled": true}'], cwd=work, env=env, capture_output=True,
                         text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    seen, dsc_evaluate = {}, None
    for rule, body, res in re.findall(r"\nrule (\w+):\n((?:    .*\n)*?)    resources: (.*)\n", text):
        kv = dict(item.split("=", 1) for item in res.split(", ") if "=" in item)
        if rule == "evaluate" and "method=dsc" in body:
            dsc_evaluate = kv     # measures DSC's fit in the dyn space: the model plus its silhouette
            continue
        seen.setdefault(rule, kv)
    sample = yaml.safe_load((work / "config/config.yaml").read_text())["dsc"]["silhouette_sample"]
    assert int(dsc_evaluate["mem_mb"]) == int(seen["evaluate"]["mem_mb"]) + int(8 * sample**2 / 2**20 + 100)
    assert {"graph", "embed_part", "kmeans", "evaluate", "dsc"} <= set(seen)
    for rule, kv in seen.items():
        if rule in resources.costs() and rule not in ("shards",):
            want = resources.request(rule, N, T, D, yaml.safe_load((work / "config/config.yaml").read_text()))
            assert int(kv["mem_mb"]) == want["mem_mb"] and int(kv["runtime"]) == want["runtime"], rule


def test_the_workflow_sizes_each_track_of_a_pair_from_its_own_files(tmp_path):
    """`snakemake -n --profile slurm` on a pair whose descending track spans three years and its
    ascending track 24 days: each los_shards job asks for its own track's request."""
    work = copy_workflow(tmp_path / "w", (*WORKFLOW_FILES, "profiles"))
    (work / "data").mkdir()
    fmt = get_format("egms", FORMATS)
    cols = ["pid", "latitude", "longitude", *fmt.static, *fmt.geometry]
    for track, dates in (("asc", ["20200101", "20200113", "20200125"]),
                         ("desc", ["20180101", "20190701", "20201231"])):
        rows = "".join(f"P{i},45.0,9.0," + ",".join("1" for _ in cols[3:] + dates) + "\n" for i in range(500))
        (work / f"data/{track}.csv").write_text(",".join(cols + dates) + "\n" + rows)
    (work / "config/sites.tsv").write_text("site\tsource\tformat\npair\tasc=data/asc.csv;desc=data/desc.csv\tegms\n")
    env = {**os.environ, "INSARCLUST_SLURM_CONDA": "0"}
    out = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "-n", "--profile", "profiles/slurm"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    got = {}
    for body, res in re.findall(r"\nrule los_shards:\n((?:    .*\n)*?)    resources: (.*)\n", text):
        track = re.search(r"track=(\w+)", body).group(1)
        got[track] = dict(item.split("=", 1) for item in res.split(", ") if "=" in item)
    config = yaml.safe_load((work / "config/config.yaml").read_text())
    for track in ("asc", "desc"):
        size = resources.estimate_site([work / f"data/{track}.csv"], fmt.date_pattern,
                                       config["shards"]["grid_step_days"])
        want = resources.request("los_shards", size.n_points, size.n_epochs, size.n_dates, config)
        assert int(got[track]["mem_mb"]) == want["mem_mb"], (track, got)
    assert int(got["desc"]["mem_mb"]) > int(got["asc"]["mem_mb"]) + 100


def test_a_request_is_the_modelled_cost_times_the_safety_factor_in_minutes_and_mb(monkeypatch):
    """A graph job measured at 200 s and 2,000 MB on 100 points asks, for 100 points, 200 s x 3 =
    10 minutes and 2,000 MB x 1.5 = 3,000 MB, plus the job's own Snakemake process (300 MB); for
    300 points three times that. A runtime left in seconds (SLURM reads minutes) would ask 60
    times too long and wait in the queue for it."""
    rec = {"n_points": 100, "n_grid": 10, "n_dates": 10,
           "rules": {"graph": {"jobs": 1, "wall_s": 200.0, "cpu_s": 200.0, "max_rss_mb": 2000.0}}}
    monkeypatch.setattr(resources, "_COSTS", resources.fit_costs([rec]))
    assert resources.JOB_PROCESS_MB == 300
    assert resources.request("graph", 100, 10, 10, CONFIG) == {"runtime": 10, "mem_mb": 3300}
    assert resources.request("graph", 300, 10, 10, CONFIG) == {"runtime": 30, "mem_mb": 9300}
    assert resources.request("graph", 300, 10, 10, CONFIG, attempt=2) == {"runtime": 60, "mem_mb": 18600}
    # a tiny job asks for the floor (scheduler granularity, interpreter start-up)
    assert resources.request("graph", 1, 10, 10, CONFIG) == {"runtime": resources.MIN_RUNTIME_MIN,
                                                             "mem_mb": resources.MIN_MEM_MB}


def test_dsc_asks_for_the_series_its_training_patches_touch():
    """The GPU settings of docs/dsc.md (400,000 training patches of 9 x 9 cells, time_stride 1)
    touch nearly every point of a site: their float32 series, several times over, must fit the
    request (a 5-million-point site of 272 epochs holds 5.4 GB of them)."""
    cfg = CONFIG
    gpu = {**cfg, "dsc": {**cfg["dsc"], "time_stride": 1, "batch_size": 1024, "train_sample": 400000}}
    for n in (1_000_000, 5_000_000):
        series_mb = n * 272 * 4 / 2**20
        assert resources.request("dsc", n, 272, 272, gpu)["mem_mb"] > 3.4 * series_mb
    # the shipped CPU settings touch few points: their request barely moves
    small = resources.request("dsc", 5_000_000, 272, 272, cfg)["mem_mb"]
    assert small < 2 * 2024


def test_the_series_dsc_holds_in_memory():
    """4 copies of the float32 series of the points the training patches touch (at most every
    point; P x P points a patch), at every time_stride-th epoch."""
    gpu = {"dsc": {"train_sample": 400_000, "patch_size": 9, "time_stride": 1}}
    assert resources.dsc_series_mb(1_000_000, 272, gpu) == pytest.approx(4 * 1_000_000 * 272 * 4 / 2**20)
    cpu = {"dsc": {"train_sample": 3000, "patch_size": 9, "time_stride": 8}}
    assert resources.dsc_series_mb(1_000_000, 272, cpu) == pytest.approx(4 * 3000 * 81 * 34 * 4 / 2**20)
    assert resources.dsc_series_mb(1_000_000, 273, cpu) == pytest.approx(4 * 3000 * 81 * 35 * 4 / 2**20)
    small = {"dsc": {"train_sample": 3000, "patch_size": 5, "time_stride": 8}}
    assert resources.dsc_series_mb(100_000, 80, small) == pytest.approx(4 * 3000 * 25 * 10 * 4 / 2**20)
    assert resources.dsc_series_mb(2000, 80, small) == pytest.approx(4 * 2000 * 10 * 4 / 2**20)


def test_the_shards_memory_model_and_rules_priced_alike():
    """The shards stage asks 114 MB + 4.04 MB a regular epoch + 100 B a point (measured apart,
    docs/performance.md), x 1.5, plus the job's Snakemake process; a rule priced like another
    takes its time per unit without the other's measured rate (of other units) as a floor."""
    for n, t in ((10_000_000, 600), (100_000, 150)):
        mb = (114.0 + 4.04 * t + 1e-4 * n) * resources.SAFETY["mem_mb"]
        assert resources.request("shards", n, t, 300, CONFIG)["mem_mb"] == math.ceil(mb) + resources.JOB_PROCESS_MB
    costs = resources.costs()
    alike = {rule: like for rule, like in resources.ALIKE.items() if like not in resources.UNMEASURED}
    assert set(alike) == {"los_shards", "kmeans_sweep", "provenance"}
    for rule, like in alike.items():
        c, o = costs[rule], costs[like]
        assert c.rate == 0.0 and c.scale == resources.SCALE[rule]
        assert (c.seconds_base, c.seconds_per_unit, c.mb_base, c.mb_per_unit) == \
            (o.seconds_base, o.seconds_per_unit, o.mb_base, o.mb_per_unit)
        assert c.seconds(1e12) == pytest.approx(o.seconds_base + o.seconds_per_unit * 1e12)


def test_the_units_of_each_kind_of_job():
    """What one job's work scales with: an embedding part embeds its share of the points, the k
    sweep fits one model per k of k_range (both ends included), the embedding is fitted on at
    most fit_sample series, DSC trains on at most train_sample points for all its epochs and
    then labels every point, the shards stage reads every date of every point."""
    cfg = {"embed": {"fit_sample": 4096}, "kmeans": {"k_range": [2, 8]},
           "dsc": {"pretrain_epochs": 5, "epochs": 4, "train_sample": 3000}}
    n, t, d = 1_000_000, 270, 160
    assert resources.units("embed_part", n, t, d, cfg, n_parts=4) == n / 4 * t
    assert resources.units("embed_part", n, t, d, cfg) == n * t
    assert resources.units("kmeans_sweep", n, t, d, cfg) == n * 7
    assert resources.units("kmeans", n, t, d, cfg) == n
    assert resources.units("embed_fit", n, t, d, cfg) == 4096 * t
    assert resources.units("embed_fit", 1000, t, d, cfg) == 1000 * t
    assert resources.units("dsc", n, t, d, cfg) == 3000 * 9 * t + n * t
    assert resources.units("dsc", 1000, t, d, cfg) == 1000 * 9 * t + 1000 * t
    assert resources.units("shards", n, t, d, cfg) == n * d
    assert resources.units("decompose", n, t, d, cfg) == n * t


def test_site_size_counts_the_regular_epochs_between_the_first_and_last_date(tmp_path):
    """Dates 2020-01-01, 01-13 and 01-25 on a 6-day grid: 3 acquisition dates and 5 grid epochs
    (0, 6, 12, 18, 24 days), both ends included, as the shards stage builds the grid."""
    path = tmp_path / "a.csv"
    rows = "".join(f"P{i},69.0,20.0,1.0,2.0,3.0\n" for i in range(500))
    path.write_text("pid,latitude,longitude,20200101,20200113,20200125\n" + rows)
    size = resources.estimate_site([path], get_format("egms", FORMATS).date_pattern, 6)
    assert (size.n_dates, size.n_epochs) == (3, 5)
    assert abs(size.n_points - 500) <= 5


def test_a_built_site_is_sized_from_its_shards_file(tmp_path):
    """Once shards.h5 exists its point count and its two date axes give the size (acquisition
    dates D, regular epochs T: not swapped), not the source files' header and bytes."""
    from insarclust.sites import parse_source

    src = tmp_path / "data.csv"
    src.write_text("pid,latitude,longitude,20200101,20200113\nP1,69.0,20.0,1.0,2.0\n")
    shards = tmp_path / "results/big/shards.h5"
    write_sized_shards(shards, N, D, T)
    assert resources.shards_size(shards) == resources.SiteSize(N, D, T)
    size = resources.site_size("big", parse_source(str(src)), {"date_pattern": r"^(\d{8})$"}, CONFIG,
                               sites_path=tmp_path / "sites.tsv", results=tmp_path / "results")
    assert size == resources.SiteSize(N, D, T)
    shards.unlink()    # not built yet: from the source's header
    size = resources.site_size("big", parse_source(str(src)), {"date_pattern": r"^(\d{8})$"}, CONFIG,
                               sites_path=tmp_path / "sites.tsv", results=tmp_path / "results")
    assert (size.n_points, size.n_dates) == (1, 2)


# bench/decompose.py: (points per track, epochs, wall s, peak RSS MB) of the decompose stage
DECOMPOSE_RUNS = [(200_000, 150, 5.4, 476), (400_000, 150, 9.7, 533),      # docs/performance.md
                  (400_000, 150, 8.7, 729), (400_000, 300, 15.9, 1037), (1_200_000, 150, 19.0, 867)]


@pytest.mark.parametrize("n, t, seconds, mb", DECOMPOSE_RUNS)
def test_a_decompose_request_covers_its_measured_runs(n, t, seconds, mb):
    """decompose (two tracks of n points x t epochs) asks for its measured cost times the safety
    factor: its memory grows with the epochs (a shard of cells' slabs of both tracks) and the
    points, not like an evaluate job's."""
    req = resources.request("decompose", n, t, t, CONFIG)
    assert req["mem_mb"] >= mb * resources.SAFETY["mem_mb"], req
    assert req["runtime"] * 60 >= seconds * resources.SAFETY["runtime"], req


def test_a_large_decompose_request_follows_the_measured_growth():
    """3,000,000 points per track x 300 epochs: memory ~350 MB + 2.05 MB an epoch + 172 B a point
    (~1,480 MB), time ~0.1 us a point-epoch (~90 s) from the runs above."""
    req = resources.request("decompose", 3_000_000, 300, 150, CONFIG)
    assert req["mem_mb"] >= 1.5 * (350 + 2.05 * 300 + 172e-6 * 3_000_000), req
    assert req["runtime"] * 60 >= 3 * 1.0e-7 * 3_000_000 * 300, req


def test_each_track_of_a_pair_is_sized_from_its_own_files(tmp_path):
    """A pair whose descending track holds three times the ascending track's points: each
    los_shards job is sized by its own track, decompose by the mean points per track."""
    from insarclust.sites import parse_source

    header = "pid,latitude,longitude,20200101,20200113,20200125\n"
    for name, n in (("asc.csv", 1000), ("desc.csv", 3000)):
        (tmp_path / name).write_text(header + "".join(f"P{i},69.0,20.0,1.0,2.0,3.0\n" for i in range(n)))
    src = parse_source(f"asc={tmp_path}/asc.csv;desc={tmp_path}/desc.csv", "p")
    fmt = {"date_pattern": r"^(\d{8})$"}
    kw = dict(sites_path=tmp_path / "sites.tsv", results=tmp_path / "results")
    asc = resources.site_size("p", src, fmt, CONFIG, track="asc", **kw)
    desc = resources.site_size("p", src, fmt, CONFIG, track="desc", **kw)
    both = resources.site_size("p", src, fmt, CONFIG, **kw)
    assert abs(asc.n_points - 1000) <= 10 and abs(desc.n_points - 3000) <= 30
    assert abs(both.n_points - 2000) <= 20 and both.n_epochs == 5


def test_a_pair_is_sized_by_its_longer_track_and_a_track_never_by_the_pairs_shards(tmp_path):
    """The descending track holds two more dates than the ascending one: the pair's dates and
    epochs are the longer track's. Once the pair's shards.h5 (the decomposed site) is built it
    sizes the pair, not its tracks, whose los_shards jobs read their own files."""
    from insarclust.sites import parse_source

    for name, dates in (("asc.csv", ["20200101", "20200113", "20200125"]),
                        ("desc.csv", ["20200101", "20200113", "20200125", "20200206", "20200218"])):
        rows = "".join(f"P{i},69.0,20.0," + ",".join("1.0" for _ in dates) + "\n" for i in range(1000))
        (tmp_path / name).write_text("pid,latitude,longitude," + ",".join(dates) + "\n" + rows)
    src = parse_source(f"asc={tmp_path}/asc.csv;desc={tmp_path}/desc.csv", "p")
    fmt = {"date_pattern": r"^(\d{8})$"}
    kw = dict(sites_path=tmp_path / "sites.tsv", results=tmp_path / "results")
    both = resources.site_size("p", src, fmt, CONFIG, **kw)
    assert (both.n_dates, both.n_epochs) == (5, 9)
    asc = resources.site_size("p", src, fmt, CONFIG, track="asc", **kw)
    assert (asc.n_dates, asc.n_epochs) == (3, 5)
    shards = tmp_path / "results/p/shards.h5"
    write_sized_shards(shards, N, D, T)
    assert resources.site_size("p", src, fmt, CONFIG, **kw) == resources.SiteSize(N, D, T)
    assert resources.site_size("p", src, fmt, CONFIG, track="asc", **kw) == asc


# The shards stage on generated EGMS sites (mainland preset): (points, dates D, regular epochs T,
# peak RSS MB of the stage's own process, /usr/bin/time)
SHARDS_RUNS = [(10_000, 190, 394, 524), (30_000, 190, 394, 1073), (60_000, 190, 394, 1343),
               (150_000, 190, 394, 1706), (400_000, 190, 394, 1531), (10_000, 100, 150, 269),
               (300_000, 100, 150, 720), (100_000, 154, 272, 927), (300_000, 154, 272, 1084)]


@pytest.mark.parametrize("n, d, t, mb", SHARDS_RUNS)
def test_a_shards_request_covers_its_measured_peak(n, d, t, mb):
    """The shards stage's memory follows the regular epochs (the shard buffers it resamples
    onto the grid) more than the points: 30,000 points x 394 epochs peak at 1,073 MB, above a
    request that grew with N x D (1,044 MB)."""
    for rule in ("shards", "los_shards"):
        assert resources.request(rule, n, t, d, CONFIG)["mem_mb"] >= mb * resources.SAFETY["mem_mb"], rule


def test_a_national_shards_request_stays_bounded():
    """10,000,000 points x 300 dates: the stage streams and spills sorted runs to disk (flat from
    500,000 to 1,000,000 points, docs/performance.md), so no request of tens of GB (36,417 MB
    when memory grew with N x D), and neither for hashing the inputs (provenance)."""
    for rule in ("shards", "los_shards", "provenance"):
        assert resources.request(rule, 10_000_000, 600, 300, CONFIG)["mem_mb"] <= 8000, rule


def test_the_site_benchmark_prices_each_rule_by_the_shipped_model(tmp_path):
    """bench/site.py reads snakemake's benchmark files per rule (jobs, sums, the longest job)
    and sets the model's request for the site beside what its jobs took."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("site_bench", ROOT / "bench" / "site.py")
    site_bench = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec.loader.exec_module(site_bench)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for name, s, rss, cpu in (("kmeans/a.dyn", 30.0, 400.0, 29.0), ("kmeans/a.dyn+static", 90.0, 300.0, 80.0),
                              ("embed/a.1-of-1", 60.0, 500.0, 110.0)):
        path = tmp_path / "benchmarks" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{s}\t0:00:{int(s)}\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")
    stages = site_bench.read_benchmarks(tmp_path)
    assert stages["kmeans"] == {"jobs": 2, "wall_s": 120.0, "cpu_s": 109.0, "max_job_s": 90.0, "max_rss_mb": 400.0}
    margins = site_bench.request_margins(stages, N, T, D, CONFIG)
    req = resources.request("kmeans", N, T, D, CONFIG)
    assert margins["kmeans"] == {"threads": 1, "runtime_min": req["runtime"], "mem_mb": req["mem_mb"],
                                 "time_margin": req["runtime"] * 60 / 90.0, "mem_margin": req["mem_mb"] / 400.0}
    assert margins["embed"]["threads"] == 2
    assert margins["embed"]["runtime_min"] == resources.request("embed_part", N, T, D, CONFIG)["runtime"]
