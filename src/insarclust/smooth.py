"""H-hop graph smoothing of feature vectors (stage ``smooth``).

    x_i^(h) = a x_i^(h-1) + (1 - a) AGG_{j in N(i)} x_j^(h-1),   h = 1..H

``AGG = sum`` is the original formulation, literally: the plain sum over the
neighbours (edge weights are not used). With k = 10 and a = 0.5 it scales the
features by about (a + (1 - a) k) = 5.5 per hop, i.e. ~170x after 3 hops, and
by a different factor at every point whose degree differs from k (symmetric
graphs, ``max_distance_m``), so the clustering then sees degree as much as
dynamics. ``AGG = mean`` (the default) is the edge-weighted mean
``sum_j w_ij x_j / sum_j w_ij``: every hop is a convex combination, features
keep their scale, and the graph weighting (gaussian/inverse) takes effect.
Points without neighbours keep their features under ``mean`` and are scaled
by ``a`` per hop under ``sum`` (the empty sum is 0).

Two modes:

- ``exact``: sparse products over the whole graph (torch CSR ``addmm``,
  multi-threaded). Holds the (N, D) float32 features twice in memory
  (2 x 256 MB for 10^6 x 64): the unavoidable cost of exact products.
- ``fanout``: per batch of seed points, a sampled H-hop neighbourhood
  (:class:`insarclust.sampling.NeighbourSampler`) is smoothed and only the
  seeds' rows are kept; memory is bounded by batch size x fan-out product.
  ``sum`` rescales each sampled sum by degree / sampled degree so it stays an
  unbiased estimate of the full sum. With fan-outs >= the largest degree the
  result equals ``exact``.

Features are standardised first (column mean/std from a streaming pass with
``StandardScaler.partial_fit``) so static columns with large units (heights in
metres next to unit-scale embeddings) do not dominate; the output stays
standardised.
"""
from __future__ import annotations

import logging
import warnings
from typing import Mapping, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from . import h5io
from .batches import require_finite
from .config import build_stage
from .logs import Progress, timed
from .sampling import NeighbourSampler, batch_seed, to_csr
from .spatial import morans_i
# fanout batches are thousands of rows, too small for intra-op threads to pay off, and spinning
# thread pools collapse on shared cores: parallelism in fanout mode comes from separate jobs
from .threads import single_thread

log = logging.getLogger(__name__)

AGGREGATIONS = ("mean", "sum")
MODES = ("exact", "fanout")


