"""Stage ``shards``: raw CSV export(s) -> spatially ordered, sharded ``shards.h5``.

One streaming pass over the CSV(s) and an external merge keep memory bounded
by the block and shard sizes, not by the catalogue:

1. *read*: each CSV block is parsed (pyarrow), validated (``block_checks``,
   ``unit_checks``), given Hilbert keys
   (``ordering.spatial_keys``, global frame, so no extent is needed up front),
   sorted by key and spilled to a temporary *run* on disk (``.npy`` files);
   only per-point keys and id hashes (16 bytes/point) stay in memory;
2. *plan*: duplicate ids are found from the hashes; the global order is the
   sort of (key, input position); shard ``s`` is global ranks
   ``[s*shard_size, (s+1)*shard_size)``;
3. *merge*: for each shard, the (contiguous) slice of every run that falls in
   it is read back, rows are put in rank order and resampled onto the regular
   grid, and the shard is appended to ``shards.h5``; a second thread
   assembles the next shards while one is written.

The output is written under a temporary name and renamed when complete
(``h5io.atomic_path``), and the temporary runs are always removed, so a bad
input leaves nothing behind.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .block_checks import check_values, validate_block
from .coords import normalize_crs
from .egms_tiles import TileCheck, site_component
from .errors import InputError
from .dates import days_to_iso
from .formats import Format, plan_columns
from .geodesy import haversine_m
from .h5io import ShardsWriter, partial_bytes, remove_stale_temporaries, temp_dir
from .logs import Progress
from .ordering import spatial_keys
from .readers import expand_inputs, iter_tables, locate_header, prefetch, read_header, to_block
from .regularize import regular_grid, regularize
from .requirements import SiteNeeds, check_site
from .unit_checks import UNIT_CHECK_MIN_POINTS, NoiseCheck, SpreadCheck, UnitCheck

log = logging.getLogger("insarclust.shards")


@dataclass
class ShardsConfig:
    """Parameters of the stage (the ``shards:`` config section; ``ransac.*`` as ``ransac_*``)."""

    shard_size: int = 16384
    read_block_mb: float = 64
    grid_step_days: int = 6
    method: str = "linear"
    ransac_n_trials: int = 50
    ransac_threshold_mm: float | None = None
    duplicates: str = "error"   # error | keep-first
    all_nan: str = "error"      # error | drop
    max_abs_mm: float | None = 10000.0   # plausibility bound of a displacement; None: finite only
    min_spread_mm: float | None = 0.5    # median spread of a file's series below this stops; None: off
    # the files of a site whose typical change between acquisitions differs more stop; None: off
    max_noise_ratio: float | None = 5.0
    seed: int = 0


@dataclass
class _Run:
    """One sorted block spilled to disk."""

    stem: Path
    n: int
    in_idx: np.ndarray  # (n,) global input positions, in key order
    fields: tuple = ("pid", "lat", "lon", "static", "disp")

    def save(self, **arrays):
        for name, arr in arrays.items():
            np.save(f"{self.stem}.{name}.npy", arr, allow_pickle=False)

    def read(self, name: str, lo: int, hi: int) -> np.ndarray:
        mm = np.load(f"{self.stem}.{name}.npy", mmap_mode="r")
        out = np.array(mm[lo:hi])
        del mm
        return out


@dataclass
class _Origin:
    """Where global input positions come from, for error messages."""

    starts: list = field(default_factory=list)   # global index of each block's first row
    labels: list = field(default_factory=list)
    first_rows: list = field(default_factory=list)
    dates: dict = field(default_factory=dict)    # label -> set of the file's date columns (days)
    headings: "_Headings" = field(default_factory=lambda: _Headings())
    units: UnitCheck = field(default_factory=UnitCheck)
    spread: SpreadCheck = field(default_factory=SpreadCheck)
    noise: NoiseCheck = field(default_factory=NoiseCheck)
    positions: list = field(default_factory=list)   # per file: position hashes of its rows, in file order
    tiles: TileCheck = field(default_factory=TileCheck)
    max_abs_mm: float = 0.0                      # largest |displacement| read, every row

    def add(self, start: int, label: str, first_row: int):
        self.starts.append(start)
        self.labels.append(label)
        self.first_rows.append(first_row)

    def where(self, idx: int) -> tuple[str, int]:
        b = int(np.searchsorted(self.starts, idx, side="right") - 1)
        return self.labels[b], self.first_rows[b] + (idx - self.starts[b])


def _sha256_files(paths, out: dict):
    """sha256 of the files one after the other (``sha256``), and of each (``files``: path,
    bytes, sha256), so that provenance need not read a large catalogue again."""
    h = hashlib.sha256()
    files = []
    for p in paths:
        one = hashlib.sha256()
        with open(p, "rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
                one.update(chunk)
        files.append({"path": str(Path(p).resolve()), "bytes": Path(p).stat().st_size, "sha256": one.hexdigest()})
    out["sha256"] = h.hexdigest()
    out["files"] = files


# A file whose dates cover less than this share of the site's period is logged: its points
# are held at their first/last value beyond it on the regular grid.
SHORT_FILE_SHARE = 0.8


def _log_file_periods(inputs, plans, dates) -> None:
    """Warn about files of a multi-file site that cover only part of its period (e.g. two
    releases of a product): the embedding and k-means see their points' held values there;
    the descriptors and the cluster mean series use each point's own span."""
    span = float(dates[-1] - dates[0])
    if len(inputs) < 2 or span <= 0:
        return
    for src, plan in zip(inputs, plans):
        first, last = min(plan.dates), max(plan.dates)
        share = (last - first) / span
        if share < SHORT_FILE_SHARE:
            log.warning("%s covers %s..%s, %.0f %% of the site's period %s..%s: its points are held at their "
                        "first/last value outside it on the regular grid (the embedding and k-means see those "
                        "values; descriptors and cluster mean series use each point's own span); a site of "
                        "files of one period each avoids that", src.label, days_to_iso(first), days_to_iso(last),
                        100 * share, days_to_iso(dates[0]), days_to_iso(dates[-1]))


