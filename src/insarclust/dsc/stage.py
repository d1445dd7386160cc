"""The ``dsc`` stage: fit DSC on a site, label every point, evaluate like the other methods."""
from __future__ import annotations

import logging

import numpy as np

from .. import evaluate, metrics
from ..batches import ArraySource, H5FeatureSource
from ..logs import timed
from .patches import PointSeries
from .train import DeepSpatiotemporalClustering

log = logging.getLogger("insarclust.dsc")

# config key -> estimator parameter, where they differ
_RENAMED = {"k": "n_clusters"}
_NOT_PARAMS = {"enabled"}


def estimator_from_config(cfg: dict, seed: int, device: str = "auto",
                          checkpoint_dir=None) -> DeepSpatiotemporalClustering:
    """A :class:`DeepSpatiotemporalClustering` from the ``dsc:`` config section."""
    params = {_RENAMED.get(k, k): v for k, v in cfg.items() if k not in _NOT_PARAMS}
    known = DeepSpatiotemporalClustering().get_params()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"dsc config: unknown keys {unknown}; known: {sorted(known)}")
    if "channels" in params:
        params["channels"] = tuple(params["channels"])
    return DeepSpatiotemporalClustering(**params, random_state=int(seed), device=device,
                                        checkpoint_dir=checkpoint_dir)


def run_stage(shards_path, graph_path, dyn_path, *, cfg: dict, seed: int, device: str = "auto",
              checkpoint_dir=None, interpret_cfg: dict | None = None, descriptors_path=None,
              truth_path=None, silhouette_sample: int = 10000):
    """Fit, label all points, order labels, evaluate.

    Returns ``(labels (N,) int32, split (N,) uint8, proba (N, K) float32,
    latent (N, e) float32, result dict, estimator)``. ``split`` is 0 for the
    points DSC was trained on and 1 for the others (labelled, never seen in
    training). Metrics are computed in the ``dyn`` feature space (comparable
    with the k-means variants) and, under ``metrics_latent``, in DSC's own
    clustering space.
    """
    points = PointSeries.from_shards(shards_path)
    est = estimator_from_config(cfg, seed, device, checkpoint_dir)
    with timed(log, "dsc fit"):
        est.fit(points)
    with timed(log, f"dsc labelling {points.n_points} points"):
        latent, proba = est.embed_and_assign(points)
    k = est.n_clusters
    labels, order, stats = evaluate.order_labels_with_stats(proba.argmax(axis=1), shards_path, n_clusters=k)
    proba = np.ascontiguousarray(proba[:, order])
    centers = est.cluster_centers_[order]
    split = np.ones(points.n_points, dtype=np.uint8)
    split[est.train_rows_] = 0
    with timed(log, "dsc evaluation"):
        result = evaluate.evaluate_clustering(
            labels, split, features=H5FeatureSource(dyn_path), graph_path=graph_path,
            shards_path=shards_path, descriptors_path=descriptors_path, truth_path=truth_path,
            interpret_cfg=interpret_cfg or {}, seed=seed, silhouette_sample=silhouette_sample,
            series_stats=stats, n_clusters=k)
        latent_quality = metrics.quality_metrics(ArraySource(latent), labels, n_clusters=k, seed=seed,
                                                 silhouette_sample=silhouette_sample, centers=centers)
    result["metrics_latent"] = {m: latent_quality[m] for m in
                                ("silhouette", "davies_bouldin", "calinski_harabasz",
                                 "mean_intercentroid_distance")}
    result["training"] = {
        "device": est.device_, "variant": est.variant, "cell_size_m": est.cell_size_m_,
        "n_steps": est.n_steps_, "scale_mm": est.scale_mm_, "n_train": int(len(est.train_rows_)),
        "epochs_run": len(est.history_), "converged": est.converged_,
        "seconds": float(sum(r["seconds"] for r in est.history_)),
    }
    return labels, split, proba, latent, result, est
