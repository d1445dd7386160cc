"""Deep Spatiotemporal Clustering (DSC) of InSAR points on their space-time patches.

``patches`` builds each point's P x P x T neighbourhood, ``model`` the
CNN + LSTM autoencoder with its Student's-t clustering layer, ``train`` the
estimator :class:`DeepSpatiotemporalClustering` (its loss curve: :func:`insarclust.figures.plot_training_curve`).
"""
from .model import (VARIANTS, ClusteringLayer, DSCNet, kl_divergence, masked_mse, student_t_assignment,
                    target_distribution)
from .patches import PatchIndexer, PatchSet, PointSeries, gather_patches, make_patch_set, median_spacing_m
from .train import DeepSpatiotemporalClustering, write_train_log

__all__ = [
    "VARIANTS", "ClusteringLayer", "DSCNet", "DeepSpatiotemporalClustering", "PatchIndexer", "PatchSet",
    "PointSeries", "gather_patches", "kl_divergence", "make_patch_set", "masked_mse", "median_spacing_m",
    "student_t_assignment", "target_distribution", "write_train_log",
]
