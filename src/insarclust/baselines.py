"""Peer methods run beside ours on the same points: the approaches most InSAR
groups would use without reservoirs or deep clustering.

* ``pca-kmeans`` - Festa et al. (2023, JAG 118, 103276): z-scored regular
  series, PCA with the number of components at the knee of the explained
  variance curve, k-means on the component scores, then a trend and
  spectrum read-out per cluster. Streamed: the scaler and an
  ``IncrementalPCA`` are fitted shard block by shard block, and the batched
  k-means of :mod:`insarclust.kmeans` reads the scores through a
  :class:`~insarclust.batches.MapSource`, so the scores never hit the disk.
* ``raw-kmeans`` - the batched k-means on the z-scored regular series.
* ``raw-kmeans_smoothed`` - the same z-scored series averaged over each
  point's graph neighbourhood with the seed method's H-hop smoothing (the
  ``smooth:`` section: ``H``, ``alpha``, ``aggregation``, edge weights) before
  k-means: the fair peer of ``kmeans-dyn_smoothed``, which shows whether the
  embedding adds anything beyond the smoothing. Streamed
  (:func:`insarclust.smooth.smooth_source_to_file`): the smoothed series go
  batch by batch, each on its H-hop halo, to a temporary feature file beside
  the labels' file (the rule's output; ``shards.h5`` when none is given) that
  is removed when the method is done, or by the next job for that output when
  a killed job could not.
* ``descriptors-kmeans`` - the batched k-means on standardised per-point
  descriptors (:mod:`insarclust.descriptors`): trend, acceleration, annual
  amplitude, step, centred on the site mean and standardised
  (``baselines.descriptor_scaling``): ``threshold`` (default) divides each by
  its physical scale (``baselines.descriptor_scale``, by default the label
  thresholds of the ``interpret:`` section's defaults), so one unit is the size
  at which that signature starts to count and k-means distances mean what the
  labels mean; ``zscore`` divides by the standard deviation over the site,
  which blows a descriptor that hardly varies (no step anywhere, an
  acceleration that is only noise on a short series) up to unit variance,
  where its noise or a handful of outliers steer k-means. Descriptors without
  a threshold (residual RMS, dates) are z-scored in both modes.

z-scoring (``baselines.zscore``): ``epoch`` (default) standardises every
epoch of the grid across the site's points (mean and std streamed, as
scikit-learn's ``StandardScaler``), the usual preparation for PCA, which
keeps amplitude: a stable point stays near zero while a subsiding one grows.
``series`` standardises each series on its own (shape only), which scales
the noise of a stable point up to the size of a 20 mm/yr trend.

Every method picks k as the ``kmeans:`` section says (``k: auto`` included,
via :func:`insarclust.kmeans.fit_from_config`) unless ``baselines.k`` is set,
orders labels by trend and is evaluated by
:func:`insarclust.evaluate.evaluate_clustering` in its own feature space.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import IncrementalPCA
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from . import h5io
from .batches import H5FeatureSource, MapSource, ShardsSource, as_source, iter_blocks
from .interpret import DEFAULT_THRESHOLDS
from .labels import Labelling
from .methods import PEERS
from .logs import Progress

log = logging.getLogger(__name__)

METHODS = PEERS
DEFAULT_DESCRIPTOR_FEATURES = ["trend_mm_yr", "acceleration_mm_yr2", "annual_amplitude_mm", "step_mm"]
# The physical scale of each descriptor (baselines.descriptor_scale): by default the
# size at which the interpretation starts to count it (the default label thresholds;
# a user's interpret: thresholds never refit this peer).
_THRESHOLD_OF = {"trend_mm_yr": "stable_trend_mm_yr", "acceleration_mm_yr2": "acceleration_mm_yr2",
                 "annual_amplitude_mm": "seasonal_amplitude_mm", "step_mm": "step_mm"}
DEFAULT_DESCRIPTOR_SCALE = {d: DEFAULT_THRESHOLDS[t] for d, t in _THRESHOLD_OF.items()}
FIT_BLOCK_ROWS = 16384


def _blocks(source, block_rows: int, min_rows: int = 1):
    """Sequential blocks of at least ``min_rows`` rows (short shard tails merged forward)."""
    pending = []
    n_pending = 0
    for _, _, X in iter_blocks(source, block_rows):
        pending.append(X)
        n_pending += len(X)
        if n_pending >= min_rows:
            yield np.concatenate(pending) if len(pending) > 1 else pending[0]
            pending, n_pending = [], 0
    if pending:
        yield np.concatenate(pending)


def zscore_series(X: np.ndarray) -> np.ndarray:
    """Each row to zero mean and unit std (constant rows -> zeros): (n, G) -> (n, G) float32."""
    # float64: the float32 mean of a constant row is off by a rounding step, which divided
    # by itself (the "std") turned the row into -1s or +1s instead of zeros
    X = np.asarray(X, dtype=np.float64)
    centred = X - X.mean(axis=1, keepdims=True)
    std = np.sqrt(np.mean(centred * centred, axis=1, keepdims=True))
    return (centred / np.where(std > 0, std, 1.0)).astype(np.float32)


class StreamedScaler(TransformerMixin, BaseEstimator):
    """z-scoring of a row source, fitted in one streamed pass.

    ``mode="epoch"``: per column (scikit-learn ``StandardScaler.partial_fit``
    over blocks; zero-variance columns, e.g. the reference epoch, keep scale
    1). ``mode="series"``: per row, nothing to fit.
    """

    def __init__(self, mode: str = "epoch", block_rows: int = FIT_BLOCK_ROWS):
        self.mode = mode
        self.block_rows = block_rows

    def fit(self, source, y=None):
        if self.mode not in ("epoch", "series"):
            raise ValueError(f"zscore must be 'epoch' or 'series', got {self.mode!r}")
        source = as_source(source)
        self.n_features_in_ = source.n_features
        if self.mode == "epoch":
            self.scaler_ = StandardScaler()
            for X in _blocks(source, self.block_rows):
                self.scaler_.partial_fit(X)
        else:
            self.scaler_ = None
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        if self.scaler_ is None:
            return zscore_series(X)
        return self.scaler_.transform(np.asarray(X, dtype=np.float32)).astype(np.float32, copy=False)


def knee_index(curve) -> int:
    """Number of components (1-based) at the knee of a cumulative explained-variance curve.

    The knee rule (Kneedle, Satopaa et al. 2011, without smoothing): prepend
    the origin (no component, no variance), scale the curve and the
    component count to [0, 1], draw the chord from the origin to the last
    point, and take the point farthest above it. Before the knee each
    component adds more variance than the average over the range, after it
    less. A curve with no bend (a straight line) gives 1.
    """
    y = np.concatenate([[0.0], np.asarray(curve, dtype=np.float64)])
    if len(y) <= 2 or y[-1] <= 0:
        return max(len(y) - 1, 1)
    x = np.linspace(0.0, 1.0, len(y))
    gap = y / y[-1] - x
    return max(int(np.argmax(np.round(gap, 12))), 1)


class StreamedPCA(TransformerMixin, BaseEstimator):
    """``IncrementalPCA`` fitted block by block, keeping the components up to the knee.

    ``max_components`` are fitted (capped by the number of columns); the
    kept number ``n_components_`` is :func:`knee_index` of the cumulative
    explained variance ratio, at least ``min_components``. Fitted:
    ``explained_variance_ratio_ (max_components,)``, ``n_components_``,
    ``pca_`` (the IncrementalPCA), ``n_features_in_``. ``transform`` gives the
    (n, n_components_) scores of finite (n, n_features_in_) rows.
    """

    def __init__(self, max_components: int = 30, min_components: int = 2,
                 block_rows: int = FIT_BLOCK_ROWS):
        self.max_components = max_components
        self.min_components = min_components
        self.block_rows = block_rows

    def fit(self, source, y=None):
        source = as_source(source)
        self.n_features_in_ = source.n_features
        n_comp = int(min(self.max_components, source.n_features, source.n_rows))
        self.pca_ = IncrementalPCA(n_components=n_comp)
        progress = Progress(log, source.n_rows, "incremental PCA (rows)")
        # One BLAS thread: the SVD of a tall (block x epochs) matrix gains little
        # from threads, and on shared cores OpenBLAS's spinning threads slow it
        # down by an order of magnitude (docs/perf/kmeans.md).
        with threadpool_limits(limits=1, user_api="blas"):
            for X in _blocks(source, max(int(self.block_rows), n_comp), min_rows=n_comp):
                if len(X) < n_comp:  # a tail shorter than the component count cannot be fitted
                    break
                self.pca_.partial_fit(X)
                progress.update(len(X))
        self.explained_variance_ratio_ = np.asarray(self.pca_.explained_variance_ratio_)
        cumulative = np.cumsum(self.explained_variance_ratio_)
        self.n_components_ = int(min(max(knee_index(cumulative), self.min_components), n_comp))
        log.info("PCA: knee of the explained variance at %d components (%.1f %% of the variance)",
                 self.n_components_, 100 * cumulative[self.n_components_ - 1])
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "pca_")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"StreamedPCA: rows of shape {X.shape}, expected (n, {self.n_features_in_}) "
                             "as in fit")
        if not np.isfinite(X).all():
            raise ValueError("StreamedPCA: the rows hold NaN or inf; scores must come from finite rows")
        k = self.n_components_
        return ((X - self.pca_.mean_.astype(np.float32)) @ self.pca_.components_[:k].T.astype(np.float32))


def descriptor_columns(names, wanted) -> list[int]:
    missing = [w for w in wanted if w not in names]
    if missing:
        raise ValueError(f"descriptors file lacks {missing}; it has {list(names)}")
    return [list(names).index(w) for w in wanted]


def centroid_spectrum(mean_series: np.ndarray, grid_dates: np.ndarray) -> list[dict]:
    """Festa et al.'s spectral read-out of each cluster mean (K, G).

    The mean is detrended (least-squares line) and its FFT power spectrum
    taken; reported: the dominant period (days) and the share of the
    detrended variance at that frequency.
    """
    grid_dates = np.asarray(grid_dates, dtype=np.float64)
    step_days = float(np.median(np.diff(grid_dates))) if len(grid_dates) > 1 else 1.0
    t = grid_dates - grid_dates.mean()
    out = []
    for j, y in enumerate(np.nan_to_num(np.asarray(mean_series, dtype=np.float64))):
        slope = np.dot(t, y - y.mean()) / max(np.dot(t, t), 1e-12)
        resid = y - y.mean() - slope * t
        power = np.abs(np.fft.rfft(resid)) ** 2
        freq = np.fft.rfftfreq(len(resid), d=step_days)
        if len(power) < 2 or power[1:].sum() <= 0:
            out.append({"cluster": j, "dominant_period_days": None, "power_share": None})
            continue
        i = int(np.argmax(power[1:])) + 1
        out.append({"cluster": j, "dominant_period_days": float(1.0 / freq[i]),
                    "power_share": float(power[i] / power[1:].sum())})
    return out


def kmeans_config(kmeans_cfg: dict, baselines_cfg: dict) -> dict:
    """The ``kmeans:`` section with the peers' own k (``baselines.k``) when set."""
    cfg = dict(kmeans_cfg)
    if baselines_cfg.get("k") is not None:
        cfg["k"] = baselines_cfg["k"]
    return cfg


