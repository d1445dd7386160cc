"""Stage ``decompose``: an ascending + a descending line-of-sight track -> vertical and east-west.

A radar track measures the projection of the ground motion (dE, dN, dU) on its
line of sight (LOS): ``d = e dE + n dN + u dU`` with ``(e, n, u)`` the unit
vector from the ground to the satellite. Two tracks that see the ground from
the west (ascending) and from the east (descending) give two equations per
place; the north-south term is neglected (both polar orbits see it at a
grazing angle, |n| < 0.2), as the EGMS Ortho (L3) product does, leaving::

    [d_asc ]   [u_asc  e_asc ] [dU]
    [d_desc] = [u_desc e_desc] [dE]

The two tracks' points are different scatterers at different dates, so both
are first resampled onto one grid:

* space: square cells of ``cell_size_m`` (default 100 m, like EGMS L3) in a
  projected CRS (default EPSG:3035, ETRS89-LAEA, also EGMS's): per cell and
  track, the mean LOS series and the mean LOS unit vector of its points;
  cells seen by one track only are dropped and counted;
* time: a regular grid of ``grid_step_days`` over the period both tracks
  cover; each track's regular series (``/series/regular`` of its own
  ``shards.h5``) is interpolated linearly onto it.

The result is a site of cells, written as a ``shards.h5`` like any other
(rows along the Hilbert curve of the cell centres, shards of ``shard_size``
cells), with two components: ``up`` in ``/series`` (what descriptors,
labels and baselines use) and ``east`` in ``/components/east``. Grid dates
that fall in a long acquisition gap (winter) of either track are left out of
``/series/dates`` and ``/series/displacement`` (the observed epochs) and
filled in ``/series/regular``, as the shards stage does; so are the grid
dates between two pairs of acquisitions (:func:`paired`), which the
descriptors would otherwise fit as data.

Beyond its observed span a point holds its first/last value (``shards``): a
cell counts as observed only where every point of both tracks is (its span),
and cells without a common observed date are dropped and counted. Spans that
miss the ends of a track's period by up to ``max_gap_days`` (a last
acquisition or two missing) are bridged like a gap between acquisitions.

Memory: per track the (N,) cell keys and LOS vectors (28 bytes a point) and spans (8), and
one shard of cells with the rows of their points at a time.
"""
from __future__ import annotations

import hashlib
import logging
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__, coords, h5io
from .errors import InputError
from .dates import days_to_iso, linear_trend_per_year
from .descriptors import observed_grid_mask, site_acquisition_dates
from .logs import Progress
from .ordering import spatial_keys
from .pair_checks import ANGLES, UNIT_TOLERANCE, check_geometry, check_noise, check_sides
from .requirements import SiteNeeds, check_site

log = logging.getLogger("insarclust.decompose")

COMPONENTS = ("up", "east")
# |det| of the 2x2 up/east system below this: too ill-conditioned to solve (asc + desc: ~0.9)
MIN_DETERMINANT = 0.2
# rows closer than this are read in one slab (one h5 chunk is 1,024 rows)
_RUN_GAP_ROWS = 1024


@dataclass
class DecomposeConfig:
    """Parameters of the stage (the ``decompose:`` config section, with ``shards.grid_step_days``
    and ``shards.shard_size`` for the cells' series)."""

    cell_size_m: float = 100.0
    crs: str = "EPSG:3035"
    grid_step_days: int = 6
    max_gap_days: float = 36.0
    min_points: int = 1
    shard_size: int = 16384
    # the tracks' typical epoch-to-epoch change differing by more than this stops; None: off
    max_noise_ratio: float | None = 5.0


# --------------------------------------------------------------------------- #
# one track



