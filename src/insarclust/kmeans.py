"""Batched mini-batch k-means over a row source that does not fit in memory.

The method (follow it exactly):

1. split the points into train and test (seeded; ``split="shard"`` holds out
   whole shards, i.e. spatially separate tiles);
2. warm start: take the first batches of the shuffled train stream until
   ``warm_start_size`` (S) points are pooled, keep a uniform sample of S of
   them, and fit scikit-learn's ``MiniBatchKMeans`` on it once, started from
   the centres of a full-batch ``KMeans`` of the same S points (``n_init``
   k-means++ seedings, each run to convergence, the lowest inertia kept: the
   S points fit in memory, and a mini-batch fit keeps the optimum its start
   falls into);
3. continue with the ``MiniBatchKMeans.partial_fit`` update on every train
   batch (``n_passes`` passes, each a fresh shuffle);
4. sweep all points once more and label them with the nearest centre.

``engine="sklearn"`` calls ``partial_fit`` per batch. ``engine="numpy"``
(default) applies the same update rule - the count-weighted running mean of
``_mini_batch_step`` with its low-count centre reassignment and random state -
to the fitted model's state in numpy, which avoids scikit-learn's ~0.3 ms
fixed cost per call (validation, thread-pool set-up) on 256-row batches; the
tests check both engines give the same centres.
"""
from __future__ import annotations

import logging
import os

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from .batches import BLOCK_ROWS, BUFFER_ROWS, as_source, iter_batches, iter_blocks, n_batches, require_finite
from .config import stage_kwargs
from .labels import Labelling, fit_metrics, order_labels_with_stats
from .logs import Progress

log = logging.getLogger(__name__)

SWEEP_BLOCK_ROWS = 65536


def split_rows(n_rows: int, test_fraction: float = 0.2, split: str = "random",
               shard_offsets=None, seed: int = 0) -> np.ndarray:
    """``(n_rows,) uint8`` split: 0 train, 1 test.

    ``random``: exactly ``round(test_fraction * n_rows)`` test points drawn by
    ``seed``. ``shard``: whole shards in a seeded order until the test share
    is closest to ``test_fraction`` (at least one shard stays train).
    """
    split_arr = np.zeros(n_rows, dtype=np.uint8)
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    target = test_fraction * n_rows
    if split == "random":
        split_arr[rng.choice(n_rows, size=int(round(target)), replace=False)] = 1
    elif split == "shard":
        if shard_offsets is None:
            raise ValueError("split='shard' needs shard offsets: build the source with the "
                             "shards.h5 offsets (H5FeatureSource(path, shard_offsets=...))")
        offsets = np.asarray(shard_offsets, dtype=np.int64)
        order = rng.permutation(len(offsets) - 1)
        taken = np.concatenate([[0], np.cumsum(np.diff(offsets)[order])])
        n_test_shards = int(np.argmin(np.abs(taken[:len(order)] - target)))
        if n_test_shards == 0 and test_fraction > 0:
            log.warning("split 'shard': %d shard(s), none held out (one would be %.0f %% of the points, "
                        "further from test_fraction %g than none); test inertia is undefined; use split: "
                        "random or a smaller shards.shard_size", len(order), 100 * taken[1] / max(n_rows, 1),
                        test_fraction)
        for s in order[:n_test_shards]:
            split_arr[offsets[s]:offsets[s + 1]] = 1
    else:
        raise ValueError(f"split must be 'random' or 'shard', got {split!r}")
    return split_arr


