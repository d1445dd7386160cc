"""Benchmark the shards stage on a generated EGMS-style CSV.

Prints seconds, rows/s, the ratio to the faster of a plain
``pyarrow.csv.read_csv`` and ``pandas.read_csv`` (C engine) of the same file
in the same run, and the peak RSS of the conversion (also at N/2, to show how
memory grows with N). Each measurement runs in its own process so that peak
RSS figures do not mix.

    python bench/shards.py                    # 1,000,000 points x 200 epochs
    python bench/shards.py --n-points 200000  # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def generate_csv(path: Path, n_points: int, n_epochs: int, seed: int = 0, chunk: int = 100_000) -> None:
    """EGMS L2b-like CSV: pid, lat/lon, static columns, YYYYMMDD columns (mm, 1 decimal)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from insarclust.dates import days_to_iso

    rng = np.random.default_rng(seed)
    day0 = 17532  # 2018-01-01
    dates = [days_to_iso(day0 + 6 * i).replace("-", "") for i in range(n_epochs)]
    static = ["height", "mean_velocity", "rmse", "temporal_coherence", "amplitude_dispersion",
              "incidence_angle", "track_angle"]
    with open(path, "wb") as fh:
        for start in range(0, n_points, chunk):
            m = min(chunk, n_points - start)
            cols = {
                "pid": pa.array([f"1A{start + i:010d}" for i in range(m)]),
                "latitude": np.round(59.0 + rng.uniform(0, 1.5, m), 7),
                "longitude": np.round(9.0 + rng.uniform(0, 3.0, m), 7),
            }
            for name in static:
                cols[name] = np.round(rng.normal(0, 10, m), 2)
            walk = np.cumsum(rng.normal(0, 1.5, (m, n_epochs)).astype(np.float32), axis=1)
            walk[rng.random(walk.shape) < 0.05] = np.nan
            walk = np.round(walk, 1)
            for j, d in enumerate(dates):
                cols[d] = walk[:, j]
            table = pa.table(cols)
            pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=start == 0))


CHILD = r"""
import json, resource, sys, time
def peak_rss_mb():  # VmHWM starts afresh at exec; ru_maxrss carries the parent's peak over
    try:
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
kind, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if kind == "pyarrow":
    import pyarrow.csv as pacsv
    n = pacsv.read_csv(path).num_rows
elif kind == "pandas":
    import pandas as pd
    n = len(pd.read_csv(path, engine="c"))
else:
    import logging
    logging.basicConfig(level=logging.WARNING)
    from insarclust.formats import get_format, load_formats
    from insarclust.shards import ShardsConfig, build_shards
    fmt = get_format("egms", load_formats(sys.argv[4]))
    n = build_shards([path], fmt, out, "bench", ShardsConfig())["n_points"]
seconds = time.perf_counter() - t0
print(json.dumps({"kind": kind, "rows": n, "seconds": seconds,
                  "peak_rss_mb": peak_rss_mb()}))
"""


def run_child(kind: str, csv: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    res = subprocess.run([sys.executable, "-c", CHILD, kind, str(csv), str(out),
                          str(ROOT / "config" / "formats.yaml")],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-points", type=int, default=1_000_000)
    ap.add_argument("--n-epochs", type=int, default=200)
    ap.add_argument("--workdir", default="/tmp/insarclust-bench-shards")
    ap.add_argument("--no-half", action="store_true", help="skip the N/2 memory-scaling run")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [args.n_points] if args.no_half else [args.n_points // 2, args.n_points]
    results = {}
    for n in sizes:
        csv = work / f"egms_{n}x{args.n_epochs}.csv"
        if not csv.exists():
            t0 = time.perf_counter()
            generate_csv(csv, n, args.n_epochs)
            print(f"generated {csv} ({csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s")
        out = work / f"shards_{n}.h5"
        row = {"mb": csv.stat().st_size / 1e6}
        if n == args.n_points:
            row["pandas"] = run_child("pandas", csv, out)
            row["pyarrow"] = run_child("pyarrow", csv, out)
        row["shards"] = run_child("shards", csv, out)
        out.unlink(missing_ok=True)
        results[n] = row
    full = results[args.n_points]
    ref = min(full["pandas"]["seconds"], full["pyarrow"]["seconds"])
    ours = full["shards"]
    print(f"\nfile: {args.n_points:,} points x {args.n_epochs} epochs, {full['mb']:.0f} MB")
    print(f"pandas.read_csv (C engine): {full['pandas']['seconds']:.1f} s "
          f"({full['mb'] / full['pandas']['seconds']:.0f} MB/s)")
    print(f"pyarrow.csv.read_csv:       {full['pyarrow']['seconds']:.1f} s "
          f"({full['mb'] / full['pyarrow']['seconds']:.0f} MB/s)")
    print(f"shards stage:               {ours['seconds']:.1f} s, {args.n_points / ours['seconds']:,.0f} rows/s, "
          f"peak RSS {ours['peak_rss_mb']:.0f} MB")
    print(f"ratio to the faster plain read: {ours['seconds'] / ref:.2f} (target <= 1.5)")
    if len(sizes) == 2:
        half = results[sizes[0]]["shards"]
        print(f"peak RSS at N={sizes[0]:,}: {half['peak_rss_mb']:.0f} MB; at N={sizes[1]:,}: "
              f"{ours['peak_rss_mb']:.0f} MB (file x2 -> RSS x{ours['peak_rss_mb'] / half['peak_rss_mb']:.2f})")


if __name__ == "__main__":
    main()