def los_unit_vectors(static: np.ndarray, names, path) -> tuple[np.ndarray, str]:
    """``(N, 3)`` float64 (east, north, up) LOS unit vectors of a track and where they came from.

    From the ``los_east``/``los_north``/``los_up`` static columns when present
    (north taken as 0 without ``los_north``), else from ``incidence_angle`` and
    ``track_angle`` (:func:`insarclust.coords.los_vector`). Raises InputError
    when neither is there.
    """
    names = list(names)
    col = {n: i for i, n in enumerate(names)}
    static = np.asarray(static, dtype=np.float64).reshape(len(static), len(names))
    if "los_east" in col and "los_up" in col:
        east, up = static[:, col["los_east"]], static[:, col["los_up"]]
        north = static[:, col["los_north"]] if "los_north" in col else np.zeros(len(static))
        return np.stack([east, north, up], axis=1), "los_east/los_north/los_up"
    if "incidence_angle" in col and "track_angle" in col:
        e, n, u = coords.los_vector(static[:, col["incidence_angle"]], static[:, col["track_angle"]])
        return np.stack([e, n, u], axis=1), ANGLES
    raise InputError(
        "the line-of-sight vectors are missing and cannot be derived: the track has neither "
        "los_east/los_up nor incidence_angle/track_angle static columns "
        f"(it has: {', '.join(names) or 'none'})", file=path,
        fix="add los_east, los_north, los_up (or incidence_angle and track_angle) to the static or "
            "optional_static columns of the site's format in config/formats.yaml; EGMS L2a/L2b "
            "files have them")


# Static columns of a decomposed pair's shards.h5 (after height, when the tracks have it).
PAIR_STATIC = ("mean_velocity_up", "mean_velocity_east")

@dataclass
class Track:
    """What the decomposition needs of one LOS ``shards.h5``, loaded once.

    ``key`` (N,) int64 cell of each point (-1: unusable point, e.g. no LOS
    vector), ``los`` (N, 3) unit vectors, ``height`` (N,) or None, ``first``,
    ``last`` (N,) int32 the dates between which a point is observed (the int32
    extremes where its span reaches, up to ``max_gap_days``, the end of the
    file's grid), plus the
    file's grid and observed dates.
    """

    name: str
    path: Path
    shards: h5io.Shards
    key: np.ndarray
    los: np.ndarray
    los_source: str
    height: np.ndarray | None
    n_unusable: int
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def load(cls, name: str, path, cfg: DecomposeConfig) -> "Track":
        shards = h5io.Shards(path)
        lat, lon = shards.coords()
        x, y = coords.from_wgs84(lat, lon, cfg.crs)
        i, j = coords.cell_index(x, y, cfg.cell_size_m)
        key = coords.cell_key(i, j)
        names = list(shards.static_names)
        # block by block: only the LOS vectors and heights are kept, not every static column
        los_blocks, heights = [], []
        for a, _, static in shards.iter_blocks("points/static", block_rows=1 << 18):
            block_los, source = los_unit_vectors(static, names, path)
            check_geometry(shards, a, static, names, block_los, source, name, path)
            los_blocks.append(block_los)
            if "height" in names:
                heights.append(static[:, names.index("height")].astype(np.float64))
        los = np.concatenate(los_blocks)
        norm = np.sqrt(np.sum(los ** 2, axis=1))
        bad = ~(np.isfinite(norm) & (np.abs(norm - 1.0) < UNIT_TOLERANCE)) | ~np.isfinite(x) | ~np.isfinite(y)
        if bad.all():
            raise InputError(f"no point of the {name} track has a valid line-of-sight unit vector "
                             f"(from {source})", file=path,
                             fix="check the LOS columns of the file (unit vectors, no empty values)")
        key = np.where(bad, -1, key)
        height = np.concatenate(heights) if heights else None
        span = np.concatenate([shards.spans(a, b) for a, b in shards.block_bounds(block_rows=1 << 18)])
        g, big = shards.grid_dates, np.iinfo(np.int32)
        first, last = g[span[:, 0]], g[span[:, 1]]
        first = np.where(first - g[0] > cfg.max_gap_days, first, big.min).astype(np.int32)
        last = np.where(g[-1] - last > cfg.max_gap_days, last, big.max).astype(np.int32)
        log.info("%s track %s: %d points, LOS from %s, mean LOS (E, N, U) = (%.2f, %.2f, %.2f)%s",
                 name, path, shards.n_points, source, *np.nanmean(los[~bad], axis=0),
                 f", {int(bad.sum())} without a valid LOS vector skipped" if bad.any() else "")
        return cls(name, Path(path), shards, key, los, source, height, int(bad.sum()), first, last)

    def observed_dates(self) -> np.ndarray:
        """Acquisition dates: the epochs observed in at least half of a sample of rows (a column
        kept empty for, e.g., winter is no acquisition)."""
        return site_acquisition_dates(self.shards)


