"""The ``dsc`` stage: fit DSC on a site, label every point, measure the fit like the other methods."""
from __future__ import annotations

import logging

import numpy as np

from ..batches import ArraySource, H5FeatureSource
from ..config import build_stage
from ..labels import Labelling, fit_metrics, order_labels_with_stats
from ..logs import timed
from .patches import PointSeries
from .train import DeepSpatiotemporalClustering

log = logging.getLogger("insarclust.dsc")

def estimator_from_config(cfg: dict, seed: int, device: str = "auto",
                          checkpoint_dir=None) -> DeepSpatiotemporalClustering:
    """A :class:`DeepSpatiotemporalClustering` from the ``dsc:`` config section."""
    cfg = dict(cfg)
    if "channels" in cfg:
        cfg["channels"] = tuple(cfg["channels"])
    return build_stage("dsc", cfg, random_state=int(seed), device=device, checkpoint_dir=checkpoint_dir)


def fit_stage(shards_path, dyn_path=None, *, cfg: dict, seed: int, device: str = "auto",
              checkpoint_dir=None, silhouette_sample: int | None = 10000):
    """Fit, label all points, order labels, measure the fit.

    Returns ``(labelling, estimator)``: :class:`~insarclust.labels.Labelling`
    with ``proba (N, K)`` and ``latent (N, e)``; ``split`` is 0 for the points
    DSC was trained on and 1 for the others (labelled, never seen in
    training); ``attrs`` (those of ``clusters/dsc.h5``) ``n_patch_alone`` and
    ``mean_patch_points`` of the ``n_patch_counted`` training patches (see
    ``DeepSpatiotemporalClustering._count_lone_patches``). The fit metrics
    are measured in DSC's own clustering space (``metrics_latent``) and,
    given ``dyn_path``, in the ``dyn`` feature space (``metrics``,
    comparable with the k-means variants). The workflow leaves
    ``dyn_path`` out and ``silhouette_sample`` None (no metrics here) and measures
    both spaces in the ``evaluate`` rule (the latent vectors are stored), so that
    neither an embedding setting nor a diagnostic one reruns DSC.
    """
    points = PointSeries.from_shards(shards_path)
    est = estimator_from_config(cfg, seed, device, checkpoint_dir)
    with timed(log, "dsc fit"):
        est.fit(points)
    with timed(log, f"dsc labelling {points.n_points} points"):
        latent, proba = est.embed_and_assign(points)
    k = est.n_clusters
    empty = int(np.count_nonzero(np.bincount(proba.argmax(axis=1), minlength=k) == 0))
    if empty:
        log.warning("dsc k=%d: %d cluster(s) hold no point: lower dsc.k, or train longer (dsc.epochs)", k, empty)
    labels, order, _ = order_labels_with_stats(proba.argmax(axis=1), shards_path, n_clusters=k)
    proba = np.ascontiguousarray(proba[:, order])
    centers = est.cluster_centers_[order]
    split = np.ones(points.n_points, dtype=np.uint8)
    split[est.train_rows_] = 0
    quality = latent_quality = None
    if silhouette_sample is not None:
        with timed(log, "dsc fit metrics"):
            quality = None if dyn_path is None else fit_metrics(H5FeatureSource(dyn_path, finite=True), labels, k,
                                                                 seed=seed, silhouette_sample=silhouette_sample)
            latent_quality = fit_metrics(ArraySource(latent), labels, k, seed=seed,
                                         silhouette_sample=silhouette_sample, centers=centers)
    record = {"k": int(k), **({"metrics": quality} if quality is not None else {}),
              **({"metrics_latent": latent_quality} if latent_quality is not None else {}), "training": {
        "device": est.device_, "variant": est.variant, "cell_size_m": est.cell_size_m_,
        "n_steps": est.n_steps_, "scale_mm": est.scale_mm_, "n_train": int(len(est.train_rows_)),
        "epochs_run": len(est.history_), "converged": est.converged_,
        "seconds": float(sum(r["seconds"] for r in est.history_)),
    }}
    # Beside the record, not in it: every number of the record's ``training`` reaches summary.tsv.
    attrs = {"n_patch_alone": int(est.n_patch_alone_), "mean_patch_points": float(est.mean_patch_points_),
             "n_patch_counted": int(len(est.train_rows_))}
    return Labelling(labels=labels, split=split, record=record, centers=centers, proba=proba,
                     latent=latent, attrs=attrs), est