@dataclass
class _Headings:
    """Points per file looking from an ascending or a descending orbit (from ``track_angle``,
    else ``los_east``): line-of-sight motions of the two are different projections of the
    ground motion, so a site that mixes them (a glob over a whole EGMS download) would
    cluster by orbit, not by motion."""

    counts: dict = field(default_factory=dict)   # label -> [ascending, descending]
    column: str | None = None

    def add(self, block, label: str, fmt: Format) -> None:
        names = list(fmt.static)
        if "track_angle" in names:    # heading: about -10 deg ascending, -170 (190) descending
            north = np.cos(np.radians(block.static[:, names.index("track_angle")]))
            asc, desc, self.column = north > 0, north < 0, "track_angle"
        elif "los_east" in names:     # the ground-to-satellite vector points west when looking east
            east = block.static[:, names.index("los_east")]
            asc, desc, self.column = east < 0, east > 0, "los_east"
        else:
            return
        c = self.counts.setdefault(label, [0, 0])
        c[0] += int(np.count_nonzero(asc))
        c[1] += int(np.count_nonzero(desc))

    def check(self, site: str, min_share: float = 0.005) -> None:
        asc = sum(c[0] for c in self.counts.values())
        desc = sum(c[1] for c in self.counts.values())
        if min(asc, desc) <= min_share * max(asc + desc, 1):
            return
        per_file = "; ".join(f"{label}: {a:,} ascending, {d:,} descending" for label, (a, d) in self.counts.items())
        raise InputError(f"site '{site}' mixes points of ascending and descending orbits ({per_file}); their "
                         "line-of-sight series are different projections of the same motion",
                         file=", ".join(self.counts), column=self.column,
                         fix="make one site per orbit direction (a source glob per track), or a pair site "
                             "'asc=<glob>;desc=<glob>' that decomposes them into vertical and east-west motion")


def _with_optional_columns(fmt: Format, plans) -> Format:
    """The format with the optional static columns present in every input file."""
    resolved = fmt.with_optional([p.header for p in plans])
    used = [c for c in resolved.static[len(fmt.static):] if c not in resolved.geometry]
    skipped = [c for c in (*fmt.optional_static, *fmt.geometry)
               if c not in resolved.static and c not in fmt.static]
    if used or resolved.geometry or skipped:
        log.info("optional static columns read: %s; geometry columns read: %s (kept in /points/static, "
                 "features only where embed.static_weight names them)%s", ", ".join(used) or "none",
                 ", ".join(resolved.geometry) or "none",
                 f"; not in every file, skipped: {', '.join(skipped)}" if skipped else "")
    return resolved