# --------------------------------------------------------------------------- #
# time


def common_grid(a: Track, b: Track, step_days: int) -> np.ndarray:
    """Regular grid (G,) int32 over the period both tracks cover; InputError when they do not overlap."""
    first = max(int(a.shards.dates[0]), int(b.shards.dates[0]))
    last = min(int(a.shards.dates[-1]), int(b.shards.dates[-1]))
    if last - first < step_days:
        raise InputError(
            f"the two tracks do not overlap in time: {a.name} covers {days_to_iso(a.shards.dates[0])} to "
            f"{days_to_iso(a.shards.dates[-1])}, {b.name} {days_to_iso(b.shards.dates[0])} to "
            f"{days_to_iso(b.shards.dates[-1])}", file=f"{a.path} + {b.path}",
            fix="pair an ascending and a descending download of the same period")
    n = (last - first) // step_days + 1
    return (first + step_days * np.arange(n)).astype(np.int32)


def interpolation_matrix(src_dates: np.ndarray, dst_dates: np.ndarray) -> np.ndarray:
    """``W (G_src, G_dst)``: ``series @ W`` interpolates rows on ``src_dates`` linearly at ``dst_dates``
    (held constant outside). Two non-zeros per column."""
    src = np.asarray(src_dates, dtype=np.float64)
    dst = np.clip(np.asarray(dst_dates, dtype=np.float64), src[0], src[-1])
    hi = np.clip(np.searchsorted(src, dst, side="right"), 1, len(src) - 1) if len(src) > 1 else \
        np.zeros(len(dst), dtype=np.int64)
    W = np.zeros((len(src), len(dst)))
    if len(src) == 1:
        W[0] = 1.0
        return W
    lo = hi - 1
    frac = (dst - src[lo]) / (src[hi] - src[lo])
    cols = np.arange(len(dst))
    W[lo, cols] += 1.0 - frac
    W[hi, cols] += frac
    return W


def covered(grid: np.ndarray, acquisitions: np.ndarray, max_gap_days: float) -> np.ndarray:
    """(G,) bool: grid dates within the acquisitions' span and not inside a gap > ``max_gap_days``."""
    acq = np.asarray(acquisitions, dtype=np.int64)
    g = np.asarray(grid, dtype=np.int64)
    if len(acq) == 0:
        return np.zeros(len(g), dtype=bool)
    hi = np.clip(np.searchsorted(acq, g, side="left"), 0, len(acq) - 1)
    lo = np.clip(hi - 1, 0, len(acq) - 1)
    exact = acq[hi] == g
    gap = acq[hi] - acq[lo]
    inside = (g >= acq[0]) & (g <= acq[-1])
    return inside & (exact | (gap <= max_gap_days))


def paired(grid: np.ndarray, lead: np.ndarray, other: np.ndarray, step_days: float) -> np.ndarray:
    """(G,) bool: one grid date per pair of acquisitions, the nearest (within half a step) to an
    acquisition of ``lead`` that has an acquisition of ``other`` within one grid step.

    Between pairs the decomposed series only repeats its neighbours by interpolation (with a
    12-day revisit on the 6-day grid, every other date): counted as data they inflate the
    significance of every fitted step (:func:`insarclust.descriptors.observed_grid_mask`).
    ``lead`` is the track whose first date starts the grid, so its acquisitions fall on grid dates.
    """
    g = np.asarray(grid, dtype=np.float64)
    oth = np.unique(np.asarray(other, dtype=np.float64))
    if len(oth) == 0:
        return np.zeros(len(g), dtype=bool)
    nxt = np.clip(np.searchsorted(oth, g), 1, max(len(oth) - 1, 1))
    near = np.minimum(np.abs(oth[nxt - 1] - g), np.abs(oth[np.minimum(nxt, len(oth) - 1)] - g))
    return observed_grid_mask(g, lead, np.inf) & (near <= step_days)


