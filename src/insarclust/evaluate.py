"""Evaluation and interpretation of one method's labels (rule ``evaluate``).

The method rules write :class:`~insarclust.labels.Labelling` (labels in trend
order, centres, and the quality of the partition in the method's own feature
space). This stage adds what depends on the site and on the interpretation
thresholds, and writes ``clusters/{method}.json`` (docs/interpretation.md): cluster sizes,
spatial coherence on the k-NN graph, agreement with the true regimes of demo
sites and of sites with a truth table (ARI, NMI, label match) and, per
cluster, the descriptors of its mean series and a suggested label (:func:`insarclust.interpret.describe_clusters`).
A change of a label threshold therefore reruns only this stage and what reads
its output, never a fit. Everything is streamed shard by shard; only (N,)
label arrays are whole.
"""
from __future__ import annotations

import logging

import numpy as np

from . import h5io, metrics
from .batches import ArraySource, H5FeatureSource, as_source, block_bounds
from .cluster_series import cluster_acquisition_dates, cluster_series_stats, grouped_mean_std
from .dates import DAYS_PER_YEAR
from .descriptors import site_acquisition_dates
from .errors import InputError
from .interpret import TREND_WORDS_ALL, VOCABULARY, describe_clusters, fit_settings, trend_words
from .jsonio import write_json
from .kmeans import feature_source, measure_fit
from .labels import FIT_METRICS, Labelling, fit_metrics
from .spatial import label_coherence

log = logging.getLogger(__name__)

# Order of the metrics in the JSON: the fit's feature-space metrics, then the site's.
def load_truth(truth_path, pids: np.ndarray, component: str | None = None, partial: bool = False) -> np.ndarray:
    """``(N,)`` true regime names of the points ``pids`` from a ``pid,regime`` CSV. ``component``:
    the direction of the site's series; the trend words of another direction stop (an east-west
    site's clusters are never ``subsiding``: every such point would count as mislabelled).

    ``partial`` (a user's table of known points, the site table's ``truth`` column): points
    without a row get None, and rows naming no point of the site are counted in the log; at
    least one point must match. Without it (a demo site's generated truth) every point needs
    a row."""
    import pandas as pd

    try:
        # every cell as written: the site keeps ids such as NA or None (no missing-value texts)
        truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False)
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
    wrong = truth["regime"].isin(set(TREND_WORDS_ALL) - set(trend_words(component)))
    if wrong.any():
        row = int(np.flatnonzero(wrong.to_numpy())[0]) + 1
        down, up = trend_words(component)
        direction = "an east-west" if component == "east" else "a vertical or line-of-sight"
        raise InputError(f"regime {truth['regime'][row - 1]!r} names a trend of another direction: the site's "
                         f"series are {direction} component, whose trends are {down!r} and {up!r}",
                         file=truth_path, row=row, column="regime",
                         fix=f"write {down!r} for a falling and {up!r} for a rising trend")
    regime = pd.Series(truth["regime"].to_numpy(), index=truth["pid"].to_numpy())
    pids = pd.Index(np.asarray(pids, dtype=object))
    missing = ~pids.isin(regime.index)
    if missing.all() and len(pids):
        raise InputError(f"none of the {len(pids):,} points of the site has a row in the truth table (its ids "
                         f"e.g. {list(regime.index[:3])}, the site's e.g. {list(pids[:3])})", file=truth_path,
                         column="pid", fix="the pid column must hold the point ids of the site's input, as "
                                           "written there (of an ascending + descending pair: the ids of "
                                           "its cells, as shards.h5 names them, e.g. 100mE41234N30567)"
                         if partial else
                         "regenerate the demo site so shards.h5 and the truth table match")
    if missing.any() and not partial:
        raise InputError(f"{int(missing.sum())} points of shards.h5 have no true regime, e.g. "
                         f"{list(pids[missing][:3])}", file=truth_path, column="pid",
                         fix="regenerate the demo site so shards.h5 and the truth table match")
    if partial:
        unused = int((~regime.index.isin(pids)).sum())
        log.info("truth table %s: %d of %d points have a true regime%s", truth_path, int((~missing).sum()),
                 len(pids), f"; {unused} of its rows name no point of the site (left out)" if unused else "")
        if unused:
            log.warning("%d rows of the truth table %s name no point of the site (e.g. %s): left out", unused,
                        truth_path, list(regime.index[~regime.index.isin(pids)][:3]))
    values = regime.reindex(pids).to_numpy(dtype=object)
    values[missing] = None
    return values


