"""decompose stage speed and memory: two LOS tracks of N points x T epochs -> up/east cells.

    python bench/decompose.py --n 1000000 --epochs 200

The tracks (EGMS-like L2b shards.h5, 12-day epochs, LOS unit vectors as
static columns, points spread over a square sized for ~4 points per 100 m
cell and track) are written block by block first; the stage then runs in a
fresh child process, so its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np

from insarclust import coords, h5io
from insarclust.decompose import DecomposeConfig, decompose
from insarclust.ordering import spatial_keys
from machine import peak_rss_mb


def make_track(path: Path, n: int, epochs: int, heading: float, first_day: int, seed: int,
               block: int = 65536) -> None:
    rng = np.random.default_rng(seed)
    side_m = np.sqrt(n / 4.0) * 100.0
    dates = (first_day + 12 * np.arange(epochs)).astype(np.int32)
    t = (dates - dates[0]) / 365.25
    names = ["height", "los_east", "los_north", "los_up"]
    lat_all = 52.0 + rng.uniform(0, side_m, n) / 111320
    lon_all = 10.0 + rng.uniform(0, side_m, n) / (111320 * np.cos(np.deg2rad(52.0)))
    order = np.argsort(spatial_keys(lat_all, lon_all), kind="stable")   # Hilbert order, as shards writes
    with h5io.ShardsWriter(path, n, dates, dates, names, {"site": "bench", "format": "egms"}) as w:
        for a in range(0, n, block):
            m = min(n, a + block) - a
            lat, lon = lat_all[order[a:a + m]], lon_all[order[a:a + m]]
            e, nn, u = coords.los_vector(rng.uniform(30, 44, m), heading)
            v_up, v_e = rng.normal(-3, 2, m), rng.normal(0, 2, m)
            los = ((e * v_e + u * v_up)[:, None] * t[None, :] + rng.normal(0, 2, (m, epochs))).astype(np.float32)
            static = np.stack([rng.uniform(0, 500, m), e, nn, u], axis=1).astype(np.float32)
            pid = np.array([f"{seed}-{i}" for i in order[a:a + m]], dtype=object)
            w.write(pid, lat, lon, static, los, los)


def _run(asc, desc, out, result):
    t0 = time.perf_counter()
    result.update(decompose(asc, desc, out, "bench", DecomposeConfig()))
    result["wall_s"] = time.perf_counter() - t0
    result["peak_rss_mb"] = peak_rss_mb()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="points per track")
    ap.add_argument("--epochs", type=int, default=200, help="epochs (12 days apart) per track")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_track(root / "asc.h5", args.n, args.epochs, -12.0, 17700, 1)
        make_track(root / "desc.h5", args.n, args.epochs, 192.0, 17703, 2)
        ctx = mp.get_context("spawn")
        with ctx.Manager() as manager:
            result = manager.dict()
            proc = ctx.Process(target=_run, args=(root / "asc.h5", root / "desc.h5", root / "out.h5", result))
            proc.start()
            proc.join()
            result = dict(result)
        rss = result["peak_rss_mb"]
        print(f"decompose 2 x {args.n:,} points x {args.epochs} epochs -> {result['n_cells']:,} cells: "
              f"{result['wall_s']:.1f} s ({2 * args.n / result['wall_s']:,.0f} points/s), peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
