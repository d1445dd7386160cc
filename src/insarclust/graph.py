"""Geodesic k-nearest-neighbour graph of a site's points (stage ``graph``).

Points are mapped to 3-D unit vectors: the chord between two unit vectors is
``2 sin(theta / 2)``, a monotonic function of the great-circle angle
``theta``, so an exact Euclidean k-NN search in 3-D (scipy's ``cKDTree``)
returns exactly the great-circle nearest neighbours, with no distortion near
the poles or across the antimeridian (which lat/lon-degree distances get
wrong). Chords are converted to great-circle metres afterwards.

The graph is stored as CSR (row ``i`` lists the neighbours ``j`` of point
``i``, nearest first) in ``graph.h5`` through :func:`insarclust.h5io.write_graph`.
"""
from __future__ import annotations

import logging
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

import numpy as np
from scipy.spatial import cKDTree

from . import h5io
from .config import build_stage
from .errors import InputError
from .geodesy import EARTH_RADIUS_M, chord_to_distance_m, unit_vectors
from .logs import Progress, timed

log = logging.getLogger(__name__)

WEIGHTINGS = ("gaussian", "inverse", "binary")


def edge_weights(distance_m, weighting: str, bandwidth_m, min_distance_m: float = 1.0) -> np.ndarray:
    """Dimensionless edge weights (nnz,) float32 from distances in metres.

    ``gaussian``: ``exp(-d^2 / (2 b^2))``; ``inverse``: ``b / max(d, min_distance_m)``
    (duplicate positions would otherwise weigh infinitely; PS positions are
    not more precise than about a metre); ``binary``: 1. ``b`` = ``bandwidth_m``
    sets the scale, so weights are near 1 at the typical neighbour distance: one
    number for the site, or an (nnz,) array of per-edge scales (the local bandwidth).
    """
    d = np.asarray(distance_m, dtype=np.float32)
    if weighting == "binary":
        return np.ones_like(d)
    b = np.asarray(bandwidth_m, dtype=np.float32)
    if weighting == "gaussian":
        # One bandwidth: its reciprocal in float64, then float32 (1 / float32(b) differs in the
        # last bit for about a quarter of the lengths, 1.1 m say, and with it the weights).
        inv = np.float32(1.0 / float(bandwidth_m)) if b.ndim == 0 else np.float32(1.0) / b
        # In place: at 10^7 edges, temporaries cost more than the arithmetic.
        w = d * inv
        np.square(w, out=w)
        w *= np.float32(-0.5)
        return np.exp(w, out=w)
    if weighting == "inverse":
        w = np.maximum(d, np.float32(min_distance_m))
        return np.divide(b, w, out=w)
    raise ValueError(f"unknown weighting '{weighting}'; use one of {', '.join(WEIGHTINGS)}")


# A point whose weights give it fewer effective neighbours than this is barely smoothed; above
# this share of the site the graph stage warns (3.3-3.9 % on the demo sites and a generated
# million-point site, 21 % on a town of 3,000 points beside 1,000 on sparse hillside).
LEAN_NEIGHBOURS = 1.5
LEAN_SHARE_WARN = 0.10
# float32 gaussian weights vanish beyond ~14.4 bandwidths (exp(-d^2 / 2b^2) < 1.4e-45): a point
# whose every neighbour lies farther keeps its own features there; other weights still mix it
FAR_BANDWIDTHS = 14.0


