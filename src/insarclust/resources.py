"""Memory and run-time requests of the rules, from a cost model fitted to measurements.

A SLURM job that asks for too little is killed at its limit and retried; one
that asks for far too much waits longer in the queue. Each rule's cost is
modelled from the site's size (N points, T regular epochs, the CSV's date
columns D) with coefficients measured by ``bench/site.py`` on the 2-core
development machine (the records in :data:`MEASUREMENTS`, each with its
date, CPU, cores and config overrides; the command is in
docs/performance.md), and every request is the modelled cost times a safety
factor (:data:`SAFETY`): time for slower nodes and shared file systems,
memory for the allocator's slack. The site size comes from ``shards.h5``
once it exists and, before, from the CSV header (date columns) and the
files' uncompressed size (:func:`estimate_site`).
"""
from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

# Requests are the measured cost times these: runtime x3 (nodes slower than the
# development machine, busy file systems), memory x1.5 (allocator slack, page cache).
SAFETY = {"runtime": 3.0, "mem_mb": 1.5}
# Never ask for less than this (scheduler granularity, interpreter start-up).
MIN_RUNTIME_MIN = 5
MIN_MEM_MB = 1000
# The job's own Snakemake process beside the rule's script (its imports; ~300 MB measured in a
# dry run): the benchmarks record the script's process only, a job's memory limit holds both.
JOB_PROCESS_MB = 300


@dataclass(frozen=True)
class Cost:
    """Cost of one job: ``a + b * units`` seconds and ``c + d * units`` MB peak RSS.

    ``units`` is what the rule's work scales with (:func:`units`): points,
    point-epochs, or the epochs of a fixed-size sample.
    """

    scale: str            # points | point_epochs | point_dates | sample_epochs | dsc (:data:`SCALE`)
    seconds_base: float
    seconds_per_unit: float
    mb_base: float
    mb_per_unit: float
    rate: float = 0.0     # seconds per unit measured at the largest size (a floor when scaling up)
    mb_per_point: float = 0.0   # memory terms beside the units': per point and per regular epoch
    mb_per_epoch: float = 0.0

    def seconds(self, units: float) -> float:
        return max(self.seconds_base + self.seconds_per_unit * units, self.rate * units)

    def mb(self, units: float, n_points: float = 0.0, n_epochs: float = 0.0) -> float:
        return (self.mb_base + self.mb_per_unit * units + self.mb_per_point * n_points
                + self.mb_per_epoch * n_epochs)


# What each rule's work scales with (the ``units`` of its Cost).
SCALE = {
    "demo_data": "points", "shards": "point_dates", "los_shards": "point_dates", "decompose": "point_epochs",
    "graph": "points", "embed_fit": "sample_epochs", "embed_part": "point_epochs", "embed_gather": "points",
    "static_features": "points", "smooth": "points", "descriptors": "point_epochs", "kmeans": "points",
    "kmeans_sweep": "points", "baseline": "point_epochs", "dsc": "dsc", "evaluate": "point_epochs",
    "cluster_figures": "point_epochs", "export_labels": "points", "export_gpkg": "points",
    "provenance": "point_dates", "demo_pair": "points",
}
# Rules priced like another (not separately benchmarked): the same work per unit.
ALIKE = {"los_shards": "shards", "kmeans_sweep": "kmeans", "provenance": "shards", "demo_pair": "demo_data"}
# Rules no site benchmark runs (the demo generators): generous fixed terms.
# (make demo: 2.4 s and 263 MB for 20,000 points; the whole table is built in memory,
# ~170 float64 columns plus the CSV text: ~5 kB a point, taken x2)
UNMEASURED = {"demo_data": Cost("points", 60.0, 5e-4, 1000.0, 0.01),
              "demo_pair": Cost("points", 60.0, 1e-3, 1000.0, 0.02)}
