"""How much the batched k-means fit depends on its seed, on a built workflow's features.

    .venv/bin/python bench/kmeans_seeds.py [--results results] [--seeds 42 43 44 45 46] [--k 4]

For every site of ``--results`` with a true-regime file (the demo sites:
``resources/demo/{site}.truth.csv``) and every k-means feature variant
(``features/{dyn,dyn_smoothed,dyn+static,dyn+static_smoothed}.h5``), fits
:class:`insarclust.kmeans.BatchedKMeans` with the shipped ``kmeans:`` settings
once per seed and prints: the mean and lowest ARI between the fits of two
seeds (1 = the same clusters whatever the seed), the ARI against the true
regimes (mean ± std over the seeds), the mean train inertia, and the full-batch
``KMeans(n_init=10)`` inertia of all points as the reference optimum. Run it
with the code of two commits on the same results to compare warm starts.
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import yaml
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from insarclust import h5io
from insarclust.kmeans import BatchedKMeans, kmeans_params

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("dyn", "dyn_smoothed", "dyn+static", "dyn+static_smoothed")


def truth_codes(results: Path, site: str) -> np.ndarray | None:
    truth = ROOT / "resources" / "demo" / f"{site}.truth.csv"
    if not truth.exists():
        truth = results.parent / "resources" / "demo" / f"{site}.truth.csv"
    if not truth.exists():
        return None
    with h5py.File(results / site / "shards.h5", "r") as f:
        pid = [p.decode() if isinstance(p, bytes) else str(p) for p in f["points/pid"][()]]
    regime = pd.read_csv(truth, dtype={"pid": str}).set_index("pid")["regime"]
    return pd.Categorical(regime.loc[pid]).codes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    results = Path(args.results).resolve()
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["kmeans"]
    print("site | variant | seed ARI mean (lowest) | ARI vs truth | inertia | full-batch inertia")
    for site_dir in sorted(p for p in results.iterdir() if (p / "shards.h5").exists()):
        y = truth_codes(results, site_dir.name)
        for variant in VARIANTS:
            path = site_dir / "features" / f"{variant}.h5"
            if y is None or not path.exists():
                continue
            X = np.asarray(h5io.read_features(path)[0], dtype=np.float32)
            with threadpool_limits(limits=1):
                fits = [BatchedKMeans(n_clusters=args.k, random_state=s, **kmeans_params(cfg)).fit(X)
                        for s in args.seeds]
                full = KMeans(args.k, n_init=10, random_state=0).fit(X).inertia_ / len(X)
            pairs = [adjusted_rand_score(a.labels_, b.labels_) for a, b in itertools.combinations(fits, 2)]
            truth = [adjusted_rand_score(y, f.labels_) for f in fits]
            print(f"{site_dir.name} | {variant} | {np.mean(pairs):.3f} ({np.min(pairs):.3f}) | "
                  f"{np.mean(truth):.3f} ± {np.std(truth):.3f} | "
                  f"{np.mean([f.inertia_train_ for f in fits]):.4f} | {full:.4f}", flush=True)


if __name__ == "__main__":
    main()
