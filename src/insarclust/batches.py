"""Row sources and seeded, shard-aligned mini-batch streams over them.

A *row source* is anything with ``n_rows``, ``n_features``, ``names``,
``read(start, stop) -> (n, D) float32`` and ``read_rows(rows)``; optionally
``shard_offsets`` (M+1,) and ``read_blocks(bounds)`` (many row ranges in one
file open). Sources:

- :class:`H5FeatureSource`: a ``features/{name}.h5`` file (``/X``);
- :class:`ShardsSource`: a dataset of ``shards.h5`` (e.g. the regular series);
- :class:`ArraySource`: an in-memory array (tests, small data);
- :class:`MapSource`: another source with a row-wise function applied per
  block (z-scoring, a fitted PCA ...), so derived features never hit the disk.

:func:`iter_batches` turns a source and a subset of its rows into
``(row_indices, X_batch)`` mini-batches. Reads go by small row *blocks* that
never cross a shard boundary (HDF5 chunk sized, contiguous on disk); with
``shuffle`` the block order is permuted and the rows of a buffer of blocks
(``buffer_rows``) are shuffled together, so memory is one buffer whatever N.
A buffer mixes blocks from all over the site, so any prefix of the stream
covers the whole area rather than one spatial tile.
"""
from __future__ import annotations

import os
from typing import Callable, Iterator, Sequence

import numpy as np

from . import h5io
from .errors import InputError

# Rows per read block: the HDF5 chunk height of the files we write, so a
# block is one contiguous chunk read.
BLOCK_ROWS = h5io.DEFAULT_CHUNK_ROWS
# Rows shuffled together: 65,536 x 64 float32 features = 16 MiB.
BUFFER_ROWS = 65536


class ArraySource:
    """An in-memory ``(N, D)`` array as a row source."""

    def __init__(self, X: np.ndarray, names: Sequence[str] | None = None,
                 shard_offsets: np.ndarray | None = None):
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        if self.X.ndim != 2:
            raise ValueError(f"ArraySource needs a 2-D array, got shape {self.X.shape}")
        self.n_rows, self.n_features = self.X.shape
        self.names = list(names) if names is not None else [f"x{j}" for j in range(self.n_features)]
        self.shard_offsets = None if shard_offsets is None else np.asarray(shard_offsets, np.int64)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.X[start:stop]

    def read_rows(self, rows) -> np.ndarray:
        return self.X[np.asarray(rows, dtype=np.int64)]

    def read_blocks(self, bounds) -> list[np.ndarray]:
        return [self.X[a:b] for a, b in bounds]


class H5FeatureSource:
    """``features/{name}.h5`` (``/X (N, D) float32``) as a row source.

    ``shard_offsets`` comes from the matching ``shards.h5`` (feature rows are
    in shard order); without it blocks are plain HDF5 chunks and a
    ``split="shard"`` k-means is not possible. ``finite``: check every row
    read (:func:`require_finite`); off by default, since a descriptor file
    holds NaN by design (``step_date`` where no step is found).
    """

    def __init__(self, path: str | os.PathLike, shard_offsets: np.ndarray | None = None,
                 finite: bool = False):
        self.path = path
        self.finite = bool(finite)
        self._features = h5io.Features(path)
        self.n_rows = int(self._features.n_rows)
        self.n_features = int(self._features.n_features)
        self.names = list(self._features.names)
        self.shard_offsets = None if shard_offsets is None else np.asarray(shard_offsets, np.int64)
        if self.shard_offsets is not None and int(self.shard_offsets[-1]) != self.n_rows:
            raise ValueError(f"{path}: {self.n_rows} feature rows but the shard offsets end at "
                             f"{int(self.shard_offsets[-1])}; features and shards.h5 are from different runs")

    def _checked(self, X: np.ndarray, rows) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return require_finite(X, rows, self) if self.finite else X

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self._checked(self._features.read(start, stop), start)

    def read_rows(self, rows) -> np.ndarray:
        return self._checked(self._features.read_rows(rows), np.asarray(rows))

    def read_blocks(self, bounds) -> list[np.ndarray]:
        return [self._checked(b, int(a)) for b, (a, _) in zip(h5io.read_row_blocks(self.path, "X", bounds), bounds)]


