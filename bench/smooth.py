"""Benchmark of H-hop smoothing against plain scipy.sparse CSR products.

    .venv/bin/python bench/smooth.py [--n 1000000] [--d 64] [--k 10] [--H 3] [--threads 2] [--repeats 5]

On the k = 10 geodesic graph of the synthetic catalogue of ``bench/graph.py``
and (n, d) float32 features, in one process (runs alternate):

- ``scipy``: ``A @ (A @ (A @ X))`` with ``A`` the (n, n) float32 ``csr_array``
  of the edge weights (three plain products, single-threaded in scipy);
- ``smooth``: ``GraphSmoother(H=3, aggregation="mean").transform(X, overwrite=True)``
  as the stage calls it, i.e. three hops ``a X + (1 - a) P X`` with torch CSR
  ``addmm`` on ``--threads`` threads, the features' own buffer reused (the
  copy that refills it is not timed; the operator build is reported separately).

Then the whole stage from files (``smooth_feature_file``: streaming
standardisation pass, smoothing, Moran's I, write) in child processes for
``exact`` and ``fanout`` mode, with their peak RSS.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph import cpu_seconds, peak_rss_mb, synthetic_points  # noqa: E402


def child(mode: str, workdir: Path, H: int, threads: int) -> dict:
    from insarclust.smooth import smooth_feature_file

    rss0 = peak_rss_mb()
    t0, c0 = time.perf_counter(), cpu_seconds()
    cfg = {"H": H, "alpha": 0.5, "aggregation": "mean", "mode": mode, "fanout": [10], "batch_size": 4096,
           "standardize": True, "moran_features": 4}
    smooth_feature_file(workdir / "dyn.h5", workdir / "graph.h5", workdir / f"dyn_smoothed_{mode}.h5", cfg,
                        seed=0, n_threads=threads)
    return {"mode": mode, "seconds": time.perf_counter() - t0, "cpu_s": cpu_seconds() - c0,
            "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss0}


def timed(fn):
    t0, c0 = time.perf_counter(), cpu_seconds()
    out = fn()
    return out, time.perf_counter() - t0, cpu_seconds() - c0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--H", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--modes", default="exact,fanout", help="stage runs from files: exact, fanout")
    ap.add_argument("--child", choices=["exact", "fanout"])
    ap.add_argument("--dir")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.dir), args.H, args.threads)))
        return

    import scipy.sparse as sp
    import torch

    from insarclust import h5io
    from insarclust.graph import GeodesicKNNGraph
    from insarclust.smooth import GraphSmoother

    lat, lon = synthetic_points(args.n)
    graph = GeodesicKNNGraph(k=args.k, workers=args.threads).fit(lat, lon)
    X = np.random.default_rng(0).standard_normal((args.n, args.d), dtype=np.float32)
    A = sp.csr_array((graph.weight_, graph.indices_, graph.indptr_), shape=(args.n, args.n))
    torch.set_num_threads(args.threads)

    def scipy_products():
        Y = X
        for _ in range(args.H):
            Y = A @ Y
        return Y

    rows = {"scipy": [], "fit": [], "smooth": []}
    # One untimed round first: the first touch of fresh memory in a process costs several
    # times more than later ones (page faults), and would land on whichever runs first.
    smoother = GraphSmoother(H=args.H, alpha=0.5, aggregation="mean", n_threads=args.threads).fit(
        graph.indptr_, graph.indices_, graph.weight_)
    scipy_products(), smoother.transform(X.copy(), overwrite=True)
    for _ in range(args.repeats):
        _, wall, cpu = timed(scipy_products)
        rows["scipy"].append((wall, cpu))
        smoother, wall, cpu = timed(lambda: GraphSmoother(H=args.H, alpha=0.5, aggregation="mean",
                                                          n_threads=args.threads).fit(
            graph.indptr_, graph.indices_, graph.weight_))
        rows["fit"].append((wall, cpu))
        work = X.copy()
        _, wall, cpu = timed(lambda: smoother.transform(work, overwrite=True))
        rows["smooth"].append((wall, cpu))
    med = {k: (float(np.median([w for w, _ in v])), float(np.median([c for _, c in v]))) for k, v in rows.items()}
    print(f"smooth benchmark: n={args.n:,} d={args.d} k={args.k} H={args.H} threads={args.threads} "
          f"repeats={args.repeats} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print("| run | wall s (median) | wall s, all runs | CPU s (median) |")
    print("|---|---|---|---|")
    labels = {"scipy": f"{args.H} plain scipy.sparse CSR products `A @ X`",
              "fit": "GraphSmoother.fit (weight-normalised torch CSR operator)",
              "smooth": f"GraphSmoother.transform: {args.H} hops, torch CSR addmm"}
    for key, label in labels.items():
        all_runs = ", ".join(f"{w:.2f}" for w, _ in rows[key])
        print(f"| {label} | {med[key][0]:.2f} | {all_runs} | {med[key][1]:.2f} |")
    best = {k: min(w for w, _ in v) for k, v in rows.items()}
    print(f"ratio smoothing / scipy products (target <= 0.6): hops {med['smooth'][0] / med['scipy'][0]:.2f} "
          f"(medians; fastest runs {best['smooth'] / best['scipy']:.2f}), "
          f"fit + hops {(med['fit'][0] + med['smooth'][0]) / med['scipy'][0]:.2f} (wall)", flush=True)

    modes = [m for m in args.modes.split(",") if m]
    if not modes:
        return
    with tempfile.TemporaryDirectory(prefix="bench-smooth-") as tmp:
        workdir = Path(tmp)
        graph.write(workdir / "graph.h5")
        with h5io.FeatureWriter(workdir / "dyn.h5", args.n, [f"dyn_{i}" for i in range(args.d)]) as w:
            for a in range(0, args.n, 65536):
                w.write(a, X[a:a + 65536])
        del X, A, graph
        print("| stage from files (standardise, smooth, Moran's I, write) | wall s | CPU s "
              "| peak RSS MB (before) |")
        print("|---|---|---|---|")
        for mode in modes:
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--dir", tmp, "--H", str(args.H),
                                  "--threads", str(args.threads)], check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| smooth_feature_file, mode={mode} | {r['seconds']:.2f} | {r['cpu_s']:.2f} "
                  f"| {r['peak_rss_mb']:.0f} ({r['rss_before_mb']:.0f}) |", flush=True)


if __name__ == "__main__":
    main()
