"""Benchmark of the ``graph`` stage against a bare k-d tree query on the same points.

    .venv/bin/python bench/graph.py [--n 1000000] [--k 10] [--workers 2] [--repeats 3] [--orders shard,random]

Points: a synthetic 1,000,000-point PS-like catalogue at 69 N (70 % in
small dense clusters, 30 % scattered), written to a temporary ``shards.h5``
in shard order (along a Z-order curve: spatially sorted like the pipeline's shards.h5 rows,
which follow a Hilbert curve) and,
for reference, in random order (a tree query is ~3x slower there: no cache
locality between consecutive query points). Each measurement runs in a fresh child process so
its peak RSS is its own:

- ``bare``: ``cKDTree(xyz).query(xyz, k=k+1, workers=W)`` on the unit vectors
  (tree build included; coordinates already in memory);
- ``stage``: :func:`insarclust.graph.build_graph_file` - read coordinates from
  shards.h5, exact k-NN, haversine metres, gaussian weights with the median
  bandwidth, write graph.h5.

Reports seconds (median of the repeats, runs alternate) and peak RSS.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import peak_rss_mb


def synthetic_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) degrees of n PS-like points in shard (Z-order) order."""
    rng = np.random.default_rng(seed)
    n_clustered = int(0.7 * n)
    centres_lat = rng.uniform(68.5, 70.5, 2000)
    centres_lon = rng.uniform(17.0, 23.0, 2000)
    which = rng.integers(0, 2000, n_clustered)
    # ~300 m clusters: 0.0027 deg of latitude, 0.0079 deg of longitude at 69 N.
    lat = np.r_[centres_lat[which] + rng.normal(0, 0.0027, n_clustered), rng.uniform(68.5, 70.5, n - n_clustered)]
    lon = np.r_[centres_lon[which] + rng.normal(0, 0.0079, n_clustered), rng.uniform(17.0, 23.0, n - n_clustered)]
    return zorder(lat, lon)


def zorder(lat, lon):
    """Sort points along a Z-order curve (shards.h5 rows follow a Hilbert curve, another space-filling curve)."""
    def spread(v):
        v = v.astype(np.uint64)
        out = np.zeros_like(v)
        for bit in range(16):
            out |= ((v >> np.uint64(bit)) & np.uint64(1)) << np.uint64(2 * bit)
        return out

    qa = ((lat - lat.min()) / np.ptp(lat) * 65535).astype(np.uint64)
    qo = ((lon - lon.min()) / np.ptp(lon) * 65535).astype(np.uint64)
    order = np.argsort(spread(qa) | (spread(qo) << np.uint64(1)), kind="stable")
    return lat[order], lon[order]


def write_shards(path, lat, lon, shard_size=16384):
    from insarclust import h5io

    n = len(lat)
    grid = np.array([17500], dtype=np.int32)
    with h5io.ShardsWriter(path, n, grid, grid, [], {"site": "bench"}, chunk_rows=shard_size) as w:
        for a in range(0, n, shard_size):
            b = min(n, a + shard_size)
            w.write(np.array([f"P{i}" for i in range(a, b)], dtype=object), lat[a:b], lon[a:b],
                    np.zeros((b - a, 0), np.float32), np.zeros((b - a, 1), np.float32),
                    np.zeros((b - a, 1), np.float32))


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads): less sensitive than wall time
    to other work sharing the cores."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(kind: str, workdir: Path, k: int, workers: int, bandwidth=None) -> dict:
    if kind == "bare":
        from scipy.spatial import cKDTree

        from insarclust.geodesy import unit_vectors

        coords = np.load(workdir / "coords.npy")
        xyz = unit_vectors(coords[0], coords[1])
        del coords
        rss0 = peak_rss_mb()
        t0, c0 = time.perf_counter(), cpu_seconds()
        cKDTree(xyz).query(xyz, k=k + 1, workers=workers)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    else:
        from insarclust.graph import build_graph_file

        # Snakemake removes a job's outputs before it runs; renaming over an existing
        # file would add an ext4 flush (auto_da_alloc) that the workflow never pays.
        (workdir / "graph.h5").unlink(missing_ok=True)
        rss0 = peak_rss_mb()
        t0, c0 = time.perf_counter(), cpu_seconds()
        build_graph_file(workdir / "shards.h5", workdir / "graph.h5",
                         {"k": k, "weighting": "gaussian", "bandwidth_m": bandwidth}, workers=workers)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {"kind": kind, "seconds": seconds, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--orders", default="shard,random", help="point orders to run: shard, random")
    ap.add_argument("--bandwidth", default="median",
                    help="the stage's graph.bandwidth_m: median (the default, null), local or metres")
    ap.add_argument("--child", choices=["bare", "stage"])
    ap.add_argument("--dir")
    args = ap.parse_args()
    if args.child:
        bandwidth = None if args.bandwidth == "median" else args.bandwidth if args.bandwidth == "local" \
            else float(args.bandwidth)
        print(json.dumps(child(args.child, Path(args.dir), args.k, args.workers, bandwidth)))
        return
    print(f"graph benchmark: n={args.n:,} k={args.k} workers={args.workers} repeats={args.repeats} "
          f"bandwidth={args.bandwidth}")
    print("| point order | run | wall s (median) | wall s, all runs | CPU s (median) "
          "| peak RSS MB (before the timed part) |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for order in args.orders.split(","):
        lat, lon = synthetic_points(args.n)
        if order == "random":
            perm = np.random.default_rng(1).permutation(args.n)
            lat, lon = lat[perm], lon[perm]
        runs = run_pair(lat, lon, args)
        med = {kind: float(np.median([r["seconds"] for r in rs])) for kind, rs in runs.items()}
        cpu = {kind: float(np.median([r["cpu_s"] for r in rs])) for kind, rs in runs.items()}
        rss = {kind: max(r["peak_rss_mb"] for r in rs) for kind, rs in runs.items()}
        base = {kind: max(r["rss_before_mb"] for r in rs) for kind, rs in runs.items()}
        for kind, label in (("bare", f"bare `cKDTree(xyz).query(xyz, k={args.k + 1})`"),
                            ("stage", "graph stage: read shards.h5, k-NN, metres, weights, write graph.h5")):
            all_runs = ", ".join(f"{r['seconds']:.2f}" for r in runs[kind])
            print(f"| {order} | {label} | {med[kind]:.2f} | {all_runs} | {cpu[kind]:.2f} "
                  f"| {rss[kind]:.0f} ({base[kind]:.0f}) |", flush=True)
        ratios.append(f"{order} order: wall {med['stage'] / med['bare']:.2f}, CPU {cpu['stage'] / cpu['bare']:.2f}")
    print("ratio stage / bare (target <= 1.2): " + "; ".join(ratios))


def run_pair(lat, lon, args) -> dict:
    """Alternating bare / stage child runs on one point set."""
    with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        workdir = Path(tmp)
        np.save(workdir / "coords.npy", np.stack([lat, lon]))
        write_shards(workdir / "shards.h5", lat, lon)
        runs = {"bare": [], "stage": []}
        for _ in range(args.repeats):
            for kind in ("bare", "stage"):
                out = subprocess.run([sys.executable, __file__, "--child", kind, "--dir", tmp, "--k", str(args.k),
                                      "--workers", str(args.workers), "--bandwidth", args.bandwidth],
                                     check=True, capture_output=True, text=True)
                runs[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return runs

if __name__ == "__main__":
    main()