def _sort_key(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    # invalid coordinates get meaningless keys here and are reported by validate_block
    with np.errstate(all="ignore"):
        return spatial_keys(lat, lon)


def build_shards(paths, fmt: Format, out_path, site: str, cfg: ShardsConfig | None = None,
                 needs: SiteNeeds | None = None) -> dict:
    """Convert CSV file(s) of one site into ``shards.h5``; returns a summary dict.

    ``needs``: the minimum points/dates of the configuration
    (:func:`insarclust.requirements.site_needs`), checked before anything is written.
    """
    cfg = cfg or ShardsConfig()
    out_path = Path(out_path)
    inputs = expand_inputs(paths)
    component = site_component([s.label for s in inputs])
    if component:
        log.info("%s: the files are named after the EGMS L3 %s component", site, component)
    plans = []
    for src in inputs:
        header = read_header(src, fmt)
        try:
            plans.append(plan_columns(header, fmt, src.label))
        except InputError as err:   # lines above the header say so, not "missing columns"
            raise locate_header(src, fmt) or err from None
    fmt = _with_optional_columns(fmt, plans)
    dates = np.array(sorted({d for p in plans for d in p.dates}), dtype=np.int32)
    grid = regular_grid(dates, cfg.grid_step_days)
    log.info("%s: %d input stream(s), %d epochs %s..%s, grid of %d x %d days",
             site, len(inputs), len(dates), days_to_iso(dates[0]), days_to_iso(dates[-1]), len(grid),
             cfg.grid_step_days)
    if needs is not None:
        check_site(site, needs, n_dates=len(dates), n_grid=len(grid), grid_step_days=cfg.grid_step_days,
                   file=", ".join(s.label for s in inputs))
    _log_file_periods(inputs, plans, dates)

    digest: dict = {}
    hasher = threading.Thread(target=_sha256_files, args=(sorted({s.path for s in inputs}), digest))
    hasher.start()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_path)
    tmpdir = temp_dir(out_path, "runs")
    try:
        runs, keys, hashes, keep, origin = _spill_runs(inputs, plans, dates, grid, fmt, cfg, tmpdir)
        origin.headings.check(site)
        origin.noise.check(fmt, cfg.max_noise_ratio)
        _check_repeated_positions(runs, origin, hashes)
        if not keep.any():
            raise InputError(f"no usable point: all {len(keep)} rows have no displacement value and were "
                             "dropped (shards.all_nan: drop)", file=", ".join(s.label for s in inputs),
                             fix="check that the date columns hold the displacements (an export of "
                                 "another product, or a unit or delimiter problem, can leave them empty)")
        keep &= _resolve_duplicates(runs, hashes, keep, origin, fmt, cfg, dates)
        if needs is not None:
            check_site(site, needs, n_points=int(keep.sum()), file=", ".join(s.label for s in inputs))
        hasher.join()
        summary = _merge_runs(runs, keys, keep, dates, grid, fmt, cfg, out_path, site, digest,
                              max_abs_mm_read=origin.max_abs_mm, component=component)
    except BaseException:
        with contextlib.suppress(OSError):
            partial_bytes[f"{out_path} (sorted runs)"] = sum(
                f.stat().st_size for f in tmpdir.iterdir() if f.is_file())
        raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
        if hasher.is_alive():
            hasher.join()
    return summary


