"""Internal quality metrics of a partition, streamed over a row source.

Davies-Bouldin and Calinski-Harabasz are the definitions of scikit-learn's
``davies_bouldin_score`` / ``calinski_harabasz_score`` computed from per-cluster
moments gathered block by block (two passes), so memory is one block whatever
N; the tests check them against scikit-learn. The silhouette is O(n^2), so it
is scikit-learn's ``silhouette_score`` on a fixed-size seeded sample of rows:
the same sample for every method and every k of a site.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import silhouette_score

from .batches import block_bounds, sample_rows

METRIC_BLOCK_ROWS = 32768


def sampled_silhouette(source, labels: np.ndarray, sample_size: int = 10000, seed: int = 0,
                       rows: np.ndarray | None = None) -> float:
    """Silhouette (Euclidean) on a seeded sample of rows; NaN if the sample holds < 2 clusters."""
    labels = np.asarray(labels)
    if rows is None:
        rows = sample_rows(source.n_rows, sample_size, seed)
    lab = labels[rows]
    n_labels = len(np.unique(lab))
    if n_labels < 2 or n_labels >= len(rows):
        return float("nan")
    return float(silhouette_score(source.read_rows(rows), lab, metric="euclidean"))


def _blocks(source, block_rows: int):
    for a, b in block_bounds(source.n_rows, getattr(source, "shard_offsets", None), block_rows):
        yield int(a), int(b)


def onehot(labels: np.ndarray, n_clusters: int) -> sp.csr_array:
    """(K, n) sparse indicator of ``labels``: ``onehot(labels, K) @ X`` sums the rows of X per cluster."""
    n = len(labels)
    return sp.csr_array((np.ones(n), (labels, np.arange(n))), shape=(n_clusters, n))


def cluster_moments(source, labels: np.ndarray, n_clusters: int,
                    block_rows: int = METRIC_BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """``counts (K,)`` and ``centroids (K, D)`` float64 (NaN rows for empty clusters)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=n_clusters).astype(np.int64)
    sums = np.zeros((n_clusters, source.n_features))
    for a, b in _blocks(source, block_rows):
        sums += onehot(labels[a:b], n_clusters) @ source.read(a, b).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroids = sums / counts[:, None]
    return counts, centroids


def cluster_dispersion(source, labels: np.ndarray, centroids: np.ndarray,
                       block_rows: int = METRIC_BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster: the sum of Euclidean distances and of squared distances of members to the centroid."""
    labels = np.asarray(labels, dtype=np.int64)
    k = len(centroids)
    dist_sum, sq_sum = np.zeros(k), np.zeros(k)
    for a, b in _blocks(source, block_rows):
        lab = labels[a:b]
        sq = np.sum((source.read(a, b).astype(np.float64) - centroids[lab]) ** 2, axis=1)
        sq_sum += np.bincount(lab, weights=sq, minlength=k)
        dist_sum += np.bincount(lab, weights=np.sqrt(sq), minlength=k)
    return dist_sum, sq_sum


def davies_bouldin(counts: np.ndarray, centroids: np.ndarray, dist_sum: np.ndarray) -> float:
    """Davies-Bouldin index from moments (lower is better); NaN with < 2 non-empty clusters."""
    keep = counts > 0
    if keep.sum() < 2:
        return float("nan")
    c = centroids[keep]
    intra = dist_sum[keep] / counts[keep]
    d = np.sqrt(np.sum((c[:, None, :] - c[None, :, :]) ** 2, axis=-1))
    if np.allclose(intra, 0) or np.allclose(d, 0):
        return 0.0
    d[d == 0] = np.inf
    return float(np.mean(np.max((intra[:, None] + intra[None, :]) / d, axis=1)))


def calinski_harabasz(counts: np.ndarray, centroids: np.ndarray, sq_sum: np.ndarray) -> float:
    """Calinski-Harabasz index from moments (higher is better); NaN with < 2 non-empty clusters."""
    keep = counts > 0
    n_labels, n = int(keep.sum()), int(counts.sum())
    if n_labels < 2 or n_labels >= n:
        return float("nan")
    c, w = centroids[keep], counts[keep]
    mean = (w[:, None] * c).sum(axis=0) / n
    extra = float(np.sum(w * np.sum((c - mean) ** 2, axis=1)))
    intra = float(sq_sum[keep].sum())
    return 1.0 if intra == 0.0 else extra * (n - n_labels) / (intra * (n_labels - 1.0))


def mean_intercentroid_distance(centers: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of (finite) centroids; NaN with < 2."""
    centers = np.asarray(centers, dtype=np.float64)
    centers = centers[np.all(np.isfinite(centers), axis=1)]
    if len(centers) < 2:
        return float("nan")
    d = np.sqrt(np.sum((centers[:, None, :] - centers[None, :, :]) ** 2, axis=-1))
    return float(d[np.triu_indices(len(centers), 1)].mean())


def quality_metrics(source, labels: np.ndarray, *, n_clusters: int | None = None, seed: int = 0,
                    silhouette_sample: int = 10000, centers: np.ndarray | None = None,
                    block_rows: int = METRIC_BLOCK_ROWS) -> dict:
    """Silhouette (sampled), Davies-Bouldin, Calinski-Harabasz, mean inter-centroid distance.

    ``centers`` (K, D): the method's own centroids for the inter-centroid
    distance (e.g. k-means centres); default the means of the members.
    Also returns ``sizes`` (K,) and the member ``centroids`` (K, D).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if n_clusters is None:
        n_clusters = int(labels.max()) + 1 if len(labels) else 0
        if centers is not None:
            n_clusters = max(n_clusters, len(centers))
    counts, centroids = cluster_moments(source, labels, n_clusters, block_rows)
    dist_sum, sq_sum = cluster_dispersion(source, labels, np.nan_to_num(centroids), block_rows)
    return {
        "silhouette": sampled_silhouette(source, labels, silhouette_sample, seed),
        "davies_bouldin": davies_bouldin(counts, centroids, dist_sum),
        "calinski_harabasz": calinski_harabasz(counts, centroids, sq_sum),
        # an empty cluster's centre is no cluster (it may even repeat another centre)
        "mean_intercentroid_distance": mean_intercentroid_distance(
            centroids if centers is None else np.asarray(centers)[counts > 0]),
        "sizes": counts,
        "centroids": centroids,
    }
