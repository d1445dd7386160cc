"""The DSC network: CNN + LSTM autoencoder over space-time patches with a Student's-t clustering layer.

Shapes: a batch ``x`` is (n, T, 2, P, P): T time steps, channel 0 the
centred and scaled displacement, channel 1 the validity mask, P x P cells.

Encoder: the same small CNN is applied to every time step's P x P grid
(level 0 at full resolution, each further level halves it with a stride-2
convolution), its output map is flattened to a per-step feature, and an LSTM
over the T steps gives the latent vector ``z`` (n, latent_dim). The decoder
mirrors it: ``z`` is repeated over T, an LSTM gives per-step states, a linear
map gives the deepest feature map, and transposed convolutions bring it back
to P x P, concatenating encoder maps at each level (U-Net skip connections).

The skip connections carry the encoder's maps of the patch *layout* (the
same CNN applied to the validity mask alone): where the points are goes
around the bottleneck, while everything about the displacements (trend,
season, steps) can only reach the decoder through ``z``. Skips that carry
the series, per step or even averaged over time, let the decoder rebuild
each cell from its own skip (a per-cell amplitude times a learnt temporal
basis) and leave the latent without regime information; on the demo sites
that halved the agreement with the true regimes.

Variants (the paper's ablations):
``cnn-lstm`` (full), ``cnn`` (no LSTM: the per-step features of all T steps
are flattened into one linear map to ``z``), ``lstm`` (no CNN: each step's
grid is flattened and fed to the LSTM), ``no-skip`` (cnn-lstm without skip
connections), ``encoder-only`` (no decoder: trained on the clustering loss
alone).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..layers import SpatialFeatureClustering

VARIANTS = ("cnn-lstm", "cnn", "lstm", "no-skip", "encoder-only")
_TINY_SUM = 1e-30   # a row sum of Student's-t kernels below this is recomputed in log space


# --------------------------------------------------------------------------- #
# clustering maths (DEC, Xie et al. 2016; as used by DSC)


def student_t_assignment(z: torch.Tensor, centroids: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Soft assignments q (n, K): q_ij ∝ (1 + |z_i - mu_j|^2 / alpha)^(-(alpha + 1) / 2).

    ``z`` (n, d), ``centroids`` (K, d); rows of q sum to 1.
    """
    sq = torch.cdist(z.float(), centroids.float()).pow(2)
    kernel = (1.0 + sq / alpha).pow(-(alpha + 1.0) / 2.0)
    total = kernel.sum(dim=1, keepdim=True)
    # With a large alpha or far latents every kernel value of a row can underflow (0 / 0):
    # those rows come from the same formula in log space (a softmax), the others as written.
    exact = kernel / total.clamp_min(_TINY_SUM)
    logs = torch.softmax(-(alpha + 1.0) / 2.0 * torch.log1p(sq / alpha), dim=1)
    return torch.where(total > _TINY_SUM, exact, logs)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """Sharpened target p (n, K): p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij.

    Squaring favours confident assignments; dividing by the cluster mass f_j
    keeps large clusters from swallowing small ones.
    """
    weight = q.pow(2) / q.sum(dim=0, keepdim=True)
    return weight / weight.sum(dim=1, keepdim=True)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """KL(P || Q) averaged over the n rows (scalar); ``p`` is a fixed target."""
    p = p.detach()
    return (p * (torch.log(p.clamp_min(eps)) - torch.log(q.clamp_min(eps)))).sum(dim=1).mean()


def masked_mse(reconstruction: torch.Tensor, x: torch.Tensor, centre_weight: float = 0.0) -> torch.Tensor:
    """MSE over the valid cells only: ``reconstruction`` (n, T, P, P), ``x`` (n, T, 2, P, P).

    ``centre_weight`` w in [0, 1): the centre cell (the point being clustered)
    gets weight w and the valid neighbours share 1 - w; 0 weighs every valid
    cell alike, so a point counts 1/81 of its own 9 x 9 patch.
    """
    values, mask = x[:, :, 0].float(), x[:, :, 1].float()
    err = (reconstruction.float() - values).pow(2) * mask
    if not centre_weight:
        return err.sum() / mask.sum().clamp_min(1.0)
    c = x.shape[-1] // 2
    centre = err[..., c, c].sum() / mask[..., c, c].sum().clamp_min(1.0)
    err_rest = err.sum() - err[..., c, c].sum()
    mask_rest = mask.sum() - mask[..., c, c].sum()
    return centre_weight * centre + (1.0 - centre_weight) * err_rest / mask_rest.clamp_min(1.0)