def _spill_runs(inputs, plans, dates, grid, fmt, cfg, tmpdir):
    runs, keys, hashes, keeps = [], [], [], []
    origin = _Origin()
    total = 0
    for src, plan in zip(inputs, plans):
        # the plan lists a file's date columns in date order, so its block columns
        # land in the site's date columns by one increasing index
        cols = np.searchsorted(dates, np.asarray(plan.dates, dtype=np.int32))
        origin.dates[src.label] = frozenset(plan.dates)
        all_dates = np.array_equal(cols, np.arange(len(dates)))
        n_file = 0
        file_positions = []
        # The reader thread only cuts and parses (pyarrow, all cores); this thread turns
        # each table into arrays already in key order, validates and spills them.
        scratch: dict = {}
        for first_row, table in prefetch(iter_tables(src, plan, fmt, int(cfg.read_block_mb * (1 << 20)))):
            block = to_block(table, first_row, plan, fmt, sort_by=_sort_key, scratch=scratch)
            del table
            n = len(block.lat)
            keep_sorted = validate_block(block, src, fmt, cfg)
            origin.max_abs_mm = max(origin.max_abs_mm, check_values(block, src, fmt, plan, cfg))
            origin.add(total, src.label, block.first_row)
            origin.headings.add(block, src.label, fmt)
            origin.units.add(block, src.label, fmt, plan.dates)
            if cfg.min_spread_mm is not None:   # null: no check, nothing to sample
                origin.spread.add(block, src.label)
            if cfg.max_noise_ratio is not None and len(inputs) > 1:
                origin.noise.add(block, src.label)
            if fmt.projected:
                origin.tiles.add(src.label, block.x, block.y, block.pid)
            if all_dates:
                disp = block.displacement
            else:
                disp = np.full((n, len(dates)), np.nan, dtype=np.float32)
                disp[:, cols] = block.displacement
            order = block.order
            run = _Run(tmpdir / f"run{len(runs):05d}", n, total + order.astype(np.int64))
            pid = np.asarray(block.pid, dtype=str)
            xy = {"x": block.x, "y": block.y} if fmt.projected else {}
            run.save(pid=pid, lat=block.lat, lon=block.lon, static=block.static, disp=disp, **xy)
            # per-point arrays of the plan are kept in file order
            keep = np.empty(n, dtype=bool)
            keep[order] = keep_sorted
            hashed = np.empty(n, dtype=np.uint64)
            ids = block.pid if block.pid_stripped is None else block.pid_stripped
            hashed[order] = pd.util.hash_array(ids, categorize=False)
            file_positions.append(_position_hashes(block, order))
            key = block.key
            runs.append(run)
            keys.append(key)
            hashes.append(hashed)
            keeps.append(keep)
            total += n
            n_file += n
            log.info("read %d rows (%s, %d so far)", n, src.label, total)
        if n_file == 0:
            raise InputError("the file has a header but no data rows", file=src.label,
                             fix="re-export the data or remove the file from the site's source")
        origin.units.check(src.label, fmt)
        origin.spread.check(src.label, fmt, cfg.min_spread_mm)
        origin.noise.end_file(src.label)
        origin.tiles.check(src.label, fmt.x, fmt.y, log)
        origin.positions.append(np.concatenate(file_positions))
    return (runs, np.concatenate(keys), np.concatenate(hashes), np.concatenate(keeps), origin)