def descriptor_scale(std: np.ndarray, names, scales: dict | None, scaling: str) -> np.ndarray:
    """Per-descriptor divisor (D,): its physical scale (``threshold``) or its std (``zscore``).

    ``scales``: descriptor -> scale (``baselines.descriptor_scale``); descriptors
    without one are divided by their std in both modes.
    """
    if scaling not in ("threshold", "zscore"):
        raise ValueError(f"descriptor_scaling must be 'threshold' or 'zscore', got {scaling!r}")
    scales = {**DEFAULT_DESCRIPTOR_SCALE, **(scales or {})}
    std = np.asarray(std, dtype=np.float64)
    scale = np.array([float(scales[n]) if scaling == "threshold" and n in scales else s
                      for n, s in zip(names, std)])
    return np.where(scale > 0, scale, 1.0)


def build_features(method: str, shards_path, descriptors_path=None, *, baselines_cfg: dict,
                   graph_path=None, smooth_cfg: dict | None = None, workdir=None, seed: int = 0):
    """The row source a peer method clusters, and the method's extras for the JSON.

    Returns ``(source, extras)``; extras go to the top level of the metrics
    JSON (``zscore``; ``pca``: n_components and the explained variance curve;
    ``features`` and their standardisation; ``smooth``). The source is lazy (fitted transforms over
    the shards/descriptors file): memory one block whatever N. ``raw-kmeans_smoothed``
    needs ``graph_path``, ``smooth_cfg`` (the ``smooth:`` section) and ``workdir``,
    an existing folder for its smoothed series (the caller removes it).
    """
    if method not in METHODS:
        raise ValueError(f"unknown peer method {method!r}; choose one of {METHODS}")
    zscore = baselines_cfg.get("zscore", "epoch")
    if method == "descriptors-kmeans":
        if descriptors_path is None:
            raise ValueError("descriptors-kmeans needs features/descriptors.h5")
        wanted = list(baselines_cfg.get("descriptor_features") or DEFAULT_DESCRIPTOR_FEATURES)
        raw = H5FeatureSource(descriptors_path, shard_offsets=ShardsSource(shards_path).shard_offsets)
        cols = descriptor_columns(raw.names, wanted)
        picked = MapSource(raw, lambda X: X[:, cols], names=wanted)
        stats = StreamedScaler("epoch").fit(picked).scaler_
        scaling = baselines_cfg.get("descriptor_scaling", "threshold")
        mean = stats.mean_.astype(np.float32)
        scale = descriptor_scale(np.sqrt(stats.var_), wanted, baselines_cfg.get("descriptor_scale"), scaling)
        inv_scale = (1.0 / scale).astype(np.float32)
        source = MapSource(picked, lambda X: (X - mean) * inv_scale, names=wanted)
        extras = {"features": wanted, "descriptor_scaling": scaling, "feature_mean": stats.mean_.tolist(),
                  "feature_std": np.sqrt(stats.var_).tolist(), "feature_scale": scale.tolist()}
        return source, extras
    series = ShardsSource(shards_path, "series/regular")
    scaler = StreamedScaler(zscore).fit(series)
    scaled = MapSource(series, scaler.transform, names=series.names)
    if method == "raw-kmeans":
        return scaled, {"zscore": zscore, "n_features": series.n_features}
    if method == "raw-kmeans_smoothed":
        from . import h5io
        from .smooth import smooth_source_to_file

        if graph_path is None or workdir is None:
            raise ValueError("raw-kmeans_smoothed needs graph_path and workdir")
        out = Path(workdir) / "raw_smoothed.h5"
        graph = h5io.read_datasets(graph_path, ["indptr", "indices", "weight"])
        attrs = smooth_source_to_file(scaled, graph, smooth_cfg or {}, out, seed=seed)
        smoothed = H5FeatureSource(out, shard_offsets=series.shard_offsets)
        return smoothed, {"zscore": zscore, "n_features": series.n_features,
                          "smooth": {k: attrs[k] for k in ("H", "alpha", "aggregation", "mode", "fanout")}}
    pca = StreamedPCA(max_components=int(baselines_cfg.get("pca_max_components", 30))).fit(scaled)
    names = [f"pc{j + 1}" for j in range(pca.n_components_)]
    source = MapSource(scaled, pca.transform, names=names)
    ratio = pca.explained_variance_ratio_
    extras = {"zscore": zscore, "pca": {
        "n_components": pca.n_components_,
        "max_components": int(len(ratio)),
        "explained_variance_ratio": ratio.tolist(),
        "cumulative_explained_variance": np.cumsum(ratio).tolist(),
        "knee_rule": "Kneedle: farthest point above the chord of the normalised cumulative curve",
    }}
    return source, extras


