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
from .cluster_series import cluster_series_stats
from .dates import linear_trend_per_year
from .jsonio import to_jsonable


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
        return cls(labels=data["labels"], split=data["split"], record=_record(data.get("fit")),
                   centers=data.get("centers"), proba=data.get("proba"), latent=data.get("latent"),
                   attrs=data["attrs"])

    @staticmethod
    def read_record(path) -> dict:
        """The fit record (``/fit``) of ``clusters/{method}.h5`` alone, without its (N,) arrays;
        {} when there is none."""
        with h5io.open_h5(path) as f:
            return _record(f["fit"].asstr()[()]) if "fit" in f else {}


def _record(fit) -> dict:
    """The decoded ``/fit`` dataset (a JSON string as :func:`h5io.read_datasets` returns it)."""
    if fit is None:
        return {}
    return json.loads(fit if isinstance(fit, str) else fit.item())