class _NumpyMiniBatchUpdate:
    """``MiniBatchKMeans.partial_fit`` continued from a fitted model, in numpy.

    Same state (centres, float32 per-centre counts, samples since the last
    reassignment, the RandomState a first ``partial_fit`` after ``fit``
    creates) and the same steps as scikit-learn's ``_mini_batch_step``:
    assign to the nearest centre, move each hit centre to the count-weighted
    mean of its old position and its new members, then every ``10 * K``
    samples re-seed centres whose count fell below ``reassignment_ratio`` of
    the largest on random batch points.
    """

    def __init__(self, model: MiniBatchKMeans):
        self.centers = np.array(model.cluster_centers_, dtype=np.float32, order="C")
        self.counts = np.array(model._counts, dtype=np.float32)
        self.n_since_last_reassign = int(getattr(model, "_n_since_last_reassign", 0))
        self.step_rows = int(getattr(model, "_batch_size", model.batch_size))
        self.reassignment_ratio = float(model.reassignment_ratio)
        self.random_state = check_random_state(model.random_state)
        self.n_clusters = len(self.centers)

    def _random_reassign(self) -> bool:
        self.n_since_last_reassign += self.step_rows
        if (self.counts == 0).any() or self.n_since_last_reassign >= 10 * self.n_clusters:
            self.n_since_last_reassign = 0
            return True
        return False

    def partial_fit(self, X: np.ndarray) -> None:
        X = np.ascontiguousarray(X, dtype=np.float32)
        n, k = len(X), self.n_clusters
        reassign = self._random_reassign()
        c = self.centers
        labels = np.argmin(np.sum(c * c, axis=1) - 2.0 * (X @ c.T), axis=1)
        hits = np.bincount(labels, minlength=k).astype(np.float32)
        onehot = np.zeros((k, n), dtype=np.float32)
        onehot[labels, np.arange(n)] = 1.0
        sums = onehot @ X
        hit = hits > 0
        new_counts = self.counts[hit] + hits[hit]
        self.centers[hit] = ((self.centers[hit] * self.counts[hit, None] + sums[hit])
                             * (np.float32(1.0) / new_counts)[:, None])
        self.counts[hit] = new_counts
        if reassign and self.reassignment_ratio > 0:
            to_reassign = self.counts < self.reassignment_ratio * self.counts.max()
            if to_reassign.sum() > 0.5 * n:
                to_reassign[np.argsort(self.counts)[int(0.5 * n):]] = False
            n_reassign = int(to_reassign.sum())
            if n_reassign:
                picked = self.random_state.choice(n, replace=False, size=n_reassign)
                self.centers[to_reassign] = X[picked]
            self.counts[to_reassign] = np.min(self.counts[~to_reassign])


class _SklearnMiniBatchUpdate:
    """``MiniBatchKMeans.partial_fit`` itself, one call per batch."""

    def __init__(self, model: MiniBatchKMeans):
        self.model = model

    @property
    def centers(self) -> np.ndarray:
        return self.model.cluster_centers_

    def partial_fit(self, X: np.ndarray) -> None:
        self.model.partial_fit(X)