# decompose, which bench/site.py does not run (its site is one track), from bench/decompose.py
# (two tracks of N points x T epochs, docs/performance.md): 200,000 / 400,000 x 150 in
# 5.4 / 9.7 s, 476 / 533 MB; 2026-11-30 (2 cores, busy; peak RSS of the stage's own process):
# 400,000 x 150 8.7 s, 729 MB; 400,000 x 300 15.9 s, 1,037 MB; 1,200,000 x 150 19.0 s, 867 MB.
# Time grows with N x T (0.11 us a point-epoch, the steepest pair); memory with T (the row
# slabs of a shard of cells, 2.06 MB an epoch) and N (keys, LOS vectors, sort orders: 173 B a
# point per track), not N x T. N is the points per track (the mean of the two).
MEASURED_APART = {"decompose": Cost("point_epochs", 3.1, 1.1e-7, 360.0, 0.0, 1.06e-7,
                                    mb_per_point=1.73e-4, mb_per_epoch=2.06)}
# The shards stage's memory, measured apart: the snakemake benchmark samples a job's memory every
# 0.5 s (every 30 s after 15 s), and the records' growth with N x D does not hold. The stage
# streams 64 MB blocks and spills sorted runs to disk (flat from 500,000 to 1,000,000 points,
# docs/performance.md); its peak follows the regular epochs T of the shard buffers it resamples
# onto the grid. Peak RSS of the stage's own process on generated EGMS sites, 2026-11-30
# (docs/performance.md): T = 394: 524 / 1,073 / 1,343 / 1,706 / 1,531 MB at 10,000 / 30,000 /
# 60,000 / 150,000 / 400,000 points; T = 272: 927 / 1,084 MB at 100,000 / 300,000; T = 150:
# 269 / 720 MB at 10,000 / 300,000. Covered by 114 MB + 4.04 MB an epoch + 100 B a point (the
# O(N) hashes, keys and masks), in place of the records' memory line.
MEMORY_APART = {"shards": {"mb_base": 114.0, "mb_per_unit": 0.0, "mb_per_epoch": 4.04, "mb_per_point": 1e-4}}
# Cores: a rule asks for MAX_THREADS only where its own threads pay, i.e. where its CPU time at
# the largest site measured is at least PARALLEL_GAIN times its wall time (the records were taken
# with two threads for every rule that asked for them then); every other rule asks for one core,
# so that two such jobs share two cores and a SLURM job holds no idle core. At 1,000,000 points
# (2026-12-01 record): embed 1.57, shards and graph 1.34 against 0.54-1.06 for the rest (smooth
# 1.06, embed_fit 1.04, descriptors 0.98, kmeans 0.97, evaluate 1.00, baseline 0.54: reading).
# DSC's cores are its `dsc.cpu_threads` setting (its CPU labels follow it); rules no record
# covers ask for one core, a rule running another's code for that rule's.
PARALLEL_GAIN = 1.25
MAX_THREADS = 2
THREADS_LIKE = {"los_shards": "shards", "kmeans_sweep": "kmeans"}
# bench/site.py writes one record per benchmark folder; the folder is named by stage.
FOLDER_RULE = {"embed": "embed_part", "figures": "cluster_figures", "export": "export_labels",
               "demo": "demo_data"}
# bench/site.py --json records, one per site size, shipped with the package
MEASUREMENTS = Path(__file__).resolve().parent / "costs"


def _measured_rules(records):
    """``(rule, units of one job, record's rule entry)`` for every rule of every record."""
    for rec in records:
        cfg = {"embed": {"fit_sample": rec.get("fit_sample", 4096)},
               "dsc": rec.get("dsc", {"pretrain_epochs": 5, "epochs": 4, "train_sample": 3000})}
        for folder, r in rec["rules"].items():
            rule = FOLDER_RULE.get(folder, folder)
            if rule not in SCALE or not r["jobs"]:
                continue
            yield rule, _units(SCALE[rule], rec["n_points"], rec["n_grid"], rec["n_dates"], cfg), r


def fit_threads(records) -> dict[str, int]:
    """Per measured rule, the cores a job asks for: :data:`MAX_THREADS` where its CPU time at
    the largest site measured is at least :data:`PARALLEL_GAIN` times its wall time, else 1."""
    largest: dict[str, tuple] = {}
    for rule, u, r in _measured_rules(records):
        if rule not in largest or u > largest[rule][0]:
            largest[rule] = (u, r)
    return {rule: MAX_THREADS if r["cpu_s"] >= PARALLEL_GAIN * r["wall_s"] else 1
            for rule, (_, r) in largest.items()}


