"""The one place that reads and writes the HDF5 files of the file contract.

Every writer goes through :func:`atomic_path`: the file is written under a
temporary name in the same directory and renamed into place only when
complete, so a failed or killed job never leaves a truncated output that
Snakemake (or a user) could mistake for a finished one.

Files (README.md, "Stages and files"): ``shards.h5`` (:class:`ShardsWriter`, :class:`Shards`),
``graph.h5`` (:func:`write_graph`, :func:`read_graph`),
``features/{name}.h5`` (:class:`FeatureWriter`, :func:`read_features`,
:class:`Features`) and ``clusters/{method}.h5`` (:func:`write_clusters`,
:func:`read_clusters`).
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import h5py
import numpy as np

from .errors import InputError
from .spans import observed_spans

STR = h5py.string_dtype(encoding="utf-8")

# Rows per HDF5 chunk for (N, T) series: a few hundred KB per chunk keeps both
# row-slab reads (one shard) and the chunk cache efficient.
DEFAULT_CHUNK_ROWS = 1024


TEMP_KINDS = ("tmp", "runs")   # .NAME.tmp-HOST-PID (a file being written), .NAME.runs-HOST-PID (shards' runs)
_HOST = socket.gethostname().replace("-", "_").replace(".", "_") or "host"
_TEMP_RE = re.compile(r"\.(?P<kind>tmp|runs)-(?P<host>[^-]+)-(?P<pid>\d+)")

# Bytes a failed write had reached (output path -> bytes), for the disk-full message.
partial_bytes: dict[str, int] = {}


def temp_name(path: str | os.PathLike, kind: str = "tmp", keep_suffix: bool = False) -> Path:
    """``.NAME.tmp-HOST-PID`` beside ``path`` (``keep_suffix``: with ``path``'s extension appended,
    for writers that pick the file type from it, e.g. GDAL's GeoPackage)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{kind}-{_HOST}-{os.getpid()}{path.suffix if keep_suffix else ''}")


def temp_dir(path: str | os.PathLike, kind: str = "runs") -> Path:
    """A fresh temporary directory beside ``path`` (removed by :func:`remove_stale_temporaries`
    if its process dies before removing it)."""
    tmp = temp_name(path, kind)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, another user's
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` left by killed jobs; returns them.

    A job killed by SIGKILL (out of memory, a SLURM time limit) cannot clean
    up, and on a national-scale site its temporary files are gigabytes.
    Snakemake never runs two jobs for one output at once, so a temporary of
    the same output is stale unless its process is this one or still alive on
    this host; one written on another host (a SLURM node) is always stale.
    SQLite's ``-journal``/``-wal``/``-shm`` companions go with their file.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for kind in TEMP_KINDS:
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.{kind}-*"):
            m = _TEMP_RE.match(tmp.name[len(path.name) + 1:])
            if m is None:
                continue
            pid, host = int(m.group("pid")), m.group("host")
            if host == _HOST and (pid == os.getpid() or _pid_alive(pid)):
                continue
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            removed.append(tmp)
    return removed


def _size(tmp: Path) -> int:
    if tmp.is_dir():
        return sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    return tmp.stat().st_size if tmp.exists() else 0


# Files SQLite (GeoPackage) writes beside the one it writes.
SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception the temporary file (and any SQLite companion of it) is
    removed, its size noted in :data:`partial_bytes`, and ``path`` is
    untouched. Stale temporaries of ``path`` from killed jobs are removed
    first. ``keep_suffix``: as :func:`temp_name`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temp_name(path, keep_suffix=keep_suffix)
    if tmp.exists():
        tmp.unlink()
    partial_bytes.pop(str(path), None)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            partial_bytes[str(path)] = _size(tmp)
        for leftover in (tmp, *(Path(f"{tmp}{s}") for s in SQLITE_COMPANIONS)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        raise
    os.replace(tmp, path)


@contextlib.contextmanager
def open_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """``path`` opened for reading. A damaged file (cut short by an interrupted copy, not
    HDF5 at all) and one without a dataset or attribute the reader needs (written by
    another version, or a file of another kind put in its place) stop with an
    :class:`~insarclust.errors.InputError` that names the file: h5py's own errors name
    neither the file nor what to do. A missing file raises FileNotFoundError as before."""
    fix = f"delete {path} and rerun the workflow, which rebuilds it"
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise
    except OSError as err:
        raise InputError(f"cannot be read as HDF5 ({err}): the file is damaged or incomplete, "
                         "e.g. cut short by an interrupted copy", file=str(path), fix=fix) from err
    with f:
        try:
            yield f
        except KeyError as err:
            raise InputError(f"lacks what this stage reads ({err.args[0] if err.args else err}): it was "
                             "written by another version of insarclust, or is a file of another kind",
                             file=str(path), fix=fix) from err


def _set_attrs(obj, attrs: Mapping | None) -> None:
    for key, value in (attrs or {}).items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            obj.attrs.create(key, list(value), dtype=STR)
        elif isinstance(value, (list, tuple)) and not value:
            obj.attrs.create(key, [], dtype=STR)
        else:
            obj.attrs[key] = value


def _decode(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_attrs(path: str | os.PathLike, group: str = "/") -> dict:
    """All attributes of ``group`` as plain Python values."""
    with open_h5(path) as f:
        return {k: _decode(v) for k, v in f[group].attrs.items()}


# --------------------------------------------------------------------------- #
# generic small files


def write_datasets(path, datasets: Mapping[str, np.ndarray], attrs: Mapping | None = None) -> None:
    """Atomically write a small file of named datasets (``"/group/name"`` keys)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, data in datasets.items():
            data = np.asarray(data)
            if data.dtype.kind in "UO":
                f.create_dataset(name, data=data.astype(object), dtype=STR)
            else:
                f.create_dataset(name, data=data)
        _set_attrs(f, attrs)


def read_datasets(path, names: Sequence[str] | None = None) -> dict:
    """Read whole datasets by name (all top-level datasets when ``names`` is None)."""
    out = {}
    with open_h5(path) as f:
        if names is None:
            names = [k for k, v in f.items() if isinstance(v, h5py.Dataset)]
        for name in names:
            ds = f[name]
            out[name] = ds.asstr()[...] if ds.dtype.kind == "O" else ds[...]
    return out


# --------------------------------------------------------------------------- #
# shards.h5


class _AtomicWriter:
    """Base of the incremental writers: an HDF5 file under a temporary name
    (:func:`atomic_path`), laid out by ``_create`` on entry, completed by
    ``_complete`` on a clean exit and renamed into place; any failure on the
    way removes it. ``_release`` frees what ``_create`` opened besides the file.
    """

    path: Path

    def _create(self, f: h5py.File, tmp: Path) -> None:
        raise NotImplementedError

    def _complete(self, f: h5py.File) -> None:
        pass

    def _release(self) -> None:
        pass

    def __enter__(self):
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._file = None
        try:
            self._file = h5py.File(tmp, "w")
            self._create(self._file, tmp)
        except BaseException as err:
            self._abort(err)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self._complete(self._file)
            except BaseException as err:
                self._abort(err)
                raise
        self._release()
        self._file.close()
        return self._ctx.__exit__(exc_type, exc, tb)

    def _abort(self, err: BaseException) -> None:
        self._release()
        if self._file is not None:
            self._file.close()
        self._ctx.__exit__(type(err), err, err.__traceback__)   # removes the temporary file


class _RowChunks:
    """Rows of an (N, C) float32 dataset chunked as (chunk_rows, C), written by ``pwrite``.

    The chunks are allocated when the dataset is created (no fill values
    written) and their file offsets looked up once; whole chunks are then
    written straight into the file with ``os.pwrite``, from any thread and in
    parallel (h5py serialises all its calls, and its write path ran at half the
    disk's rate here). Chunks a write covers only in part go through h5py.
    """

    def __init__(self, group, name: str, shape: tuple[int, int], chunk_rows: int, fd: int):
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((chunk_rows, max(shape[1], 1)))
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        self.ds = group.create_dataset(name, shape=shape, dtype=np.float32, dcpl=dcpl)
        self.chunk_rows = chunk_rows
        self.fd = fd
        self.offsets = np.full(-(-shape[0] // chunk_rows), -1, dtype=np.int64)

        def note(info):
            self.offsets[info.chunk_offset[0] // chunk_rows] = info.byte_offset

        # one pass over the chunk index (get_chunk_info(i) walks it from the start: O(chunks^2))
        self.ds.id.chunk_iter(note)
        if (self.offsets < 0).any():
            raise RuntimeError(f"{name}: HDF5 did not allocate every chunk at creation")

    def _pwrite(self, data: np.ndarray, offset: int) -> None:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):   # pwrite may write less than asked (network file systems)
            n = os.pwrite(self.fd, view[done:], offset + done)
            if n <= 0:
                raise OSError(f"{self.ds.name}: short write at byte {offset + done} of the file")
            done += n

    def write(self, start: int, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        stop, n, c = start + len(rows), self.ds.shape[0], self.chunk_rows
        first = -(-start // c) * c                       # first chunk boundary at or after start
        last = stop if stop == n else (stop // c) * c     # whole chunks end here (the final one may be short)
        if first > start:
            self.ds[start:min(first, stop)] = rows[:min(first, stop) - start]
        for a in range(first, last, c):
            b = min(a + c, last)
            self._pwrite(rows[a - start:b - start], int(self.offsets[a // c]))
        if max(first, last) < stop:
            self.ds[max(first, last):stop] = rows[max(first, last) - start:]


class ShardsWriter(_AtomicWriter):
    """Write ``shards.h5`` shard by shard (rows must arrive in shard order).

    Usage::

        with ShardsWriter(path, n_points, dates, grid_dates, static_names, attrs) as w:
            for shard in ...:
                w.write(pid, lat, lon, static, displacement, regular)

    or, to write the series of several shards from worker threads, in any order:
    ``w.write_series(start, displacement, regular)`` there and
    ``w.write_points(pid, lat, lon, static)`` in shard order in one thread.

    ``crs``: the points also have projected coordinates, ``/points/x`` and
    ``/points/y`` (N,) float64 with attr ``crs`` (pass ``x``, ``y`` to
    :meth:`write_points`). ``components``: names of the displacement
    components of a multi-component site, e.g. ``["up", "east"]``: the first is
    stored in ``/series`` like any site's, each further one in
    ``/components/{name}/displacement`` and ``/components/{name}/regular``
    (same shapes, :meth:`write_component`); root attr ``components``.
    """

    def __init__(self, path, n_points: int, dates: np.ndarray, grid_dates: np.ndarray,
                 static_names: Sequence[str], attrs: Mapping, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 crs: str | None = None, components: Sequence[str] | None = None):
        self.path = Path(path)
        self.n_points = int(n_points)
        self.dates = np.asarray(dates, dtype=np.int32)
        self.grid_dates = np.asarray(grid_dates, dtype=np.int32)
        self.static_names = list(static_names)
        self.attrs = dict(attrs)
        self.chunk_rows = max(1, min(chunk_rows, self.n_points))
        self.crs = crs
        self.components = list(components or [])
        self._offsets = [0]

    def _create(self, f: h5py.File, tmp: Path) -> None:
        n = self.n_points
        T, G, S = len(self.dates), len(self.grid_dates), len(self.static_names)
        c = self.chunk_rows
        p = f.create_group("points")
        p.create_dataset("pid", shape=(n,), dtype=STR)
        p.create_dataset("lat", shape=(n,), dtype=np.float64)
        p.create_dataset("lon", shape=(n,), dtype=np.float64)
        st = p.create_dataset("static", shape=(n, S), dtype=np.float32,
                              chunks=(c, max(S, 1)) if S else None)
        st.attrs.create("names", self.static_names, dtype=STR)
        s = f.create_group("series")
        s.create_dataset("dates", data=self.dates)
        s.create_dataset("grid_dates", data=self.grid_dates)
        if self.crs:
            for name in ("x", "y"):
                p.create_dataset(name, shape=(n,), dtype=np.float64).attrs["crs"] = str(self.crs)
        self._fd = os.open(tmp, os.O_WRONLY)
        self._series = {"displacement": _RowChunks(s, "displacement", (n, T), c, self._fd),
                        "regular": _RowChunks(s, "regular", (n, G), c, self._fd)}
        self._components = {}
        for name in self.components[1:]:
            g = f.create_group(f"components/{name}")
            self._components[name] = {"displacement": _RowChunks(g, "displacement", (n, T), c, self._fd),
                                      "regular": _RowChunks(g, "regular", (n, G), c, self._fd)}
        # each group's observed spans (n, 2), from the displacements as they are written
        self._spans = {group: np.zeros((n, 2), dtype=np.int32)
                       for group in ["series", *(f"components/{name}" for name in self.components[1:])]}

    def _note_spans(self, group: str, start: int, displacement) -> None:
        rows = np.asarray(displacement)
        self._spans[group][start:start + len(rows)] = observed_spans(rows, self.dates, self.grid_dates)

    def write(self, pid, lat, lon, static, displacement, regular) -> None:
        self.write_series(self._offsets[-1], displacement, regular)
        self.write_points(pid, lat, lon, static)

    def write_series(self, start: int, displacement, regular) -> None:
        """Rows ``[start, start + len)`` of /series/displacement and /series/regular (thread-safe)."""
        self._series["displacement"].write(start, displacement)
        self._series["regular"].write(start, regular)
        self._note_spans("series", start, displacement)

    def write_component(self, name: str, start: int, displacement, regular) -> None:
        """Rows ``[start, start + len)`` of a further component's series (thread-safe)."""
        self._components[name]["displacement"].write(start, displacement)
        self._components[name]["regular"].write(start, regular)
        self._note_spans(f"components/{name}", start, displacement)

    def write_points(self, pid, lat, lon, static, x=None, y=None) -> None:
        """The next shard's /points rows (call in shard order); records the shard boundary."""
        start = self._offsets[-1]
        stop = start + len(lat)
        f = self._file
        f["points/pid"][start:stop] = np.asarray(pid, dtype=object)
        f["points/lat"][start:stop] = lat
        f["points/lon"][start:stop] = lon
        if self.crs:
            f["points/x"][start:stop] = x
            f["points/y"][start:stop] = y
        if len(self.static_names):
            f["points/static"][start:stop] = static
        self._offsets.append(stop)

    def _complete(self, f: h5py.File) -> None:
        if self._offsets[-1] != self.n_points:
            raise RuntimeError(f"{self.path}: wrote {self._offsets[-1]} rows, expected {self.n_points}")
        f.create_group("shards").create_dataset("offsets", data=np.asarray(self._offsets, dtype=np.int64))
        for group, spans in self._spans.items():
            f[group].create_dataset("span", data=spans)
        extra = {"components": self.components} if self.components else {}
        _set_attrs(f, {**self.attrs, **extra, "n_points": self.n_points})

    def _release(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None


class Shards:
    """Read access to ``shards.h5``; cheap to create, opens the file per call.

    Attributes: ``n_points``, ``offsets`` (M+1,), ``n_shards``, ``dates`` (T,),
    ``grid_dates`` (G,), ``static_names``, ``attrs``; ``crs`` of ``/points/x|y``
    (None when the points have no projected coordinates) and ``components``
    (``[]`` for a site with one displacement per point, e.g. ``["up", "east"]``).
    """

    def __init__(self, path):
        self.path = Path(path)
        with open_h5(self.path) as f:
            self.offsets = f["shards/offsets"][...]
            self.dates = f["series/dates"][...]
            self.grid_dates = f["series/grid_dates"][...]
            self.static_names = _decode(f["points/static"].attrs["names"])
            self.attrs = {k: _decode(v) for k, v in f.attrs.items()}
            self.crs = _decode(f["points/x"].attrs["crs"]) if "points/x" in f else None
        self.components = list(self.attrs.get("components") or [])
        self.n_points = int(self.offsets[-1])
        self.n_shards = len(self.offsets) - 1

    def component_dataset(self, component: str | None = None, kind: str = "regular") -> str:
        """Path of the ``regular`` (or ``displacement``) series of a component (None: the first)."""
        if component is None or (self.components and component == self.components[0]):
            return f"series/{kind}"
        if component not in self.components[1:]:
            raise KeyError(f"{self.path} has no component '{component}' (components: {self.components})")
        return f"components/{component}/{kind}"

    def read_components(self, start: int = 0, stop: int | None = None, rows=None) -> np.ndarray:
        """Regular series of every component, ``(n, G)`` or ``(n, G, V)`` for a multi-component
        site; rows ``start:stop``, or the given ``rows`` (any order)."""
        names = self.components or [None]
        read = (lambda ds: self.read(ds, start, stop)) if rows is None else \
            (lambda ds: self.read_rows(ds, rows))
        blocks = [read(self.component_dataset(c)) for c in names]
        return blocks[0] if len(blocks) == 1 else np.stack(blocks, axis=-1)

    def spans(self, start: int = 0, stop: int | None = None, dataset: str = "series/regular") -> np.ndarray:
        """(n, 2) first and last grid index of the observed values of rows ``start:stop``
        (:mod:`insarclust.spans`) of the group of ``dataset`` (``series`` or a component):
        stored by the shards stage, derived from the displacements for files built before."""
        group = dataset.rsplit("/", 1)[0]
        with open_h5(self.path) as f:
            if f"{group}/span" in f:
                return f[f"{group}/span"][start:stop]
            displacement = f[f"{group}/displacement"][start:stop]
        return observed_spans(displacement, self.dates, self.grid_dates)

    def xy(self) -> tuple[np.ndarray, np.ndarray, str] | None:
        """``(x, y, crs)`` of the points' projected coordinates, or None."""
        if self.crs is None:
            return None
        with open_h5(self.path) as f:
            return f["points/x"][...], f["points/y"][...], self.crs

    def shard_bounds(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    def read(self, dataset: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of a dataset, e.g. ``"series/regular"`` or ``"points/lat"``."""
        with open_h5(self.path) as f:
            ds = f[dataset]
            return ds.asstr()[start:stop] if ds.dtype.kind == "O" else ds[start:stop]

    def read_rows(self, dataset: str, rows: np.ndarray) -> np.ndarray:
        """Arbitrary rows (any order) of a dataset, read chunk-friendly in sorted order."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        uniq, inverse = np.unique(rows[order], return_inverse=True)
        with open_h5(self.path) as f:
            ds = f[dataset]
            data = ds.asstr()[uniq] if ds.dtype.kind == "O" else ds[uniq]
        out = np.empty((len(rows),) + data.shape[1:], dtype=data.dtype)
        out[order] = data[inverse]
        return out

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) in degrees, shape (N,) each."""
        with open_h5(self.path) as f:
            return f["points/lat"][...], f["points/lon"][...]

    def pids(self) -> np.ndarray:
        with open_h5(self.path) as f:
            return f["points/pid"].asstr()[...]

    def iter_shards(self, dataset: str = "series/regular") -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, rows)`` for each shard; memory = one shard."""
        with open_h5(self.path) as f:
            ds = f[dataset]
            for start, stop in self.shard_bounds():
                yield start, stop, ds[start:stop]

    def block_bounds(self, start: int = 0, stop: int | None = None,
                     block_rows: int | None = None) -> Iterator[tuple[int, int]]:
        """``(a, b)`` row blocks over ``start:stop`` of at most ``block_rows`` that never cross
        a shard boundary (whole shards when ``block_rows`` is None)."""
        stop = self.n_points if stop is None else stop
        cuts = sorted({start, stop, *[int(o) for o in self.offsets if start < o < stop]})
        for a, b in zip(cuts[:-1], cuts[1:]):
            step = block_rows or (b - a)
            for s in range(a, b, step):
                yield s, min(b, s + step)

    def iter_blocks(self, dataset: str = "series/regular", start: int = 0, stop: int | None = None,
                    block_rows: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(a, b, rows)`` over ``start:stop`` in blocks that never cross a shard boundary."""
        with open_h5(self.path) as f:
            ds = f[dataset]
            for s, e in self.block_bounds(start, stop, block_rows):
                yield s, e, ds[s:e]


# --------------------------------------------------------------------------- #
# graph.h5


def write_graph(path, indptr, indices, distance_m, weight, attrs: Mapping) -> None:
    """CSR k-NN graph: indptr (N+1,) int64, indices/distance_m/weight (nnz,)."""
    write_datasets(path, {
        "indptr": np.asarray(indptr, dtype=np.int64),
        "indices": np.asarray(indices, dtype=np.int64),
        "distance_m": np.asarray(distance_m, dtype=np.float32),
        "weight": np.asarray(weight, dtype=np.float32),
    }, attrs)


class GraphWriter(_AtomicWriter):
    """Write ``graph.h5`` while the graph is being built: the edges of each block of
    rows as soon as they are known (:meth:`write_edges`), then ``indptr``, the
    weights and attrs (:meth:`finish`). Atomic like every writer here.

    Usage::

        with GraphWriter(path, n_points, n_edges) as w:
            w.write_edges(start, indices, distance_m)   # any number of times
            w.finish(indptr, weight, attrs)
    """

    def __init__(self, path, n_points: int, n_edges: int):
        self.path = Path(path)
        self.n_points = int(n_points)
        self.n_edges = int(n_edges)
        self._finished = False

    def _create(self, f: h5py.File, tmp: Path) -> None:
        self._indices = f.create_dataset("indices", shape=(self.n_edges,), dtype=np.int64)
        self._distance = f.create_dataset("distance_m", shape=(self.n_edges,), dtype=np.float32)

    def write_edges(self, start: int, indices, distance_m) -> None:
        stop = start + len(indices)
        self._indices[start:stop] = np.asarray(indices, dtype=np.int64)
        self._distance[start:stop] = np.asarray(distance_m, dtype=np.float32)

    def finish(self, indptr, weight, attrs: Mapping) -> None:
        f = self._file
        f.create_dataset("indptr", data=np.asarray(indptr, dtype=np.int64))
        f.create_dataset("weight", data=np.asarray(weight, dtype=np.float32))
        _set_attrs(f, attrs)
        self._finished = True

    def _complete(self, f: h5py.File) -> None:
        if not self._finished:
            raise RuntimeError(f"{self.path}: GraphWriter closed before finish()")


def read_graph(path, shards: "Shards | None" = None) -> dict:
    """``{"indptr", "indices", "distance_m", "weight", "attrs"}``; with ``shards`` (the site's
    :class:`Shards`) checked to be the graph of its points (:func:`check_same_points`)."""
    out = read_datasets(path, ["indptr", "indices", "distance_m", "weight"])
    out["attrs"] = read_attrs(path)
    if shards is not None:
        check_same_points(path, len(out["indptr"]) - 1, shards, "a graph", site=out["attrs"].get("site"))
    return out


def check_same_points(path, n_rows: int, shards: "Shards", what: str, site: str | None = None) -> None:
    """Stop unless ``path`` (``what``, e.g. "a graph", with ``n_rows`` rows; ``site``: the site its
    attrs name, where it records one) was made from the points of ``shards``.

    A file of another site, or of an earlier build of this one, copied in place is as
    readable as the right one: with another point count it failed deep in a stage with an
    IndexError, or, with fewer points, gave metrics of a subset without a word.
    """
    own = shards.attrs.get("site")
    fix = f"delete {path} and rerun the workflow, which rebuilds it from {shards.path}"
    if int(n_rows) != shards.n_points:
        raise InputError(f"{what} of {int(n_rows)} points, but {shards.path} holds {shards.n_points}: it was "
                         "made from another shards.h5 (another site, or an earlier build of this one)",
                         file=str(path), fix=fix)
    if site and own and str(site) != str(own):
        raise InputError(f"{what} of site '{site}', but {shards.path} is site '{own}': a file of another "
                         "site was put in its place", file=str(path), fix=fix)


# --------------------------------------------------------------------------- #
# features/{name}.h5


class FeatureWriter(_AtomicWriter):
    """Write ``/X (N, D) float32`` incrementally by row blocks; atomic on close.

    ``with FeatureWriter(path, n_rows, names) as w: w.write(start, X_block)``
    Blocks may arrive in any order; every row must be written once.
    """

    def __init__(self, path, n_rows: int, names: Sequence[str], attrs: Mapping | None = None,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS):
        self.path = Path(path)
        self.n_rows = int(n_rows)
        self.names = [str(n) for n in names]
        self.attrs = dict(attrs or {})
        self.chunk_rows = max(1, min(chunk_rows, self.n_rows))
        self._written = 0

    def _create(self, f: h5py.File, tmp: Path) -> None:
        d = max(len(self.names), 1)
        # an empty part of a split (more parts than shards) is a valid, contiguous 0-row file
        self._X = f.create_dataset("X", shape=(self.n_rows, len(self.names)), dtype=np.float32,
                                   chunks=(self.chunk_rows, d) if self.n_rows else None)
        self._X.attrs.create("names", self.names, dtype=STR)
        f.attrs.create("names", self.names, dtype=STR)
        _set_attrs(f, self.attrs)

    def write(self, start: int, X: np.ndarray) -> None:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.names):
            raise ValueError(f"{self.path}: block of shape {X.shape}, expected (n, {len(self.names)})")
        self._X[start:start + len(X)] = X
        self._written += len(X)

    def _complete(self, f: h5py.File) -> None:
        if self._written != self.n_rows:
            raise RuntimeError(f"{self.path}: wrote {self._written} rows, expected {self.n_rows}")


def write_features(path, X: np.ndarray, names: Sequence[str], attrs: Mapping | None = None) -> None:
    """Write a whole feature matrix at once (small data, tests)."""
    with FeatureWriter(path, len(X), names, attrs) as w:
        w.write(0, X)


class Features:
    """Read access to ``features/{name}.h5``: ``n_rows``, ``names``, ``attrs``, row reads."""

    def __init__(self, path):
        self.path = Path(path)
        with open_h5(self.path) as f:
            self.n_rows, self.n_features = f["X"].shape
            self.names = _decode(f["X"].attrs["names"])
            self.attrs = {k: _decode(v) for k, v in f.attrs.items()}

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        with open_h5(self.path) as f:
            return f["X"][start:stop]

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        uniq, inverse = np.unique(rows[order], return_inverse=True)
        with open_h5(self.path) as f:
            data = f["X"][uniq]
        out = np.empty((len(rows), data.shape[1]), dtype=data.dtype)
        out[order] = data[inverse]
        return out

    def iter_blocks(self, block_rows: int = 65536) -> Iterator[tuple[int, int, np.ndarray]]:
        with open_h5(self.path) as f:
            X = f["X"]
            for s in range(0, self.n_rows, block_rows):
                e = min(self.n_rows, s + block_rows)
                yield s, e, X[s:e]


def read_features(path) -> tuple[np.ndarray, list[str]]:
    """Whole ``(X, names)``: only for small files and tests."""
    f = Features(path)
    return f.read(), f.names


# --------------------------------------------------------------------------- #
# clusters/{method}.h5


def write_clusters(path, labels, split, proba=None, latent=None, attrs: Mapping | None = None,
                   extra: Mapping[str, np.ndarray] | None = None) -> None:
    """``/labels (N,) int32``, ``/split (N,) uint8`` and for dsc ``/proba``, ``/latent``."""
    data = {"labels": np.asarray(labels, dtype=np.int32), "split": np.asarray(split, dtype=np.uint8)}
    if proba is not None:
        data["proba"] = np.asarray(proba, dtype=np.float32)
    if latent is not None:
        data["latent"] = np.asarray(latent, dtype=np.float32)
    data.update(extra or {})
    write_datasets(path, data, attrs)


def read_clusters(path) -> dict:
    out = read_datasets(path)
    out["attrs"] = read_attrs(path)
    return out


# --------------------------------------------------------------------------- #
# streaming helpers


def read_row_blocks(path, dataset: str, bounds: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Rows ``a:b`` of ``dataset`` for every ``(a, b)`` in ``bounds``, in one file open.

    Opening an HDF5 file costs ~0.2 ms, as much as reading a 1024-row chunk,
    so streaming readers fetch many small blocks per open.
    """
    with open_h5(path) as f:
        ds = f[dataset]
        return [ds[int(a):int(b)] for a, b in bounds]


def update_feature_attrs(writer: FeatureWriter, attrs: Mapping) -> None:
    """Add root attrs to an open :class:`FeatureWriter` (values known only after the last block)."""
    _set_attrs(writer._file, attrs)
