"""Evaluation shared by every clustering method (k-means variants, baselines, dsc).

One call, :func:`evaluate_clustering`, gives the JSON-ready record of
DESIGN.md: sizes, internal quality metrics (:mod:`insarclust.metrics`),
spatial coherence on the k-NN graph, agreement with the true regimes of demo
sites, and the per-cluster interpretation (:func:`insarclust.interpret.describe_clusters`).
:func:`order_labels` renumbers clusters by the trend of their mean series so
that colours mean the same across methods (0 = most subsiding).
Everything is streamed shard by shard; only (N,) label arrays are whole.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from . import h5io, metrics
from .batches import as_source, block_bounds
from .errors import InputError
from .interpret import VOCABULARY, describe_clusters
from .spatial import label_coherence

log = logging.getLogger(__name__)

DAYS_PER_YEAR = 365.25


def grouped_mean_std(blocks, labels: np.ndarray, n_clusters: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster mean and (population) std of rows streamed as ``(start, stop, X)`` blocks.

    Exact two-pass moments within each block, merged across blocks with Chan's
    formula, so a block of large values does not lose precision.
    Returns ``mean (K, D)``, ``std (K, D)`` float64 (NaN for empty clusters), ``counts (K,)``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = mean = m2 = None
    for a, b, X in blocks:
        X = np.asarray(X, dtype=np.float64)
        lab = labels[a:b]
        if counts is None:
            counts = np.zeros(n_clusters, dtype=np.int64)
            mean = np.zeros((n_clusters, X.shape[1]))
            m2 = np.zeros((n_clusters, X.shape[1]))
        onehot = sp.csr_array((np.ones(len(lab)), (lab, np.arange(len(lab)))),
                              shape=(n_clusters, len(lab)))
        n_b = np.bincount(lab, minlength=n_clusters)
        hit = n_b > 0
        mean_b = np.zeros_like(mean)
        mean_b[hit] = (onehot @ X)[hit] / n_b[hit, None]
        m2_b = onehot @ (X - mean_b[lab]) ** 2
        n_new = counts + n_b
        delta = mean_b - mean
        frac = np.where(hit, n_b / np.maximum(n_new, 1), 0.0)
        mean = mean + delta * frac[:, None]
        m2 = m2 + m2_b + delta ** 2 * (counts * frac)[:, None]
        counts = n_new
    if counts is None:
        raise ValueError("no rows to summarise")
    empty = counts == 0
    mean[empty] = np.nan
    std = np.sqrt(m2 / np.maximum(counts, 1)[:, None])
    std[empty] = np.nan
    return mean, std, counts


def cluster_series_stats(shards_path, labels: np.ndarray, n_clusters: int | None = None,
                         dataset: str = "series/regular") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster ``mean (K, G)``, ``std (K, G)`` (mm) of the regular series and ``counts (K,)``.

    Streamed over the shards of ``shards.h5``; K defaults to ``labels.max() + 1``.
    """
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    return grouped_mean_std(h5io.Shards(shards_path).iter_shards(dataset), labels, k)


def trend_mm_yr(mean_series: np.ndarray, grid_dates: np.ndarray) -> np.ndarray:
    """Least-squares linear trend (mm/yr) of each row of ``mean_series (K, G)``; NaN rows stay NaN."""
    mean_series = np.atleast_2d(np.asarray(mean_series, dtype=np.float64))
    t_yr = (np.asarray(grid_dates, dtype=np.float64) - grid_dates[0]) / DAYS_PER_YEAR
    t_c = t_yr - t_yr.mean()
    denom = float(np.sum(t_c ** 2))
    if denom == 0:
        return np.zeros(len(mean_series))
    return (mean_series - mean_series.mean(axis=1, keepdims=True)) @ t_c / denom


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


def load_truth(truth_path, pids: np.ndarray) -> np.ndarray:
    """``(N,)`` true regime names of the points ``pids`` from a ``pid,regime`` CSV."""
    import pandas as pd

    try:
        truth = pd.read_csv(truth_path, dtype=str)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the truth table: {err}", file=truth_path) from err
    for col in ("pid", "regime"):
        if col not in truth.columns:
            raise InputError(f"missing column '{col}' (columns: {list(truth.columns)})",
                             file=truth_path, column=col, fix="the truth table has columns pid,regime")
    dup = truth["pid"].duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0]) + 1
        raise InputError(f"point id {truth['pid'][row - 1]!r} appears more than once",
                         file=truth_path, row=row, column="pid", fix="keep one row per point")
    unknown = ~truth["regime"].isin(VOCABULARY)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0]) + 1
        raise InputError(f"unknown regime {truth['regime'][row - 1]!r}", file=truth_path, row=row,
                         column="regime", fix=f"use one of {', '.join(VOCABULARY)}")
    regime = pd.Series(truth["regime"].to_numpy(), index=truth["pid"].to_numpy())
    pids = pd.Index(np.asarray(pids, dtype=object))
    missing = ~pids.isin(regime.index)
    if missing.any():
        raise InputError(f"{int(missing.sum())} points of shards.h5 have no true regime, e.g. "
                         f"{list(pids[missing][:3])}", file=truth_path, column="pid",
                         fix="regenerate the demo site so shards.h5 and the truth table match")
    return regime.reindex(pids).to_numpy(dtype=object)