class ShardsSource:
    """A 2-D dataset of ``shards.h5`` (default ``series/regular``, (N, G) mm) as a row source.

    Feature names: ``day_<days since 1970-01-01>`` for the series datasets,
    the static column names for ``points/static``.
    """

    def __init__(self, shards_path: str | os.PathLike, dataset: str = "series/regular"):
        self.path = shards_path
        self.dataset = dataset
        self._shards = h5io.Shards(shards_path)
        self.n_rows = self._shards.n_points
        self.shard_offsets = np.asarray(self._shards.offsets, dtype=np.int64)
        if dataset == "series/regular":
            self.names = [f"day_{int(d)}" for d in self._shards.grid_dates]
        elif dataset == "series/displacement":
            self.names = [f"day_{int(d)}" for d in self._shards.dates]
        elif dataset == "points/static":
            self.names = list(self._shards.static_names)
        else:
            first = self._shards.read(dataset, 0, 1)
            self.names = [f"x{j}" for j in range(first.shape[1])]
        self.n_features = len(self.names)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return np.asarray(self._shards.read(self.dataset, start, stop), dtype=np.float32)

    def read_rows(self, rows) -> np.ndarray:
        return np.asarray(self._shards.read_rows(self.dataset, rows), dtype=np.float32)

    def read_blocks(self, bounds) -> list[np.ndarray]:
        return [np.asarray(b, dtype=np.float32)
                for b in h5io.read_row_blocks(self.path, self.dataset, bounds)]


class MapSource:
    """``fn`` applied to every block read from ``source``: ``fn((n, D) float32) -> (n, D')``.

    ``fn`` must be row-wise (a row's output depends on that row only), so the
    result does not depend on how rows are grouped into blocks.
    """

    def __init__(self, source, fn: Callable[[np.ndarray], np.ndarray],
                 names: Sequence[str] | None = None):
        self.source = source
        self.fn = fn
        self.n_rows = source.n_rows
        self.shard_offsets = getattr(source, "shard_offsets", None)
        if names is None:
            probe = self._apply(source.read(0, min(1, source.n_rows)))
            names = [f"x{j}" for j in range(probe.shape[1])]
        self.names = list(names)
        self.n_features = len(self.names)

    def _apply(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.fn(X), dtype=np.float32)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self._apply(self.source.read(start, stop))

    def read_rows(self, rows) -> np.ndarray:
        return self._apply(self.source.read_rows(rows))

    def read_blocks(self, bounds) -> list[np.ndarray]:
        return [self._apply(b) for b in read_blocks(self.source, bounds)]


def as_source(data, shard_offsets=None):
    """A row source from a source, an array, or a feature-file path."""
    if hasattr(data, "read") and hasattr(data, "n_rows"):
        return data
    if isinstance(data, (str, os.PathLike)):
        return H5FeatureSource(data, shard_offsets=shard_offsets)
    return ArraySource(np.asarray(data), shard_offsets=shard_offsets)


def read_blocks(source, bounds) -> list[np.ndarray]:
    """Rows ``a:b`` for each ``(a, b)``, in one file open when the source allows."""
    if hasattr(source, "read_blocks"):
        return source.read_blocks(bounds)
    return [source.read(int(a), int(b)) for a, b in bounds]