def fit_baseline(method: str, shards_path, descriptors_path=None, *, kmeans_cfg: dict,
                 baselines_cfg: dict, seed: int, graph_path=None, smooth_cfg: dict | None = None,
                 out_path=None) -> Labelling:
    """One peer method: features, batched k-means, labels in trend order, fit record.

    ``graph_path`` and ``smooth_cfg`` (the ``smooth:`` section): ``raw-kmeans_smoothed`` only.
    ``out_path``: the file the labels go to (the rule's output); the smoothed peer then keeps
    its temporary series in :func:`insarclust.h5io.temp_dir` of it, which the next job for
    that output removes if this one is killed (out of memory, a time limit) before it can.
    """
    from . import kmeans
    from .h5io import Shards

    baselines_cfg = dict(baselines_cfg or {})
    # the peers are references, fitted once: no seed-stability refit
    cfg = {**kmeans_config(kmeans_cfg, baselines_cfg), "seed_stability": False}
    with contextlib.ExitStack() as stack:
        workdir = None
        if method == "raw-kmeans_smoothed" and out_path is not None:
            workdir = h5io.temp_dir(out_path, "runs")
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        elif method == "raw-kmeans_smoothed":
            # beside shards.h5: the same file system as the results, sized like the input
            workdir = stack.enter_context(tempfile.TemporaryDirectory(
                prefix=".raw-smoothed-", dir=Path(shards_path).parent))
        source, extras = build_features(method, shards_path, descriptors_path, baselines_cfg=baselines_cfg,
                                        graph_path=graph_path, smooth_cfg=smooth_cfg, workdir=workdir,
                                        seed=seed)
        log.info("%s: clustering %d points x %d features", method, source.n_rows, source.n_features)
        result = kmeans.fit_stage(source, shards_path, cfg=cfg, seed=seed)
    result.record.update(extras)
    if method == "pca-kmeans":
        result.record["centroid_spectrum"] = centroid_spectrum(result.series_stats[0],
                                                               Shards(shards_path).grid_dates)
    return result