def fit_costs(records) -> dict[str, Cost]:
    """Per-rule Cost from bench/site.py records (``--json``) of sites of different sizes.

    Per job, a line through the runs' (units, seconds) and (units, MB), never
    below the largest measurement: with two or more sizes the slope is the
    steepest pair's, so a cost that grows faster than linearly is not
    under-asked at the largest size measured. A rule that asks for one core
    (:func:`fit_threads`) is timed by the larger of its wall and CPU time: the
    CPU time its threads shared on two cores is what one core has to do.
    """
    one_core = {rule for rule, n in fit_threads(records).items() if n == 1}
    points: dict[str, list] = {}
    for rule, u, r in _measured_rules(records):
        seconds = max(r["wall_s"], r["cpu_s"]) if rule in one_core else r["wall_s"]
        points.setdefault(rule, []).append((u, seconds / r["jobs"], r["max_rss_mb"]))
    costs = {}
    for rule, pts in points.items():
        pts.sort()
        if len({u for u, _, _ in pts}) == 1:
            # one size: assume the cost proportional to the work (no fixed part), which
            # over- rather than under-asks for a larger site
            u, sec, mb = max(pts, key=lambda p: p[1])
            costs[rule] = Cost(SCALE[rule], 0.0, sec / max(u, 1), 0.0, max(p[2] for p in pts) / max(u, 1),
                               sec / max(u, 1))
            continue
        slope_s = max([0.0] + [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(pts, pts[1:]) if b[0] > a[0]])
        slope_mb = max([0.0] + [(b[2] - a[2]) / (b[0] - a[0]) for a, b in zip(pts, pts[1:]) if b[0] > a[0]])
        base_s = max(max(s - slope_s * u for u, s, _ in pts), 0.0)
        base_mb = max(max(m - slope_mb * u for u, _, m in pts), 0.0)
        u_max, s_max, _ = pts[-1]
        costs[rule] = Cost(SCALE[rule], base_s, slope_s, base_mb, slope_mb, s_max / max(u_max, 1))
    for rule, memory in MEMORY_APART.items():
        if rule in costs:
            costs[rule] = replace(costs[rule], **memory)
    for rule, like in ALIKE.items():
        if rule not in costs and like in costs:
            costs[rule] = replace(costs[like], scale=SCALE[rule], rate=0.0)
    for rule, cost in {**MEASURED_APART, **UNMEASURED}.items():
        costs.setdefault(rule, cost)
    return costs


def load_measurements(folder=MEASUREMENTS) -> list[dict]:
    """The bench/site.py records shipped in insarclust/costs/ (one JSON per site size)."""
    import json

    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]


_COSTS: dict[str, Cost] | None = None


def costs() -> dict[str, Cost]:
    global _COSTS
    if _COSTS is None:
        _COSTS = fit_costs(load_measurements())
    return _COSTS


_THREADS: dict[str, int] | None = None


def threads(rule: str) -> int:
    """The cores a job of ``rule`` asks for (``threads:`` of the rule; SLURM's
    ``--cpus-per-task``), from the shipped records (:func:`fit_threads`)."""
    global _THREADS
    if _THREADS is None:
        _THREADS = fit_threads(load_measurements())
    return _THREADS.get(THREADS_LIKE.get(rule, rule), 1)


def _units(scale: str, n_points: float, n_epochs: float, n_dates: float, config: Mapping) -> float:
    if scale == "points":
        return n_points
    if scale == "point_epochs":
        return n_points * n_epochs
    if scale == "point_dates":
        return n_points * n_dates
    if scale == "sample_epochs":
        return min(n_points, config["embed"]["fit_sample"]) * n_epochs
    if scale == "dsc":
        dsc = config["dsc"]
        epochs = dsc["pretrain_epochs"] + dsc["epochs"]
        return min(n_points, dsc["train_sample"]) * epochs * n_epochs + n_points * n_epochs
    raise ValueError(f"unknown cost scale {scale!r}")