def assign(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre ``(n,) int32`` and squared distance to it ``(n,) float32`` (X (n, D), centers (K, D))."""
    X = np.asarray(X, dtype=np.float32)
    centers = np.asarray(centers, dtype=np.float32)
    partial = np.sum(centers * centers, axis=1)[None, :] - 2.0 * (X @ centers.T)
    labels = np.argmin(partial, axis=1)
    sq = np.sum(X * X, axis=1) + partial[np.arange(len(X)), labels]
    return labels.astype(np.int32), np.maximum(sq, 0.0)


class BatchedKMeans(ClusterMixin, BaseEstimator):
    """Mini-batch k-means streamed from a row source (see the module docstring).

    Parameters: ``n_clusters`` K; ``batch_size`` points per mini-batch;
    ``warm_start_size`` S; ``n_passes`` partial-fit passes over the train
    stream; ``test_fraction`` and ``split`` (``random`` | ``shard``);
    ``random_state``; ``engine`` (``numpy`` | ``sklearn``); ``n_init``:
    k-means++ seedings of the warm start, each run to convergence by
    full-batch ``KMeans`` on the S-point sample, the lowest inertia kept
    (:meth:`_warm_start`);
    ``block_rows`` /
    ``buffer_rows`` of the batch stream (see :mod:`insarclust.batches`).

    Fitted: ``cluster_centers_ (K, D) float32``, ``n_features_in_`` (D), ``labels_ (N,) int32``,
    ``split_ (N,) uint8`` (0 train, 1 test), ``warm_start_rows_ (S,)`` (rows of
    the warm-start sample, in stream order), ``inertia_train_`` /
    ``inertia_test_`` (mean squared distance of a point to its centre, so the
    two compare; NaN for an empty set), ``n_steps_`` (partial-fit batches).
    """

    def __init__(self, n_clusters: int = 4, batch_size: int = 256, warm_start_size: int = 25600,
                 n_passes: int = 1, test_fraction: float = 0.2, split: str = "random",
                 random_state: int = 0, engine: str = "numpy", n_init: int = 10,
                 block_rows: int = BLOCK_ROWS, buffer_rows: int = BUFFER_ROWS):
        self.n_clusters = n_clusters
        self.batch_size = batch_size
        self.warm_start_size = warm_start_size
        self.n_passes = n_passes
        self.test_fraction = test_fraction
        self.split = split
        self.random_state = random_state
        self.engine = engine
        self.n_init = n_init
        self.block_rows = block_rows
        self.buffer_rows = buffer_rows

    def _seeds(self) -> dict:
        # independent streams per random choice, all from one seed
        state = np.random.SeedSequence(int(self.random_state)).generate_state(3 + int(self.n_passes))
        return {"split": int(state[0]), "warm": int(state[1]), "model": int(state[2]),
                "passes": [int(s) for s in state[3:]]}

    def _stream(self, source, rows, seed):
        for idx, X in iter_batches(source, rows, self.batch_size, shuffle=True, seed=seed,
                                   block_rows=self.block_rows, buffer_rows=self.buffer_rows):
            yield idx, require_finite(X, idx, source)

    def _warm_start_sample(self, source, train_rows, seed) -> tuple[np.ndarray, np.ndarray]:
        """First batches of the train stream until S points, then a uniform sample of S of them."""
        size = min(int(self.warm_start_size), len(train_rows))
        idx_parts, X_parts, n = [], [], 0
        for idx, X in self._stream(source, train_rows, seed):
            idx_parts.append(idx)
            X_parts.append(X)
            n += len(idx)
            if n >= size:
                break
        idx, X = np.concatenate(idx_parts), np.concatenate(X_parts)
        if len(idx) > size:
            keep = np.sort(np.random.default_rng(seed).choice(len(idx), size=size, replace=False))
            idx, X = idx[keep], X[keep]
        return idx, X

    def fit(self, X, y=None):
        """Fit on a row source (or an array / feature-file path). Returns self."""
        # Every step works on one small batch: extra OpenMP/BLAS threads only
        # add synchronisation, which costs up to 10x on a shared machine.
        with threadpool_limits(limits=1):
            return self._fit(as_source(X))

    def _fit(self, source):
        if self.engine not in ("numpy", "sklearn"):
            raise ValueError(f"engine must be 'numpy' or 'sklearn', got {self.engine!r}")
        if int(self.n_passes) < 1:
            raise ValueError(f"n_passes must be >= 1, got {self.n_passes}")
        seeds = self._seeds()
        self.n_features_in_ = int(source.n_features)
        self.split_ = split_rows(source.n_rows, self.test_fraction, self.split,
                                 getattr(source, "shard_offsets", None), seeds["split"])
        train_rows = np.flatnonzero(self.split_ == 0)
        if len(train_rows) < self.n_clusters:
            raise ValueError(f"{len(train_rows)} train points for {self.n_clusters} clusters: "
                             "lower k or test_fraction")
        self.warm_start_rows_, warm_X = self._warm_start_sample(source, train_rows, seeds["warm"])
        log.info("k-means k=%d: %d points (%d train), warm start on %d points", self.n_clusters,
                 source.n_rows, len(train_rows), len(self.warm_start_rows_))
        model = self._warm_start(warm_X, seeds["model"])
        del warm_X
        update = (_NumpyMiniBatchUpdate if self.engine == "numpy" else _SklearnMiniBatchUpdate)(model)
        per_pass = n_batches(len(train_rows), self.batch_size)
        progress = Progress(log, per_pass * int(self.n_passes), "k-means partial_fit batches")
        self.n_steps_ = 0
        for pass_seed in seeds["passes"]:
            done = 0
            for _, X_batch in self._stream(source, train_rows, pass_seed):
                update.partial_fit(X_batch)
                done += 1
                if done % 1000 == 0:
                    progress.update(1000)
            progress.update(done % 1000)
            self.n_steps_ += done
        self.cluster_centers_ = np.array(update.centers, dtype=np.float32)
        self._model = model if self.engine == "sklearn" else None
        self._final_sweep(source)
        return self

    def _warm_start(self, warm_X: np.ndarray, seed: int) -> MiniBatchKMeans:
        """``MiniBatchKMeans`` fitted once on the warm-start sample, from converged centres.

        It used to pick the best of ``n_init`` seedings by their inertia right after
        seeding (scikit-learn's ``MiniBatchKMeans`` rule), and the mini-batch passes keep
        the optimum their start falls into: on the demo sites' eight feature variants,
        five seeds each, the fits were worse than full-batch k-means (inertia higher in
        8 of 8) and depended on the seed (mean ARI between seeds 0.57-0.97; 0.32 at
        worst). Each seeding run to convergence on the S points (0.05-0.1 s more per
        fit on the demo) gave lower inertia in 8 of 8, seed-to-seed ARI 0.63-1.00 and ARI
        against the true regimes up in 7 of 8 (0.71 -> 0.82, 0.78 -> 0.88 for the
        smoothed embedding), docs/perf/kmeans.md.
        """
        best = KMeans(n_clusters=self.n_clusters, n_init=int(self.n_init), random_state=seed).fit(warm_X)
        return MiniBatchKMeans(n_clusters=self.n_clusters, batch_size=self.batch_size,
                               init=best.cluster_centers_, n_init=1, random_state=seed,
                               compute_labels=False).fit(warm_X)

    def _final_sweep(self, source) -> None:
        n = source.n_rows
        self.labels_ = np.empty(n, dtype=np.int32)
        sq_sum = np.zeros(2)
        progress = Progress(log, n, "k-means labelling points")
        for a, b, X in iter_blocks(source, SWEEP_BLOCK_ROWS):
            labels, sq = self._assign(require_finite(X, a, source))
            self.labels_[a:b] = labels
            sq_sum += np.bincount(self.split_[a:b], weights=sq, minlength=2)[:2]
            progress.update(b - a)
        empty = np.flatnonzero(np.bincount(self.labels_, minlength=self.n_clusters) == 0)
        if len(empty):
            log.warning("k-means k=%d: %d cluster(s) hold no point (the features have fewer distinct "
                        "rows, or fewer separable groups, than k): lower kmeans.k", self.n_clusters, len(empty))
        n_split = np.bincount(self.split_, minlength=2)[:2]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.inertia_train_, self.inertia_test_ = (float(v) for v in sq_sum / n_split)

    def _assign(self, X) -> tuple[np.ndarray, np.ndarray]:
        if self._model is not None:
            labels = self._model.predict(np.asarray(X, dtype=np.float32)).astype(np.int32)
            diff = np.asarray(X, dtype=np.float32) - self.cluster_centers_[labels]
            return labels, np.sum(diff * diff, axis=1)
        return assign(X, self.cluster_centers_)

    def predict(self, X) -> np.ndarray:
        """Nearest centre ``(n,) int32`` of each row of ``X`` (n, D), D as in fit; rows must be
        finite (a NaN row would get label 0 without a word)."""
        check_is_fitted(self, "cluster_centers_")
        X = np.asarray(X)
        n_features = self.cluster_centers_.shape[1]
        if X.ndim != 2 or X.shape[1] != n_features:
            raise ValueError(f"BatchedKMeans: rows of shape {X.shape}, expected (n, {n_features}) as in fit")
        return self._assign(require_finite(X, 0, self))[0]


# --------------------------------------------------------------------------- #
# configuration, k choice and the stage


def kmeans_params(cfg: dict) -> dict:
    """``BatchedKMeans`` keyword arguments (all but k and the seed) from the ``kmeans:`` config."""
    return stage_kwargs("kmeans", cfg, ignore={"k"})


def sweep_k(source, k_values, *, seed: int, silhouette_sample: int = 10000, graph_path=None,
            full: bool = True, **params):
    """Fit one model per k; a pandas DataFrame with one row per k.

    Columns: ``k``, ``silhouette`` (on the same seeded sample for every k),
    ``inertia_train``, ``inertia_test`` and, when ``full``,
    ``davies_bouldin``, ``calinski_harabasz``, ``mean_intercentroid_distance``
    and, with a graph, ``spatial_coherence``.
    """
    import pandas as pd

    from . import metrics

    source = as_source(source)
    sample = metrics.sample_rows(source.n_rows, silhouette_sample, seed)
    graph = None
    if graph_path is not None:
        from .h5io import read_graph

        graph = read_graph(graph_path)
        if len(graph["indptr"]) - 1 != source.n_rows:
            from .errors import InputError

            raise InputError(f"a graph of {len(graph['indptr']) - 1} points, but the features have "
                             f"{source.n_rows} rows: it was made from another shards.h5", file=str(graph_path),
                             fix=f"delete {graph_path} and rerun the workflow, which rebuilds it")
    rows = []
    for k in k_values:
        model = BatchedKMeans(n_clusters=int(k), random_state=seed, **params).fit(source)
        row = {"k": int(k),
               "silhouette": metrics.sampled_silhouette(source, model.labels_, rows=sample),
               "inertia_train": model.inertia_train_, "inertia_test": model.inertia_test_}
        if full:
            q = metrics.quality_metrics(source, model.labels_, n_clusters=int(k), seed=seed,
                                        silhouette_sample=silhouette_sample,
                                        centers=model.cluster_centers_)
            row.update({m: q[m] for m in ("davies_bouldin", "calinski_harabasz",
                                          "mean_intercentroid_distance")})
            if graph is not None:
                from .spatial import label_coherence

                row["spatial_coherence"] = label_coherence(graph["indptr"], graph["indices"],
                                                           model.labels_)
        log.info("k=%d: %s", k, ", ".join(f"{m}={v:.4g}" for m, v in row.items() if m != "k"))
        rows.append(row)
    return pd.DataFrame(rows)


def select_k(source, k_range, *, seed: int, silhouette_sample: int = 10000, **params) -> dict:
    """Pick k in ``k_range`` = [lo, hi] (inclusive) by the highest sampled silhouette.

    Returns the JSON-ready ``k_selection`` record: ``criterion``, ``k``
    (values tried), ``silhouette`` and ``inertia_train`` per k, ``chosen``.
    """
    lo, hi = int(k_range[0]), int(k_range[1])
    table = sweep_k(source, range(lo, hi + 1), seed=seed, silhouette_sample=silhouette_sample,
                    full=False, **params)
    sil = table["silhouette"].to_numpy()
    chosen = int(table["k"].iloc[int(np.nanargmax(sil))]) if np.isfinite(sil).any() else lo
    return {"criterion": "silhouette", "k": table["k"].tolist(),
            "silhouette": [None if not np.isfinite(v) else float(v) for v in sil],
            "inertia_train": table["inertia_train"].tolist(), "chosen": chosen}


def fit_from_config(source, cfg: dict, seed: int) -> tuple[BatchedKMeans, dict | None]:
    """Fit ``BatchedKMeans`` as the ``kmeans:`` config says (``k: auto`` included).

    Returns ``(model, k_selection)``; ``k_selection`` is None for a fixed k.
    Baselines call this on their own sources so every method picks k alike.
    """
    params = kmeans_params(cfg)
    k = cfg.get("k", 4)
    selection = None
    if k == "auto":
        selection = select_k(source, cfg.get("k_range", [2, 8]), seed=seed,
                             silhouette_sample=int(cfg.get("silhouette_sample", 10000)), **params)
        k = selection["chosen"]
        log.info("k: auto -> %d (silhouette %s)", k, selection["silhouette"])
    model = BatchedKMeans(n_clusters=int(k), random_state=seed, **params).fit(source)
    return model, selection


def seed_stability(source, labels: np.ndarray, k: int, cfg: dict, seed: int) -> float:
    """ARI between ``labels`` (a fit of ``cfg`` at ``k`` with ``seed``) and a refit with
    ``seed + 1`` (same k and parameters)."""
    other = BatchedKMeans(n_clusters=int(k), random_state=seed + 1, **kmeans_params(cfg)).fit(source)
    return float(adjusted_rand_score(labels, other.labels_))


def feature_source(features, shards_path):
    """The row source the stage fits on: a ``features/{name}.h5`` path read by shard, or a
    source given as is (the peers pass a :class:`~insarclust.batches.MapSource`)."""
    from .batches import H5FeatureSource
    from .h5io import Shards

    if isinstance(features, (str, os.PathLike)):
        # no finite=True: every fit and predict checks the rows it reads (require_finite)
        return H5FeatureSource(features, shard_offsets=Shards(shards_path).offsets)
    return features


def measure_fit(source, labelling: Labelling, *, cfg: dict, seed: int) -> dict:
    """The stage's diagnostics of a fit: feature-space ``metrics`` (silhouette on
    ``silhouette_sample`` rows, Davies-Bouldin, Calinski-Harabasz, mean inter-centroid
    distance) and, with ``seed_stability``, ``seed_stability_ari``. The ``kmeans`` rule leaves
    them to its ``evaluate`` job, so a diagnostic setting never refits."""
    k = int(labelling.record["k"])
    # the centres as the model holds them (float32; stored as float64, exactly)
    centers = None if labelling.centers is None else np.asarray(labelling.centers, dtype=np.float32)
    out = {"metrics": fit_metrics(source, labelling.labels, k, seed=seed,
                                  silhouette_sample=int(cfg.get("silhouette_sample", 10000)), centers=centers)}
    if cfg.get("seed_stability", False):
        out["seed_stability_ari"] = seed_stability(source, labelling.labels, k, cfg, seed)
        log.info("seed stability: ARI %.3f between seed %d and %d", out["seed_stability_ari"], seed, seed + 1)
    return out


def fit_stage(features, shards_path, *, cfg: dict, seed: int, measure: bool = True) -> Labelling:
    """The ``kmeans`` stage (and the peers' k-means): fit, order labels by trend, measure the fit.

    ``features``: a ``features/{name}.h5`` path, or any row source in shard
    order (the peers pass a :class:`~insarclust.batches.MapSource` over
    ``shards.h5``); ``cfg``: the ``kmeans:`` config section. The record holds
    ``k``, the feature-space ``metrics`` (train/test inertia; with ``measure``
    also :func:`measure_fit`'s), ``k_selection`` (``k: auto``) and, with
    ``measure``, ``seed_stability_ari`` (``seed_stability: true``). The centres
    come in the new label order.
    """
    source = feature_source(features, shards_path)
    model, selection = fit_from_config(source, cfg, seed)
    labels, order, stats = order_labels_with_stats(model.labels_, shards_path, n_clusters=model.n_clusters)
    record = {"k": int(model.n_clusters),
              "metrics": {"inertia_train": model.inertia_train_, "inertia_test": model.inertia_test_}}
    if selection is not None:
        record["k_selection"] = selection
    fit = Labelling(labels=labels, split=model.split_, record=record, centers=model.cluster_centers_[order],
                    series_stats=stats)
    if measure:
        measured = measure_fit(source, fit, cfg=cfg, seed=seed)
        record["metrics"] = {**measured.pop("metrics"), **record["metrics"]}
        record.update(measured)
    return fit