def _check_params(H, alpha, aggregation, mode="exact"):
    if int(H) < 0:
        raise ValueError(f"smooth: H must be >= 0, got {H}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"smooth: alpha must be in [0, 1], got {alpha}")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"smooth: unknown aggregation '{aggregation}'; use one of {', '.join(AGGREGATIONS)}")
    if mode not in MODES:
        raise ValueError(f"smooth: unknown mode '{mode}'; use one of {', '.join(MODES)}")


def check_graph(indptr, indices, weight=None) -> None:
    """Raise ValueError unless ``indptr``/``indices``/``weight`` are a CSR graph of
    ``len(indptr) - 1`` points: the hop matrix is built without torch's checks
    (``check_invariants=False``), and a neighbour index outside 0..N-1 read memory beyond
    the features (numbers of any size, or a crash) instead of failing."""
    as_np = lambda a: a.cpu().numpy() if torch.is_tensor(a) else np.asarray(a)  # noqa: E731
    indptr, indices = as_np(indptr), as_np(indices)
    n = len(indptr) - 1
    if indptr.ndim != 1 or indices.ndim != 1 or n < 0:
        raise ValueError(f"smooth: indptr and indices must be 1-D, got shapes {indptr.shape} and {indices.shape}")
    if int(indptr[0]) != 0 or int(indptr[-1]) != len(indices) or bool(np.any(np.diff(indptr) < 0)):
        raise ValueError(f"smooth: indptr must rise from 0 to len(indices) = {len(indices)}; it runs "
                         f"from {int(indptr[0])} to {int(indptr[-1])}")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise ValueError(f"smooth: neighbour indices must lie in 0..{n - 1} (the graph's points), got "
                         f"{int(indices.min())}..{int(indices.max())}")
    if weight is not None and len(weight) != len(indices):
        raise ValueError(f"smooth: {len(weight)} edge weights for {len(indices)} edges")


def hop_operator(indptr, indices, weight=None, aggregation: str = "mean", alpha: float = 0.5,
                 degree_scale=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The (N, N) torch CSR matrix ``S = a I + (1 - a) P`` of one hop, ``x <- S x``, with
    ``P x = AGG_{j in N(i)} x_j``, and the (N,) bool mask of points without
    neighbours (no edges, or all weights 0 under ``mean``). ``degree_scale`` (N,)
    multiplies row ``i`` of the ``sum`` aggregation (used to rescale sampled sums).

    Isolated points keep their features under ``mean`` (their row of ``S`` is
    the identity) and are scaled by ``a`` under ``sum``. With the point's own
    term inside the matrix (first entry of each row) a hop is one product
    that reads each feature row through the neighbour gather only, ~25 %
    faster than ``a x + (1 - a) P x`` with a separate pass over ``x``.
    """
    indptr, indices, values, isolated = _aggregation_values(indptr, indices, weight, aggregation, degree_scale)
    n = len(indptr) - 1
    counts = indptr.diff()
    diag = torch.full((n,), float(alpha), dtype=torch.float32)
    if aggregation == "mean":
        diag[isolated] = 1.0
    k = len(indices) // n if n else 0
    if n and k and bool((counts == k).all()) and n * (k + 1) < 2**31 - 1:
        # Plain k-NN graphs: rows are an (N, k) block; prepend the diagonal column,
        # writing the int32 indices of the product directly.
        cols = torch.empty((n, k + 1), dtype=torch.int32)
        cols[:, 0] = torch.arange(n, dtype=torch.int32)
        cols[:, 1:] = indices.view(n, k)
        scaled = torch.empty((n, k + 1), dtype=torch.float32)
        scaled[:, 0] = diag
        torch.mul(values.view(n, k), np.float32(1.0 - alpha), out=scaled[:, 1:])
        indptr = torch.arange(0, (n + 1) * (k + 1), k + 1, dtype=torch.int32)
        return _csr(indptr, cols.view(-1), scaled.view(-1)), isolated
    # General graphs (symmetric, distance-capped, sampled): the diagonal entry opens each row.
    first = indptr[:-1] + torch.arange(n)
    rest = torch.ones(len(indices) + n, dtype=torch.bool)
    rest[first] = False
    cols = torch.empty(len(indices) + n, dtype=indices.dtype)
    cols[first] = torch.arange(n, dtype=indices.dtype)
    cols[rest] = indices
    scaled = torch.empty(len(indices) + n, dtype=torch.float32)
    scaled[first] = diag
    scaled[rest] = values * np.float32(1.0 - alpha)
    return _csr(indptr + torch.arange(n + 1, dtype=indptr.dtype), cols, scaled), isolated


def _csr(indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    n = len(indptr) - 1
    if len(indices) < 2**31 - 1 and n < 2**31 - 1:
        # int32 index arrays: the CPU CSR product runs ~10-15 % faster than with int64.
        indptr, indices = indptr.to(torch.int32), indices.to(torch.int32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(indptr, indices, values, size=(n, n), check_invariants=False)


def _aggregation_values(indptr, indices, weight, aggregation, degree_scale):
    """int64 ``indptr``/``indices``, float32 values of ``P`` and the isolated mask."""
    indptr = torch.as_tensor(np.asarray(indptr, dtype=np.int64)) if not torch.is_tensor(indptr) else indptr.long()
    indices = torch.as_tensor(np.asarray(indices, dtype=np.int64)) if not torch.is_tensor(indices) else indices.long()
    n = len(indptr) - 1
    counts = indptr.diff()
    if aggregation == "sum":
        if degree_scale is None:
            values = torch.ones(len(indices), dtype=torch.float32)
        else:
            values = torch.repeat_interleave(torch.as_tensor(degree_scale, dtype=torch.float32), counts)
        isolated = counts == 0
    elif aggregation == "mean":
        if weight is None:
            w = torch.ones(len(indices), dtype=torch.float32)
        else:
            w = torch.as_tensor(np.asarray(weight, dtype=np.float32)) if not torch.is_tensor(weight) else weight.float()
        k = len(w) // n if n else 0
        fixed_degree = n > 0 and k > 0 and bool((counts == k).all())
        if fixed_degree:
            # Plain k-NN graphs: rows are an (N, k) block; no per-edge row index needed.
            row_sum = w.view(n, k).sum(1, dtype=torch.float64)
        else:
            # Row sums reduced within each row, in float64, with no (nnz,) row-index array.
            # (A difference of one running sum over the graph loses a row total below the
            # graph total's rounding step: far points' tiny gaussian weights then sum to 0
            # or to a wrong value, so they were left unsmoothed or no longer averaged.)
            row_sum = torch.segment_reduce(w.double(), "sum", lengths=counts, unsafe=True)
        isolated = row_sum <= 0
        # Normalise in float64: far points under a gaussian weighting can have only
        # subnormal float32 weights, whose float32 reciprocal overflows to inf (inf * w = nan).
        inv = torch.where(isolated, 0.0, 1.0 / torch.where(isolated, 1.0, row_sum))
        if fixed_degree:
            values = (w.view(n, k).double() * inv[:, None]).float().view(-1)
        else:
            values = (w.double() * torch.repeat_interleave(inv, counts)).float()
    else:
        raise ValueError(f"unknown aggregation '{aggregation}'; use one of {', '.join(AGGREGATIONS)}")
    return indptr, indices, values, isolated


def propagate(op: torch.Tensor, X: torch.Tensor, H: int, overwrite: bool = False) -> torch.Tensor:
    """Apply H hops ``x <- S x`` (``S`` from :func:`hop_operator`) to (N, D) float32 ``X``.

    Each hop is one ``addmm`` from one (N, D) buffer into another. With
    ``overwrite`` the buffers are ``X`` itself and a spare; otherwise ``X`` is
    only read and the result is a new array.
    """
    if H == 0:
        return X if overwrite else X.clone()
    spare = _empty_like(X) if (overwrite or H > 1) else None
    if overwrite:
        first, second = spare, X
    else:
        out = _empty_like(X)
        # the last hop must land in `out`: it takes hops H, H-2, ...; the spare the others
        first, second = (out, spare) if H % 2 else (spare, out)
    cur = X
    for h in range(int(H)):
        target = first if h % 2 == 0 else second
        # beta = 0: the target's old content is ignored (not read, NaN-safe).
        torch.addmm(target, op, cur, beta=0.0, alpha=1.0, out=target)
        cur = target
    return cur


def _empty_like(X: torch.Tensor) -> torch.Tensor:
    """An uninitialised buffer like ``X``; on the CPU allocated by numpy, which asks the
    kernel for transparent huge pages (torch's allocator does not by default): first
    touching a fresh 256 MB buffer then costs ~3x less, a sizeable part of a hop."""
    if X.device.type != "cpu":
        return torch.empty_like(X)
    return torch.from_numpy(np.empty(tuple(X.shape), dtype=torch.empty(0, dtype=X.dtype).numpy().dtype))


def smooth_subgraph(data, x: torch.Tensor, H: int, alpha: float, aggregation: str) -> torch.Tensor:
    """Smooth a sampled neighbourhood (``NeighbourSampler.sample`` output); rows of the seeds
    (``[:data.batch_size]``) are valid, (n, D) ``x`` holds the features of ``data.n_id``."""
    n = int(data.num_nodes)
    weight = getattr(data, "edge_weight", None)
    indptr, indices, w, _ = to_csr(data.edge_index, n, weight)
    scale = None
    if aggregation == "sum":
        sampled = indptr.diff()
        # The last hop's nodes were never expanded (sampled = 0); their scale is irrelevant.
        scale = torch.where(sampled > 0, data.degree.float() / sampled.clamp_min(1).float(), 1.0)
    op, _ = hop_operator(indptr, indices, w, aggregation, alpha, degree_scale=scale)
    return propagate(op, x, H, overwrite=True)


class GraphSmoother(BaseEstimator):
    """H-hop smoothing of (N, D) features on a fixed graph.

    Parameters: ``H`` hops, ``alpha`` weight of a point's own features,
    ``aggregation`` ``mean`` | ``sum``, ``mode`` ``exact`` | ``fanout``,
    ``fanout`` neighbours sampled per hop (one value for every hop or H
    values), ``batch_size`` seed points per fanout batch, ``random_state``
    seed of the sampling, ``n_threads`` torch threads (None = torch default).

    :meth:`fit` takes the CSR graph; learned state: ``operator_`` (exact: the
    one-hop matrix of :func:`hop_operator`),
    ``sampler_`` (fanout), ``isolated_`` (N,) bool, ``n_points_``. A scikit-learn
    ``BaseEstimator`` (``get_params``, ``set_params``, ``clone``), though ``fit`` takes
    the graph, not the features.
    """

    def __init__(self, H: int = 3, alpha: float = 0.5, aggregation: str = "mean", mode: str = "exact",
                 fanout: Sequence[int] = (10, 10, 10), batch_size: int = 4096, random_state: int = 0,
                 n_threads: int | None = None):
        self.H = H
        self.alpha = alpha
        self.aggregation = aggregation
        self.mode = mode
        self.fanout = fanout
        self.batch_size = batch_size
        self.random_state = random_state
        self.n_threads = n_threads

    def _fanouts(self) -> list[int]:
        fanout = [int(f) for f in np.atleast_1d(self.fanout)]
        if len(fanout) == 1:
            return fanout * int(self.H)
        if len(fanout) != int(self.H):
            raise ValueError(f"smooth: fanout has {len(fanout)} entries but H = {self.H}; "
                             "give one value for every hop, or a single value for all")
        return fanout

    def fit(self, indptr, indices, weight=None) -> "GraphSmoother":
        _check_params(self.H, self.alpha, self.aggregation, self.mode)
        check_graph(indptr, indices, weight)
        if self.n_threads:
            torch.set_num_threads(int(self.n_threads))
        self.n_points_ = len(indptr) - 1
        self._warn_uneven_sum(indptr)
        if self.mode == "exact":
            self.operator_, self.isolated_ = hop_operator(indptr, indices, weight, self.aggregation,
                                                          float(self.alpha))
        else:
            self.sampler_ = NeighbourSampler(indptr, indices, weight, self._fanouts(), self.random_state)
            self.isolated_ = torch.as_tensor(np.diff(np.asarray(indptr)) == 0)
        return self

    def _warn_uneven_sum(self, indptr) -> None:
        """``sum`` scales each point by about ``alpha + (1 - alpha) degree`` per hop: on a graph
        whose degrees differ (``graph.symmetric``, ``graph.max_distance_m``) the features then
        differ by orders of magnitude for reasons of sampling geometry, and k-means separates
        points by degree. docs/graph.md says so; the run says it too."""
        if self.aggregation != "sum" or int(self.H) == 0 or float(self.alpha) == 1.0:
            return
        degree = np.diff(np.asarray(indptr, dtype=np.int64))
        if len(degree) == 0 or degree.min() == degree.max():
            return
        grow = lambda d: (float(self.alpha) + (1 - float(self.alpha)) * d) ** int(self.H)   # noqa: E731
        log.warning("smooth: aggregation 'sum' on a graph whose degrees differ (%d to %d neighbours, "
                    "%d points without any): after %d hops their features are scaled by %.3g to %.3g, so "
                    "clustering separates points by degree rather than by regime; use aggregation 'mean', "
                    "or sum only on the plain k-NN graph (graph.symmetric: false, graph.max_distance_m: "
                    "null)", int(degree.min()), int(degree.max()), int(np.count_nonzero(degree == 0)),
                    int(self.H), grow(int(degree.min())), grow(int(degree.max())))

    def n_batches(self) -> int:
        return -(-self.n_points_ // int(self.batch_size))

    def transform_batch(self, batch: int, read_rows) -> tuple[int, np.ndarray]:
        """Fanout mode: smoothed rows of seed batch ``batch`` -> ``(start, (b, D) float32)``.

        ``read_rows(global_ids) -> (n, D)`` supplies (standardised) features. The
        sample depends only on ``random_state`` and ``batch``, so batches can
        run in any order or in separate jobs.
        """
        check_is_fitted(self, "sampler_")
        start = batch * int(self.batch_size)
        stop = min(self.n_points_, start + int(self.batch_size))
        generator = torch.Generator().manual_seed(batch_seed(self.random_state, batch))
        data = self.sampler_.sample(torch.arange(start, stop), generator=generator)
        x = torch.as_tensor(np.ascontiguousarray(read_rows(data.n_id.numpy()), dtype=np.float32))
        out = smooth_subgraph(data, x, int(self.H), float(self.alpha), self.aggregation)
        return start, out[:data.batch_size].numpy()

    def transform(self, X, overwrite: bool = False) -> np.ndarray:
        """Smoothed (N, D) float32 features ``X`` (numpy or torch; finite).

        ``overwrite``: ``X`` is the caller's float32 buffer and may be used as the
        work buffer of the hops (the stage does this: no second (N, D) array).
        """
        check_is_fitted(self, "n_points_")
        X = torch.as_tensor(np.asarray(X, dtype=np.float32)) if not torch.is_tensor(X) else X.float()
        if X.ndim != 2 or X.shape[0] != self.n_points_:
            raise ValueError(f"features of shape {tuple(X.shape)}: (N, D) with the graph's {self.n_points_} "
                             "rows expected")
        for a in range(0, len(X), 65536):   # a NaN would spread to its neighbours' rows
            require_finite(X[a:a + 65536].cpu().numpy(), a, self)
        if self.mode == "exact":
            return propagate(self.operator_, X, int(self.H), overwrite=overwrite).numpy()
        Xn = X.numpy()
        out = np.empty_like(Xn)
        with single_thread():
            for batch in range(self.n_batches()):
                start, rows = self.transform_batch(batch, lambda ids: Xn[ids])
                out[start:start + len(rows)] = rows
        return out


# --------------------------------------------------------------------------- #
# files


def fit_scaler(features: h5io.Features, block_rows: int = 65536) -> StandardScaler:
    """Column mean/std of a feature file from one streaming pass (memory = one block)."""
    scaler = StandardScaler()
    for _, _, block in features.iter_blocks(block_rows):
        scaler.partial_fit(block)
    return scaler


def _standardise(X: np.ndarray, scaler: StandardScaler | None) -> np.ndarray:
    """In-place z-score of a float32 block (StandardScaler's constant columns get scale 1)."""
    if scaler is None:
        return X
    X -= scaler.mean_.astype(np.float32)
    X /= scaler.scale_.astype(np.float32)
    return X


def _row_reader(features, scaler):
    """``read(ids) -> standardised rows`` of a feature file or any row source: one contiguous
    read when the rows are close together (shard order keeps neighbourhoods compact),
    otherwise a point selection."""

    def read(ids: np.ndarray) -> np.ndarray:
        lo, hi = int(ids.min()), int(ids.max()) + 1
        if hi - lo <= 4 * len(ids) + h5io.DEFAULT_CHUNK_ROWS:
            rows = features.read(lo, hi)[ids - lo]
        else:
            rows = features.read_rows(ids)
        return _standardise(np.ascontiguousarray(rows, dtype=np.float32), scaler)

    return read


def smooth_feature_file(features_path, graph_path, out_path, cfg: Mapping, seed: int = 0,
                        n_threads: int | None = None, block_rows: int = 65536) -> dict:
    """Stage ``smooth``: ``features/{base}.h5`` + ``graph.h5`` -> ``features/{base}_smoothed.h5``.

    Same ``names`` as the input; attrs record ``H``, ``alpha``, ``aggregation``,
    ``mode``, ``fanout``, the standardisation (``standardise_mean``/``_scale``)
    and Moran's I of the leading ``moran_features`` columns before and after.
    Returns those attrs.
    """
    cfg = dict(cfg)
    features = h5io.Features(features_path)
    graph = h5io.read_datasets(graph_path, ["indptr", "indices", "weight"])   # distances not needed
    n = features.n_rows
    if len(graph["indptr"]) - 1 != n:
        raise ValueError(f"{features_path} has {n} rows but {graph_path} has {len(graph['indptr']) - 1} "
                         "points; rebuild both from the same shards.h5")
    smoother = build_stage("smooth", cfg, random_state=seed, n_threads=n_threads)
    with timed(log, "standardisation pass"):
        scaler = fit_scaler(features, block_rows) if cfg.get("standardize", True) else None
    smoother.fit(graph["indptr"], graph["indices"], graph["weight"])
    n_moran = min(int(cfg.get("moran_features", 4)), features.n_features)
    attrs = {
        "H": int(smoother.H), "alpha": float(smoother.alpha), "aggregation": smoother.aggregation,
        "mode": smoother.mode, "fanout": [int(f) for f in np.atleast_1d(smoother.fanout)],
        "seed": int(seed), "source": str(features_path), "graph": str(graph_path),
        "standardized": scaler is not None,
        "moran_features": features.names[:n_moran],
    }
    if scaler is not None:
        attrs["standardise_mean"] = scaler.mean_.astype(np.float64)
        attrs["standardise_scale"] = scaler.scale_.astype(np.float64)

    if smoother.mode == "exact":
        X = np.empty((n, features.n_features), dtype=np.float32)
        for a, b, block in features.iter_blocks(block_rows):
            X[a:b] = _standardise(require_finite(block, a, features), scaler)
        before = X[:, :n_moran].copy()
        with timed(log, f"exact smoothing, H={smoother.H}, {n} x {features.n_features}"):
            Y = smoother.transform(torch.from_numpy(X), overwrite=True)
        del X
        after = Y[:, :n_moran].copy()
        _write_moran_attrs(attrs, graph, before, after)
        with h5io.FeatureWriter(out_path, n, features.names, attrs) as writer:
            for a in range(0, n, block_rows):
                writer.write(a, Y[a:a + block_rows])
    else:
        before = np.empty((n, n_moran), dtype=np.float32)
        for a, b, block in features.iter_blocks(block_rows):
            before[a:b] = _standardise(require_finite(block, a, features), scaler)[:, :n_moran]
        after = np.empty_like(before)
        # Moran's I of the output needs every row, so its attrs are set after the last batch.
        read_rows = _row_reader(features, scaler)
        progress = Progress(log, n, f"fanout smoothing (points), H={smoother.H}")
        with h5io.FeatureWriter(out_path, n, features.names, attrs) as writer, single_thread():
            for batch in range(smoother.n_batches()):
                start, rows = smoother.transform_batch(batch, read_rows)
                writer.write(start, rows)
                after[start:start + len(rows)] = rows[:, :n_moran]
                progress.update(len(rows))
            _write_moran_attrs(attrs, graph, before, after)
            h5io.update_feature_attrs(writer, {k: attrs[k] for k in ("morans_i_before", "morans_i_after")})
    log.info("Moran's I before %s after %s", np.round(attrs["morans_i_before"], 3),
             np.round(attrs["morans_i_after"], 3))
    return attrs


def _write_moran_attrs(attrs: dict, graph: Mapping, before: np.ndarray, after: np.ndarray) -> None:
    attrs["morans_i_before"] = np.atleast_1d(morans_i(graph["indptr"], graph["indices"], before, graph["weight"]))
    attrs["morans_i_after"] = np.atleast_1d(morans_i(graph["indptr"], graph["indices"], after, graph["weight"]))


def smooth_source_to_file(source, graph: Mapping, cfg: Mapping, out_path, seed: int = 0,
                          attrs: Mapping | None = None) -> dict:
    """Smooth any row source (e.g. z-scored raw series) into a feature file, streamed.

    The same ``H``, ``alpha`` and ``aggregation`` (and edge weights) as the
    stage; points go batch by batch (``batch_size`` seeds): in ``exact`` mode
    each batch is smoothed on its whole H-hop halo (fan-out -1), which gives
    the exact product's rows without holding (N, D) in memory; in ``fanout``
    mode on the stage's own seeded sample. The source's scaling is kept (no
    column standardisation: the caller scaled the rows already). ``graph``:
    ``indptr``, ``indices``, ``weight`` of ``graph.h5``. Returns the attrs
    written to ``out_path``.
    """
    cfg = dict(cfg)
    H = int(cfg.get("H", 3))
    fanout = [-1] * H if cfg.get("mode", "exact") == "exact" else cfg.get("fanout", [10, 10, 10])
    if len(graph["indptr"]) - 1 != source.n_rows:
        raise ValueError(f"the source has {source.n_rows} rows but the graph {len(graph['indptr']) - 1} "
                         "points; rebuild both from the same shards.h5")
    smoother = build_stage("smooth", {**cfg, "mode": "fanout", "fanout": fanout}, random_state=seed)
    _check_params(smoother.H, smoother.alpha, smoother.aggregation, cfg.get("mode", "exact"))
    smoother.fit(graph["indptr"], graph["indices"], graph["weight"])
    attrs = {**dict(attrs or {}), "H": H, "alpha": float(smoother.alpha),
             "aggregation": smoother.aggregation, "mode": cfg.get("mode", "exact"),
             "fanout": [int(f) for f in np.atleast_1d(fanout)], "seed": int(seed), "standardized": False}
    read_rows = _row_reader(source, None)
    progress = Progress(log, source.n_rows, f"streamed smoothing (points), H={H}")
    with h5io.FeatureWriter(out_path, source.n_rows, source.names, attrs) as writer, single_thread():
        for batch in range(smoother.n_batches()):
            start, rows = smoother.transform_batch(batch, read_rows)
            writer.write(start, rows)
            progress.update(len(rows))
    return attrs
