"""Memory and run-time requests of the rules, from a cost model fitted to measurements.

A SLURM job that asks for too little is killed at its limit and retried; one
that asks for far too much waits longer in the queue. Each rule's cost is
modelled from the site's size (N points, T regular epochs, the CSV's date
columns D) with coefficients measured by ``bench/site.py`` on the 2-core
development machine (:data:`MEASURED`; the command, date and CPU are in
docs/cluster.md), and every request is the modelled cost times a safety
factor (:data:`SAFETY`): time for slower nodes and shared file systems,
memory for the allocator's slack. The site size comes from ``shards.h5``
once it exists and, before, from the CSV header (date columns) and the
files' uncompressed size (:func:`estimate_site`).
"""
from __future__ import annotations

import gzip
import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

# Requests are the measured cost times these: runtime x3 (nodes slower than the
# development machine, busy file systems), memory x1.5 (allocator slack, page cache).
SAFETY = {"runtime": 3.0, "mem_mb": 1.5}
# Never ask for less than this (scheduler granularity, interpreter start-up).
MIN_RUNTIME_MIN = 5
MIN_MEM_MB = 1000


@dataclass(frozen=True)
class Cost:
    """Cost of one job: ``a + b * units`` seconds and ``c + d * units`` MB peak RSS.

    ``units`` is what the rule's work scales with (:func:`units`): points,
    point-epochs, or the epochs of a fixed-size sample.
    """

    scale: str            # points | point_epochs | point_dates | sample_epochs | dsc
    seconds_base: float
    seconds_per_unit: float
    mb_base: float
    mb_per_unit: float

    def seconds(self, units: float) -> float:
        return self.seconds_base + self.seconds_per_unit * units

    def mb(self, units: float) -> float:
        return self.mb_base + self.mb_per_unit * units


# Fitted by bench/site.py (see docs/cluster.md); per job, 2 threads.
MEASURED: dict[str, Cost] = {}


def units(rule: str, n_points: float, n_epochs: float, n_dates: float, config: Mapping,
          n_parts: int = 1) -> float:
    """The amount of work of one job of ``rule`` on a site of this size."""
    scale = MEASURED[rule].scale
    if scale == "points":
        return n_points
    if scale == "point_epochs":
        return n_points * n_epochs / (n_parts if rule == "embed_part" else 1)
    if scale == "point_dates":
        return n_points * n_dates
    if scale == "sample_epochs":
        return min(n_points, config["embed"]["fit_sample"]) * n_epochs
    if scale == "dsc":
        dsc = config["dsc"]
        epochs = dsc["pretrain_epochs"] + dsc["epochs"]
        return min(n_points, dsc["train_sample"]) * epochs * n_epochs + n_points * n_epochs
    raise ValueError(f"unknown cost scale {scale!r}")


def request(rule: str, n_points: float, n_epochs: float, n_dates: float, config: Mapping,
            attempt: int = 1, n_parts: int = 1) -> dict:
    """``{"mem_mb": int, "runtime": int minutes}`` for one job (x ``attempt`` on retries)."""
    cost = MEASURED[rule]
    u = units(rule, n_points, n_epochs, n_dates, config, n_parts)
    minutes = max(MIN_RUNTIME_MIN, math.ceil(cost.seconds(u) * SAFETY["runtime"] / 60))
    mem = max(MIN_MEM_MB, math.ceil(cost.mb(u) * SAFETY["mem_mb"]))
    return {"mem_mb": int(mem * attempt), "runtime": int(minutes * attempt)}


# --------------------------------------------------------------------------- #
# the site's size


@dataclass(frozen=True)
class SiteSize:
    n_points: int
    n_dates: int     # acquisition dates (CSV date columns)
    n_epochs: int    # regular-grid epochs


def _uncompressed_bytes(path: Path) -> tuple[int, bytes]:
    """Uncompressed size of a CSV (plain, .gz, .zip) and its first megabyte."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if i.filename.lower().endswith((".csv", ".csv.gz"))]
            total = sum(i.file_size for i in members)
            head = zf.open(members[0]).read(1 << 20) if members else b""
        return total, head
    if path.suffix == ".gz":
        # the compression ratio of the first 4 MB stands for the whole file
        with open(path, "rb") as raw:
            gz = gzip.GzipFile(fileobj=raw)
            head = gz.read(4 << 20)
            ratio = len(head) / max(raw.tell(), 1)
        return int(path.stat().st_size * ratio), head[: 1 << 20]
    with open(path, "rb") as fh:
        return path.stat().st_size, fh.read(1 << 20)


def estimate_site(files, date_pattern: str, step_days: int = 6, delimiter: str = ",") -> SiteSize:
    """Points, dates and regular epochs of CSV exports, from their header and size."""
    import re

    from .dates import parse_date

    pattern = re.compile(date_pattern)
    total, points, dates = 0, 0.0, set()
    for f in files:
        size, head = _uncompressed_bytes(Path(f))
        lines = io.BytesIO(head).read().decode("utf-8", "replace").splitlines()
        if not lines:
            continue
        header = lines[0].split(delimiter)
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
        total += size
    epochs = (max(dates) - min(dates)) // step_days + 1 if dates else 1
    return SiteSize(max(int(points), 1), len(dates), int(epochs))


def shards_size(path) -> SiteSize:
    """The size of a built ``shards.h5`` (its attributes and date axes only)."""
    import h5py

    with h5py.File(path, "r") as f:
        return SiteSize(int(f.attrs["n_points"]), len(f["series/dates"]), len(f["series/grid_dates"]))
