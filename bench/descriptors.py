"""Benchmark of the per-series descriptors: series/s and peak RSS.

    .venv/bin/python bench/descriptors.py                 # 1,000,000 x 200, both modes
    .venv/bin/python bench/descriptors.py --n 200000 --mode memory

``memory``: blocks of synthetic regular series are generated (not timed) and
fitted (timed) - the cost of the maths alone; peak RSS includes the float64
data generation. ``file``: a shards.h5 with the same series is written to a
temporary directory (not timed), then the ``descriptors`` stage function
streams it into features/descriptors.h5 in a fresh process (timed: HDF5 read
+ fit + write; peak RSS of that process alone, its VmHWM). Target:
>= 200,000 series/s on 2 cores. Memory is bounded by the block (at most one
shard), not by N.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from insarclust import h5io
from insarclust.descriptors import DescriptorModel, write_descriptors
from machine import peak_rss_mb


def grids(n_grid: int, step_days: int = 6):
    """A 6-day grid of ``n_grid`` epochs and its acquisitions with Nov-Apr winter gaps."""
    grid = (17683 + step_days * np.arange(n_grid)).astype(np.int32)  # from 2018-06-01
    month = (grid.astype("datetime64[D]").astype("datetime64[M]").astype(int) % 12) + 1
    acquisitions = grid[(month >= 5) & (month <= 10)]
    return grid, acquisitions


def synthetic_block(rng, n: int, grid: np.ndarray, acquisitions: np.ndarray) -> tuple:
    """(displacement at acquisitions (n, T), regular (n, G)) float32: trend + annual + step + noise."""
    t_yr = (acquisitions - acquisitions[0]) / 365.25
    trend = rng.uniform(-15, 5, (n, 1))
    amp = rng.uniform(0, 8, (n, 1))
    step = np.where(rng.random((n, 1)) < 0.2, rng.uniform(-30, -10, (n, 1)), 0.0)
    obs = (trend * t_yr + amp * np.sin(2 * np.pi * t_yr) + step * (t_yr > 1.5)
           + rng.normal(0, 2.0, (n, len(t_yr))))
    # linear interpolation across the winter gaps, as the shards stage does
    idx = np.clip(np.searchsorted(acquisitions, grid, side="right") - 1, 0, len(acquisitions) - 2)
    x0, x1 = acquisitions[idx], acquisitions[idx + 1]
    w = np.clip((grid - x0) / (x1 - x0), 0.0, 1.0)
    regular = obs[:, idx] * (1 - w) + obs[:, idx + 1] * w
    return obs.astype(np.float32), regular.astype(np.float32)


def bench_memory(n: int, n_grid: int, block: int) -> dict:
    grid, acquisitions = grids(n_grid)
    model = DescriptorModel(grid, acquisitions).fit()
    rng = np.random.default_rng(0)
    fit_s = 0.0
    for start in range(0, n, block):
        _, regular = synthetic_block(rng, min(block, n - start), grid, acquisitions)
        t0 = time.perf_counter()
        model.transform(regular)
        fit_s += time.perf_counter() - t0
    return {"seconds": fit_s, "series_per_s": n / fit_s, "peak_rss_mb": peak_rss_mb()}


def run_stage(shards_path: str, block: int) -> dict:
    """The descriptors stage alone (called in a fresh process so its peak RSS is its own)."""
    import json

    out = Path(shards_path).with_name("descriptors.h5")
    t0 = time.perf_counter()
    write_descriptors(shards_path, out, block_rows=block)
    result = {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(result))
    return result


def bench_file(n: int, n_grid: int, block: int, shard_size: int = 16384) -> dict:
    import json

    grid, acquisitions = grids(n_grid)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        shards_path = Path(tmp) / "shards.h5"
        attrs = {"site": "bench", "format": "egms", "source_sha256": "0" * 64,
                 "insarclust_version": "bench", "regularization": "linear"}
        t0 = time.perf_counter()
        with h5io.ShardsWriter(shards_path, n, acquisitions, grid, [], attrs) as w:
            for start in range(0, n, shard_size):
                m = min(shard_size, n - start)
                disp, regular = synthetic_block(rng, m, grid, acquisitions)
                pid = np.array([f"B{start + i:08d}" for i in range(m)], dtype=object)
                w.write(pid, np.zeros(m), np.zeros(m), np.zeros((m, 0), np.float32), disp, regular)
        write_s = time.perf_counter() - t0
        proc = subprocess.run([sys.executable, __file__, "--run-stage", str(shards_path),
                               "--block", str(block)], check=True, capture_output=True, text=True)
        stage = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seconds": stage["seconds"], "series_per_s": n / stage["seconds"],
            "peak_rss_mb": stage["peak_rss_mb"], "write_shards_s": write_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="series")
    ap.add_argument("--grid", type=int, default=200, help="regular epochs per series")
    ap.add_argument("--block", type=int, default=65536, help="series per fitted block")
    ap.add_argument("--mode", choices=["memory", "file", "both"], default="both")
    ap.add_argument("--run-stage", metavar="SHARDS_H5", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run_stage:
        run_stage(args.run_stage, args.block)
        return
    if args.mode == "both":  # one process per mode, so each peak RSS is its own
        for mode in ("memory", "file"):
            subprocess.run([sys.executable, __file__, "--n", str(args.n), "--grid", str(args.grid),
                            "--block", str(args.block), "--mode", mode], check=True)
        return
    print(f"descriptors benchmark: N={args.n:,} G={args.grid} block={args.block} "
          f"({platform.processor() or platform.machine()}, numpy {np.__version__})")
    if args.mode == "memory":
        r = bench_memory(args.n, args.grid, args.block)
        print(f"memory: fit {r['seconds']:.2f} s, {r['series_per_s']:,.0f} series/s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")
    if args.mode == "file":
        r = bench_file(args.n, args.grid, args.block)
        print(f"file:   shards.h5 -> descriptors.h5 {r['seconds']:.2f} s, {r['series_per_s']:,.0f} series/s, "
              f"peak RSS of the stage process {r['peak_rss_mb']:.0f} MB "
              f"(writing the input took {r['write_shards_s']:.1f} s, not timed)")


if __name__ == "__main__":
    main()