# --------------------------------------------------------------------------- #
# the solve


def solve_up_east(los_a: np.ndarray, los_b: np.ndarray, d_a: np.ndarray, d_b: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Vertical and east-west motion ``(up, east)`` (C, G) from two LOS series per cell.

    ``los_a``, ``los_b`` (C, 3) unit vectors (east, north, up); ``d_a``, ``d_b``
    (C, G) LOS displacement. North-south is neglected. Cells whose two vectors
    are nearly parallel in the east-up plane (|det| < MIN_DETERMINANT) get NaN.
    """
    ea, ua = los_a[:, 0:1], los_a[:, 2:3]
    eb, ub = los_b[:, 0:1], los_b[:, 2:3]
    det = ua * eb - ea * ub
    ok = np.abs(det) >= MIN_DETERMINANT
    det = np.where(ok, det, np.nan)
    up = (eb * d_a - ea * d_b) / det
    east = (ua * d_b - ub * d_a) / det
    return up, east


def _cell_position(cells: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each point's cell in the sorted ``cells`` and whether it is there."""
    pos = np.clip(np.searchsorted(cells, key), 0, max(len(cells) - 1, 0))
    return pos, (cells[pos] == key) & (key >= 0) if len(cells) else np.zeros(len(key), dtype=bool)


def _solvable_cells(cells: np.ndarray, a: "Track", b: "Track") -> np.ndarray:
    """(C,) bool: the tracks' mean LOS vectors of each cell (sorted keys) look from opposite sides
    (east components of opposite sign) and the 2x2 up/east system is well conditioned."""
    mean = []
    for t in (a, b):
        pos, hit = _cell_position(cells, t.key)
        n = np.bincount(pos[hit], minlength=len(cells)).astype(np.float64)
        e = np.bincount(pos[hit], weights=t.los[hit, 0], minlength=len(cells)) / np.maximum(n, 1)
        u = np.bincount(pos[hit], weights=t.los[hit, 2], minlength=len(cells)) / np.maximum(n, 1)
        mean.append((e, u))
    (ea, ua), (eb, ub) = mean
    return (ea * eb < 0) & (np.abs(ua * eb - ea * ub) >= MIN_DETERMINANT)


def _cell_period(cells: np.ndarray, a: "Track", b: "Track") -> tuple[np.ndarray, np.ndarray]:
    """(C,) int32 first and last date at which every point of both tracks in each cell (sorted
    keys) is observed (first > last: never)."""
    big = np.iinfo(np.int32)
    first, last = np.full(len(cells), big.min, dtype=np.int32), np.full(len(cells), big.max, dtype=np.int32)
    for t in (a, b):
        pos, hit = _cell_position(cells, t.key)
        np.maximum.at(first, pos[hit], t.first[hit])
        np.minimum.at(last, pos[hit], t.last[hit])
    return first, last


def _cell_runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys of a sorted array and the start of each run."""
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return sorted_keys[starts], starts


def _read_rows(shards: h5io.Shards, dataset: str, rows: np.ndarray) -> np.ndarray:
    """Rows (sorted, unique) of a dataset, read as the few slabs they fall in."""
    if len(rows) == 0:
        return np.empty((0,) + (), dtype=np.float32)
    cut = np.flatnonzero(np.diff(rows) > _RUN_GAP_ROWS) + 1
    firsts = np.r_[0, cut]
    lasts = np.r_[cut, len(rows)]
    bounds = [(int(rows[f]), int(rows[l - 1]) + 1) for f, l in zip(firsts, lasts)]
    slabs = h5io.read_row_blocks(shards.path, dataset, bounds)
    return np.concatenate([slab[rows[f:l] - a] for (a, _), slab, f, l in zip(bounds, slabs, firsts, lasts)])


def decompose(asc_path, desc_path, out_path, site: str, cfg: DecomposeConfig | None = None,
              fmt_name: str = "", needs: SiteNeeds | None = None) -> dict:
    """Write the vertical/east-west site of cells of an ascending + descending pair; returns a summary.

    Raises InputError when the tracks do not overlap in space or time, see the
    ground from the same side (or the ascending one from the east: swapped, or geometry
    of another convention), or have no LOS vectors (and nothing derivable),
    and (``needs``: :func:`insarclust.requirements.site_needs`) when the cells
    and common dates are too few for the configured stages.
    """
    cfg = dataclasses.replace(cfg or DecomposeConfig())
    cfg.crs = coords.normalize_crs(cfg.crs)
    if not coords.is_projected(cfg.crs):
        raise InputError(f"decompose.crs {cfg.crs} is not a projected CRS", file="config/config.yaml",
                         fix="cells are squares in metres: use a projected CRS such as EPSG:3035")
    asc, desc = Track.load("ascending", asc_path, cfg), Track.load("descending", desc_path, cfg)
    grid = common_grid(asc, desc, cfg.grid_step_days)
    acq = {t.name: t.observed_dates() for t in (asc, desc)}
    lead, other = (asc, desc) if int(asc.shards.dates[0]) >= int(desc.shards.dates[0]) else (desc, asc)
    observed = covered(grid, acq["ascending"], cfg.max_gap_days) & \
        covered(grid, acq["descending"], cfg.max_gap_days) & \
        paired(grid, acq[lead.name], acq[other.name], cfg.grid_step_days)
    obs_idx = np.flatnonzero(observed)
    if len(obs_idx) == 0:
        raise InputError("the two tracks have no acquisition period in common (every common date falls "
                         f"in an acquisition gap longer than {cfg.max_gap_days:g} days of one of them, or "
                         f"is over {cfg.grid_step_days} days from every acquisition of one of them)",
                         file=f"{asc.path} + {desc.path}", fix="pair downloads of the same period")
    W = {t.name: interpolation_matrix(t.shards.grid_dates, grid) for t in (asc, desc)}

    # cells: those with at least min_points usable points of each track
    counts = {}
    for t in (asc, desc):
        keys, n = np.unique(t.key[t.key >= 0], return_counts=True)
        counts[t.name] = (keys[n >= cfg.min_points], keys, n)
    common = np.intersect1d(counts["ascending"][0], counts["descending"][0])
    both = np.intersect1d(counts["ascending"][1], counts["descending"][1])
    only = {t: int(len(np.setdiff1d(counts[t][1], both))) for t in counts}
    n_few = int(len(both) - len(common))
    if len(common) == 0 and len(both):
        raise InputError(
            f"no {cfg.cell_size_m:g} m cell holds {cfg.min_points} points of each track "
            f"(decompose.min_points; {len(both)} cells hold fewer)", file=f"{asc.path} + {desc.path}",
            fix="lower decompose.min_points or use larger cells (decompose.cell_size_m)")
    if len(common) == 0:
        raise InputError(
            f"the two tracks do not overlap in space: no {cfg.cell_size_m:g} m cell holds points of both "
            f"({len(counts['ascending'][1])} ascending and {len(counts['descending'][1])} descending cells)",
            file=f"{asc.path} + {desc.path}",
            fix="pair an ascending and a descending download of the same area (or use larger cells: "
                "decompose.cell_size_m)")
    # cells whose two mean LOS vectors are nearly parallel cannot be solved: dropped and counted
    solvable = _solvable_cells(common, asc, desc)
    n_degenerate = int((~solvable).sum())
    if not solvable.any():
        raise InputError(
            "the two tracks see the ground from the same side (their line-of-sight vectors are nearly "
            "parallel): a vertical/east-west decomposition needs one ascending and one descending track",
            file=f"{asc.path} + {desc.path}",
            fix="pair an ascending (track_angle about -10 deg, los_east < 0) with a descending "
                "(about 190 deg, los_east > 0) download")
    if n_degenerate:
        log.warning("%d cells whose two LOS vectors are nearly parallel dropped (not solvable)", n_degenerate)
    check_sides(asc, desc)
    check_noise(asc, desc, cfg.max_noise_ratio)
    common = common[solvable]
    # cells whose points of the two tracks are never observed at the same date: dropped and counted
    first, last = _cell_period(common, asc, desc)
    obs_dates = grid[obs_idx]
    together = np.searchsorted(obs_dates, last, side="right") > np.searchsorted(obs_dates, first, side="left")
    n_apart = int((~together).sum())
    if not together.any():
        raise InputError("no cell holds points of both tracks observed at the same dates (the points of "
                         "one track are observed in another period than those of the other)",
                         file=f"{asc.path} + {desc.path}", fix="pair downloads of the same period")
    if n_apart:
        log.warning("%d cells whose points of the two tracks are never observed at the same dates dropped",
                    n_apart)
    common, first, last = common[together], first[together], last[together]
    ci, cj = coords.cell_of_key(common)
    cx, cy = coords.cell_centre(ci, cj, cfg.cell_size_m)
    clat, clon = coords.to_wgs84(cx, cy, cfg.crs)
    order = np.argsort(spatial_keys(clat, clon), kind="stable")
    n_cells = len(common)
    if needs is not None:
        check_site(site, needs, n_points=n_cells, n_dates=len(obs_idx), n_grid=len(grid),
                   file=f"{asc.path} + {desc.path}", grid_step_days=cfg.grid_step_days)
    rank_of_cell = np.empty(n_cells, dtype=np.int64)   # common is key-sorted; rank = output position
    rank_of_cell[order] = np.arange(n_cells)
    ci, cj, cx, cy, clat, clon, first, last = (a[order] for a in (ci, cj, cx, cy, clat, clon, first, last))

    # per track: its points in solvable cells, sorted by the output rank of their cell
    plan = {}
    for t in (asc, desc):
        pos, hit = _cell_position(common, t.key)
        rows = np.flatnonzero(hit)
        rank = rank_of_cell[pos[rows]]
        by_rank = np.argsort(rank, kind="stable")
        plan[t.name] = (rows[by_rank], rank[by_rank])
    n_used = {t: int(len(plan[t][0])) for t in plan}

    S = int(cfg.shard_size)
    n_shards = -(-n_cells // S)
    has_height = asc.height is not None and desc.height is not None
    static_names = (["height"] if has_height else []) + list(PAIR_STATIC)
    sha = hashlib.sha256("".join(sorted(str(t.shards.attrs.get("source_sha256", ""))
                                        for t in (asc, desc))).encode()).hexdigest()
    attrs = {
        "site": site, "format": fmt_name or str(asc.shards.attrs.get("format", "")),
        "source_sha256": sha, "insarclust_version": __version__,
        "regularization": str(asc.shards.attrs.get("regularization", "linear")),
        "grid_step_days": int(cfg.grid_step_days), "n_dropped": 0,
        "decomposition": "ascending + descending LOS -> up, east (north-south neglected)",
        "cell_size_m": float(cfg.cell_size_m), "cell_crs": cfg.crs,
        "los_source_ascending": asc.los_source, "los_source_descending": desc.los_source,
        "n_points_ascending": asc.shards.n_points, "n_points_descending": desc.shards.n_points,
        "n_points_used_ascending": n_used["ascending"], "n_points_used_descending": n_used["descending"],
        "n_cells_ascending_only": only["ascending"], "n_cells_descending_only": only["descending"],
        "n_cells_too_few_points": n_few, "n_cells_not_solvable": n_degenerate, "n_cells_not_observed_together": n_apart,
    }
    read = [t.shards.attrs.get("max_abs_mm_read") for t in (asc, desc)]
    if all(r is not None for r in read):   # both tracks' largest reading, for a lowered shards.max_abs_mm
        attrs["max_abs_mm_read"] = float(max(read))
    log.info("%s: %d cells of %g m seen by both tracks (%d ascending-only, %d descending-only cells and %d "
             "with under %d points of a track dropped; %d of %d ascending and %d of %d descending points "
             "used); %d grid dates %s..%s every %d days, %d of them observed by both", site, n_cells,
             cfg.cell_size_m, only["ascending"], only["descending"], n_few, cfg.min_points,
             n_used["ascending"], asc.shards.n_points,
             n_used["descending"], desc.shards.n_points, len(grid), grid[0], grid[-1],
             cfg.grid_step_days, len(obs_idx))

    progress = Progress(log, n_shards, "shards of cells decomposed", every_s=0)
    with h5io.ShardsWriter(out_path, n_cells, grid[obs_idx], grid, static_names, attrs, crs=cfg.crs,
                           components=list(COMPONENTS)) as writer:
        for s in range(n_shards):
            c0, c1 = s * S, min(n_cells, (s + 1) * S)
            mean_los, mean_series, heights = {}, {}, {}
            for t in (asc, desc):
                by_rank, sorted_rank = plan[t.name]
                lo, hi = np.searchsorted(sorted_rank, [c0, c1])
                rows, ranks = by_rank[lo:hi], sorted_rank[lo:hi]
                # read in file order, then put back in cell order
                file_order = np.argsort(rows, kind="stable")
                series = np.empty((len(rows), len(t.shards.grid_dates)), dtype=np.float32)
                series[file_order] = _read_rows(t.shards, "series/regular", rows[file_order])
                _, starts = _cell_runs(ranks)
                n_pts = np.diff(np.r_[starts, len(ranks)])
                mean_series[t.name] = (np.add.reduceat(series.astype(np.float64), starts, axis=0)
                                       / n_pts[:, None]) @ W[t.name]
                mean_los[t.name] = np.add.reduceat(t.los[rows], starts, axis=0) / n_pts[:, None]
                if has_height:   # of the points that have one (a static column may hold NaN)
                    h = t.height[rows]
                    heights[t.name] = (np.add.reduceat(np.where(np.isfinite(h), h, 0.0), starts),
                                       np.add.reduceat(np.isfinite(h).astype(np.float64), starts))
            up, east = solve_up_east(mean_los["ascending"], mean_los["descending"],
                                     mean_series["ascending"], mean_series["descending"])
            # referenced to the first common date, as the services deliver series
            up -= up[:, :1]
            east -= east[:, :1]
            up32, east32 = up.astype(np.float32), east.astype(np.float32)
            # outside a cell's span some point holds its first/last value: not observed there
            apart = (grid[None, :] < first[c0:c1, None]) | (grid[None, :] > last[c0:c1, None])
            up[apart] = np.nan
            east[apart] = np.nan
            if has_height:
                (sum_a, n_a), (sum_d, n_d) = heights["ascending"], heights["descending"]
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean_a, mean_d = sum_a / n_a, sum_d / n_d
                static = [np.where(n_a == 0, mean_d, np.where(n_d == 0, mean_a, 0.5 * (mean_a + mean_d)))]
            else:
                static = []
            static += [linear_trend_per_year(up, grid), linear_trend_per_year(east, grid)]
            writer.write_series(c0, np.where(apart[:, obs_idx], np.float32(np.nan), up32[:, obs_idx]), up32)
            writer.write_component("east", c0, np.where(apart[:, obs_idx], np.float32(np.nan), east32[:, obs_idx]),
                                   east32)
            writer.write_points(coords.cell_names(ci[c0:c1], cj[c0:c1], cfg.cell_size_m),
                                clat[c0:c1], clon[c0:c1], np.stack(static, axis=1).astype(np.float32),
                                cx[c0:c1], cy[c0:c1])
            progress.update(1)
    summary = {"n_cells": n_cells, "n_shards": n_shards, "n_grid": len(grid), "n_dates": len(obs_idx),
               "n_cells_ascending_only": only["ascending"], "n_cells_descending_only": only["descending"],
               "n_cells_too_few_points": n_few, "n_points_used_ascending": n_used["ascending"], "n_points_used_descending": n_used["descending"],
               "n_cells_not_solvable": n_degenerate, "n_cells_not_observed_together": n_apart}
    log.info("%s: %s -> %s", site, summary, out_path)
    return summary