def _pids_of(runs, indices: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
    """Point ids of the given global input positions, read back from the runs, and their
    ``(lat, lon)`` as an (m, 2) array over ``np.unique(indices)`` (the sorted positions: an
    array, not a dict of tuples, ~200 bytes less per row at a million repeats)."""
    wanted = np.unique(indices)
    out = {}
    where = np.full((len(wanted), 2), np.nan)
    for run in runs:
        hit = np.nonzero(np.isin(run.in_idx, wanted))[0]
        if len(hit):
            lo, hi = int(hit[0]), int(hit[-1]) + 1
            pids = run.read("pid", lo, hi)[hit - lo]
            at = np.searchsorted(wanted, run.in_idx[hit])
            where[at, 0] = run.read("lat", lo, hi)[hit - lo]
            where[at, 1] = run.read("lon", lo, hi)[hit - lo]
            out.update(zip(run.in_idx[hit].tolist(), pids.tolist()))
    return out, wanted, where


# A later file whose points sit, this share of them or more, at the very positions of an earlier
# file's points under other ids is the same points issued again (a second version of an export),
# not more ground: every point would be clustered twice.
REPEATED_POSITIONS_SHARE = 0.5


def _position_hashes(block, order: np.ndarray) -> np.ndarray:
    """uint64 hash of each point's exact (lat, lon) (x, y where projected), in file order."""
    a, b = (block.x, block.y) if block.x is not None else (block.lat, block.lon)
    out = np.empty(len(order), dtype=np.uint64)
    out[order] = (pd.util.hash_array(np.asarray(a, dtype=np.float64), categorize=False)
                  ^ (pd.util.hash_array(np.asarray(b, dtype=np.float64), categorize=False) * np.uint64(31)))
    return out


def _from_earlier_file(keys: np.ndarray, files: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row (global order): does an earlier file hold the same key, and the global index of the
    first row with that key. One sort of all rows, however many files."""
    order = np.lexsort((np.arange(len(keys)), files, keys))
    k = keys[order]
    run_start = np.maximum.accumulate(np.where(np.r_[True, k[1:] != k[:-1]], np.arange(len(k)), 0))
    earlier, first = np.empty(len(k), dtype=bool), np.empty(len(k), dtype=np.int64)
    earlier[order] = files[order] > files[order[run_start]]
    first[order] = order[run_start]
    return earlier, first


def _check_repeated_positions(runs, origin: _Origin, id_hashes: np.ndarray) -> None:
    """Stop on a file that repeats most of an earlier file's positions under other ids (the
    repeats of one id, a file given twice, are :func:`_resolve_duplicates`' part)."""
    if len(origin.positions) < 2:
        return
    positions = np.concatenate(origin.positions)   # global order, as id_hashes
    sizes = np.array([len(h) for h in origin.positions])
    files = np.repeat(np.arange(len(sizes)), sizes)
    at_earlier, first = _from_earlier_file(positions, files)
    repeated = at_earlier & ~_from_earlier_file(positions ^ (id_hashes * np.uint64(131)), files)[0]
    counts = np.bincount(files[repeated], minlength=len(sizes))
    bad = np.flatnonzero((counts >= UNIT_CHECK_MIN_POINTS) & (counts >= REPEATED_POSITIONS_SHARE * sizes))
    if not len(bad):
        return
    f = int(bad[0])
    n, size = int(counts[f]), int(sizes[f])
    later_idx = int(np.flatnonzero(repeated & (files == f))[0])
    first_idx = int(first[later_idx])
    pids, _, where = _pids_of(runs, np.array([first_idx, later_idx]))
    file_a, row_a = origin.where(first_idx)
    file_b, row_b = origin.where(later_idx)
    raise InputError(
        f"{n} of its {size} points ({n / size:.0%}) sit at the very positions of points of an earlier file "
        f"under other ids, e.g. '{pids[later_idx]}' (row {row_b}) at the position of '{pids[first_idx]}' of "
        f"{file_a} (row {row_a}), latitude {where[0, 0]:.6f}, longitude {where[0, 1]:.6f}: the same points "
        "issued again (another version of the export), which would be clustered twice", file=file_b,
        fix="keep one version of the export in the site's source (config/sites.tsv), or give the two versions "
            "to two sites")


# Repeats of one point (overlapping tiles, a file given twice) lie at one position; a repeated
# id farther apart than this names two points, and keep-first would drop one of them.
SAME_POINT_M = 100.0


def _resolve_duplicates(runs, hashes, keep, origin, fmt, cfg, dates=None) -> np.ndarray:
    """Mask of rows that survive duplicate-id handling (first occurrence wins).

    Only rows that passed validation (``keep``) count: a row dropped for
    having no data (``all_nan: drop``) neither wins nor makes a later row with
    the same id a repeat. Candidates come from equal 64-bit hashes; the ids
    themselves are then compared, so a hash collision never merges two points.
    """
    alive = np.flatnonzero(keep)
    order = alive[np.argsort(hashes[alive], kind="stable")]  # stable: equal hashes stay in input order
    h = hashes[order]
    same = np.nonzero(h[1:] == h[:-1])[0]
    result = np.ones(len(hashes), dtype=bool)
    if len(same) == 0:
        return result
    first = order[np.searchsorted(h, h[same + 1], side="left")]
    later = order[same + 1]
    by_input = np.argsort(later, kind="stable")
    first, later = first[by_input], later[by_input]
    pids, wanted, where = _pids_of(runs, np.concatenate([first, later]))
    pos_a, pos_b = where[np.searchsorted(wanted, first)], where[np.searchsorted(wanted, later)]
    distance = haversine_m(pos_a[:, 0], pos_a[:, 1], pos_b[:, 0], pos_b[:, 1])
    # keep-first: the epochs a repeat has and its first row lacks (a point's series split over
    # rows), and other values at the repeat's epochs (not one record twice)
    if cfg.duplicates != "error":
        extra, differs = _compare_repeats(runs, first, later)
    else:
        extra, differs = np.full(len(first), -1, dtype=np.int64), np.zeros(len(first), dtype=bool)
    for a, b, apart, more, other in zip(first.tolist(), later.tolist(), distance.tolist(), extra.tolist(),
                                        differs.tolist()):
        if pids[a].strip() != pids[b].strip():
            continue
        file_a, row_a = origin.where(a)
        file_b, row_b = origin.where(b)
        _check_not_split_by_date(pids[b], file_a, row_a, file_b, row_b, origin, fmt)
        if apart > SAME_POINT_M:   # also in error mode: its fix (keep-first) would drop a point
            (lat_a, lon_a), (lat_b, lon_b) = where[np.searchsorted(wanted, [a, b])].tolist()
            raise InputError(
                f"point id '{pids[b]}' is repeated at another position: first seen in {file_a} row {row_a} at "
                f"{lat_a:.5f}, {lon_a:.5f}, here at {lat_b:.5f}, {lon_b:.5f} ({apart / 1000:.3g} km apart): two "
                "points share the id (shards.duplicates: keep-first would drop this one)",
                file=file_b, row=row_b, column=fmt.id,
                fix="give the points unique ids (e.g. files whose ids restart at 1: prefix each file's ids "
                    "with its tile name), or make one site per file; keep-first drops only repeats of one "
                    f"point (within {SAME_POINT_M:g} m)")
        if more >= 0:
            when = f" ({days_to_iso(dates[more])}, ...)" if dates is not None else ""
            raise InputError(
                f"point id '{pids[b]}' is repeated with values at dates its first row lacks{when}: first seen in "
                f"{file_a} row {row_a}; the point's series is split over rows, and shards.duplicates: keep-first "
                "would drop this row's values", file=file_b, row=row_b, column=fmt.id,
                fix="join the rows of each point into one (every date column in one row per point)")
        if other:
            raise InputError(
                f"point id '{pids[b]}' is repeated with other values at the dates it holds: first seen in {file_a} row "
                f"{row_a}; the two rows are not one point's record, and shards.duplicates: keep-first would keep "
                "the first one's values only", file=file_b, row=row_b, column=fmt.id,
                fix="if the files hold different components of one product (EGMS L3 vertical and east-west share "
                    "their point ids), make one site per component; if they are two processings of one area, "
                    "keep one of them in the site's source")
        if cfg.duplicates == "error":
            same = "" if pids[a] == pids[b] else f" as {pids[a]!r} (the two differ only in surrounding spaces)"
            raise InputError(
                f"point id '{pids[b]}' is repeated: first seen{same} in {file_a} row {row_a}",
                file=file_b, row=row_b, column=fmt.id,
                fix="remove the repeated rows or overlapping files, or set shards.duplicates: "
                    "keep-first in config/config.yaml to keep the first occurrence"
                    + ("" if file_a == file_b else "; if the files hold different components of one "
                       "product (EGMS L3 vertical and east-west share their point ids), make one site "
                       "per component instead (keep-first keeps repeats of one record only)"))
        result[b] = False
    n_drop = int((~result).sum())
    if n_drop:
        log.warning("dropped %d rows whose point id was already seen (duplicates: keep-first)", n_drop)
    return result


# Rows read back at a time to compare repeated rows (bounds the memory of the rows read).
REPEAT_CHUNK = 16384


def _compare_repeats(runs, first: np.ndarray, later: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of rows ``first``/``later`` (a repeated id): the first date index where ``later``
    has a value and ``first`` has none (-1: none), and whether ``later`` holds other values than
    ``first`` at its dates (a 64-bit hash of each row's values; where ``later`` has fewer dates,
    of ``first``'s values at those dates, in a second pass over those pairs). Per row only a bit
    per date and the hash are kept."""
    uniq, inv = np.unique(np.concatenate([first, later]), return_inverse=True)
    observed = digest = None
    for at, values in _read_repeats(runs, uniq):
        if observed is None:
            observed = np.zeros((len(uniq), (values.shape[1] + 7) // 8), dtype=np.uint8)
            digest = np.zeros(len(uniq), dtype=np.uint64)
        finite = np.isfinite(values)
        observed[at] = np.packbits(finite, axis=1)
        digest[at] = _digest(values, finite)
    a, b = inv[:len(first)], inv[len(first):]
    more = observed[b] & ~observed[a]
    out = np.full(len(first), -1, dtype=np.int64)
    has = more.any(axis=1)
    if has.any():
        out[has] = np.argmax(np.unpackbits(more[has], axis=1), axis=1)
    same_dates = (observed[b] == observed[a]).all(axis=1)
    differs = same_dates & (digest[b] != digest[a])
    fewer = np.flatnonzero(~has & ~same_dates)      # later's dates are some of first's
    if len(fewer):
        rows, row_of = np.unique(first[fewer], return_inverse=True)
        restricted = np.zeros(len(fewer), dtype=np.uint64)
        in_block = np.full(len(rows), -1, dtype=np.int64)
        for at, values in _read_repeats(runs, rows):
            in_block[at] = np.arange(len(at))
            pairs = np.flatnonzero(in_block[row_of] >= 0)
            dates = np.unpackbits(observed[b[fewer[pairs]]], axis=1)[:, :values.shape[1]].astype(bool)
            restricted[pairs] = _digest(values[in_block[row_of[pairs]]], dates)
            in_block[at] = -1
        differs[fewer] = restricted != digest[b[fewer]]
    return out, differs


def _read_repeats(runs, wanted: np.ndarray):
    """Yield ``(at, values)``: the displacement rows of the sorted global input positions
    ``wanted`` held by each run, ``at`` their indices in ``wanted``, in blocks of
    :data:`REPEAT_CHUNK` rows."""
    for run in runs:
        hit = np.flatnonzero(np.isin(run.in_idx, wanted))
        if not len(hit):
            continue
        mm = np.load(f"{run.stem}.disp.npy", mmap_mode="r")
        pos = np.searchsorted(wanted, run.in_idx[hit])
        for lo in range(0, len(hit), REPEAT_CHUNK):
            rows = hit[lo:lo + REPEAT_CHUNK]
            yield pos[lo:lo + REPEAT_CHUNK], np.asarray(mm[rows], dtype=np.float32)
        del mm


def _digest(values: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """(n,) uint64 hash of each row's float32 ``values`` at its ``dates`` (n, T) bool: the sum of
    their bits times an odd multiplier per date, mod 2^64 (the same multipliers every call).
    -0.0 counts as 0.0 (one value, other bits: '-0.0' and '0.0' of two exports of one record)."""
    weights = np.random.default_rng(0).integers(1, 2 ** 63, values.shape[1], dtype=np.uint64) | np.uint64(1)
    bits = (np.where(dates, values, 0.0).astype(np.float32) + np.float32(0.0)).view(np.uint32).astype(np.uint64)
    return (bits * weights).sum(axis=1, dtype=np.uint64)


def _check_not_split_by_date(pid, file_a, row_a, file_b, row_b, origin, fmt) -> None:
    """A point repeated in a file with dates the first file lacks: the files are parts of one
    export split by date, and dropping the repeat (keep-first) would drop those epochs."""
    extra = sorted(origin.dates[file_b] - origin.dates[file_a])
    if not extra:
        return
    raise InputError(
        f"point id '{pid}' is repeated: first seen in {file_a} row {row_a}, whose date columns lack "
        f"{len(extra)} of this file's ({days_to_iso(extra[0])}{', ...' if len(extra) > 1 else ''}): the files "
        "look like parts of one export split by date, and a point's dates must all be in one row",
        file=file_b, row=row_b, column=fmt.id,
        fix="join the parts on the point id into one file (every date column in one row per point); "
            "shards.duplicates: keep-first would drop the repeated rows with their dates")


def _merge_runs(runs, keys, keep, dates, grid, fmt, cfg, out_path, site, digest: dict,
                max_abs_mm_read: float, component: str | None = None) -> dict:
    kept = np.nonzero(keep)[0]
    n = len(kept)   # > 0: build_shards stops before when nothing is kept
    order = kept[np.lexsort((kept, keys[kept]))]
    rank = np.full(len(keys), -1, dtype=np.int64)
    rank[order] = np.arange(n)
    del order
    run_ranks = []
    for run in runs:
        r = rank[run.in_idx]
        # dropped rows (-1) take the rank before them, so the run stays sorted for searchsorted
        run_ranks.append((r, np.maximum.accumulate(r)))
    del rank
    S = int(cfg.shard_size)
    n_shards = -(-n // S)
    attrs = {"site": site, "format": fmt.name, "source_sha256": digest["sha256"],
             "source_files": json.dumps(digest["files"]),
             "insarclust_version": __version__, "regularization": cfg.method,
             "grid_step_days": int(cfg.grid_step_days), "n_dropped": int(len(keys) - n),
             "geometry_columns": list(fmt.geometry),
             # the largest |displacement| of any row read (mm): a lowered shards.max_abs_mm is
             # checked against it without reading the CSV again
             "max_abs_mm_read": float(max_abs_mm_read)}

    def assemble(s: int, writer: ShardsWriter):
        """Shard ``s``: rows read back from the runs in rank order, resampled; its series are
        written here (any thread), its /points rows returned for writing in shard order."""
        start, stop = s * S, min(n, (s + 1) * S)
        m = stop - start
        pid = np.empty(m, dtype=object)
        lat = np.empty(m)
        lon = np.empty(m)
        static = np.empty((m, len(fmt.static)), dtype=np.float32)
        disp = np.empty((m, len(dates)), dtype=np.float32)
        xy = {"x": np.empty(m), "y": np.empty(m)} if fmt.projected else {}
        for run, (r, mono) in zip(runs, run_ranks):
            lo = int(np.searchsorted(mono, start, side="left"))
            hi = int(np.searchsorted(mono, stop, side="left"))
            if hi <= lo:
                continue
            sel = (r[lo:hi] >= start) & (r[lo:hi] < stop)
            dest = r[lo:hi][sel] - start
            pid[dest] = run.read("pid", lo, hi)[sel]
            lat[dest] = run.read("lat", lo, hi)[sel]
            lon[dest] = run.read("lon", lo, hi)[sel]
            static[dest] = run.read("static", lo, hi)[sel]
            disp[dest] = run.read("disp", lo, hi)[sel]
            for name, values in xy.items():
                values[dest] = run.read(name, lo, hi)[sel]
        # ransac draws from a per-shard seed; the row-wise methods ignore it.
        regular = regularize(disp, dates, grid, cfg.method, cfg.ransac_n_trials,
                             cfg.ransac_threshold_mm, seed=cfg.seed + s)
        writer.write_series(start, disp, regular)
        return (pid, lat, lon, static, *xy.values())

    progress = Progress(log, n_shards, "shards written", every_s=0)
    box = [np.inf, -np.inf, np.inf, -np.inf, np.inf, -np.inf]

    def write_points(points):
        """Write a shard's /points rows; track the site's extent for the log (swapped
        latitude/longitude columns put Norway in the Indian Ocean without another sign),
        with longitudes also counted 0-360 for a site astride the 180th meridian."""
        _, lat, lon = points[:3]
        if len(lat):
            east = np.mod(lon, 360.0)
            box[:] = [min(box[0], lat.min()), max(box[1], lat.max()), min(box[2], lon.min()), max(box[3], lon.max()),
                      min(box[4], east.min()), max(box[5], east.max())]
        writer.write_points(*points)
        progress.update(1)

    # an EGMS L3 site's component (its file names say it): the series' direction for the labels
    with ShardsWriter(out_path, n, dates, grid, list(fmt.static), attrs,
                      crs=normalize_crs(fmt.crs) if fmt.projected else None,
                      components=[component] if component else None) as writer:
        # Shards are assembled, resampled and their series written by two threads (numpy
        # and pwrite release the GIL); the small /points rows follow in shard order here.
        # At most a few shards run ahead of the one being written.
        with ThreadPoolExecutor(2) as pool:
            pending = collections.deque()
            for s in range(n_shards):
                pending.append(pool.submit(assemble, s, writer))
                if len(pending) >= 4:
                    write_points(pending.popleft().result())
            while pending:
                write_points(pending.popleft().result())
    # a site astride 180 degrees spans -180..180 as read: its extent is the narrower 0-360 one
    astride = box[5] - box[4] < box[3] - box[2]
    log.info("%s: %d points in %d shards -> %s; positions within latitude %.4f..%.4f, longitude %.4f..%.4f "
             "(WGS84%s)", site, n, n_shards, out_path, *box[:2], *(box[4:] if astride else box[2:4]),
             ", longitudes counted 0-360: the site lies astride the 180th meridian" if astride else "")
    return {"n_points": n, "n_shards": n_shards, "n_dates": len(dates), "n_grid": len(grid),
            "n_dropped": int(len(keys) - n)}