def units(rule: str, n_points: float, n_epochs: float, n_dates: float, config: Mapping,
          n_parts: int = 1) -> float:
    """The amount of work of one job of ``rule`` on a site of this size (one part of ``n_parts``;
    the k sweep fits one model per k)."""
    u = _units(SCALE[rule], n_points / (n_parts if rule == "embed_part" else 1), n_epochs, n_dates, config)
    if rule == "kmeans_sweep":
        lo, hi = config["kmeans"]["k_range"]
        u *= int(hi) - int(lo) + 1
    return u


# DSC holds the series of every distinct point its training patches touch (read, centred, with
# the empty row, scaled for the device, hashed for the checkpoint): peak 3.4 times their float32
# bytes (make_patch_set, 200,000 points x 272 epochs, 100,000 training patches, 2026-11-30). The
# records (3,000 patches, time_stride 8) hold a few MB of them; the GPU settings of docs/dsc.md
# (400,000 patches, time_stride 1) hold nearly every point of a site at full resolution.
DSC_SERIES_COPIES = 4


def dsc_series_mb(n_points: float, n_epochs: float, config: Mapping) -> float:
    """Memory (MB) of the series DSC's training patches touch: at most P x P points a patch."""
    dsc = config["dsc"]
    touched = min(n_points, min(n_points, dsc["train_sample"]) * int(dsc.get("patch_size", 9)) ** 2)
    steps = math.ceil(n_epochs / max(int(dsc.get("time_stride", 8)), 1))
    return DSC_SERIES_COPIES * touched * steps * 4 / 2**20


def request(rule: str, n_points: float, n_epochs: float, n_dates: float, config: Mapping,
            attempt: int = 1, n_parts: int = 1) -> dict:
    """``{"mem_mb": int, "runtime": int minutes}`` for one job (x ``attempt`` on retries)."""
    cost = costs()[rule]
    u = units(rule, n_points, n_epochs, n_dates, config, n_parts)
    minutes = max(MIN_RUNTIME_MIN, math.ceil(cost.seconds(u) * SAFETY["runtime"] / 60))
    mb = cost.mb(u, n_points, n_epochs) + (dsc_series_mb(n_points, n_epochs, config) if rule == "dsc" else 0.0)
    mem = max(MIN_MEM_MB, math.ceil(mb * SAFETY["mem_mb"]) + JOB_PROCESS_MB)
    return {"mem_mb": int(mem * attempt), "runtime": int(minutes * attempt)}


# --------------------------------------------------------------------------- #
# the site's size


@dataclass(frozen=True)
class SiteSize:
    n_points: int
    n_dates: int     # acquisition dates (CSV date columns)
    n_epochs: int    # regular-grid epochs


def _gzip_bytes(raw, compressed: int) -> tuple[int, bytes]:
    """Uncompressed size of a gzip stream of ``compressed`` bytes and its first megabyte: the
    compression ratio of the first 4 MB stands for the whole stream."""
    gz = gzip.GzipFile(fileobj=raw)
    head = gz.read(4 << 20)
    ratio = len(head) / max(raw.tell(), 1)
    return int(compressed * ratio), head[: 1 << 20]


def _uncompressed_bytes(path: Path) -> tuple[int, bytes]:
    """Uncompressed size of a CSV (plain, gzip, zip of .csv or .csv.gz members) and its first
    megabyte. Containers are known by their content (or a .zip name), as the shards stage reads
    them: a .GZ or a gzip saved as .csv is no plain file."""
    from .readers import is_gzip, is_zip, zip_csv_members

    if is_zip(path):
        with zipfile.ZipFile(path) as zf:
            total, head = 0, b""
            for name in zip_csv_members(zf.namelist()):
                member = zf.getinfo(name)
                if name.lower().endswith(".gz"):
                    with zf.open(member) as fh:
                        size, first = _gzip_bytes(fh, member.file_size)   # the member holds the gzip bytes
                else:
                    size, first = member.file_size, b""
                    if not head:
                        with zf.open(member) as fh:
                            first = fh.read(1 << 20)
                total += size
                head = head or first
        return total, head
    if is_gzip(path):
        with open(path, "rb") as raw:
            return _gzip_bytes(raw, path.stat().st_size)
    with open(path, "rb") as fh:
        return path.stat().st_size, fh.read(1 << 20)