def member_spread(descriptors_path, labels: np.ndarray, n_clusters: int) -> dict:
    """Descriptor name -> ``(K,)`` std of that descriptor across each cluster's members.

    The annual peak day is on a circle (31 December and 1 January are a day
    apart): its spread is the circular standard deviation, in days.
    """
    source = as_source(descriptors_path)
    names = list(source.names)
    peak = names.index("annual_peak_doy") if "annual_peak_doy" in names else None
    labels = np.asarray(labels, dtype=np.int64)
    cos_sum, sin_sum = np.zeros(n_clusters), np.zeros(n_clusters)

    def blocks():
        for a, b in block_bounds(source.n_rows, None, metrics.METRIC_BLOCK_ROWS):
            X = source.read(int(a), int(b))
            if peak is not None:
                angle = 2 * np.pi * (X[:, peak].astype(np.float64) - 1.0) / DAYS_PER_YEAR
                cos_sum[:] += np.bincount(labels[a:b], weights=np.cos(angle), minlength=n_clusters)
                sin_sum[:] += np.bincount(labels[a:b], weights=np.sin(angle), minlength=n_clusters)
            yield int(a), int(b), X

    _, std, counts = grouped_mean_std(blocks(), labels, n_clusters)
    spread = {name: std[:, j] for j, name in enumerate(names)}
    if peak is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            length = np.clip(np.hypot(cos_sum, sin_sum) / counts, 1e-12, 1.0)
            spread["annual_peak_doy"] = np.where(counts > 0, np.sqrt(-2 * np.log(length)) * DAYS_PER_YEAR
                                                 / (2 * np.pi), np.nan)
    return spread