def block_bounds(n_rows: int, shard_offsets=None, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """``(M, 2)`` int64 ``[start, stop)`` row blocks of at most ``block_rows`` that never cross a shard."""
    block_rows = max(1, int(block_rows))
    if shard_offsets is None:
        shard_offsets = np.array([0, n_rows], dtype=np.int64)
    shard_offsets = np.asarray(shard_offsets, dtype=np.int64)
    starts = [np.arange(a, b, block_rows, dtype=np.int64)
              for a, b in zip(shard_offsets[:-1], shard_offsets[1:]) if b > a]
    if not starts:
        return np.zeros((0, 2), dtype=np.int64)
    start = np.concatenate(starts)
    shard_stop = shard_offsets[np.searchsorted(shard_offsets, start, side="right")]
    return np.stack([start, np.minimum(start + block_rows, shard_stop)], axis=1)


def require_finite(X: np.ndarray, rows, source) -> np.ndarray:
    """``X`` (rows ``rows`` of ``source``: an array, or the first row of a block) unchanged,
    or an error naming the first NaN/inf (an InputError where ``source`` is a file).

    Smoothing would spread one such value to its neighbours' rows and k-means
    would give it label 0, both without a word.
    """
    finite = np.isfinite(X)
    if finite.all():
        return X
    r, c = (int(v[0]) for v in np.nonzero(~finite))
    names = getattr(source, "names", None)
    col = f"'{names[c]}'" if names is not None and c < len(names) else str(c)
    row = int(rows[r]) if np.ndim(rows) else int(rows) + r
    path = getattr(source, "path", None)
    if path is None:
        raise ValueError(f"{type(source).__name__}: feature row {row} (0-based), column {col} is {X[r, c]}; "
                         "features must be finite")
    # an InputError: the rule's log gets the message alone, not buried under a traceback
    raise InputError(f"feature row {row} (0-based), column {col} is {X[r, c]}; features must be finite",
                     file=path, fix=f"delete {path} and rerun the workflow, which rebuilds it; should the rebuilt "
                                    "file hold such a value again, the stage that writes it made it (see its log)")


def iter_blocks(source, block_rows: int = 65536) -> Iterator[tuple[int, int, np.ndarray]]:
    """Sequential ``(start, stop, X)`` over all rows, blocks within shards; memory = one block."""
    for a, b in block_bounds(source.n_rows, getattr(source, "shard_offsets", None), block_rows):
        yield int(a), int(b), source.read(int(a), int(b))


def sorted_unique(rows) -> np.ndarray:
    """Sorted distinct int64 rows; no copy when already strictly increasing.

    (``np.unique`` hashes, which costs ~1.5 s per million rows.)
    """
    rows = np.asarray(rows, dtype=np.int64).ravel()
    if len(rows) < 2 or bool(np.all(rows[1:] > rows[:-1])):
        return rows
    rows = np.sort(rows)
    return rows[np.r_[True, rows[1:] != rows[:-1]]]


def iter_batches(source, rows=None, batch_size: int = 256, shuffle: bool = True, seed: int = 0,
                 block_rows: int = BLOCK_ROWS, buffer_rows: int = BUFFER_ROWS
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Mini-batches ``(row_indices (b,) int64, X (b, D) float32)`` over ``rows`` of ``source``.

    ``rows`` is a set of row indices (None = all). Every row comes exactly once
    per iteration; all batches have ``batch_size`` rows but the last. Without
    ``shuffle`` rows come in ascending order; with it, block order and row
    order within each buffer are permuted by ``seed`` (same seed, same stream).
    """
    n_rows = source.n_rows
    rows = np.arange(n_rows, dtype=np.int64) if rows is None else sorted_unique(rows)
    if len(rows) and (rows[0] < 0 or rows[-1] >= n_rows):
        raise IndexError(f"row indices out of range [0, {n_rows})")
    bounds = block_bounds(n_rows, getattr(source, "shard_offsets", None), block_rows)
    # rows[first[i]:first[i + 1]] are the selected rows of block i
    first = np.searchsorted(rows, bounds[:, 0], side="left")
    last = np.searchsorted(rows, bounds[:, 1], side="left")
    blocks = np.flatnonzero(last > first)
    rng = np.random.default_rng(seed)
    if shuffle:
        blocks = rng.permutation(blocks)
    batch_size = max(1, int(batch_size))
    carry_idx = np.zeros(0, dtype=np.int64)
    carry_X = np.zeros((0, source.n_features), dtype=np.float32)
    pos = 0
    while pos < len(blocks):
        # a buffer: the next blocks in stream order up to buffer_rows selected rows
        stop, n_buf = pos, 0
        while stop < len(blocks):
            n_block = last[blocks[stop]] - first[blocks[stop]]
            if n_buf and n_buf + n_block > buffer_rows:
                break
            n_buf += n_block
            stop += 1
        # disk order for reading; the stream order is set by the shuffle below
        buf = np.sort(blocks[pos:stop])
        pos = stop
        data = read_blocks(source, [tuple(bounds[i]) for i in buf])
        n_carry, n_new = len(carry_idx), int(n_buf)
        idx = np.empty(n_carry + n_new, dtype=np.int64)
        X = np.empty((n_carry + n_new, source.n_features), dtype=np.float32)
        idx[:n_carry], X[:n_carry] = carry_idx, carry_X
        # scatter each block straight to its shuffled place: one copy, one buffer
        dest = n_carry + (rng.permutation(n_new) if shuffle else np.arange(n_new))
        at = 0
        for j, i in enumerate(buf):
            sel, X_block = rows[first[i]:last[i]], data[j]
            data[j] = None
            to = dest[at:at + len(sel)]
            idx[to] = sel
            X[to] = X_block if len(sel) == len(X_block) else X_block[sel - bounds[i, 0]]
            at += len(sel)
        del data
        n_full = (len(idx) // batch_size) * batch_size
        for s in range(0, n_full, batch_size):
            yield idx[s:s + batch_size], X[s:s + batch_size]
        # copies, so the spent buffer is freed before the next one is read
        carry_idx, carry_X = idx[n_full:].copy(), X[n_full:].copy()
    if len(carry_idx):
        yield carry_idx, carry_X


def n_batches(n_rows: int, batch_size: int) -> int:
    """Batches :func:`iter_batches` yields for ``n_rows`` rows."""
    return -(-int(n_rows) // max(1, int(batch_size)))


def sample_rows(n_rows: int, size: int, seed) -> np.ndarray:
    """Sorted ``(min(size, n_rows),)`` int64 rows drawn without replacement by ``seed``
    (an int, or a sequence such as ``[seed, stream]`` for an independent stream)."""
    size = min(int(size), int(n_rows))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(int(n_rows), size=size, replace=False)).astype(np.int64)