def local_scales(indptr, distance_m, fallback_m: float) -> np.ndarray:
    """(N,) float32 local spacing of each point: the median of its links' lengths, links to
    its own position (duplicate positions) left out; ``fallback_m`` where it has no other link.

    The local bandwidth (``bandwidth_m: local``) weighs edge ``i-j`` on ``sqrt(s_i s_j)``
    (self-tuning, Zelnik-Manor & Perona 2004), so a hillside point and a town point each
    get their neighbours' weights on their own spacing.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    d = np.asarray(distance_m, dtype=np.float32)
    n = len(indptr) - 1
    counts = np.diff(indptr)
    k = int(counts[0]) if n else 0
    if n and k and int(indptr[-1]) == n * k and bool(np.all(counts == k)) and bool(d.min() > 0):
        # a plain k-NN graph without duplicate positions: its rows are sorted nearest first
        dk = d.reshape(n, k)
        if bool(np.all(dk[:, 1:] >= dk[:, :-1])):
            return (dk[:, (k - 1) // 2] + dk[:, k // 2]) * np.float32(0.5)
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    nz = d > 0
    rows, d = rows[nz], d[nz]
    if not bool(np.all((d[1:] >= d[:-1]) | (rows[1:] != rows[:-1]))):
        d = d[np.lexsort((d, rows))]         # per row, shortest first (fit's rows already are)
    m = np.bincount(rows, minlength=n)
    start = np.zeros(n, dtype=np.int64)
    np.cumsum(m[:-1], out=start[1:])
    out = np.full(n, np.float32(fallback_m), dtype=np.float32)
    has = m > 0
    lo, hi = start[has] + (m[has] - 1) // 2, start[has] + m[has] // 2
    out[has] = (d[lo] + d[hi]) * np.float32(0.5)
    return out


# a row's sum of float32 squared weights below this is recomputed in float64 (float32 squares of
# weights below ~1e-19 are subnormal or 0)
_TINY_SQUARES = 1e-30


def effective_neighbours(indptr, weight, block_points: int = 65536) -> np.ndarray:
    """(N,) float64 effective number of neighbours of each point, ``(sum w)^2 / sum w^2`` over its
    edges (k for equal weights, 1 when one neighbour carries the weight; 0 without edges or
    with every weight 0), in blocks of points (no (nnz,) temporaries)."""
    indptr = np.asarray(indptr, dtype=np.int64)
    n = len(indptr) - 1
    out = np.zeros(n, dtype=np.float64)
    k = int(indptr[1] - indptr[0]) if n else 0
    if n and k and int(indptr[-1]) == n * k and bool(np.all(np.diff(indptr) == k)):
        # k edges a point (a plain k-NN graph): row sums of an (n, k) view, block by block, in
        # the weights' float32 (a count to compare with 1.5; 3x faster than in float64)
        for a in range(0, n, block_points):
            b = min(n, a + block_points)
            w = np.asarray(weight[a * k:b * k]).reshape(b - a, k)
            s1, s2 = w.sum(axis=1).astype(np.float64), np.einsum("ij,ij->i", w, w).astype(np.float64)
            # squares of weights below ~1e-19 underflow in float32 (a far point's gaussian
            # weights, which the float64 normalisation of the smoothing still spreads): such
            # rows in float64
            tiny = np.flatnonzero(s2 < _TINY_SQUARES)
            if len(tiny):
                w64 = w[tiny].astype(np.float64)
                s1[tiny], s2[tiny] = w64.sum(axis=1), np.einsum("ij,ij->i", w64, w64)
            np.divide(s1 * s1, s2, out=out[a:b], where=s2 > 0)
        return out
    for a in range(0, n, block_points):
        b = min(n, a + block_points)
        w = np.asarray(weight[indptr[a]:indptr[b]], dtype=np.float64)
        rows = np.repeat(np.arange(b - a), np.diff(indptr[a:b + 1]))
        s1 = np.bincount(rows, weights=w, minlength=b - a)
        s2 = np.bincount(rows, weights=w * w, minlength=b - a)
        np.divide(s1 * s1, s2, out=out[a:b], where=s2 > 0)
    return out


def check_coordinates(lat_deg, lon_deg, file=None) -> tuple[np.ndarray, np.ndarray]:
    """Validated (N,) float64 latitude/longitude in degrees; InputError naming the first bad row."""
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    if lat.shape != lon.shape or lat.ndim != 1:
        raise ValueError(f"lat and lon must be (N,) arrays of equal length, got {lat.shape} and {lon.shape}")
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{int(bad.sum())} points have missing or out-of-range coordinates "
                         f"(first: lat={lat[row]}, lon={lon[row]})", file=file, row=row + 1,
                         column="points/lat, points/lon",
                         fix="rebuild shards.h5 from input with valid WGS84 degrees")
    return lat, lon


class GeodesicKNNGraph:
    """Exact k-NN graph on great-circle distance with distance-based weights.

    Parameters
    ----------
    k : neighbours per point (fewer when the site has <= k points).
    weighting : ``gaussian`` | ``inverse`` | ``binary`` (see :func:`edge_weights`).
    bandwidth_m : weight scale in metres; None = median k-NN distance of the site;
        ``"local"`` = each point's own median link, edge ``i-j`` weighed on
        ``sqrt(s_i s_j)`` (:func:`local_scales`), for sites whose density varies.
    symmetric : also add every reverse edge ``j -> i``; some points then have more
        than ``k`` neighbours.
    max_distance_m : drop edges longer than this, so isolated points get no
        edges rather than far ones; None = keep all.
    min_distance_m : distance floor of the ``inverse`` weighting.
    block_size : query points per tree query (bounds the temporary arrays).
    workers : threads of the tree query (-1 = all cores).

    Attributes after :meth:`fit`: ``indptr_ (N+1,) int64``, ``indices_ (nnz,)
    int64``, ``distance_m_ (nnz,) float32``, ``weight_ (nnz,) float32``,
    ``bandwidth_m_`` (float), ``n_points_``, ``n_isolated_`` (points without edges),
    ``n_one_neighbour_`` (points whose weights lean on one neighbour or none:
    :func:`effective_neighbours` below 1.5, those with every weight 0 included),
    ``n_zero_weight_`` (points with edges whose every weight is 0), ``n_far_`` (points whose
    nearest neighbour lies beyond ``FAR_BANDWIDTHS`` site bandwidths), ``max_degree_``.

    Duplicate coordinates: the query returns ``k + 1`` points and drops the
    point itself wherever it appears among them (ties at distance 0 are not
    guaranteed to list it first); when more than ``k`` copies coincide and the
    point itself is not returned, the farthest of the ``k + 1`` is dropped.
    Either way there are no self loops and the result depends only on the input.
    """

    def __init__(self, k: int = 10, weighting: str = "gaussian", bandwidth_m: float | None = None,
                 symmetric: bool = False, max_distance_m: float | None = None,
                 min_distance_m: float = 1.0, block_size: int = 65_536, workers: int = 1):
        self.k = k
        self.weighting = weighting
        self.bandwidth_m = bandwidth_m
        self.symmetric = symmetric
        self.max_distance_m = max_distance_m
        self.min_distance_m = min_distance_m
        self.block_size = block_size
        self.workers = workers

    def streams_edges(self) -> bool:
        """True when every point gets exactly ``k`` edges in query order (no distance cap,
        no symmetrisation): then :meth:`fit` can hand each block's final edges to
        ``on_block`` as soon as they are known."""
        return self.max_distance_m is None and not self.symmetric

    def local_bandwidth(self) -> bool:
        """True for ``bandwidth_m: local`` (each point's own spacing, :func:`local_scales`)."""
        return isinstance(self.bandwidth_m, str) and self.bandwidth_m == "local"

    def n_neighbours(self, n_points: int) -> int:
        """Neighbours per point on a site of ``n_points``: ``k``, fewer when the site is smaller."""
        return min(int(self.k), max(n_points - 1, 0))

    def fit(self, lat_deg, lon_deg, on_block=None) -> "GeodesicKNNGraph":
        """Build the graph of (N,) points given in degrees WGS84.

        ``on_block(first_edge, indices, distance_m)``: called with each block of
        rows' final edges (views) when :meth:`streams_edges`, e.g. to write them
        while the next block is queried.
        """
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"graph: unknown weighting '{self.weighting}'; use one of {', '.join(WEIGHTINGS)}")
        if int(self.k) < 1:
            raise ValueError(f"graph: k must be >= 1, got {self.k}")
        if self.bandwidth_m is not None and not self.local_bandwidth() and not (
                isinstance(self.bandwidth_m, numbers.Real) and not isinstance(self.bandwidth_m, bool)
                and self.bandwidth_m > 0):
            raise ValueError(f"graph: bandwidth_m must be > 0, null or 'local', got {self.bandwidth_m!r}")
        lat, lon = check_coordinates(lat_deg, lon_deg)
        n = len(lat)
        k = self.n_neighbours(n)
        self.n_points_ = n
        indices = np.empty((n, k), dtype=np.int64)
        distance_m = np.empty((n, k), dtype=np.float32)
        if k > 0:
            xyz = unit_vectors(lat, lon)
            # The tree is built on one core: meanwhile a second thread touches the output
            # arrays' pages, which the query threads would otherwise fault in one by one.
            with ThreadPoolExecutor(1) as pool, timed(log, "k-d tree build"):
                touched = [pool.submit(a.fill, 0) for a in (indices, distance_m)]
                tree = cKDTree(xyz)
                for job in touched:
                    job.result()
            # With a distance cap the tree prunes the search; misses come back as index n.
            bound = np.inf
            if self.max_distance_m is not None:
                bound = 2.0 * np.sin(min(float(self.max_distance_m) / EARTH_RADIUS_M, np.pi) / 2) * (1 + 1e-9)
            progress = Progress(log, n, "k-NN query (points)")
            streaming = self.streams_edges()
            if streaming:
                hist = np.zeros(1 << 16, dtype=np.int64)

            def query_block(a: int):
                """Exact neighbours of rows [a, b) into ``indices``/``distance_m`` (one thread)."""
                b = min(n, a + self.block_size)
                chord, idx = tree.query(xyz[a:b], k=k + 1, workers=1, distance_upper_bound=bound)
                self_ids = np.arange(a, b)
                if np.array_equal(idx[:, 0], self_ids):
                    idx, chord = idx[:, 1:], chord[:, 1:]
                else:
                    is_self = idx == self_ids[:, None]
                    keep = ~is_self
                    keep[~is_self.any(axis=1), -1] = False
                    idx, chord = idx[keep].reshape(b - a, k), chord[keep].reshape(b - a, k)
                indices[a:b] = idx
                chord_to_distance_m(chord, out=distance_m[a:b])
                return a, b, (_top_bits_histogram(distance_m[a:b]) if streaming else None)

            # Blocks go to `workers` threads, each querying with one core: no barrier at
            # the end of every block (as with the query's own workers), and the per-block
            # conversions run in parallel too (the tree query releases the GIL).
            threads = (os.cpu_count() or 1) if self.workers in (None, -1) else max(1, int(self.workers))
            with ThreadPoolExecutor(threads) as pool:
                for a, b, block_hist in pool.map(query_block, range(0, n, self.block_size)):
                    if streaming:
                        hist += block_hist
                        if on_block is not None:
                            on_block(a * k, indices[a:b].reshape(-1), distance_m[a:b].reshape(-1))
                    progress.update(b - a)
            del tree, xyz
        indices = indices.reshape(-1)
        distance_m = distance_m.reshape(-1)
        counts = np.full(n, k, dtype=np.int64)
        if self.max_distance_m is not None:
            near = (distance_m <= np.float32(self.max_distance_m)) & (indices < n)
            if not near.all():
                counts = near.reshape(n, k).sum(axis=1, dtype=np.int64)
                indices, distance_m = indices[near], distance_m[near]
        if self.symmetric:
            rows = np.repeat(np.arange(n, dtype=np.int64), counts)
            rows, indices, distance_m = _symmetrise(rows, indices, distance_m, n)
            counts = np.bincount(rows, minlength=n).astype(np.int64)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])

        # Links between coincident points (duplicate positions) say nothing about the spacing:
        # counted in, they pull the median down until real neighbours weigh ~0.
        n_coincident = int(np.count_nonzero(distance_m == 0))
        if n_coincident:
            (log.warning if n_coincident > 0.1 * len(distance_m) else log.info)(
                "graph: %d of %d neighbour links join points at the same position; the default "
                "bandwidth is the median of the other links", n_coincident, len(distance_m))
        if self.bandwidth_m is not None and not self.local_bandwidth():
            bandwidth = float(self.bandwidth_m)
        else:
            if n_coincident == len(distance_m):
                bandwidth = float("nan")
            elif k > 0 and streaming:
                bandwidth = float(median_from_histogram(distance_m, hist, skip=n_coincident))
            else:
                bandwidth = float(np.median(distance_m[distance_m > 0]))
            if not bandwidth > 0:
                # All neighbours coincide (or no edges): any positive scale gives the same weights.
                bandwidth = float(self.min_distance_m)
        self.bandwidth_m_ = bandwidth
        self.indptr_ = indptr
        self.indices_ = indices
        self.distance_m_ = distance_m
        scale = bandwidth
        if self.local_bandwidth():
            s = local_scales(indptr, distance_m, fallback_m=bandwidth)
            # per edge sqrt(s_i s_j), in place over one (nnz,) array
            scale = np.repeat(s, np.diff(indptr))
            scale *= s[indices]
            np.sqrt(scale, out=scale)
            del s
        self.weight_ = edge_weights(distance_m, self.weighting, scale, self.min_distance_m)
        del scale
        self.n_isolated_ = int(np.count_nonzero(counts == 0))
        self.max_degree_ = int(counts.max()) if n else 0
        log.info("graph: %d points, %d edges (k=%d, %s, bandwidth %s%.1f m, symmetric=%s), "
                 "%d isolated, largest degree %d", n, len(indices), k, self.weighting,
                 "local, site median " if self.local_bandwidth() else "", bandwidth,
                 self.symmetric, self.n_isolated_, self.max_degree_)
        if self.n_isolated_ > LEAN_SHARE_WARN * max(n, 1):
            # Only a distance cap isolates points (or a site of one point). Nothing else says that
            # their smoothed features are their own, nor that spatial_coherence (the share of
            # links joining equal labels) is measured on the other points' links alone.
            log.warning("graph: %d of %d points (%.1f %%) have no neighbour within graph.max_distance_m "
                        "(%s m): the smoothing leaves them as they are, and spatial_coherence is measured "
                        "on the links of the other %d points only; raise graph.max_distance_m if they "
                        "should be smoothed", self.n_isolated_, n, 100 * self.n_isolated_ / max(n, 1),
                        "%g" % float(self.max_distance_m) if self.max_distance_m is not None else "none",
                        n - self.n_isolated_)
        self._count_lean_points(counts)
        self._count_far_points(counts)
        return self

    def _count_lean_points(self, counts: np.ndarray) -> None:
        """Count (and log) the points their weights leave barely smoothed: one bandwidth serves
        the whole site, so where a dense town sits beside sparse hillside, the hillside's
        neighbours lie far out on the town's Gaussian and one of them (or none) carries the
        weight. Nothing else says so: such points are not isolated."""
        eff = effective_neighbours(self.indptr_, self.weight_)
        with_edges = counts > 0
        lean = with_edges & (eff < LEAN_NEIGHBOURS)
        self.n_zero_weight_ = int(np.count_nonzero(with_edges & (eff == 0)))
        self.n_one_neighbour_ = int(np.count_nonzero(lean))
        n = max(self.n_points_, 1)
        share = self.n_one_neighbour_ / n
        warn = share > LEAN_SHARE_WARN
        # A point with a single link leans on it whatever the weights: the distance cap (or k = 1)
        # left it there, not the bandwidth. The others lean on one of several links: gaussian
        # weights on a bandwidth shorter than their spacing, or inverse weights with one
        # neighbour much nearer than the rest (binary weights never do).
        n_single = int(np.count_nonzero(lean & (counts == 1)))
        n_weighted = self.n_one_neighbour_ - n_single
        causes = []
        if n_single:
            causes.append("%s%d have a single link%s" % (
                "" if n_weighted else "all ", n_single,
                " within graph.max_distance_m (%g m)" % float(self.max_distance_m)
                if self.max_distance_m is not None else " (graph.k: %d)" % int(self.k)))
        if n_weighted and self.weighting == "inverse":
            causes.append("%sone neighbour much nearer than the others carries the inverse weights"
                          % ("%d have several links but " % n_weighted if n_single else ""))
        elif n_weighted or (not self.n_one_neighbour_ and self.weighting == "gaussian"):
            causes.append("%stheir neighbours lie far out on the %s" % (
                "%d have several links but " % n_weighted if n_single else "",
                ("local bandwidth (each point's own spacing; site median %.1f m)" if self.local_bandwidth()
                 else "%.1f m bandwidth") % self.bandwidth_m_))
        advice = []
        if warn and n_single and self.max_distance_m is not None:
            advice.append("raise graph.max_distance_m if the points it leaves with one link should be smoothed")
        if warn and n_weighted and self.weighting == "gaussian" and not self.local_bandwidth():
            advice.append(("where density varies (a town beside sparse hillside) the default bandwidth is the "
                           "dense part's: if the sparse part matters, set" if self.bandwidth_m is None else
                           "graph.bandwidth_m (%g m) is shorter than their spacing: if they matter, raise it, "
                           "set" % float(self.bandwidth_m))
                          + " graph.bandwidth_m: local (each point's own spacing), or graph.weighting: inverse")
        (log.warning if warn else log.info)(
            "graph: %d of %d points (%.1f %%) weigh effectively one neighbour or none (%d with every weight "
            "0, left as they are by the mean smoothing)%s%s",
            self.n_one_neighbour_, self.n_points_, 100 * share, self.n_zero_weight_,
            "".join(": " + c if i == 0 else "; " + c for i, c in enumerate(causes)),
            "".join("; " + a for a in advice))

    def _count_far_points(self, counts: np.ndarray) -> None:
        """Count the points whose every neighbour lies beyond ``FAR_BANDWIDTHS`` site bandwidths
        (a lone building kilometres from the rest). Gaussian weights (one bandwidth) are 0 there,
        so the mean smoothing leaves such a point as it is; binary and inverse weights, and
        local bandwidths (the point's own wide scale), still average its features with those of
        ground that has nothing to do with it, and say so here."""
        with_edges = np.flatnonzero(counts > 0)
        reach = np.float32(FAR_BANDWIDTHS * self.bandwidth_m_)
        if len(with_edges) and np.isfinite(reach):
            nearest = np.minimum.reduceat(self.distance_m_, self.indptr_[with_edges])
            self.n_far_ = int(np.count_nonzero(nearest > reach))
        else:
            self.n_far_ = 0
        if self.n_far_ and (self.weighting != "gaussian" or self.local_bandwidth()):
            log.warning("graph: %d of %d points have every neighbour farther than %.0f m (%g x the %.1f m "
                        "site bandwidth), and %s still average their features with those far points: set "
                        "graph.max_distance_m (e.g. %.0f) to leave them as they are",
                        self.n_far_, self.n_points_, reach, FAR_BANDWIDTHS, self.bandwidth_m_,
                        "local bandwidths" if self.weighting == "gaussian" else f"{self.weighting} weights",
                        reach)

    def to_csr(self, values: str = "weight"):
        """The graph as a ``scipy.sparse.csr_array`` (N, N) of ``weight`` or ``distance_m``."""
        import scipy.sparse as sp

        data = {"weight": self.weight_, "distance_m": self.distance_m_}[values]
        # Copies: scipy sorts a matrix's index arrays in place on some operations.
        return sp.csr_array((data.copy(), self.indices_.copy(), self.indptr_.copy()),
                            shape=(self.n_points_, self.n_points_))

    def graph_attrs(self) -> dict:
        """The attrs stored in ``graph.h5`` (``k``, ``weighting``, ... ; None values are omitted)."""
        return {
            "k": int(self.k),
            "weighting": self.weighting,
            "bandwidth_m": float(self.bandwidth_m_),
            "bandwidth": ("local" if self.local_bandwidth() else "median" if self.bandwidth_m is None
                          else "fixed"),
            "symmetric": bool(self.symmetric),
            "max_distance_m": None if self.max_distance_m is None else float(self.max_distance_m),
            "n_points": int(self.n_points_),
            "n_edges": int(len(self.indices_)),
            "n_isolated": int(self.n_isolated_),
            "n_one_neighbour": int(self.n_one_neighbour_),
            "n_zero_weight": int(self.n_zero_weight_),
            "n_far": int(self.n_far_),
            "max_degree": int(self.max_degree_),
            "earth_radius_m": EARTH_RADIUS_M,
        }

    def write(self, path, attrs: Mapping | None = None) -> None:
        """Write ``graph.h5`` atomically (extra ``attrs`` are added to the defaults)."""
        h5io.write_graph(path, self.indptr_, self.indices_, self.distance_m_, self.weight_,
                         {**self.graph_attrs(), **(attrs or {})})


