"""Label export speed and memory for N points x M methods.

    python bench/export.py --n 1000000 --methods 8                 # csv + geojson, then gpkg
    python bench/export.py --n 1000000 --methods 8 --only gpkg

``csv``: clusters.csv + clusters.geojson (text streamed shard by shard);
``gpkg``: clusters.gpkg with every method's label and suggested regime and the
eight descriptors (an Arrow stream written by pyogrio/GDAL in 65,536-row
blocks). Each export runs in a fresh child process, so its peak RSS is its
own (the inputs are built beforehand by the parent; the child imports only
what the export needs): only the (N,) int32 label arrays grow with N.
Printed per export: wall s, points/s, file sizes, peak RSS and, in brackets,
the child's peak RSS before the export (interpreter and imports).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np

from insarclust import h5io
from insarclust.export import export_labels, write_geopackage
from machine import peak_rss_mb

# A spawned child imports this module again: anything imported at the top counts in the
# export's peak RSS (insarclust.descriptors alone brings scikit-learn, scipy and pandas: +150 MB).


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


def make_gpkg_inputs(root: Path, paths: dict, n: int, block_rows: int = 65536):
    """Metrics JSON (cluster regimes) per method and a descriptors file."""
    from insarclust.descriptors import DESCRIPTOR_NAMES

    regimes = ["subsiding", "stable", "seasonal", "uplifting", "step", "accelerating"]
    metrics = {}
    for m in paths:
        metrics[m] = root / f"{m}.json"
        metrics[m].write_text(json.dumps({"k": 6, "clusters": [{"cluster": j, "label": regimes[j]}
                                                                for j in range(6)]}))
    rng = np.random.default_rng(1)
    with h5io.FeatureWriter(root / "descriptors.h5", n, DESCRIPTOR_NAMES) as w:
        for a in range(0, n, block_rows):
            b = min(n, a + block_rows)
            D = rng.normal(0, 5, (b - a, len(DESCRIPTOR_NAMES))).astype(np.float32)
            D[:, DESCRIPTOR_NAMES.index("step_date")] = 18000 + rng.integers(0, 1500, b - a)
            w.write(a, D)
    return metrics, root / "descriptors.h5"


def _run_csv(shards, paths, root, out):
    out["rss_before_mb"] = peak_rss_mb()
    t0 = time.perf_counter()
    export_labels(shards, paths, root / "clusters.csv", root / "clusters.geojson")
    out["wall_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = peak_rss_mb()


def _run_gpkg(shards, paths, metrics, descriptors, root, out):
    out["rss_before_mb"] = peak_rss_mb()
    t0 = time.perf_counter()
    write_geopackage(shards, paths, root / "clusters.gpkg", metrics_paths=metrics, descriptors_path=descriptors)
    out["wall_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = peak_rss_mb()


def in_child(target, *args) -> tuple[float, float, float]:
    """(wall s, peak RSS MB, peak RSS MB before the export) of ``target(*args, out)`` in a fresh
    process."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        out = manager.dict()
        proc = ctx.Process(target=target, args=(*args, out))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"{target.__name__} failed ({proc.exitcode})")
        return out["wall_s"], out["peak_rss_mb"], out["rss_before_mb"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="points")
    ap.add_argument("--methods", type=int, default=8, help="label files (methods) exported")
    ap.add_argument("--only", choices=["csv", "gpkg"], default=None,
                    help="run one export only (default: csv + geojson, then gpkg)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards, paths = make_inputs(root, args.n, args.methods)
        if args.only in (None, "csv"):
            wall, rss, before = in_child(_run_csv, shards, paths, root)
            print(f"csv+geojson N={args.n} methods={args.methods}: {wall:.1f} s ({args.n / wall:,.0f} points/s), "
                  f"csv {(root / 'clusters.csv').stat().st_size / 1e6:.0f} MB, "
                  f"geojson {(root / 'clusters.geojson').stat().st_size / 1e6:.0f} MB, peak RSS {rss:.0f} MB "
                  f"({before:.0f} MB before the export)")
        if args.only in (None, "gpkg"):
            metrics, descriptors = make_gpkg_inputs(root, paths, args.n)
            wall, rss, before = in_child(_run_gpkg, shards, paths, metrics, descriptors, root)
            print(f"gpkg N={args.n} methods={args.methods} (+ regimes, 8 descriptors): {wall:.1f} s "
                  f"({args.n / wall:,.0f} points/s), gpkg {(root / 'clusters.gpkg').stat().st_size / 1e6:.0f} MB, "
                  f"peak RSS {rss:.0f} MB ({before:.0f} MB before the export)")


if __name__ == "__main__":
    main()
