"""Reusable torch layers.

:class:`SpatialFeatureClustering` turns geographic distances into soft
memberships of a few learnable distance bands ("near", "mid", "far", ...).
DSC uses it as an optional spatial-context branch: the distances from a
point to the neighbours in its patch become band memberships, pooled over
the neighbours, which describe how the point's surroundings are laid out.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import nn


class SpatialFeatureClustering(nn.Module):
    """Soft-assign distances to ``num_clusters`` learnable distance bands.

    Input ``(batch, items)`` non-negative distances (any unit); output
    ``(batch, items, num_clusters)`` probabilities that sum to 1 over the last
    axis.

    Normalisation, so the bands work for metres or kilometres alike:
    ``u = log1p(d / s)``, where ``s`` is ``distance_scale`` when given (a
    fixed length in the input's unit, e.g. the patch half-width in metres),
    otherwise the mean of the row's valid distances (each row is then
    scale-free: only relative distances matter). The log compresses the long
    tail of far items. Band ``k`` has a learnable centre ``c_k`` and width
    ``w_k`` in ``u`` units; memberships are ``softmax_k(-(u - c_k)^2 / (2 w_k^2))``.
    Centres start evenly spaced over ``[0, log1p(3)]`` (0 to 3 times the scale).

    ``mask`` (batch, items) bool marks valid items; invalid ones are left out
    of the row scale (their memberships are still computed, from ``d`` as
    given, so the caller pools with the same mask).
    """

    def __init__(self, num_clusters: int, distance_scale: float | None = None, eps: float = 1e-6):
        super().__init__()
        if isinstance(num_clusters, bool) or not isinstance(num_clusters, numbers.Integral):
            raise TypeError(f"num_clusters must be an integer >= 2, got {num_clusters!r}")
        if num_clusters < 2:
            raise ValueError(f"num_clusters must be an integer >= 2, got {num_clusters}")
        if distance_scale is not None and not distance_scale > 0:
            raise ValueError(f"distance_scale must be > 0 or None, got {distance_scale!r}")
        self.num_clusters = int(num_clusters)
        self.distance_scale = None if distance_scale is None else float(distance_scale)
        self.eps = eps
        top = math.log1p(3.0)
        self.centres = nn.Parameter(torch.linspace(0.0, top, self.num_clusters))
        spacing = top / (self.num_clusters - 1)
        # Softplus-parametrised widths stay positive; start at one band spacing.
        self.raw_widths = nn.Parameter(torch.full((self.num_clusters,), math.log(math.expm1(spacing))))

    def normalise(self, distances: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``log1p(d / scale)``, shape of ``distances``."""
        d = distances.clamp_min(0)
        if self.distance_scale is not None:
            return torch.log1p(d / self.distance_scale)
        valid = torch.ones_like(d, dtype=torch.bool) if mask is None else mask.bool()
        total = torch.where(valid, d, torch.zeros_like(d)).sum(-1, keepdim=True)
        count = valid.sum(-1, keepdim=True).clamp_min(1)
        scale = (total / count).clamp_min(self.eps)
        return torch.log1p(d / scale)

    def forward(self, distances: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if distances.dim() != 2:
            raise ValueError(f"distances must be (batch, items), got shape {tuple(distances.shape)}")
        u = self.normalise(distances, mask).unsqueeze(-1)
        widths = nn.functional.softplus(self.raw_widths) + self.eps
        logits = -((u - self.centres) ** 2) / (2 * widths ** 2)
        return torch.softmax(logits, dim=-1)

    def extra_repr(self) -> str:
        return f"num_clusters={self.num_clusters}, distance_scale={self.distance_scale}"