def _top_bits_histogram(values: np.ndarray) -> np.ndarray:
    """Counts of the top 16 bits of non-negative float32 values (65,536 bins, in value order)."""
    return np.bincount(np.ascontiguousarray(values).reshape(-1).view(np.uint32) >> 16, minlength=1 << 16)


def median_from_histogram(values: np.ndarray, hist: np.ndarray, skip: int = 0) -> np.float32:
    """``np.median`` of non-negative float32 ``values``, given :func:`_top_bits_histogram`
    of them (accumulated block by block while they were computed); with ``skip``, the
    median of the values after the ``skip`` smallest (the zeros, say).

    The bit patterns of non-negative floats sort like the floats, so the histogram
    names the bin of each middle value; only that bin (~1 % of the values) is
    partitioned, instead of all of them (~5x faster at 10^7 values).
    """
    values = values.reshape(-1)
    n = len(values)
    # negative, infinite or NaN values (sign bit, or an all-ones exponent): not this function's case
    if hist[0x7F80:].any() or hist.sum() != n:
        return np.median(np.sort(values)[skip:])
    cum = np.cumsum(hist)
    middle = []
    selected = {}
    m = n - skip
    for rank in (skip + (m - 1) // 2, skip + m // 2):
        b = int(np.searchsorted(cum, rank, side="right"))
        if b not in selected:
            selected[b] = values[(values.view(np.uint32) >> 16) == b]
        before = int(cum[b - 1]) if b else 0
        middle.append(np.partition(selected[b], rank - before)[rank - before])
    return np.mean(np.array(middle, dtype=np.float32))


def _symmetrise(rows, cols, distance_m, n):
    """Union of the edges and their reverses; each undirected pair kept once per direction.

    When both ``i -> j`` and ``j -> i`` exist their distances agree up to
    rounding; the larger is kept so the result does not depend on edge order.
    Rows come out sorted, neighbours nearest first (ties by index).
    """
    r = np.concatenate([rows, cols])
    c = np.concatenate([cols, rows])
    d = np.concatenate([distance_m, distance_m])
    order = np.lexsort((-d, c, r))           # per (row, col) the largest distance first
    r, c, d = r[order], c[order], d[order]
    first = np.ones(len(r), dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    r, c, d = r[first], c[first], d[first]
    order = np.lexsort((c, d, r))            # nearest first within each row
    return r[order], c[order], d[order]


def build_graph_file(shards_path, graph_path, cfg: Mapping, workers: int = 1) -> GeodesicKNNGraph:
    """Stage ``graph``: read coordinates from ``shards.h5``, write ``graph.h5``.

    Memory: coordinates and the tree are O(N); the CSR arrays O(N k) (about
    170 MB per million points at k = 10). For a plain k-NN graph the edges of
    each block are written by a second thread while the next block is queried
    (the tree query and h5py both release the GIL), so the write of the CSR
    arrays overlaps the search instead of following it.
    """
    shards = h5io.Shards(shards_path)
    lat, lon = shards.coords()
    log.info("graph: %d points from %s", len(lat), shards_path)
    check_coordinates(lat, lon, file=shards_path)
    model = build_stage("graph", cfg, workers=workers)
    attrs = {"site": shards.attrs.get("site", "")}
    n = len(lat)
    k = model.n_neighbours(n)
    if not model.streams_edges() or k < 1:   # k < 1: fit() names the error
        model.fit(lat, lon)
        with timed(log, f"write {graph_path}"):
            model.write(graph_path, attrs)
        return model
    with h5io.GraphWriter(graph_path, n, n * k) as writer, ThreadPoolExecutor(1) as pool:
        pending = []
        model.fit(lat, lon, on_block=lambda start, idx, dist: pending.append(
            pool.submit(writer.write_edges, start, idx, dist)))
        for job in pending:
            job.result()
        with timed(log, f"finish {graph_path}"):
            writer.finish(model.indptr_, model.weight_, {**model.graph_attrs(), **attrs})
    return model