GUESSED_EPOCHS = 270                     # when the header cannot be read
GUESSED_ROW_BYTES = GUESSED_EPOCHS * 8


def _on_disk_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def estimate_site(files, date_pattern: str, step_days: int = 6, delimiter: str = ",") -> SiteSize:
    """Points, dates and regular epochs of CSV exports, from their header and size."""
    import re

    from .dates import parse_date

    pattern = re.compile(date_pattern)
    points, dates = 0.0, set()
    for f in files:
        try:
            size, head = _uncompressed_bytes(Path(f))
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            # an unreadable file gets its on-disk size as a guess; shards reports the fault itself
            log.debug("cannot size %s (%s); guessing from its bytes", f, exc)
            size, head = _on_disk_bytes(Path(f)), b""
        lines = io.BytesIO(head).read().decode("utf-8", "replace").splitlines()
        if not lines:
            points += size / GUESSED_ROW_BYTES
            continue
        # the shards stage's header reading: quoted names ("20200101") and a byte-order mark
        header = next(csv.reader([lines[0].lstrip("\ufeff")], delimiter=delimiter), [])
        for col in header:
            m = pattern.match(col.strip())
            if m:
                try:
                    dates.add(parse_date(m.group(1) if m.groups() else m.group(0)))
                except ValueError:
                    pass
        body = lines[1:-1] or lines[1:]
        row_bytes = (sum(len(x) + 1 for x in body) / len(body)) if body else max(size, 1)
        points += max(size - len(lines[0]) - 1, 0) / row_bytes
    if not dates:      # no header to read: assume a ~4.5-year archive
        return SiteSize(max(int(points), 1), GUESSED_EPOCHS, GUESSED_EPOCHS)
    epochs = (max(dates) - min(dates)) // step_days + 1
    return SiteSize(max(int(points), 1), len(dates), int(epochs))


def shards_size(path) -> SiteSize:
    """The size of a built ``shards.h5`` (its attributes and date axes only)."""
    import h5py

    with h5py.File(path, "r") as f:
        return SiteSize(int(f.attrs["n_points"]), len(f["series/dates"]), len(f["series/grid_dates"]))


def site_size(site: str, source, fmt: Mapping, config: Mapping, sites_path="config/sites.tsv",
              results="results", track: str | None = None) -> SiteSize:
    """A site's size for its requests: from ``shards.h5`` when built, else from its input files
    (a demo site: from the demo settings; one ``track`` of a pair: from its files; a pair: the
    mean points per track, the longer track's dates)."""
    from .sites import source_files, track_files

    built = Path(results) / site / "shards.h5"
    if track is None and built.exists():
        try:
            return shards_size(built)
        except (OSError, KeyError):
            pass
    step = int(config["shards"]["grid_step_days"])
    if source.is_demo:
        from .demo import PRESETS, acquisition_dates

        demo = config["demo"]
        dates = acquisition_dates(demo["start"], demo["years"], PRESETS[source.preset])
        return SiteSize(int(demo["n_points"]), len(dates), int((dates[-1] - dates[0]) // step + 1))
    if source.kind == "pair":
        tracks = [track] if track else ["asc", "desc"]
        sizes = [estimate_site(track_files(site, source, t, sites_path), fmt["date_pattern"], step,
                               fmt.get("delimiter", ",")) for t in tracks]
        return SiteSize(max(1, round(sum(s.n_points for s in sizes) / len(sizes))),
                        max(s.n_dates for s in sizes), max(s.n_epochs for s in sizes))
    return estimate_site(source_files(site, source, sites_path), fmt["date_pattern"], step,
                         fmt.get("delimiter", ","))
