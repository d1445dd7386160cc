"""Space-time patches: each point's P x P neighbourhood over the regular time grid.

A patch is a square of P x P cells of ``cell_size_m`` centred on a point and
aligned east/north on the local tangent plane. Each cell holds the regular
series of the point nearest to the cell centre among the points inside the
cell, or nothing (an *empty* cell, index -1). The centre cell is always the
point itself. A second channel marks valid cells, so the network can tell an
empty cell from a cell that does not move.

Positions are handled as Earth-centred (ECEF) vectors on a sphere so the same
code holds from a city block to a whole country: a k-d tree on ECEF
coordinates finds neighbours by chord distance (equal to the great-circle
distance to 1 mm over a few km), and cell centres are offsets along each
point's local east and north unit vectors.

Memory: the k-d tree and coordinates are O(N); patch indices and series are
only ever built for the rows at hand (a training sample or one block).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from scipy.spatial import cKDTree

from .. import h5io
from ..geodesy import ecef_m

EMPTY = -1


def east_north(lat_deg: np.ndarray, lon_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local east and north unit vectors, (n, 3) each."""
    phi, lam = np.radians(lat_deg), np.radians(lon_deg)
    east = np.stack([-np.sin(lam), np.cos(lam), np.zeros_like(lam)], axis=1)
    north = np.stack([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)], axis=1)
    return east, north


def median_spacing_m(lat_deg: np.ndarray, lon_deg: np.ndarray, sample: int = 20000, seed: int = 0) -> float:
    """Median distance (m) from a point to the nearest other position (seeded sample).

    Used as the automatic cell size. Points sharing a position (several
    scatterers on one building in EGMS L2a, or rounded coordinates) count once
    as a position: the spacing is that of the distinct positions, which every
    sampled point is measured to.
    """
    xyz = ecef_m(lat_deg, lon_deg)
    tree = cKDTree(np.unique(xyz, axis=0))
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(xyz), size=min(sample, len(xyz)), replace=False)
    # the nearest position is the point's own (distance 0); the second the nearest other one
    dist, _ = tree.query(xyz[rows], k=2)
    nearest = dist[:, 1]
    nearest = nearest[np.isfinite(nearest) & (nearest > 0)]
    if len(nearest) == 0:
        raise ValueError("cannot derive a patch cell size: all points share one position; "
                         "set dsc.cell_size_m explicitly")
    return float(np.median(nearest))


