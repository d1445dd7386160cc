"""Echo State Network (reservoir) embeddings of time series, batched in torch.

A fixed random recurrent network (the reservoir) is driven by each series; its
state sequence becomes one vector per series (Bianchi et al., "Reservoir
computing approaches for representation and classification of multivariate
time series", IEEE TNNLS 2020):

- ``last``: the last state; ``mean``: the mean state;
- ``output``: ridge weights (+ intercept) predicting x(t+1) from the state h(t)
  (the *output-model space*);
- ``reservoir``: ridge weights (+ intercept) predicting the next reduced state
  from the current one (the *reservoir-model space*).

States are reduced with the tensor PCA of the paper (covariance of the states
centred per time step) before any representation. The PCA is fitted on a
seeded sample first, so :meth:`ReservoirEmbedder.transform` makes one pass over
the states of each batch, projecting every step as it is computed: memory is
``batch_size x T x n_pca`` and never the full ``batch_size x T x n_units``.

``mode="reference"`` reproduces the package ``reservoir_computing`` (the
paper's code) to float tolerance, quirks included; ``mode="default"`` differs
where the difference does not cost validity (``bench/validity.py``):

=================  ==================================  ============================================
aspect             reference                           default (why)
=================  ==================================  ============================================
state noise        uniform [0, level), drawn from a    zero-mean Gaussian, std = level (what the
                   global RNG per batch                reference documents); deterministic per row
PCA transform      states @ V, no centring             (states - mean state) @ V (intercepts of the
                                                       ridge representations measured from the
                                                       typical state)
=================  ==================================  ============================================

The leaky update is the reference's in both modes by default,
``h = (1-a) h + tanh(.)`` (``leak_form="unscaled"``): with the spectral
radius 0.59 and leak 0.6 the linearised update ``(1-a) I + W`` has a radius
near 1, a memory as long as a 4.5-year archive. ``leak_form="scaled"``,
``h = (1-a) h + a tanh(.)`` (Jaeger's leaky ESN, states in [-1, 1]), forgets
within a few steps; it cost most of the representation's power on univariate
series (docs/validity.md) and is kept only for comparison.

``time_stride`` averages that many consecutive epochs into one reservoir step
(after the input scaling; the scale features use the full series): on the
6-day grid, 4 gives 24-day steps, which halves the steps again after the
12-day revisit of Sentinel-1 from 2021-12-23 (half the 6-day grid is
interpolated) and lets the memory span the archive.

In both modes the noise of a series depends only on ``(seed, row, step)``
(rows of a fixed bank picked by a hash), so the embedding of a point does not
depend on the batch it is computed in or on how a site is split into jobs.
The reservoir itself is drawn from ``numpy.random.default_rng(seed)``; the
spectral radius is rescaled with a general eigen-solver (as the reference;
the recurrent matrix is not symmetric).
"""
from __future__ import annotations

import contextlib
import logging
import math
import threading
import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .threads import single_thread

REPRESENTATIONS = ("last", "mean", "output", "reservoir")
SCALINGS = ("series", "global", "none")
MODES = ("default", "reference")
LEAK_FORMS = ("unscaled", "scaled")

log = logging.getLogger("insarclust.reservoir")

# Rows of the noise bank; a power of two so that any odd stride visits every row.
NOISE_BANK_ROWS = 4096
# Below this density (and above this size) a CSR recurrent matrix beats dense
# matmul on CPU (`bench/embed.py --only matrix`; figures in docs/perf/embed.md).
SPARSE_MAX_DENSITY = 0.05
SPARSE_MIN_UNITS = 1000

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)

# Builds the tensors of ``ReservoirEmbedder._torch`` and the projection's: several threads embed
# batches of one model at once (embed.embedded_blocks), and the first batch of each builds them
_CACHE_LOCK = threading.Lock()


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Counter-based 64-bit hash (SplitMix64 finaliser), vectorised, wraps mod 2**64."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x & _MASK64


