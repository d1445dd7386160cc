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


def grouped_mean_std(blocks, labels: np.ndarray, n_clusters: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster mean and (population) std of rows streamed as ``(start, stop, X)`` blocks.

    A block may carry a fourth item, a (n, D) bool ``mask``: only its True
    entries count (per cluster and column). Exact two-pass moments within
    each block, merged across blocks with Chan's formula, so a block of large
    values does not lose precision. Returns ``mean (K, D)``, ``std (K, D)``
    float64 (NaN where no entry of the cluster counts), ``counts (K,)`` rows
    per cluster.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rows = counts = mean = m2 = None
    for block in blocks:
        a, b, X = block[:3]
        mask = block[3] if len(block) > 3 else None
        X = np.asarray(X, dtype=np.float64)
        lab = labels[a:b]
        if counts is None:
            rows = np.zeros(n_clusters, dtype=np.int64)
            counts = np.zeros((n_clusters, X.shape[1]))
            mean = np.zeros((n_clusters, X.shape[1]))
            m2 = np.zeros((n_clusters, X.shape[1]))
        onehot = metrics.onehot(lab, n_clusters)
        rows += np.bincount(lab, minlength=n_clusters)
        if mask is None:
            n_b = np.broadcast_to(np.bincount(lab, minlength=n_clusters)[:, None], mean.shape)
            total = onehot @ X
        else:
            mask = np.asarray(mask, dtype=np.float64)
            n_b = onehot @ mask
            total = onehot @ (X * mask)
        hit = n_b > 0
        mean_b = np.zeros_like(mean)
        mean_b[hit] = total[hit] / n_b[hit]
        dev = (X - mean_b[lab]) ** 2
        m2_b = onehot @ (dev if mask is None else dev * mask)
        n_new = counts + n_b
        delta = mean_b - mean
        frac = np.where(hit, n_b / np.maximum(n_new, 1), 0.0)
        mean = mean + delta * frac
        m2 = m2 + m2_b + delta ** 2 * (counts * frac)
        counts = n_new
    if counts is None:
        raise ValueError("no rows to summarise")
    empty = counts == 0
    mean[empty] = np.nan
    std = np.sqrt(m2 / np.maximum(counts, 1))
    std[empty] = np.nan
    return mean, std, rows


def span_mask(spans: np.ndarray, n_grid: int) -> np.ndarray:
    """(n, G) bool: grid epochs inside each row's observed span ``spans (n, 2)`` (first, last)."""
    cols = np.arange(n_grid)
    return (cols >= spans[:, :1]) & (cols <= spans[:, 1:])


def cluster_series_stats(shards_path, labels: np.ndarray, n_clusters: int | None = None,
                         dataset: str = "series/regular") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster ``mean (K, G)``, ``std (K, G)`` (mm) of the regular series and ``counts (K,)``.

    Each point counts at the grid epochs of its own observed span only
    (first to last acquisition, :func:`insarclust.descriptors.observed_spans`):
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
    cluster whose members share one span gets their plain mean and std. Streamed
    over the shards of ``shards.h5`` (the regular series twice when some
    cluster's members differ in span); K defaults to ``labels.max() + 1``.
    """
    from .descriptors import observed_spans

    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    shards = h5io.Shards(shards_path)
    raw = dataset.rsplit("/", 1)[0] + "/displacement"
    acc: dict = {}
    all_spans = np.zeros((len(labels), 2), dtype=np.int32)   # read once: pass 2 needs no displacement

    def blocks():
        for a, b, X in shards.iter_shards(dataset):
            spans = observed_spans(shards.read(raw, a, b), shards.dates, shards.grid_dates)
            all_spans[a:b] = spans
            lab = labels[a:b]
            G = X.shape[1]
            if not acc:
                acc.update(first_min=np.full(k, G), first_max=np.full(k, -1), last_min=np.full(k, G),
                           last_max=np.full(k, -1), inc=np.zeros((k, G)), n_inc=np.zeros((k, G)))
            np.minimum.at(acc["first_min"], lab, spans[:, 0])
            np.maximum.at(acc["first_max"], lab, spans[:, 0])
            np.minimum.at(acc["last_min"], lab, spans[:, 1])
            np.maximum.at(acc["last_max"], lab, spans[:, 1])
            # changes from epoch g-1 to g of the members observed at both
            inside = span_mask(spans, G)
            both = np.zeros_like(inside)
            both[:, 1:] = inside[:, 1:] & inside[:, :-1]
            diff = np.zeros(X.shape)
            diff[:, 1:] = np.diff(np.asarray(X, dtype=np.float64), axis=1)
            onehot = metrics.onehot(lab, k)
            acc["inc"] += onehot @ np.where(both, diff, 0.0)
            acc["n_inc"] += onehot @ both.astype(np.float64)
            yield a, b, X, inside

    mean, std, counts = grouped_mean_std(blocks(), labels, k)
    mixed = (counts > 0) & ((acc["first_min"] != acc["first_max"]) | (acc["last_min"] != acc["last_max"]))
    if not mixed.any():
        return mean, std, counts
    level = mean[mixed].copy()           # plain mean: the level wherever no member carries on
    inc, n_inc = acc["inc"][mixed], acc["n_inc"][mixed]
    for g in range(1, level.shape[1]):
        carried = n_inc[:, g] > 0
        level[carried, g] = level[carried, g - 1] + inc[carried, g] / n_inc[carried, g]
    mean[mixed] = level
    # the spread around it, each member entering where others carry on shifted onto it there
    sq = np.zeros((k, mean.shape[1]))
    n_sq = np.zeros((k, mean.shape[1]))
    for a, b, X in shards.iter_shards(dataset):
        lab = labels[a:b]
        rows = mixed[lab]
        if not rows.any():
            continue
        X = np.asarray(X[rows], dtype=np.float64)
        lab = lab[rows]
        spans = all_spans[a:b][rows].astype(np.int64)
        start = spans[:, 0]
        shift = np.where(acc["n_inc"][lab, start] > 0, mean[lab, start] - X[np.arange(len(X)), start], 0.0)
        inside = span_mask(spans, X.shape[1])
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