class PatchIndexer:
    """Patch index of point rows: ``index(rows) -> (n, P, P)`` int64, -1 = empty cell.

    ``lat``/``lon`` (N,) degrees WGS84; ``patch_size`` P (odd keeps the point
    at the centre; even P puts it in the cell right/below of the middle);
    ``cell_size_m`` the cell edge in metres. Row 0 of a patch is the northern
    edge, column 0 the western edge (image convention).
    """

    def __init__(self, lat: np.ndarray, lon: np.ndarray, patch_size: int, cell_size_m: float,
                 query_chunk: int = 262144):
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        if not cell_size_m > 0:
            raise ValueError(f"cell_size_m must be > 0, got {cell_size_m}")
        self.lat = np.asarray(lat, dtype=np.float64)
        self.lon = np.asarray(lon, dtype=np.float64)
        self.patch_size = int(patch_size)
        self.cell_size_m = float(cell_size_m)
        self.query_chunk = query_chunk
        self.xyz = ecef_m(self.lat, self.lon)
        self.tree = cKDTree(self.xyz)
        P, c = self.patch_size, self.patch_size // 2
        steps = np.arange(P) - c
        # (P, P) east/north offsets of the cell centres from the point, metres.
        self.offset_east_m = np.broadcast_to(steps[None, :] * self.cell_size_m, (P, P)).copy()
        self.offset_north_m = np.broadcast_to(-steps[:, None] * self.cell_size_m, (P, P)).copy()

    @property
    def n_points(self) -> int:
        return len(self.xyz)

    def index(self, rows: np.ndarray) -> np.ndarray:
        """(n, P, P) int64 point rows of each cell of the patches of ``rows``; -1 = empty."""
        rows = np.asarray(rows, dtype=np.int64)
        P = self.patch_size
        n = len(rows)
        out = np.full((n, P * P), EMPTY, dtype=np.int64)
        off_e, off_n = self.offset_east_m.ravel(), self.offset_north_m.ravel()
        per_chunk = max(1, self.query_chunk // (P * P))
        for s in range(0, n, per_chunk):
            r = rows[s:s + per_chunk]
            east, north = east_north(self.lat[r], self.lon[r])
            centres = (self.xyz[r][:, None, :] + off_e[None, :, None] * east[:, None, :]
                       + off_n[None, :, None] * north[:, None, :]).reshape(-1, 3)
            chosen = np.full(len(centres), EMPTY, dtype=np.int64)
            todo = np.arange(len(centres))
            e_rep, n_rep = np.repeat(east, P * P, axis=0), np.repeat(north, P * P, axis=0)
            k = 4
            while len(todo):
                picked, undecided = self._nearest_inside(centres[todo], e_rep[todo], n_rep[todo], k)
                chosen[todo] = picked
                # all k candidates lay in the cell's circle, none in its square: a nearer-than-
                # the-corner point may still be inside, so ask for more candidates
                todo, k = todo[undecided], 4 * k
            out[s:s + len(r)] = chosen.reshape(len(r), P * P)
        out = out.reshape(n, P, P)
        c = P // 2
        out[:, c, c] = rows  # the point itself, even where a twin shares its position
        return out

    def _nearest_inside(self, centres, east, north, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per cell centre (m, 3): the nearest of its ``k`` nearest points that lies inside the
        square cell (EMPTY if none), and whether that is undecided (all ``k`` lay in the
        circle around the cell, none in the square, and the tree holds more points)."""
        half = self.cell_size_m / 2
        # Candidates inside the circle circumscribing a cell; a few nearest are
        # usually enough to find the nearest one that lies inside the square.
        radius = half * np.sqrt(2.0) * (1 + 1e-9)
        k = min(k, self.n_points)
        dist, idx = self.tree.query(centres, k=k, distance_upper_bound=radius)
        dist, idx = dist.reshape(len(centres), k), idx.reshape(len(centres), k)
        found = np.isfinite(dist)
        safe = np.where(found, idx, 0)
        delta = self.xyz[safe] - centres[:, None, :]  # (m, k, 3)
        inside = (found & (np.abs((delta * east[:, None, :]).sum(-1)) <= half)
                  & (np.abs((delta * north[:, None, :]).sum(-1)) <= half))
        first = np.argmax(inside, axis=1)
        has = inside[np.arange(len(first)), first]
        picked = np.where(has, safe[np.arange(len(first)), first], EMPTY)
        undecided = ~has & found[:, -1] & (k < self.n_points)
        return picked, undecided

    def distances_m(self, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
        """(n, P, P) float32 metres from each point to the point in each cell; NaN = empty."""
        rows = np.asarray(rows, dtype=np.int64)
        safe = np.where(index >= 0, index, 0)
        d = np.linalg.norm(self.xyz[safe] - self.xyz[rows][:, None, None, :], axis=-1)
        return np.where(index >= 0, d, np.nan).astype(np.float32)


def stride_time(series: np.ndarray, stride: int) -> np.ndarray:
    """Average consecutive windows of ``stride`` epochs: (n, G) -> (n, ceil(G / stride)).

    Averaging (rather than picking every n-th epoch) also lowers the noise of
    each step; the last window may be shorter.
    """
    series = np.asarray(series, dtype=np.float32)
    if stride <= 1:
        return series
    n, G = series.shape
    T = -(-G // stride)
    pad = T * stride - G
    if pad:
        padded = np.concatenate([series, np.full((n, pad), np.nan, np.float32)], axis=1)
    else:
        padded = series
    windows = padded.reshape(n, T, stride)
    counts = np.isfinite(windows).sum(-1)
    return (np.nansum(windows, axis=-1) / np.maximum(counts, 1)).astype(np.float32)


class PointSeries:
    """Coordinates and regular series of N points, read by rows.

    ``lat``, ``lon`` (N,) degrees; ``read_rows(rows) -> (n, G) float32`` mm;
    ``grid_dates`` (G,) days since 1970-01-01; ``offsets`` (M+1,) shard bounds
    (blocks never cross them, so reads stay within a few HDF5 chunks).
    """

    def __init__(self, lat, lon, read_rows: Callable[[np.ndarray], np.ndarray], grid_dates,
                 offsets=None):
        self.lat = np.asarray(lat, dtype=np.float64)
        self.lon = np.asarray(lon, dtype=np.float64)
        self._read_rows = read_rows
        self.grid_dates = np.asarray(grid_dates)
        self.n_points = len(self.lat)
        self.offsets = (np.asarray(offsets, dtype=np.int64) if offsets is not None
                        else np.array([0, self.n_points], dtype=np.int64))

    @property
    def n_grid(self) -> int:
        return len(self.grid_dates)

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self._read_rows(np.asarray(rows, dtype=np.int64)), dtype=np.float32)

    def blocks(self, block_rows: int) -> Iterator[tuple[int, int]]:
        """(start, stop) row ranges of at most ``block_rows`` that stay inside one shard."""
        for a, b in zip(self.offsets[:-1], self.offsets[1:]):
            for s in range(int(a), int(b), block_rows):
                yield s, min(int(b), s + block_rows)

    @classmethod
    def from_arrays(cls, lat, lon, regular, grid_dates=None) -> "PointSeries":
        regular = np.asarray(regular, dtype=np.float32)
        bad = ~np.isfinite(regular)
        if bad.any():
            # a NaN reached every patch holding the point (NaN probabilities, label 0), or was
            # averaged away by the time stride: either way without a word
            r, t = (int(v[0]) for v in np.nonzero(bad))
            raise ValueError(f"regular series must be finite: row {r}, epoch {t} is {regular[r, t]} "
                             "(resample gaps first, as the shards stage does)")
        if grid_dates is None:
            grid_dates = np.arange(regular.shape[1], dtype=np.int32)
        return cls(lat, lon, lambda rows: regular[rows], grid_dates)

    @classmethod
    def from_shards(cls, path) -> "PointSeries":
        shards = h5io.Shards(path)
        lat, lon = shards.coords()
        return cls(lat, lon, lambda rows: shards.read_rows("series/regular", rows),
                   shards.grid_dates, shards.offsets)


@dataclass
class PatchSet:
    """Patches of ``rows`` in compact form: a gather away from a batch.

    ``series`` (U + 1, T) float32 centred series (mm) of the U distinct points
    the patches refer to, plus a last all-zero row for empty cells;
    ``index`` (n, P, P) int64 rows of ``series`` (U = empty);
    ``distance_m`` (n, P * P) float32 point-to-cell-point distances (NaN = empty);
    ``rows`` (n,) the patch centres' point rows.
    """

    rows: np.ndarray
    index: np.ndarray
    series: np.ndarray
    distance_m: np.ndarray

    @property
    def n_steps(self) -> int:
        return self.series.shape[1]

    @property
    def empty_row(self) -> int:
        return len(self.series) - 1

    def filled_cells(self) -> np.ndarray:
        """(n,) int64 cells of each patch that hold a point, the centre (the point itself)
        included: 1 = the patch holds its point alone."""
        return np.count_nonzero((self.index != self.empty_row).reshape(len(self.index), -1), axis=1)


def make_patch_set(points: PointSeries, indexer: PatchIndexer, rows: np.ndarray,
                   time_stride: int = 1) -> PatchSet:
    """Build the compact patches of ``rows``: one read of every distinct point they touch.

    Each cell's series is centred on its own mean: displacements are relative
    to an arbitrary reference, so offsets carry no regime information.
    """
    rows = np.asarray(rows, dtype=np.int64)
    point_index = indexer.index(rows)
    distance = indexer.distances_m(rows, point_index).reshape(len(rows), -1)
    used, inverse = np.unique(point_index, return_inverse=True)
    has_empty = used[0] == EMPTY if len(used) else False
    real = used[1:] if has_empty else used
    series = stride_time(points.read_rows(real), time_stride)
    series = series - series.mean(axis=1, keepdims=True)
    series = np.concatenate([series, np.zeros((1, series.shape[1]), np.float32)])
    compact = inverse.reshape(point_index.shape) - (1 if has_empty else 0)
    compact = np.where(point_index == EMPTY, len(real), compact)
    return PatchSet(rows=rows, index=compact.astype(np.int64), series=series.astype(np.float32),
                    distance_m=distance)


def gather_patches(series: torch.Tensor, index: torch.Tensor, empty_row: int) -> torch.Tensor:
    """Batch tensor (n, T, 2, P, P): channel 0 the series, channel 1 the validity mask.

    ``series`` (U + 1, T) on the target device; ``index`` (n, P, P) long.
    """
    values = series[index]  # (n, P, P, T)
    valid = (index != empty_row).to(series.dtype)
    values = values.permute(0, 3, 1, 2)  # (n, T, P, P)
    mask = valid.unsqueeze(1).expand_as(values)
    return torch.stack([values, mask], dim=2)
