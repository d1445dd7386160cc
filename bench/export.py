"""Label export speed and memory: clusters.csv + clusters.geojson for N points x M methods.

    python bench/export.py --n 1000000 --methods 8

Prints points/s and peak RSS (the text is streamed shard by shard; only the
(N,) int32 label arrays are held, 4 bytes per point and method).
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from insarclust import h5io
from insarclust.export import export_labels


def make_inputs(root: Path, n: int, n_methods: int, shard_size: int = 16384):
    rng = np.random.default_rng(0)
    grid = np.arange(4, dtype=np.int32)
    with h5io.ShardsWriter(root / "shards.h5", n, grid, grid, [], {"site": "bench"}) as w:
        for a in range(0, n, shard_size):
            b = min(n, a + shard_size)
            m = b - a
            w.write(np.array([f"P{i:09d}" for i in range(a, b)], dtype=object),
                    69 + rng.random(m), 18 + rng.random(m), np.zeros((m, 0)),
                    np.zeros((m, 4), np.float32), np.zeros((m, 4), np.float32))
    paths = {}
    for j in range(n_methods):
        paths[f"method-{j}"] = root / f"m{j}.h5"
        h5io.write_clusters(paths[f"method-{j}"], rng.integers(0, 6, n), np.zeros(n))
    return root / "shards.h5", paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--methods", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards, paths = make_inputs(root, args.n, args.methods)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        export_labels(shards, paths, root / "clusters.csv", root / "clusters.geojson")
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"N={args.n} methods={args.methods}: {dt:.1f} s ({args.n / dt:,.0f} points/s), "
              f"csv {(root / 'clusters.csv').stat().st_size / 1e6:.0f} MB, "
              f"geojson {(root / 'clusters.geojson').stat().st_size / 1e6:.0f} MB, "
              f"peak RSS {rss:.0f} MB (after building inputs: {rss0:.0f} MB)")


if __name__ == "__main__":
    main()