class ClusteringLayer(nn.Module):
    """Learnable centroids (K, d); ``forward(z) -> q`` (n, K), computed in float32."""

    def __init__(self, n_clusters: int, dim: int, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)
        self.centroids = nn.Parameter(torch.zeros(n_clusters, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return student_t_assignment(z, self.centroids, self.alpha)


# --------------------------------------------------------------------------- #
# network


def run_lstm(lstm: nn.LSTM, steps: torch.Tensor):
    """``lstm(steps)`` in float32 with autocast off.

    Under CUDA autocast cuDNN's LSTM always runs in fp16, whatever the autocast
    dtype. With bf16 there is no gradient scaler, and the gradients reaching
    the LSTMs (1e-9 to 1e-7 at a batch of 512 patches) flush to zero in fp16:
    the encoder would hardly learn. The LSTMs are a small share of the work.
    """
    with torch.autocast(device_type=steps.device.type, enabled=False):
        return lstm(steps.float())


def _level_sizes(patch_size: int, n_levels: int) -> list[int]:
    sizes = [patch_size]
    for _ in range(1, n_levels):
        sizes.append((sizes[-1] + 1) // 2)  # 3x3 conv, stride 2, padding 1
    return sizes


class DSCNet(nn.Module):
    """Autoencoder + clustering layer; see the module docstring for the layout.

    ``n_steps`` T and ``patch_size`` P fix the input shape; ``channels`` the
    CNN widths per level (level l > 0 halves the grid); ``lstm_hidden`` the
    per-step feature and LSTM state size; ``spatial_bands`` > 0 adds the
    SpatialFeatureClustering branch (band memberships of the neighbour
    distances, pooled, concatenated to ``z``) with ``spatial_scale_m`` as its
    distance scale.
    """

    def __init__(self, n_steps: int, patch_size: int, n_clusters: int, latent_dim: int = 16,
                 channels: Sequence[int] = (16, 32), lstm_hidden: int = 64, variant: str = "cnn-lstm",
                 alpha: float = 1.0, spatial_bands: int = 0, spatial_scale_m: float | None = None):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown DSC variant '{variant}'; choose one of {', '.join(VARIANTS)}")
        if not channels:
            raise ValueError("channels must list at least one CNN width")
        self.n_steps, self.patch_size, self.variant = int(n_steps), int(patch_size), variant
        self.latent_dim, self.lstm_hidden = int(latent_dim), int(lstm_hidden)
        self.channels = [int(c) for c in channels]
        self.use_cnn = variant != "lstm"
        self.use_lstm = variant != "cnn"
        self.has_decoder = variant != "encoder-only"
        self.use_skips = variant in ("cnn-lstm", "cnn")
        H, P = self.lstm_hidden, self.patch_size
        self.sizes = _level_sizes(P, len(self.channels))
        deep = self.channels[-1] * self.sizes[-1] ** 2

        # encoder
        if self.use_cnn:
            convs, c_in = [], 2
            for level, c in enumerate(self.channels):
                convs.append(nn.Conv2d(c_in, c, 3, stride=1 if level == 0 else 2, padding=1))
                c_in = c
            self.enc_convs = nn.ModuleList(convs)
            self.enc_step = nn.Linear(deep, H)
        else:
            self.enc_step = nn.Linear(2 * P * P, H)
        if self.use_lstm:
            self.enc_lstm = nn.LSTM(H, H, batch_first=True)
            self.to_latent = nn.Linear(H, self.latent_dim)
        else:
            self.to_latent = nn.Linear(self.n_steps * H, self.latent_dim)

        # decoder
        if self.has_decoder:
            if self.use_lstm:
                self.from_latent = nn.Linear(self.latent_dim, H)
                # A learnable per-step offset tells the decoder LSTM where it is in
                # time; a plain repeated latent makes it learn that by counting.
                self.dec_position = nn.Parameter(torch.zeros(self.n_steps, H))
                self.dec_lstm = nn.LSTM(H, H, batch_first=True)
            else:
                self.from_latent = nn.Linear(self.latent_dim, self.n_steps * H)
            if self.use_cnn:
                self.dec_step = nn.Linear(H, deep)
                merge, merge_skip, up = [], [], []
                for level in range(len(self.channels) - 1, -1, -1):
                    c = self.channels[level]
                    merge.append(nn.Conv2d(c, c, 3, padding=1))
                    if self.use_skips:
                        # The conv of [h, skip] split in two: the skip half is the
                        # same for all T steps, so it runs once per patch.
                        merge_skip.append(nn.Conv2d(c, c, 3, padding=1, bias=False))
                    if level > 0:
                        s_out, s_in = self.sizes[level - 1], self.sizes[level]
                        up.append(nn.ConvTranspose2d(c, self.channels[level - 1], 3, stride=2, padding=1,
                                                     output_padding=s_out - (2 * s_in - 1)))
                self.dec_merge = nn.ModuleList(merge)
                self.dec_merge_skip = nn.ModuleList(merge_skip)
                self.dec_up = nn.ModuleList(up)
                self.dec_out = nn.Conv2d(self.channels[0], 1, 1)
            else:
                self.dec_step = nn.Linear(H, P * P)

        self.spatial = (SpatialFeatureClustering(int(spatial_bands), distance_scale=spatial_scale_m)
                        if spatial_bands else None)
        embed_dim = self.latent_dim + (int(spatial_bands) if spatial_bands else 0)
        self.embed_dim = embed_dim
        self.clustering = ClusteringLayer(n_clusters, embed_dim, alpha)

    # -- encoder ------------------------------------------------------------ #

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x`` (n, T, 2, P, P) -> latent (n, latent_dim), time-mean skip maps per level."""
        n, T = x.shape[:2]
        skips: list[torch.Tensor] = []
        if self.use_cnn:
            h = x.reshape(n * T, *x.shape[2:])
            for conv in self.enc_convs:
                h = F.relu(conv(h))
            steps = F.relu(self.enc_step(h.reshape(n, T, -1)))
            if self.use_skips:
                skips = self.layout_maps(x[:, 0, 1:2])
        else:
            steps = F.relu(self.enc_step(x.reshape(n, T, -1)))
        if self.use_lstm:
            _, (h_last, _) = run_lstm(self.enc_lstm, steps)
            z = self.to_latent(h_last[-1])
        else:
            z = self.to_latent(steps.reshape(n, -1))
        return z, skips

    def layout_maps(self, mask: torch.Tensor) -> list[torch.Tensor]:
        """Skip maps: the encoder CNN applied to the validity mask alone (values zeroed).

        ``mask`` (n, 1, P, P) -> one (n, c_l, s_l, s_l) map per level. The
        layout is the same at every time step, so this runs once per patch.
        """
        h = torch.cat([torch.zeros_like(mask), mask], dim=1)
        maps = []
        for conv in self.enc_convs:
            h = F.relu(conv(h))
            maps.append(h)
        return maps

    def spatial_context(self, distance_m: torch.Tensor) -> torch.Tensor:
        """(n, P * P) neighbour distances (NaN = empty) -> (n, bands) pooled band memberships.

        The centre cell (the point itself) is left out; a patch without
        neighbours pools to zeros.
        """
        mask = torch.isfinite(distance_m)
        P = self.patch_size
        mask[:, P * (P // 2) + P // 2] = False   # the point's cell (P // 2, P // 2), for even P too
        d = torch.where(mask, distance_m, torch.zeros_like(distance_m)).float()
        bands = self.spatial(d, mask)
        weights = mask.float().unsqueeze(-1)
        return (bands * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def embed(self, x: torch.Tensor, distance_m: torch.Tensor | None = None) -> tuple[torch.Tensor, list]:
        """The clustering space: ``z`` plus, with the spatial branch, pooled band memberships."""
        z, skips = self.encode(x)
        if self.spatial is not None:
            if distance_m is None:
                raise ValueError("the spatial branch needs the neighbour distances (distance_m)")
            z = torch.cat([z.float(), self.spatial_context(distance_m)], dim=1)
        return z, skips

    # -- decoder ------------------------------------------------------------ #

    def decode(self, z: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """``z`` (n, latent_dim) -> reconstruction (n, T, P, P) of channel 0."""
        n, T, P = z.shape[0], self.n_steps, self.patch_size
        if self.use_lstm:
            seed = self.from_latent(z).unsqueeze(1) + self.dec_position
            steps, _ = run_lstm(self.dec_lstm, F.relu(seed))
        else:
            steps = F.relu(self.from_latent(z)).reshape(n, T, self.lstm_hidden)
        if not self.use_cnn:
            return self.dec_step(steps).reshape(n, T, P, P)
        L = len(self.channels)
        h = F.relu(self.dec_step(steps)).reshape(n * T, self.channels[-1], self.sizes[-1], self.sizes[-1])
        for i, level in enumerate(range(L - 1, -1, -1)):
            h = self.dec_merge[i](h)
            if self.use_skips:
                from_skip = self.dec_merge_skip[i](skips[level])  # (n, c, s, s), once per patch
                h = (h.reshape(n, T, *h.shape[1:]) + from_skip.unsqueeze(1).to(h.dtype)).reshape(h.shape)
            h = F.relu(h)
            if level > 0:
                h = F.relu(self.dec_up[i](h))
        return self.dec_out(h).reshape(n, T, P, P)

    def forward(self, x: torch.Tensor, distance_m: torch.Tensor | None = None):
        """-> (reconstruction (n, T, P, P) or None for encoder-only, embedding (n, e), q (n, K))."""
        emb, skips = self.embed(x, distance_m)
        z = emb[:, :self.latent_dim]
        recon = self.decode(z, skips) if self.has_decoder else None
        with torch.autocast(device_type=emb.device.type, enabled=False):
            q = self.clustering(emb.float())
        return recon, emb, q