def noise_rows(seed: int, rows: np.ndarray, n_dir: int, n_steps: int) -> np.ndarray:
    """Bank row of the noise for every (row, direction, step): (n_steps, n_rows * n_dir) int64.

    Each (row, direction) walks the bank from a hashed offset with a hashed odd
    stride, so the noise of a series depends only on ``seed``, its global row
    index and the step.
    """
    rows = np.asarray(rows, dtype=np.uint64)
    key = (rows[:, None] * np.uint64(2) + np.arange(n_dir, dtype=np.uint64)[None, :]).ravel()
    h1 = _splitmix64(key ^ _splitmix64(np.uint64(seed) + np.zeros(1, np.uint64)))
    h2 = _splitmix64(h1)
    offset = (h1 % np.uint64(NOISE_BANK_ROWS)).astype(np.int64)
    stride = ((h2 % np.uint64(NOISE_BANK_ROWS // 2)) * np.uint64(2) + np.uint64(1)).astype(np.int64)
    steps = np.arange(n_steps, dtype=np.int64)[:, None]
    return (offset[None, :] + steps * stride[None, :]) % NOISE_BANK_ROWS


def ridge_weights(inputs, targets, alpha: float):
    """Batched ridge regression with intercept (as scikit-learn ``Ridge(fit_intercept=True)``).

    inputs (B, L, P), targets (B, L, Q) torch tensors -> (coef (B, Q, P), intercept (B, Q)):
    minimises ||Y - X coef^T - intercept||^2 + alpha ||coef||^2 per batch item,
    via one Cholesky factorisation of the (P, P) Gram matrix per item.
    """
    import torch

    x_mean = inputs.mean(dim=1, keepdim=True)
    y_mean = targets.mean(dim=1, keepdim=True)
    xc = inputs - x_mean
    yc = targets - y_mean
    xt = xc.transpose(1, 2)
    gram = torch.bmm(xt, xc)
    gram.diagonal(dim1=1, dim2=2).add_(alpha)
    cross = torch.bmm(xt, yc)
    chol = torch.linalg.cholesky(gram)
    w = torch.cholesky_solve(cross, chol)  # (B, P, Q)
    intercept = (y_mean - torch.bmm(x_mean, w)).squeeze(1)
    return w.transpose(1, 2), intercept


def _row_ids(rows, n: int) -> np.ndarray:
    """``(n,) int64`` global row ids of n series (default 0..n-1): the keys of their noise."""
    if rows is None:
        return np.arange(n)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.shape != (n,):
        raise ValueError(f"rows has shape {rows.shape}, expected ({n},): one global row id per series")
    return rows


class ReservoirEmbedder(TransformerMixin, BaseEstimator):
    """Fixed-length embeddings of series (N, T) or (N, T, V) from an Echo State Network.

    The defaults are those of ``config/config.yaml``, chosen with
    ``bench/validity.py`` (docs/validity.md): the dynamics of
    ``reservoir_computing``'s clustering set-up (spectral radius 0.59, leak 0.6
    unscaled, connectivity 0.25, input scaling 0.1, noise 0.01, washout 5,
    bidirectional, ridge 10) on a smaller reservoir (100 units, tensor PCA to
    40 dims instead of 450 and 75) and 24-day steps (``time_stride`` 4 on the
    6-day grid): as good or better on InSAR-like regimes, ~25x cheaper.

    representation: ``last`` | ``mean`` | ``output`` | ``reservoir``.
    n_pca: dims of the state PCA (None: raw states).
    out_dim: final PCA of the representation fitted on the fit sample (None:
        keep the representation as is, e.g. 1,640 numbers for ``reservoir``
        with ``n_pca`` 40); the projected columns are scaled to mean variance 1
        on the sample.
    leak_form: ``unscaled`` (the reference's update) | ``scaled`` (module docstring).
    time_stride: epochs averaged into one reservoir step (1: every epoch); the
        series is cut into blocks of ``time_stride`` epochs from the first, a
        shorter last block is averaged as it is.
    scaling: ``series`` (z-score each series and variable), ``global`` (one
        mean/std per variable, fitted on the sample) or ``none``.
    scale_features: append log(std) and the linear trend (per ``step`` time
        units, e.g. mm/yr when ``step`` is in years) of each raw series and
        variable, standardised on the sample and times ``scale_weight``, so
        amplitude is not lost to z-scoring.
    fit_sample: series (seeded sample) used by :meth:`fit`.
    pca_sample: a seeded random subset of this many of them fits the state PCA
        (1,024 series x T steps is far more state vectors than a 200-dim
        covariance needs).
    batch_size: series per torch batch; bounds memory.
    mode: ``default`` | ``reference`` (see module docstring).
    matrix: ``auto`` | ``dense`` | ``sparse`` recurrent matrix product.
    device: ``auto`` (CUDA when available) or a torch device; dtype: ``float32``
        (default) or ``float64``.

    Fitted attributes: ``recurrent_weights_`` (n, n) float64,
    ``input_weights_`` (n, V) float64, ``noise_bank_`` (4096, n) float32,
    ``input_mean_``/``input_std_`` (V,), ``std_floor_`` (V,),
    ``pca_components_`` (D n, p), ``pca_mean_`` (D n,), ``proj_components_``
    (out, R), ``proj_mean_`` (R,), ``proj_scale_``, ``scale_mean_``,
    ``scale_std_``, ``n_features_in_`` (= V), ``n_features_out_``.
    """

    def __init__(self, representation="reservoir", n_units=100, spectral_radius=0.59, leak=0.6,
                 connectivity=0.25, input_scaling=0.1, noise_level=0.01, washout=5,
                 bidirectional=True, n_pca=40, ridge=10.0, out_dim=32, scaling="series", leak_form="unscaled",
                 scale_features=True, scale_weight=1.0, step=1.0, time_stride=4, fit_sample=4096,
                 pca_sample=1024, batch_size=1024, mode="default", matrix="auto", device="auto",
                 dtype="float32", seed=0):
        self.representation = representation
        self.n_units = n_units
        self.spectral_radius = spectral_radius
        self.leak = leak
        self.connectivity = connectivity
        self.input_scaling = input_scaling
        self.noise_level = noise_level
        self.washout = washout
        self.bidirectional = bidirectional
        self.n_pca = n_pca
        self.ridge = ridge
        self.out_dim = out_dim
        self.scaling = scaling
        self.leak_form = leak_form
        self.scale_features = scale_features
        self.scale_weight = scale_weight
        self.step = step
        self.time_stride = time_stride
        self.fit_sample = fit_sample
        self.pca_sample = pca_sample
        self.batch_size = batch_size
        self.mode = mode
        self.matrix = matrix
        self.device = device
        self.dtype = dtype
        self.seed = seed

    # ------------------------------------------------------------------ #
    # set-up

    def _check_params(self):
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {self.representation!r}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.leak_form not in LEAK_FORMS:
            raise ValueError(f"leak_form must be one of {LEAK_FORMS}, got {self.leak_form!r}")
        if int(self.time_stride) < 1:
            raise ValueError(f"time_stride must be >= 1, got {self.time_stride!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.matrix not in ("auto", "dense", "sparse"):
            raise ValueError(f"matrix must be auto, dense or sparse, got {self.matrix!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")

    @property
    def n_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _as_3d(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 2:
            X = X[:, :, None]
        if X.ndim != 3:
            raise ValueError(f"series must be shaped (N, T) or (N, T, V), got {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("series contain NaN or inf; regularise them first (/series/regular)")
        return X

    def _make_reservoir(self, n_vars: int) -> None:
        """Draw the recurrent and input weights and the noise bank from ``seed``."""
        rng = np.random.default_rng(self.seed)
        n = int(self.n_units)
        mask = rng.random((n, n)) < self.connectivity
        w = np.where(mask, rng.uniform(-0.5, 0.5, (n, n)), 0.0)
        radius = float(np.max(np.abs(np.linalg.eigvals(w)))) if mask.any() else 0.0
        if radius > 0:
            # 10 significant digits: LAPACK builds agree to far better than
            # this, so every machine scales by the very same number.
            radius = float(f"{radius:.10g}")
            w = w * (self.spectral_radius / radius)
        self.recurrent_weights_ = w
        self.input_weights_ = rng.choice([-1.0, 1.0], size=(n, n_vars)) * self.input_scaling
        if self.mode == "reference":
            bank = rng.random((NOISE_BANK_ROWS, n))
        else:
            bank = rng.standard_normal((NOISE_BANK_ROWS, n))
        self.noise_bank_ = bank.astype(np.float32)

    def _torch(self):
        """Fitted matrices as torch tensors on the compute device (cached)."""
        import torch

        from .device import resolve_device
        from .vml import warm_up

        warm_up()  # before the first two-thread tanh of the process
        device = resolve_device(self.device)
        key = (device, self.dtype, id(self.recurrent_weights_), id(getattr(self, "pca_components_", None)))
        cache = getattr(self, "_cache", None)
        if cache is not None and cache["key"] == key:
            return cache
        with _CACHE_LOCK:
            cache = getattr(self, "_cache", None)
            if cache is not None and cache["key"] == key:  # built by another thread meanwhile
                return cache
            return self._build_cache(key, device)

    def _build_cache(self, key, device: str) -> dict:
        import torch

        dt = getattr(torch, self.dtype)
        n = int(self.n_units)
        w = torch.as_tensor(self.recurrent_weights_, dtype=dt, device=device)
        use_sparse = self.matrix == "sparse" or (
            self.matrix == "auto" and self.connectivity <= SPARSE_MAX_DENSITY and n >= SPARSE_MIN_UNITS)
        w_sparse = None
        if use_sparse:
            with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR @ dense is all we use
                warnings.simplefilter("ignore", UserWarning)
                w_sparse = w.to_sparse_csr()
        cache = {
            "key": key, "device": device, "dtype": dt,
            "w_t": w.T.contiguous(),
            "w_sparse": w_sparse,
            "w_in_t": torch.as_tensor(self.input_weights_.T, dtype=dt, device=device).contiguous(),
            "bank": torch.as_tensor(self.noise_bank_, dtype=dt, device=device),
        }
        if getattr(self, "pca_components_", None) is not None:
            # contiguous whatever the source layout: the matmul's rounding depends on it,
            # and a model must give the same numbers fresh from fit and loaded from file
            comp = torch.as_tensor(np.ascontiguousarray(self.pca_components_), dtype=dt, device=device)
            mean = torch.as_tensor(self.pca_mean_, dtype=dt, device=device)
            cache["pca"] = comp
            cache["pca_offset"] = (mean @ comp).contiguous()
        self._cache = cache
        return cache

    # ------------------------------------------------------------------ #
    # inputs

    def _scale(self, X: np.ndarray):
        """Scaled inputs (B, T, V) float64 and raw scale features (B, 2V) or None."""
        std = X.std(axis=1)
        if self.scaling == "series":
            mean = X.mean(axis=1)
            safe = np.where(std > 0, std, 1.0)
            U = np.where(std[:, None, :] > 0, (X - mean[:, None, :]) / safe[:, None, :], 0.0)
        elif self.scaling == "global":
            U = (X - self.input_mean_) / self.input_std_
        else:
            U = X
        stride = int(self.time_stride)
        if stride > 1:
            B, T, V = U.shape
            full = T // stride
            parts = [U[:, :full * stride].reshape(B, full, stride, V).mean(axis=2)]
            if T % stride:
                parts.append(U[:, full * stride:].mean(axis=1, keepdims=True))
            U = np.concatenate(parts, axis=1)
        feats = None
        if self.scale_features:
            t = np.arange(X.shape[1], dtype=np.float64) * float(self.step)
            tc = t - t.mean()
            denom = float((tc ** 2).sum()) or 1.0
            trend = np.einsum("t,btv->bv", tc, X) / denom
            feats = np.concatenate([np.log(std + self.std_floor_), trend], axis=1)
        return U, feats

    # ------------------------------------------------------------------ #
    # the state loop

    def _run_states(self, U: np.ndarray, rows: np.ndarray, on_state) -> None:
        """Drive the reservoir with U (B, T, V); call ``on_state(k, h)`` for each kept step.

        h is (B, D * n_units): forward state at step washout + k, then (if
        bidirectional) the state of the reversed series at its own step
        washout + k, as the reference concatenates them.
        """
        import torch

        c = self._torch()
        B, T, V = U.shape
        D, n = self.n_directions, int(self.n_units)
        dt, device = c["dtype"], c["device"]
        u = torch.as_tensor(U, dtype=dt, device=device)
        if D == 2:
            # rows interleaved (series, direction) so h.view(B, 2n) is the concatenated state
            u = torch.stack([u, u.flip(1)], dim=1).reshape(B * D, T, V)
        u = u.transpose(0, 1).contiguous()  # (T, B D, V): one contiguous slab per step
        level = float(self.noise_level)
        idx = None
        if level > 0:
            idx = torch.as_tensor(noise_rows(self.seed, rows, D, T), device=device)
            noise = torch.empty(B * D, n, dtype=dt, device=device)
        h = torch.zeros(B * D, n, dtype=dt, device=device)
        pre = torch.empty(B * D, n, dtype=dt, device=device)
        leak = self.leak
        keep_from = self.washout if T > self.washout else 0
        for t in range(T):
            torch.mm(u[t], c["w_in_t"], out=pre)
            if c["w_sparse"] is not None:
                pre.add_(torch.sparse.mm(c["w_sparse"], h.T).T)
            else:
                pre.addmm_(h, c["w_t"])
            if idx is not None:
                torch.index_select(c["bank"], 0, idx[t], out=noise)
                pre.add_(noise, alpha=level)
            pre.tanh_()
            if leak is None or leak == 1.0:
                h, pre = pre, h
            elif self.mode == "reference" or self.leak_form == "unscaled":
                h.mul_(1.0 - leak).add_(pre)
            else:
                h.mul_(1.0 - leak).add_(pre, alpha=leak)
            if t >= keep_from:
                on_state(t - keep_from, h.view(B, D * n))

    def _reduced_states(self, U: np.ndarray, rows: np.ndarray):
        """PCA-reduced state sequence (B, T', p) with T' = T - washout."""
        import torch

        c = self._torch()
        B, T, _ = U.shape
        kept = T - self.washout if T > self.washout else T
        p = c["pca"].shape[1] if "pca" in c else self.n_directions * int(self.n_units)
        z = torch.empty(kept, B, p, dtype=c["dtype"], device=c["device"])

        def project(k, h):
            if "pca" in c:
                torch.mm(h, c["pca"], out=z[k])
                z[k].sub_(c["pca_offset"])
            else:
                z[k].copy_(h)

        self._run_states(U, rows, project)
        return z.transpose(0, 1)

    def _pooled_state(self, U: np.ndarray, rows: np.ndarray):
        """Last or mean state (B, p), PCA-reduced: one projection per series, not per step.

        The projection is linear, so the mean of the reduced states is the
        reduced mean state; no (T, B, p) state sequence is kept.
        """
        import torch

        c = self._torch()
        B = U.shape[0]
        pooled = torch.zeros(B, self.n_directions * int(self.n_units), dtype=c["dtype"], device=c["device"])
        count = [0]

        def pool(k, h):
            if self.representation == "mean":
                pooled.add_(h)
            else:
                pooled.copy_(h)
            count[0] += 1

        self._run_states(U, rows, pool)
        if self.representation == "mean":
            pooled.div_(count[0])
        if "pca" in c:
            return torch.mm(pooled, c["pca"]).sub_(c["pca_offset"])
        return pooled

    def _represent(self, U: np.ndarray, rows: np.ndarray):
        """Representation (B, R) torch tensor of scaled inputs U (B, T, V)."""
        import torch

        if self.representation in ("last", "mean"):
            return self._pooled_state(U, rows)
        z = self._reduced_states(U, rows)
        B = z.shape[0]
        if z.shape[1] < 3:
            raise ValueError(f"{self.representation} representation needs at least 3 steps after "
                             f"the washout; series have {U.shape[1]} steps, washout {self.washout}")
        if self.representation == "output":
            c = self._torch()
            u = torch.as_tensor(U, dtype=c["dtype"], device=c["device"])
            if self.bidirectional:
                u = torch.cat([u, u.flip(1)], dim=2)
            start = (self.washout if U.shape[1] > self.washout else 0) + 1
            coef, intercept = ridge_weights(z[:, :-1], u[:, start:], self.ridge)
        else:
            coef, intercept = ridge_weights(z[:, :-1], z[:, 1:], self.ridge)
        return torch.cat([coef.reshape(B, -1), intercept], dim=1)

    # ------------------------------------------------------------------ #
    # fitting

    def _batches(self, n_rows: int):
        step = int(self.batch_size)
        for a in range(0, n_rows, step):
            yield a, min(n_rows, a + step)

    def _fit_pca(self, X: np.ndarray, rows: np.ndarray) -> None:
        """Tensor PCA of the states of the sample: covariance centred per time step.

        Accumulated batch by batch around a shift (the first batch's mean
        state per step) so float32 products do not cancel; the sum is float64.
        """
        import torch

        c = self._torch()
        Dn = self.n_directions * int(self.n_units)
        acc = {"shift": None, "cross": torch.zeros(Dn, Dn, dtype=torch.float64), "sums": None}

        n_total = 0
        for a, b in self._batches(len(X)):
            U, _ = self._scale(X[a:b])
            first = acc["shift"] is None
            if first:
                kept = U.shape[1] - self.washout if U.shape[1] > self.washout else U.shape[1]
                acc["shift"] = torch.zeros(kept, Dn, dtype=c["dtype"], device=c["device"])
                acc["sums"] = torch.zeros(kept, Dn, dtype=torch.float64)

            cross = torch.zeros(Dn, Dn, dtype=c["dtype"], device=c["device"])
            sums = torch.zeros_like(acc["shift"])

            def accumulate(k, h, first=first, cross=cross, sums=sums):
                if first:
                    acc["shift"][k] = h.mean(dim=0)
                hc = h - acc["shift"][k]
                cross.addmm_(hc.T, hc)
                sums[k] += hc.sum(dim=0)

            self._run_states(U, rows[a:b], accumulate)
            # one batch in the compute dtype (centred, so no cancellation), batches summed in float64
            acc["cross"] += cross.to("cpu", torch.float64)
            acc["sums"] += sums.to("cpu", torch.float64)
            n_total += b - a
        shift = acc["shift"].to("cpu", torch.float64)
        dev = acc["sums"] / n_total  # (T', Dn): per-step mean minus shift
        cov = (acc["cross"] - n_total * dev.T @ dev) / max(n_total - 1, 1)
        cov = 0.5 * (cov + cov.T)
        evals, evecs = np.linalg.eigh(cov.numpy())
        order = np.argsort(evals)[::-1][: min(int(self.n_pca), Dn)]
        comp = evecs[:, order]
        # deterministic sign: the largest loading of each component is positive
        big = np.argmax(np.abs(comp), axis=0)
        comp = comp * np.sign(comp[big, np.arange(comp.shape[1])])
        self.pca_components_ = np.ascontiguousarray(comp)
        self.pca_explained_variance_ = evals[order]
        if self.mode == "reference":
            self.pca_mean_ = np.zeros(Dn)
        else:
            self.pca_mean_ = (shift + dev).mean(dim=0).numpy()
        self._cache = None

    def fit(self, X, y=None, rows=None):
        """Draw the reservoir, fit scalers, state PCA and final projection on a seeded sample.

        X (N, T) or (N, T, V); rows (N,) global row ids of X (noise keys;
        default 0..N-1). Returns self.
        """
        self._check_params()
        X = self._as_3d(X)
        steps = -(-X.shape[1] // int(self.time_stride))
        if steps <= int(self.washout):
            # the reference keeps every state then; say so rather than wash out nothing silently
            log.warning("washout %d is not shorter than the series' %d reservoir steps (%d epochs, time_stride "
                        "%d): no step is washed out", int(self.washout), steps, X.shape[1], int(self.time_stride))
        rows = _row_ids(rows, len(X))
        if len(X) > self.fit_sample:
            pick = np.sort(np.random.default_rng([self.seed, 1]).choice(len(X), self.fit_sample,
                                                                      replace=False))
            X, rows = X[pick], rows[pick]
        n_vars = X.shape[2]
        self.n_features_in_ = n_vars
        self._cache = None
        self._make_reservoir(n_vars)
        std = X.std(axis=1)  # (n, V)
        self.input_mean_ = X.mean(axis=(0, 1))
        self.input_std_ = np.where(X.std(axis=(0, 1)) > 0, X.std(axis=(0, 1)), 1.0)
        # floor of log(std): a thousandth of the typical series std (unit free)
        med = np.median(std, axis=0)
        self.std_floor_ = np.where(med > 0, 1e-3 * med, 1e-12)
        self.pca_components_ = None
        self.pca_mean_ = None
        if self.n_pca is not None:
            # a seeded random subset of the sample: the sample is sorted by row, and rows follow
            # a space-filling curve, so its first rows would be one corner of the site
            pca_rows = np.arange(len(X))
            if len(X) > int(self.pca_sample):
                pca_rows = np.sort(np.random.default_rng([self.seed, 2]).choice(
                    len(X), int(self.pca_sample), replace=False))
            self._fit_pca(X[pca_rows], rows[pca_rows])

        reps, feats = [], []
        for a, b in self._batches(len(X)):
            U, f = self._scale(X[a:b])
            reps.append(self._represent(U, rows[a:b]).to("cpu", self._np_dtype_torch()).numpy())
            if f is not None:
                feats.append(f)
        R = np.concatenate(reps)
        self.repr_dim_ = R.shape[1]
        self.proj_components_ = None
        if self.out_dim is not None:
            from sklearn.decomposition import PCA

            k = min(int(self.out_dim), R.shape[1], R.shape[0])
            if k < int(self.out_dim):
                log.warning("out_dim %d is more than the %d dimensions there are (representation %d wide, "
                            "fit sample %d series): %d kept", int(self.out_dim), k, R.shape[1], R.shape[0], k)
            pca = PCA(n_components=k, svd_solver="randomized" if k < 0.8 * min(R.shape) else "full",
                      random_state=self.seed).fit(R.astype(np.float64))
            self.proj_components_ = pca.components_
            self.proj_mean_ = pca.mean_
            self.proj_explained_variance_ratio_ = pca.explained_variance_ratio_
            total = float(pca.explained_variance_.sum())
            self.proj_scale_ = math.sqrt(k / total) if total > 0 else 1.0
        if feats:
            F = np.concatenate(feats)
            self.scale_mean_ = F.mean(axis=0)
            sd = F.std(axis=0)
            # a constant column (e.g. already z-normalised data) stays 0 instead of amplified noise
            self.scale_std_ = np.where(sd > 1e-6 * (np.abs(self.scale_mean_) + 1.0), sd, np.inf)
        self.n_features_out_ = len(self.get_feature_names_out())
        return self

    def fit_transform(self, X, y=None, rows=None) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` of ``X``, both with ``rows`` (scikit-learn's
        ``fit_transform`` passes them to ``fit`` only, and ``transform`` then keyed the noise
        by 0..N-1)."""
        return self.fit(X, y, rows=rows).transform(X, rows=rows)

    def _np_dtype_torch(self):
        import torch

        return getattr(torch, self.dtype)

    # ------------------------------------------------------------------ #
    # transform

    def transform(self, X, rows=None) -> np.ndarray:
        """Embeddings (N, n_features_out_) float32 of series X (N, T[, V]).

        rows (N,): global row ids (noise keys; default 0..N-1), so a series
        gets the same embedding whatever batch or job it is computed in.
        """
        import torch

        check_is_fitted(self, "recurrent_weights_")
        X = self._as_3d(X)
        if X.shape[2] != self.n_features_in_:
            raise ValueError(f"series have {X.shape[2]} variables, the model was fitted on {self.n_features_in_}")
        rows = _row_ids(rows, len(X))
        out = np.empty((len(X), self.n_features_out_), dtype=np.float32)
        with torch.no_grad():
            for a, b in self._batches(len(X)):
                out[a:b] = self._transform_batch(X[a:b], rows[a:b])
        return out

    def _transform_batch(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        import torch

        c = self._torch()
        U, feats = self._scale(X)
        rep = self._represent(U, rows)
        if self.proj_components_ is not None:
            if "proj" not in c:
                with _CACHE_LOCK:
                    if "proj" not in c:
                        # proj_mean first: a thread that finds "proj" (unlocked, above) finds both
                        c["proj_mean"] = torch.as_tensor(self.proj_mean_, dtype=c["dtype"], device=c["device"])
                        c["proj"] = torch.as_tensor(self.proj_components_.T, dtype=c["dtype"],
                                                    device=c["device"]).contiguous()
            # one CPU thread: a batch of fewer than ~500 rows (every shard's last) times the
            # (repr_dim x out_dim) projection is split along repr_dim across threads by MKL on
            # some CPUs, which moved last bits between a job of 1 and of 2 threads
            with single_thread() if str(c["device"]) == "cpu" else contextlib.nullcontext():
                rep = ((rep - c["proj_mean"]) @ c["proj"]).mul_(self.proj_scale_)
        rep = rep.cpu().numpy()
        if feats is not None:
            scaled = (feats - self.scale_mean_) / self.scale_std_ * self.scale_weight
            rep = np.concatenate([rep, scaled], axis=1)
        return rep.astype(np.float32)

    def get_feature_names_out(self, input_features=None) -> list[str]:
        """``emb_000``... (projected) or ``repr_0000``... (raw), then ``log_std``/``trend`` per variable."""
        check_is_fitted(self, "recurrent_weights_")
        if self.proj_components_ is not None:
            names = [f"emb_{i:03d}" for i in range(self.proj_components_.shape[0])]
        else:
            names = [f"repr_{i:04d}" for i in range(self.repr_dim_)]
        if self.scale_features:
            V = self.n_features_in_
            sfx = [""] if V == 1 else [f"_{v}" for v in range(V)]
            names += [f"log_std{s}" for s in sfx] + [f"trend{s}" for s in sfx]
        return names

    # ------------------------------------------------------------------ #
    # persistence: plain tensors and values, loadable with torch.load(weights_only=True)

    _STATE = ("recurrent_weights_", "input_weights_", "noise_bank_", "input_mean_", "input_std_",
              "std_floor_", "pca_components_", "pca_mean_", "pca_explained_variance_",
              "proj_components_", "proj_mean_", "proj_explained_variance_ratio_", "proj_scale_",
              "scale_mean_", "scale_std_", "repr_dim_", "n_features_in_", "n_features_out_")

    def to_state(self) -> dict:
        """Hyper-parameters and fitted state as a dict of plain values and tensors."""
        import torch

        fitted = {}
        for name in self._STATE:
            value = getattr(self, name, None)
            if isinstance(value, np.ndarray):
                value = torch.from_numpy(np.ascontiguousarray(value))
            fitted[name] = value
        return {"params": self.get_params(), "fitted": fitted}

    @classmethod
    def from_state(cls, state: dict, **overrides) -> "ReservoirEmbedder":
        """Rebuild a fitted embedder; ``overrides`` change run-time params (device, batch_size)."""
        import torch

        model = cls(**{**state["params"], **overrides})
        for name, value in state["fitted"].items():
            if isinstance(value, torch.Tensor):
                value = value.numpy()
            setattr(model, name, value)
        model._cache = None
        return model