def evaluate_labelling(labelling: Labelling, *, graph_path, shards_path, descriptors_path=None,
                       truth_path=None, thresholds: dict | None = None, features_path=None,
                       seed: int = 0, silhouette_sample: int = 10000, kmeans_cfg: dict | None = None,
                       labels_path=None, partial_truth: bool = False) -> dict:
    """The JSON-ready record of ``clusters/{method}.json`` for one method's labels.

    ``features_path``: a feature file to measure the fit in (silhouette etc., ``seed`` and
    ``silhouette_sample`` as :func:`insarclust.labels.fit_metrics`) when the fit record has
    no ``metrics``: DSC's labels are measured in the ``dyn`` space here, so that its job
    does not read ``dyn.h5`` and an embedding setting never retrains it. With ``kmeans_cfg``
    (the ``kmeans`` rule's labels, fitted on ``features_path``) the k-means diagnostics
    are measured here (:func:`insarclust.kmeans.measure_fit`: metrics, seed stability), so
    that a diagnostic setting never refits. A labelling with ``latent`` vectors (DSC) and
    no ``metrics_latent`` in its record is measured in that space too, with its ``centers``.
    Labels (``labels_path``: their file, for the message), graph, descriptors and features
    must all be of the points of ``shards_path`` (:func:`insarclust.h5io.check_same_points`).
    ``partial_truth``: ``truth_path`` is a user's table of some known points (:func:`load_truth`);
    the truth metrics are then of those points, and ``n_truth`` counts them when not all.

    Keys: ``k``, ``n_points``, ``n_train``, ``n_test``, ``sizes``, ``metrics``
    (the fit's silhouette, davies_bouldin, calinski_harabasz,
    mean_intercentroid_distance; spatial_coherence; with a truth file ari,
    nmi, label_match, and n_truth when it covers only some points; k-means
    inertias), ``clusters``, then the rest of the fit record (``k_selection``, ``pca``, ``training``, ``config`` ...).
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    shards = h5io.Shards(shards_path)
    # the labels' site is the rule's wildcard, which need not be the name shards.h5 was built under
    h5io.check_same_points(labels_path or "the labels", len(labelling.labels), shards, "labels")
    if descriptors_path:
        h5io.check_same_points(descriptors_path, h5io.Features(descriptors_path).n_rows, shards, "descriptors")
    if features_path is not None:
        h5io.check_same_points(features_path, h5io.Features(features_path).n_rows, shards, "features")
    record = dict(labelling.record)
    labels = np.asarray(labelling.labels, dtype=np.int64)
    split = np.asarray(labelling.split)
    n_clusters = int(record["k"])
    fit = dict(record.pop("metrics", {}))
    if kmeans_cfg is not None:
        measured = measure_fit(feature_source(features_path, shards_path), labelling, cfg=kmeans_cfg, seed=seed)
        fit = {**measured.pop("metrics"), **fit}
        config = record.pop("config", None)   # the measures go where the fit put them, before it
        record.update(measured)
        if config is not None:
            if isinstance(config.get("kmeans"), dict):
                # the settings the diagnostics were measured with (silhouette_sample,
                # seed_stability), which the fit's params leave out, beside the fit's own
                fitted = config["kmeans"]
                keys = [k for k in fitted if k not in kmeans_cfg] + list(kmeans_cfg)
                config = {**config, "kmeans": {k: fitted.get(k, kmeans_cfg.get(k)) for k in keys}}
            record["config"] = config
    elif not fit and features_path is not None:
        fit = fit_metrics(H5FeatureSource(features_path, finite=True), labels, n_clusters, seed=seed,
                          silhouette_sample=silhouette_sample)
    if labelling.latent is not None and "metrics_latent" not in record:
        # DSC's own clustering space, from the latent vectors its job stored: a diagnostic
        # setting (silhouette_sample) then reruns this job only, never the training
        latent = fit_metrics(ArraySource(np.asarray(labelling.latent)), labels, n_clusters, seed=seed,
                             silhouette_sample=silhouette_sample, centers=labelling.centers)
        record = {"metrics_latent": latent, **record}
    result_metrics = {m: fit.pop(m) for m in FIT_METRICS if m in fit}
    graph = h5io.read_graph(graph_path, shards)
    result_metrics["spatial_coherence"] = label_coherence(graph["indptr"], graph["indices"], labels)

    site_dates = site_acquisition_dates(shards)
    max_gap_days = fit_settings(thresholds)["max_gap_days"]
    mean, _, counts = cluster_series_stats(shards_path, labels, n_clusters, max_gap_days=max_gap_days,
                                           site_dates=site_dates)
    spread = member_spread(descriptors_path, labels, n_clusters) if descriptors_path else None
    own_dates = cluster_acquisition_dates(shards_path, labels, n_clusters, site_dates,
                                          max_gap_days=max_gap_days)
    # one component: its direction names the trend (an EGMS L3 east-west site: westward/eastward)
    component = shards.components[0] if len(shards.components) == 1 else None
    clusters = describe_clusters(mean, shards.grid_dates, counts, thresholds or {}, spread,
                                 observed_dates=site_dates, cluster_dates=own_dates, component=component)
    if truth_path:
        truth = load_truth(truth_path, shards.pids(), component, partial=partial_truth)
        known = np.array([t is not None for t in truth], dtype=bool)
        truth, scored = truth[known], labels[known]
        if len(set(truth)) > 1:
            result_metrics["ari"] = float(adjusted_rand_score(truth, scored))
            result_metrics["nmi"] = float(normalized_mutual_info_score(truth, scored))
        else:
            # one true class: ARI and NMI are 1 for any labels that keep its points together
            # (in a cluster of whatever regime) and 0 for any that split them
            log.warning("the truth table's %d points of the site are of one regime only (%s): ARI and "
                        "NMI need two or more and are left undefined; label match is measured",
                        len(truth), truth[0] if len(truth) else "-")
            result_metrics["ari"] = result_metrics["nmi"] = float("nan")
        suggested = np.array([c["label"] for c in sorted(clusters, key=lambda c: c["cluster"])],
                             dtype=object)
        result_metrics["label_match"] = float(np.mean(suggested[scored] == truth))
        if not known.all():
            result_metrics["n_truth"] = int(known.sum())   # the three above are of these points only
    result_metrics.update(fit)   # inertias and whatever else the fit measured
    log.info("metrics: %s", ", ".join(f"{k}={v:.4g}" for k, v in result_metrics.items()
                                      if isinstance(v, float)))
    head = {key: record.pop(key) for key in ("site", "method", "variant") if key in record}
    record.pop("k")
    return {
        **head,
        "k": n_clusters,
        "n_points": int(len(labels)),
        "n_train": int(np.sum(split == 0)),
        "n_test": int(np.sum(split == 1)),
        "sizes": [int(c) for c in counts],
        "metrics": result_metrics,
        "clusters": clusters,
        **record,
    }


def evaluate_file(clusters_path, json_path, *, graph_path, shards_path, descriptors_path=None,
                  truth_path=None, thresholds: dict | None = None, features_path=None,
                  seed: int = 0, silhouette_sample: int = 10000, kmeans_cfg: dict | None = None,
                  partial_truth: bool = False) -> dict:
    """Rule ``evaluate``: ``clusters/{method}.h5`` -> ``clusters/{method}.json``."""
    result = evaluate_labelling(Labelling.read(clusters_path), graph_path=graph_path,
                                shards_path=shards_path, descriptors_path=descriptors_path,
                                truth_path=truth_path, thresholds=thresholds, features_path=features_path,
                                seed=seed, silhouette_sample=silhouette_sample, kmeans_cfg=kmeans_cfg,
                                labels_path=clusters_path, partial_truth=partial_truth)
    if thresholds:
        result.setdefault("config", {})["interpret"] = dict(thresholds)
    write_json(result, json_path)
    return result