def member_spread(descriptors_path, labels: np.ndarray, n_clusters: int) -> dict:
    """Descriptor name -> ``(K,)`` std of that descriptor across each cluster's members."""
    source = as_source(descriptors_path)
    blocks = ((int(a), int(b), source.read(int(a), int(b)))
              for a, b in block_bounds(source.n_rows, None, metrics.METRIC_BLOCK_ROWS))
    _, std, _ = grouped_mean_std(blocks, labels, n_clusters)
    return {name: std[:, j] for j, name in enumerate(source.names)}


def _observed_dates_kwarg(shards) -> dict:
    """``observed_dates`` for :func:`describe_clusters`: the acquisition dates the
    per-point descriptors were fitted on, so cluster means are fitted alike."""
    import inspect

    if "observed_dates" not in inspect.signature(describe_clusters).parameters:
        return {}
    try:
        from .descriptors import acquisition_dates
    except ImportError:
        return {"observed_dates": shards.dates}
    first = shards.shard_bounds()[0] if shards.n_shards else (0, 0)
    sample = shards.read("series/displacement", first[0], min(first[1], first[0] + 4096))
    return {"observed_dates": acquisition_dates(shards.dates, sample)}


def evaluate_clustering(labels: np.ndarray, split: np.ndarray, *, features, graph_path, shards_path,
                        descriptors_path=None, truth_path=None, interpret_cfg: dict, seed: int,
                        silhouette_sample: int = 10000, centers: np.ndarray | None = None,
                        series_stats: tuple | None = None, n_clusters: int | None = None) -> dict:
    """The JSON-ready evaluation record of one clustering.

    ``labels (N,)`` (already ordered, see :func:`order_labels`), ``split (N,)``
    0/1; ``features``: the row source (or feature-file path) the method
    clustered, for the internal metrics; ``centers (K, D)``: the method's
    centroids in that space (else the member means). ``series_stats``: the
    ``(mean, std, counts)`` of :func:`cluster_series_stats` when the caller has
    them already. Keys: ``k``, ``n_points``, ``n_train``, ``n_test``, ``sizes``,
    ``metrics`` (silhouette, davies_bouldin, calinski_harabasz,
    mean_intercentroid_distance, spatial_coherence; with a truth file also
    ari, nmi, label_match) and ``clusters``.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels, dtype=np.int64)
    split = np.asarray(split)
    source = as_source(features)
    if source.n_rows != len(labels):
        raise ValueError(f"{len(labels)} labels for {source.n_rows} feature rows")
    if n_clusters is None:
        n_clusters = len(centers) if centers is not None else int(labels.max()) + 1
    quality = metrics.quality_metrics(source, labels, n_clusters=n_clusters, seed=seed,
                                      silhouette_sample=silhouette_sample, centers=centers)
    graph = h5io.read_graph(graph_path)
    result_metrics = {m: quality[m] for m in ("silhouette", "davies_bouldin", "calinski_harabasz",
                                              "mean_intercentroid_distance")}
    result_metrics["spatial_coherence"] = label_coherence(graph["indptr"], graph["indices"], labels)

    shards = h5io.Shards(shards_path)
    mean, _, counts = series_stats if series_stats is not None else \
        cluster_series_stats(shards_path, labels, n_clusters)
    spread = member_spread(descriptors_path, labels, n_clusters) if descriptors_path else None
    clusters = describe_clusters(mean, shards.grid_dates, counts, interpret_cfg or {}, spread,
                                 **_observed_dates_kwarg(shards))

    if truth_path:
        truth = load_truth(truth_path, shards.pids())
        result_metrics["ari"] = float(adjusted_rand_score(truth, labels))
        result_metrics["nmi"] = float(normalized_mutual_info_score(truth, labels))
        suggested = np.array([c["label"] for c in sorted(clusters, key=lambda c: c["cluster"])],
                             dtype=object)
        result_metrics["label_match"] = float(np.mean(suggested[labels] == truth))
    log.info("metrics: %s", ", ".join(f"{k}={v:.4g}" for k, v in result_metrics.items()))
    return {
        "k": int(n_clusters),
        "n_points": int(len(labels)),
        "n_train": int(np.sum(split == 0)),
        "n_test": int(np.sum(split == 1)),
        "sizes": [int(c) for c in counts],
        "metrics": result_metrics,
        "clusters": clusters,
    }


def to_jsonable(obj):
    """Plain JSON types: numpy scalars/arrays unwrapped, NaN and inf -> null, paths -> str."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return str(obj)
    return obj


def write_method_outputs(h5_path, json_path, labels: np.ndarray, split: np.ndarray, result: dict,
                         proba: np.ndarray | None = None, latent: np.ndarray | None = None) -> None:
    """``clusters/{method}.h5`` (labels, split[, proba, latent]) and its metrics JSON, both atomic."""
    text = json.dumps(to_jsonable(result), indent=2, allow_nan=False) + "\n"
    attrs = {k: result[k] for k in ("site", "method", "k") if result.get(k) is not None}
    h5io.write_clusters(h5_path, labels, split, proba=proba, latent=latent, attrs=attrs)
    with h5io.atomic_path(json_path) as tmp:
        Path(tmp).write_text(text)
