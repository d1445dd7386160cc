"""Training and inference of Deep Spatiotemporal Clustering: :class:`DeepSpatiotemporalClustering`.

Schedule (DEC-style, as in the DSC paper):

1. pre-train the autoencoder on the masked reconstruction MSE
   (``pretrain_epochs``; skipped for ``encoder-only``);
2. initialise the centroids by k-means on the latents of the training sample;
3. joint training on MSE + gamma * KL(P || Q) for up to ``epochs`` epochs,
   the target P recomputed on the whole training sample every
   ``update_interval`` batches; stop early when fewer than ``tol`` of the
   training labels changed between two target updates.

Training uses a seeded sample of ``train_sample`` points whose patches (and the
series of every point they touch) sit on the device, so a batch is a gather.
All points are then labelled block by block (memory bounded by the block).

A checkpoint is written after every epoch; ``fit`` with the same
``checkpoint_dir``, hyper-parameters and data resumes from it and continues the
same loss curve (shuffles are seeded per epoch, so nothing else is needed).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted

from .. import h5io
from ..device import resolve_device
from ..logs import Progress
from ..threads import side_by_side
from ..vml import warm_up
from .model import DSCNet, kl_divergence, masked_mse, target_distribution
from .patches import PatchIndexer, PatchSet, PointSeries, gather_patches, make_patch_set, median_spacing_m

log = logging.getLogger("insarclust.dsc")

CHECKPOINT_NAME = "dsc.pt"
# A patch holding its point alone (every other cell empty) gives DSC no spatial context; above
# this share of the training patches the stage warns (4.1-4.2 % on the demo sites, 19 % on a
# town of 3,000 points beside 1,000 on sparse hillside, 77 % of the hillside's patches).
LONE_SHARE_WARN = 0.10
# Hyper-parameters that do not change the trained model (a checkpoint stays valid).
_NOT_IN_FINGERPRINT = {"device", "checkpoint_dir", "predict_block_rows", "log_every_s"}
# Any change of the code that trains makes an old checkpoint another model's.
_CODE = tuple(sorted(Path(__file__).parent.glob("*.py"))) + (Path(__file__).parents[1] / "layers.py",)


def code_digest() -> str:
    """SHA-256 of the DSC source files and the torch version (part of the checkpoint fingerprint)."""
    h = hashlib.sha256(torch.__version__.encode())
    for path in _CODE:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@contextmanager
def torch_threads(n: int | None):
    """Run with ``n`` torch intra-op threads (None: leave as is), restored afterwards.

    On CPU the training result depends on the thread count (sums are split per
    thread), so it is a setting of the model, not whatever cores a job was given.
    """
    warm_up()  # before any two-thread tanh, log, exp of the process
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def autocast_dtype(device: str, precision: str) -> torch.dtype | None:
    """Lower-precision dtype for autocast, or None for float32 (always on CPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if not device.startswith("cuda") or precision == "fp32":
        if precision in ("bf16", "fp16") and not device.startswith("cuda"):
            log.warning("precision %s is used on CUDA only; training in float32 on %s", precision, device)
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        if not _native_bf16(device):
            log.warning("precision bf16 on %s, which has no native bf16 (compute capability < 8): emulated, "
                        "slow, and not every cuDNN kernel has it; precision auto trains in fp16 there", device)
        return torch.bfloat16
    return torch.bfloat16 if _native_bf16(device) else torch.float16


def _native_bf16(device: str) -> bool:
    """Whether the GPU ``device`` ('cuda', 'cuda:1') computes in bf16 natively (Ampere or newer,
    or ROCm). Not ``torch.cuda.is_bf16_supported()``: it asks the *current* device and, by
    default, counts emulated bf16 (slow, and not every cuDNN kernel has it) as support."""
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(torch.device(device))[0] >= 8


class _DeviceMemory:
    """A PatchSet moved to the device: series scaled, indices as long tensors."""

    def __init__(self, patches: PatchSet, scale_mm: float, device: str):
        self.series = torch.from_numpy(patches.series / np.float32(scale_mm)).to(device)
        self.index = torch.from_numpy(patches.index).to(device)
        self.distance_m = torch.from_numpy(patches.distance_m).to(device)
        self.empty_row = patches.empty_row
        self.n = len(patches.rows)

    def batch(self, positions: torch.Tensor):
        x = gather_patches(self.series, self.index[positions], self.empty_row)
        return x, self.distance_m[positions]


class DeepSpatiotemporalClustering(BaseEstimator):
    """Deep Spatiotemporal Clustering of InSAR points from their space-time patches.

    Data come as a :class:`~insarclust.dsc.patches.PointSeries` (coordinates +
    regular series, e.g. ``PointSeries.from_shards("shards.h5")``).

    Parameters mirror the ``dsc:`` config section (the defaults are its CPU
    defaults; docs/dsc.md gives GPU-sized ones). ``cell_size_m=None`` uses
    the median nearest-neighbour spacing of the site (about one point per
    cell). ``precision``: ``auto`` (bf16, else fp16, on CUDA; fp32 on CPU),
    ``fp32``, ``bf16``, ``fp16``. ``checkpoint_dir``: where ``dsc.pt`` is
    written after each epoch and resumed from (None: no checkpoints).

    Learned state: ``model_`` (:class:`DSCNet`), ``cluster_centers_`` (K, e),
    ``scale_mm_`` (displacement scale), ``cell_size_m_``, ``n_patch_alone_``
    (training patches that hold their point alone: no other point in any cell),
    ``mean_patch_points_`` (points a training patch holds on average, its own
    included), ``n_steps_``, ``train_rows_`` (n_train,), ``train_labels_``
    (n_train,), ``history_``
    (one dict per epoch: epoch, phase, recon_loss, kl_loss, label_change,
    seconds), ``converged_``, ``device_``. ``train_labels_`` are the labels
    of the training sample at the last target refresh (the final model's are
    ``predict(points, train_rows_)``). ``cpu_threads``: torch threads on CPU;
    CPU results are identical for the same value, whatever cores the job has.
    """

    def __init__(self, n_clusters: int = 4, variant: str = "cnn-lstm", patch_size: int = 9,
                 cell_size_m: float | None = None, time_stride: int = 8, latent_dim: int = 8,
                 channels=(8, 16), lstm_hidden: int = 32, alpha: float = 1.0, gamma: float = 0.1,
                 spatial_branch: bool = False, spatial_bands: int = 5, batch_size: int = 32,
                 pretrain_epochs: int = 5, epochs: int = 4, lr: float = 3e-3, update_interval: int = 50,
                 tol: float = 1e-3, train_sample: int = 3000, centre_weight: float = 0.5,
                 kmeans_n_init: int = 10, device: str = "auto", precision: str = "auto", checkpoint_dir=None,
                 predict_block_rows: int = 8192, random_state: int = 0, log_every_s: float = 5.0,
                 cpu_threads: int = 2):
        self.n_clusters = n_clusters
        self.variant = variant
        self.patch_size = patch_size
        self.cell_size_m = cell_size_m
        self.time_stride = time_stride
        self.latent_dim = latent_dim
        self.channels = channels
        self.lstm_hidden = lstm_hidden
        self.alpha = alpha
        self.gamma = gamma
        self.spatial_branch = spatial_branch
        self.spatial_bands = spatial_bands
        self.batch_size = batch_size
        self.pretrain_epochs = pretrain_epochs
        self.epochs = epochs
        self.lr = lr
        self.update_interval = update_interval
        self.tol = tol
        self.train_sample = train_sample
        self.centre_weight = centre_weight
        self.kmeans_n_init = kmeans_n_init
        self.device = device
        self.precision = precision
        self.checkpoint_dir = checkpoint_dir
        self.predict_block_rows = predict_block_rows
        self.random_state = random_state
        self.log_every_s = log_every_s
        self.cpu_threads = cpu_threads

    def _threads(self):
        return torch_threads(self.cpu_threads if self.device_ == "cpu" else None)

    def __getstate__(self):
        # The patch index caches the PointSeries it was built from (a site's reader, often a
        # closure pickle cannot take): a pickled model keeps what it learned, not its data.
        state = dict(super().__getstate__())
        state.pop("_indexer_cache", None)
        return state

    # ------------------------------------------------------------------ #
    # fit

    def fit(self, points: PointSeries, y=None) -> "DeepSpatiotemporalClustering":
        """Train on a seeded sample of ``train_sample`` points of ``points``."""
        if self.n_clusters < 2:
            raise ValueError(f"n_clusters must be >= 2, got {self.n_clusters}")
        self.device_ = resolve_device(self.device)
        self._amp_dtype = autocast_dtype(self.device_, self.precision)
        n_points = points.n_points
        if n_points < self.n_clusters:
            raise ValueError(f"{n_points} points cannot form {self.n_clusters} clusters")
        self.cell_size_m_ = (float(self.cell_size_m) if self.cell_size_m
                             else median_spacing_m(points.lat, points.lon, seed=self.random_state))
        indexer = self._indexer(points)
        rng = np.random.default_rng(self.random_state)
        n_train = min(int(self.train_sample), n_points)
        self.train_rows_ = np.sort(rng.choice(n_points, size=n_train, replace=False))
        patches = make_patch_set(points, indexer, self.train_rows_, self.time_stride)
        self.n_steps_ = patches.n_steps
        centre = patches.series[patches.index[:, self.patch_size // 2, self.patch_size // 2]]
        scale = float(np.std(centre))
        self.scale_mm_ = scale if scale > 0 and math.isfinite(scale) else 1.0
        log.info("dsc: %d of %d points for training, %d distinct series on %s, patch %dx%d of %.1f m, "
                 "%d steps, scale %.2f mm, variant %s", n_train, n_points, len(patches.series) - 1,
                 self.device_, self.patch_size, self.patch_size, self.cell_size_m_, self.n_steps_,
                 self.scale_mm_, self.variant)
        self._count_lone_patches(patches)
        data = _DeviceMemory(patches, self.scale_mm_, self.device_)
        with self._threads():
            self.model_ = self._build_model().to(self.device_)
            self._train(data, self._fingerprint(points, patches))
        self.cluster_centers_ = self.model_.clustering.centroids.detach().cpu().numpy().copy()
        return self

    def _count_lone_patches(self, patches: PatchSet) -> None:
        """Count (and log) the training patches that hold their point alone. One cell size serves
        the whole site (by default its median spacing), so where a dense town sits beside sparse
        hillside the cell is the town's and most hillside patches hold no other point: DSC
        clusters those points on their own series, and nothing else says so. The training
        patches are a seeded sample of the site, already built: counting them costs nothing."""
        filled = patches.filled_cells()
        n = len(filled)
        self.n_patch_alone_ = int(np.count_nonzero(filled <= 1))
        self.mean_patch_points_ = float(filled.mean()) if n else 0.0
        share = self.n_patch_alone_ / max(n, 1)
        warn = share > LONE_SHARE_WARN and self.patch_size > 1   # a 1x1 patch is the point alone by design
        if not warn:
            advice = ""
        elif self.cell_size_m:
            advice = (f"; if the sparse part of the site matters, set dsc.cell_size_m ({self.cell_size_m_:g} m "
                      "now) nearer its spacing")
        else:
            advice = ("; the cell is the site's median spacing (dsc.cell_size_m: null), the dense part's where "
                      "density varies (a town beside sparse hillside): if the sparse part matters, set "
                      "dsc.cell_size_m to its spacing")
        (log.warning if warn else log.info)(
            "dsc: %d of %d training patches (%.1f %%) hold their point alone, no other point in their %dx%d "
            "cells of %.1f m (%.1f points a patch on average): DSC sees no spatial context there%s",
            self.n_patch_alone_, n, 100 * share, self.patch_size, self.patch_size, self.cell_size_m_,
            self.mean_patch_points_, advice)

    def _indexer(self, points: PointSeries) -> PatchIndexer:
        cached = getattr(self, "_indexer_cache", None)
        if cached is not None and cached[0] is points and cached[1].cell_size_m == self.cell_size_m_:
            return cached[1]
        indexer = PatchIndexer(points.lat, points.lon, self.patch_size, self.cell_size_m_)
        self._indexer_cache = (points, indexer)
        return indexer

    def _build_model(self) -> DSCNet:
        # Weight init draws from torch's global RNG: fork it so the seed here
        # neither depends on nor disturbs the caller's random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            net = DSCNet(self.n_steps_, self.patch_size, self.n_clusters, latent_dim=self.latent_dim,
                         channels=list(self.channels), lstm_hidden=self.lstm_hidden, variant=self.variant,
                         alpha=self.alpha, spatial_bands=self.spatial_bands if self.spatial_branch else 0,
                         spatial_scale_m=self.cell_size_m_ * max(self.patch_size // 2, 1))
        # Channels-last convolutions run about a quarter faster on CPU (oneDNN) and suit cuDNN.
        return net.to(memory_format=torch.channels_last)

    def _fingerprint(self, points: PointSeries, patches: PatchSet) -> str:
        params = {k: v for k, v in self.get_params().items() if k not in _NOT_IN_FINGERPRINT}
        params["channels"] = list(params["channels"])
        h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
        h.update(code_digest().encode())
        h.update(repr(float(self.cell_size_m_)).encode())   # cell_size_m null: from the site's spacing
        h.update(str(points.n_points).encode())
        h.update(np.ascontiguousarray(self.train_rows_).tobytes())
        h.update(np.ascontiguousarray(patches.index).tobytes())
        h.update(np.ascontiguousarray(patches.series).tobytes())
        return h.hexdigest()

    # -- training loop ------------------------------------------------------ #

    def _autocast(self):
        return torch.autocast(device_type="cuda", dtype=self._amp_dtype) if self._amp_dtype else nullcontext()

    @torch.no_grad()
    def _embed_batches(self, data: _DeviceMemory):
        """Yield ``(first row, emb (b, e) float32, q (b, K))`` over ``data`` in eval batches."""
        step = self.batch_size * 4
        for s in range(0, data.n, step):
            x, dist = data.batch(torch.arange(s, min(data.n, s + step), device=self.device_))
            with self._autocast():
                emb, _ = self.model_.embed(x, dist)
            emb = emb.float()
            yield s, emb, self.model_.clustering(emb)

    @torch.no_grad()
    def _embed_all(self, data: _DeviceMemory) -> tuple[np.ndarray, torch.Tensor]:
        """Embeddings (n, e) float64 numpy and q (n, K) tensor of every training patch."""
        self.model_.eval()
        embs, qs = [], []
        for _, emb, q in self._embed_batches(data):
            embs.append(emb)
            qs.append(q)
        self.model_.train()
        return torch.cat(embs).double().cpu().numpy(), torch.cat(qs)

    def _init_centroids(self, data: _DeviceMemory) -> None:
        emb, _ = self._embed_all(data)
        km = KMeans(self.n_clusters, n_init=self.kmeans_n_init, random_state=self.random_state).fit(emb)
        with torch.no_grad():
            self.model_.clustering.centroids.copy_(torch.as_tensor(km.cluster_centers_, dtype=torch.float32))
        log.info("dsc: centroids initialised by k-means on %d latents (inertia %.4g)", len(emb), km.inertia_)

    def _train(self, data: _DeviceMemory, fingerprint: str) -> None:
        model = self.model_
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        scaler = torch.amp.GradScaler("cuda", enabled=self._amp_dtype == torch.float16)
        n_pre = int(self.pretrain_epochs) if model.has_decoder else 0
        n_total = n_pre + int(self.epochs)
        state = {"epoch": 0, "history": [], "target": None, "labels": None, "batches": 0,
                 "converged": False, "label_change": float("nan")}
        ckpt = Path(self.checkpoint_dir) / CHECKPOINT_NAME if self.checkpoint_dir else None
        if ckpt is not None and ckpt.exists():
            # Read onto the host: load_state_dict moves the weights and Adam's moments to the
            # parameters' device and keeps Adam's step counts on the host, as a fresh run has them
            # (step counts on a GPU would cost two host syncs per parameter at every step).
            try:
                saved = torch.load(ckpt, map_location="cpu", weights_only=False)
            except Exception as err:   # damaged, or pickled by another torch: only a head start is lost
                log.warning("dsc: %s cannot be read (%s: %s); starting afresh", ckpt, type(err).__name__,
                            str(err).splitlines()[0] if str(err) else "")
                saved = {}
            if saved.get("fingerprint") == fingerprint:
                model.load_state_dict(saved["model"])
                optimizer.load_state_dict(saved["optimizer"])
                if saved["state"]["target"] is not None:
                    saved["state"]["target"] = saved["state"]["target"].to(self.device_)
                if saved["scaler"]:
                    # An empty state is a disabled scaler's (CPU, fp32, bf16); the device is
                    # not in the fingerprint, so an fp16 run may resume it with a fresh scale.
                    scaler.load_state_dict(saved["scaler"])
                state = saved["state"]
                log.info("dsc: resumed from %s after epoch %d of %d", ckpt, state["epoch"], n_total)
            elif saved:
                log.warning("dsc: %s was written for other parameters or data; starting afresh", ckpt)

        def checkpoint():
            if ckpt is not None:
                save_checkpoint(ckpt, {"fingerprint": fingerprint, "model": model.state_dict(),
                                       "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                                       "state": state})

        model.train()
        n = data.n
        generator_seed = int(self.random_state)
        # The target is refreshed every update_interval joint batches, and at least once an
        # epoch: a training sample of fewer batches (a small site) would otherwise keep the
        # first target throughout and never measure a label change (nor stop at tol).
        n_batches = -(-n // self.batch_size)
        interval = max(1, min(int(self.update_interval), n_batches))
        while state["epoch"] < n_total and not state["converged"]:
            epoch = state["epoch"]
            joint = epoch >= n_pre
            if joint and state["target"] is None:
                self._init_centroids(data)
                self._refresh_target(data, state)
            t0 = time.perf_counter()
            order = np.random.default_rng([generator_seed, epoch]).permutation(n)
            progress = Progress(log, n_batches, f"dsc epoch {epoch + 1}/{n_total} ({'joint' if joint else 'pretrain'}) batches",
                                every_s=self.log_every_s)
            # Sums stay on the device: no host sync per batch on a GPU.
            recon_sum = torch.zeros((), device=self.device_)
            kl_sum = torch.zeros((), device=self.device_)
            seen = 0
            change_this_epoch = float("nan")
            for b in range(n_batches):
                if joint and state["batches"] > 0 and state["batches"] % interval == 0:
                    change_this_epoch = self._refresh_target(data, state)
                    if change_this_epoch < self.tol:
                        state["converged"] = True
                        log.info("dsc: converged: %.4g of labels changed (< tol %.4g)", change_this_epoch, self.tol)
                        break
                pos_np = order[b * self.batch_size:(b + 1) * self.batch_size]
                pos = torch.from_numpy(pos_np).to(self.device_)
                x, dist = data.batch(pos)
                recon_loss, kl = training_step(model, x, dist, state["target"][pos] if joint else None,
                                               optimizer, scaler, gamma=self.gamma,
                                               centre_weight=self.centre_weight, amp_dtype=self._amp_dtype)
                recon_sum += recon_loss.detach().float() * len(pos_np)
                kl_sum += kl.detach().float() * len(pos_np)
                seen += len(pos_np)
                if joint:
                    state["batches"] += 1
                progress.update(1)
            if seen == 0:   # converged before this epoch's first batch: no epoch ran
                checkpoint()
                break
            row = {"epoch": epoch + 1, "phase": "joint" if joint else "pretrain",
                   "recon_loss": float(recon_sum) / max(seen, 1) if model.has_decoder else float("nan"),
                   "kl_loss": float(kl_sum) / max(seen, 1) if joint else float("nan"),
                   "label_change": change_this_epoch, "seconds": time.perf_counter() - t0}
            state["history"].append(row)
            state["epoch"] = epoch + 1
            log.info("dsc epoch %d/%d %s: recon %.5g, kl %.5g, label change %.4g, %.1fs",
                     row["epoch"], n_total, row["phase"], row["recon_loss"], row["kl_loss"],
                     row["label_change"], row["seconds"])
            checkpoint()
        if state["target"] is None:  # no joint epoch ran: centroids still need a start
            self._init_centroids(data)
            self._refresh_target(data, state)
        model.eval()
        self.history_ = list(state["history"])
        self.converged_ = bool(state["converged"])
        self.train_labels_ = np.asarray(state["labels"], dtype=np.int64)

    def _refresh_target(self, data: _DeviceMemory, state: dict) -> float:
        """Recompute P on the whole training sample; return the share of labels that changed."""
        _, q = self._embed_all(data)
        labels = q.argmax(dim=1).cpu().numpy()
        change = float("nan") if state["labels"] is None else float(np.mean(labels != state["labels"]))
        state["target"] = target_distribution(q).detach()
        state["labels"] = labels
        state["label_change"] = change
        log.info("dsc: target refreshed after %d joint batches, label change %.4g", state["batches"], change)
        return change

    # ------------------------------------------------------------------ #
    # inference

    @torch.no_grad()
    def embed_and_assign(self, points: PointSeries, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """Clustering-space embeddings (n, e) and soft assignments q (n, K), float32.

        ``rows`` None = all points in row order, processed block by block
        (``predict_block_rows`` rows, never crossing a shard boundary).
        """
        self._check_fitted()
        indexer = self._indexer(points)
        if rows is None:
            blocks = [np.arange(a, b) for a, b in points.blocks(self.predict_block_rows)]
        else:
            rows = np.asarray(rows, dtype=np.int64)
            blocks = [rows[s:s + self.predict_block_rows] for s in range(0, len(rows), self.predict_block_rows)]
        n = sum(len(b) for b in blocks)
        emb_out = np.empty((n, self.model_.embed_dim), dtype=np.float32)
        q_out = np.empty((n, self.n_clusters), dtype=np.float32)
        progress = Progress(log, n, "dsc labelling points", every_s=self.log_every_s)
        self.model_.eval()
        with self._threads():
            self._assign_blocks(points, indexer, blocks, emb_out, q_out, progress)
        return emb_out, q_out

    def _assign_blocks(self, points, indexer, blocks, emb_out, q_out, progress) -> None:
        # On CPU, ``cpu_threads`` pieces side by side, torch single-threaded in each: labelling is
        # thousands of small batches, and two torch threads on one meet at every operation (slower
        # when quiet, many times slower beside other work, docs/dsc.md). The pieces split blocks
        # where their eval batches begin, so every batch stays what it was and the labels are
        # those of one torch thread: the bits of cpu_threads threads with the demo configuration,
        # not for every shape (a linear layer of >= 16 outputs on 5-11 rows: docs/dsc.md).
        workers = int(self.cpu_threads) if self.device_ == "cpu" else 1
        if workers > 1:
            blocks = self._pieces(blocks)
        done = 0
        for emb, q in side_by_side(partial(self._assign_block, points, indexer), blocks, workers,
                                  name="dsc"):
            emb_out[done:done + len(emb)] = emb
            q_out[done:done + len(emb)] = q
            done += len(emb)
            progress.update(len(emb))

    def _pieces(self, blocks):
        """Blocks cut where their eval batches begin: the first batch alone first (it runs alone
        on the calling thread, threads.side_by_side), then pieces of 16 batches, so that a few
        blocks still keep every thread busy."""
        step = self.batch_size * 4
        first = True
        for block in blocks:
            cuts = [0, step] if first else [0]
            first = False
            cuts += list(range(cuts[-1] + 16 * step, len(block), 16 * step))
            for a, b in zip(cuts, cuts[1:] + [len(block)]):
                if a < b:
                    yield block[a:b]

    def _assign_block(self, points, indexer, block) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (n, e) and soft assignments (n, K) of the points of one block."""
        data = _DeviceMemory(make_patch_set(points, indexer, block, self.time_stride), self.scale_mm_,
                             self.device_)
        if data.series.shape[1] != self.n_steps_:
            raise ValueError(f"points have {data.series.shape[1]} time steps after striding, "
                             f"the model was trained on {self.n_steps_}")
        emb_out = np.empty((data.n, self.model_.embed_dim), dtype=np.float32)
        q_out = np.empty((data.n, self.n_clusters), dtype=np.float32)
        for s, emb, q in self._embed_batches(data):
            emb_out[s:s + len(emb)] = emb.cpu().numpy()
            q_out[s:s + len(emb)] = q.cpu().numpy()
        return emb_out, q_out

    def transform(self, points: PointSeries, rows=None) -> np.ndarray:
        """Clustering-space embeddings (n, e)."""
        return self.embed_and_assign(points, rows)[0]

    def predict_proba(self, points: PointSeries, rows=None) -> np.ndarray:
        """Student's-t soft assignments (n, K)."""
        return self.embed_and_assign(points, rows)[1]

    def predict(self, points: PointSeries, rows=None) -> np.ndarray:
        """Hard labels (n,) int32: the most probable cluster."""
        return self.predict_proba(points, rows).argmax(axis=1).astype(np.int32)

    def _check_fitted(self):
        check_is_fitted(self, "model_")


def training_step(model: DSCNet, x: torch.Tensor, distance_m: torch.Tensor, target: torch.Tensor | None,
                  optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, *, gamma: float,
                  centre_weight: float, amp_dtype: torch.dtype | None = None):
    """One optimiser step on a batch: masked MSE (+ gamma * KL(target || q) when ``target`` is given).

    ``x`` (n, T, 2, P, P), ``distance_m`` (n, P * P), ``target`` (n, K) or
    None (pre-training). Returns the detached (recon_loss, kl_loss) tensors.
    """
    autocast = torch.autocast(device_type="cuda", dtype=amp_dtype) if amp_dtype else nullcontext()
    with autocast:
        recon, _, q = model(x, distance_m)
    zero = torch.zeros((), device=x.device)
    recon_loss = masked_mse(recon, x, centre_weight) if recon is not None else zero
    kl = kl_divergence(target, q) if target is not None else zero
    loss = recon_loss + gamma * kl if target is not None else recon_loss
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return recon_loss.detach(), kl.detach()


def save_checkpoint(path: Path, payload: dict) -> None:
    """Atomic ``torch.save``: a killed job never leaves a truncated checkpoint."""
    with h5io.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def write_train_log(history: list[dict], path) -> None:
    """``train_log.tsv``: epoch, phase, recon_loss, kl_loss, label_change, seconds (atomic)."""
    import pandas as pd

    columns = ["epoch", "phase", "recon_loss", "kl_loss", "label_change", "seconds"]
    frame = pd.DataFrame(history, columns=columns)
    with h5io.atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g", na_rep="NaN")
