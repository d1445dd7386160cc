"""What a clustering method's fit leaves behind: ordered labels, centres, fit diagnostics.

Every method rule (k-means variants, peers, DSC) ends the same way: cluster
ids are renumbered by the trend of their mean series (:func:`order_labels`,
so that id 0 subsides fastest and a colour means the same motion in every
figure), the quality of the partition is measured in the method's own
feature space (silhouette, Davies-Bouldin, Calinski-Harabasz, centre
distances: :func:`fit_metrics`), and :class:`Labelling` is written to
``clusters/{method}.h5``. Nothing here reads the interpretation thresholds:
metrics against the graph, the truth and the suggested regime names come
later, in :mod:`insarclust.evaluate`, so a threshold change never refits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from . import h5io, metrics
from .dates import linear_trend_per_year
from .jsonio import to_jsonable
from .spans import span_mask


class GroupedMoments:
    """Per-cluster count, mean and M2 (sum of squared deviations) of each column, added block
    by block: exact two-pass moments within a block, merged across blocks with Chan's formula,
    so a block of large values does not lose precision."""

    def __init__(self, n_clusters: int, n_columns: int):
        self.rows = np.zeros(n_clusters, dtype=np.int64)
        self.n = np.zeros((n_clusters, n_columns))
        self.mean = np.zeros((n_clusters, n_columns))
        self.m2 = np.zeros((n_clusters, n_columns))

    def add(self, lab: np.ndarray, X: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Rows ``X (n, D)`` of clusters ``lab (n,)``; with ``mask (n, D)`` only its True entries count."""
        k = len(self.rows)
        X = np.asarray(X, dtype=np.float64)
        onehot = metrics.onehot(lab, k)
        per_cluster = np.bincount(lab, minlength=k)
        self.rows += per_cluster
        if mask is None:
            n_b = np.broadcast_to(per_cluster[:, None].astype(np.float64), self.mean.shape)
            total = onehot @ X
        else:
            mask = np.asarray(mask, dtype=np.float64)
            n_b = onehot @ mask
            total = onehot @ (X * mask)
        hit = n_b > 0
        mean_b = np.zeros_like(self.mean)
        mean_b[hit] = total[hit] / n_b[hit]
        dev = (X - mean_b[lab]) ** 2
        self.merge(n_b, mean_b, onehot @ (dev if mask is None else dev * mask))

    def merge(self, n_b: np.ndarray, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        """Chan's merge of another set of per-column moments (``rows`` is left to the caller)."""
        n_new = self.n + n_b
        delta = mean_b - self.mean
        frac = np.where(n_b > 0, n_b / np.maximum(n_new, 1), 0.0)
        self.mean = self.mean + delta * frac
        self.m2 = self.m2 + m2_b + delta ** 2 * (self.n * frac)
        self.n = n_new

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """``mean``, population ``std`` (K, D); NaN where no entry of the cluster counts."""
        empty = self.n == 0
        mean = np.where(empty, np.nan, self.mean)
        std = np.sqrt(self.m2 / np.maximum(self.n, 1))
        std[empty] = np.nan
        return mean, std


def grouped_mean_std(blocks, labels: np.ndarray, n_clusters: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster mean and (population) std of rows streamed as ``(start, stop, X)`` blocks.

    A block may carry a fourth item, a (n, D) bool ``mask``: only its True
    entries count (per cluster and column). Returns ``mean (K, D)``, ``std (K, D)``
    float64 (NaN where no entry of the cluster counts), ``counts (K,)`` rows
    per cluster (:class:`GroupedMoments`).
    """
    labels = np.asarray(labels, dtype=np.int64)
    moments = None
    for block in blocks:
        a, b, X = block[:3]
        if moments is None:
            moments = GroupedMoments(n_clusters, X.shape[1])
        moments.add(labels[a:b], X, block[3] if len(block) > 3 else None)
    if moments is None:
        raise ValueError("no rows to summarise")
    return (*moments.mean_std(), moments.rows)


def cluster_series_stats(shards_path, labels: np.ndarray, n_clusters: int | None = None,
                         dataset: str = "series/regular") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster ``mean (K, G)``, ``std (K, G)`` (mm) of the regular series and ``counts (K,)``.

    Each point counts at the grid epochs of its own observed span only
    (first to last acquisition, :mod:`insarclust.spans`):
    beyond it ``shards`` holds its first/last value, and those flat stretches
    flattened the mean (and shrank the std) of a cluster with late-starting
    or early-ending members. An epoch no member covers is NaN.

    Where the members of a cluster do not all share one span, the mean is
    built from the mean epoch-to-epoch change of the members observed at both
    epochs, from the mean of the members at the cluster's first epoch: a
    member entering late (a later release of a product, referenced to 0 at its
    own first date) or leaving early then changes no level, where a plain mean
    over the members present would jump by their offset. The std is the spread
    around that mean, each late member shifted to it at its first epoch. A
    cluster whose members share one span gets their plain mean and std.

    Streamed over the shards of ``shards.h5``. Points observed over the whole
    grid (nearly all, in most catalogues) need no mask: their moments and
    changes come from their sums, and only the other points' rows are masked
    (and read a second time, when some cluster's members differ in span).
    K defaults to ``labels.max() + 1``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    shards = h5io.Shards(shards_path)
    G = len(shards.grid_dates)
    full = GroupedMoments(k, G)       # points observed over the whole grid
    part = GroupedMoments(k, G)       # the others, on their spans
    inc = np.zeros((k, G))            # partial points' changes from epoch g-1 to g, where observed at both
    n_inc = np.zeros((k, G))
    first_min, first_max = np.full(k, G), np.full(k, -1)
    last_min, last_max = np.full(k, G), np.full(k, -1)
    partial_rows, partial_spans = [], []
    for a, b, X in shards.iter_shards(dataset):
        spans = shards.spans(a, b, dataset)
        lab = labels[a:b]
        np.minimum.at(first_min, lab, spans[:, 0])
        np.maximum.at(first_max, lab, spans[:, 0])
        np.minimum.at(last_min, lab, spans[:, 1])
        np.maximum.at(last_max, lab, spans[:, 1])
        whole = (spans[:, 0] == 0) & (spans[:, 1] == G - 1)
        if whole.all():
            full.add(lab, X)
            continue
        full.add(lab[whole], X[whole])
        rows = np.flatnonzero(~whole)
        lab_p, spans_p = lab[rows], spans[rows]
        X_p = np.asarray(X[rows], dtype=np.float64)
        inside = span_mask(spans_p, G)
        part.add(lab_p, X_p, inside)
        both = inside[:, 1:] & inside[:, :-1]
        onehot = metrics.onehot(lab_p, k)
        inc[:, 1:] += onehot @ np.where(both, np.diff(X_p, axis=1), 0.0)
        n_inc[:, 1:] += onehot @ both.astype(np.float64)
        partial_rows.append(a + rows)
        partial_spans.append(spans_p)
    counts = full.rows + part.rows
    plain = GroupedMoments(k, G)
    for m in (full, part):
        plain.merge(m.n, m.mean, m.m2)
    mean, std = plain.mean_std()
    mixed = (counts > 0) & ((first_min != first_max) | (last_min != last_max))
    if not mixed.any():
        return mean, std, counts
    # changes of the whole-grid members are those of their mean
    n_full = full.n[:, :1]
    inc[:, 1:] += n_full * np.diff(full.mean, axis=1)
    n_inc[:, 1:] += n_full
    level = mean[mixed].copy()           # plain mean: the level wherever no member carries on
    inc_m, n_inc_m = inc[mixed], n_inc[mixed]
    for g in range(1, G):
        carried = n_inc_m[:, g] > 0
        level[carried, g] = level[carried, g - 1] + inc_m[carried, g] / n_inc_m[carried, g]
    mean[mixed] = level
    # the spread around it: whole-grid members from their moments; each partial member
    # entering where others carry on shifted onto the mean there
    centre = np.where(np.isnan(mean), 0.0, mean)
    sq = full.m2 + full.n * (full.mean - centre) ** 2
    n_sq = full.n.copy()
    rows = np.concatenate(partial_rows) if partial_rows else np.zeros(0, dtype=np.int64)
    spans_all = np.concatenate(partial_spans) if partial_spans else np.zeros((0, 2), dtype=np.int64)
    keep = mixed[labels[rows]]
    rows, spans_all = rows[keep], spans_all[keep]
    for a, b in shards.shard_bounds():
        lo, hi = np.searchsorted(rows, [a, b])
        if lo == hi:
            continue
        X = np.asarray(shards.read(dataset, a, b)[rows[lo:hi] - a], dtype=np.float64)
        lab = labels[rows[lo:hi]]
        spans = spans_all[lo:hi].astype(np.int64)
        start = spans[:, 0]
        shift = np.where(n_inc[lab, start] > 0, mean[lab, start] - X[np.arange(len(X)), start], 0.0)
        inside = span_mask(spans, G)
        dev = np.where(inside, X + shift[:, None] - mean[lab], 0.0)
        onehot = metrics.onehot(lab, k)
        sq += onehot @ dev ** 2
        n_sq += onehot @ inside.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        std[mixed] = np.sqrt(sq[mixed] / n_sq[mixed])
    return mean, std, counts


def trend_mm_yr(mean_series: np.ndarray, grid_dates: np.ndarray) -> np.ndarray:
    """Least-squares linear trend (mm/yr) of each row of ``mean_series (K, G)``; NaN rows stay NaN."""
    return linear_trend_per_year(mean_series, grid_dates)


def trend_order(mean_series: np.ndarray, grid_dates: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Old cluster ids in their new order: ascending trend, empty clusters last, ties by id."""
    trend = trend_mm_yr(mean_series, grid_dates)
    empty = (np.asarray(counts) == 0) | ~np.isfinite(trend)
    return np.lexsort((np.arange(len(trend)), np.where(empty, 0.0, trend), empty))


def order_labels_with_stats(labels: np.ndarray, shards_path, n_clusters: int | None = None):
    """:func:`order_labels` plus what it computed on the way.

    Returns ``(labels (N,) int32, order (K,), (mean, std, counts))``:
    ``order[new_id] = old_id`` (apply it to centres: ``centers[order]``) and
    the series statistics already in the new numbering.
    """
    labels = np.asarray(labels)
    mean, std, counts = cluster_series_stats(shards_path, labels, n_clusters)
    order = trend_order(mean, h5io.Shards(shards_path).grid_dates, counts)
    new_id = np.empty_like(order)
    new_id[order] = np.arange(len(order))
    return new_id[labels].astype(np.int32), order, (mean[order], std[order], counts[order])


def order_labels(labels: np.ndarray, shards_path) -> np.ndarray:
    """Labels renumbered so cluster ids go by ascending trend of the cluster mean series.

    Cluster 0 subsides fastest; the same regime gets the same id (and colour)
    whatever method found it. Empty ids (a k-means centre nobody chose) go last.
    """
    return order_labels_with_stats(labels, shards_path)[0]


# the metrics a fit measures in its own feature space (stored with the labels)
FIT_METRICS = ("silhouette", "davies_bouldin", "calinski_harabasz", "mean_intercentroid_distance")


def fit_metrics(source, labels: np.ndarray, n_clusters: int, *, seed: int, silhouette_sample: int,
                centers: np.ndarray | None = None) -> dict:
    """Quality of a partition in the feature space it was found in (JSON-ready floats)."""
    q = metrics.quality_metrics(source, labels, n_clusters=n_clusters, seed=seed,
                                silhouette_sample=silhouette_sample, centers=centers)
    return {m: float(q[m]) for m in FIT_METRICS}


@dataclass
class Labelling:
    """One method's result on one site, in shard order.

    ``labels (N,) int32`` ordered by trend, ``split (N,) uint8`` (0 train, 1
    test / not trained on), ``centers (K, D)`` in the method's feature space,
    ``record``: the JSON-ready fit record (``k``, ``metrics`` measured in
    the feature space, and whatever the method adds: ``k_selection``, ``pca``,
    ``training``, ``config`` ...); for DSC also ``proba (N, K)`` and ``latent (N, e)``.
    """

    labels: np.ndarray
    split: np.ndarray
    record: dict
    centers: np.ndarray | None = None
    proba: np.ndarray | None = None
    latent: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)
    # per-cluster (mean, std, counts) of the regular series from the ordering; not written
    series_stats: tuple | None = field(default=None, repr=False)

    def stamp(self, site: str, method: str, config: dict) -> "Labelling":
        """Name the site and method, and record the configuration the fit read."""
        self.record = {"site": site, "method": method, **self.record, "config": config}
        self.attrs.update(site=site, method=method)
        return self

    def write(self, path) -> None:
        """``clusters/{method}.h5``: labels, split, centres (+ proba, latent) and the record (``/fit``)."""
        extra = {"fit": np.array(json.dumps(to_jsonable(self.record), allow_nan=False), dtype=object)}
        if self.centers is not None:
            extra["centers"] = np.asarray(self.centers, dtype=np.float64)
        attrs = {**self.attrs, "k": int(self.record["k"])}
        h5io.write_clusters(path, self.labels, self.split, proba=self.proba, latent=self.latent,
                            attrs=attrs, extra=extra)

    @classmethod
    def read(cls, path) -> "Labelling":
        data = h5io.read_clusters(path)
        fit = data.get("fit")
        record = json.loads(fit if isinstance(fit, str) else fit.item()) if fit is not None else {}
        return cls(labels=data["labels"], split=data["split"], record=record, centers=data.get("centers"),
                   proba=data.get("proba"), latent=data.get("latent"), attrs=data["attrs"])
