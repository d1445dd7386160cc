"""Benchmark of stage embed: series/s and peak memory.

    python bench/embed.py                      # all CPU figures below, one run each
    python bench/embed.py --only ours --n 20000
    python bench/embed.py --device cuda --n 1000000 --T 200 --only ours --batch-size 16384  # GPU

- ours: the stage path on a synthetic shards.h5 (fit on the seeded sample,
  embed all rows into a feature file), defaults of config/config.yaml
  (reservoir-model space, 450 units, bidirectional, PCA 75, ridge 10,
  out_dim 64), each size in its own process so peak RSS is its own;
- package: ``reservoir_computing`` (``RC_model`` with the same set-up and
  ``readout_type=None``) on the first ``--n-package`` series, in its own process;
- matrix: one recurrent step, dense vs CSR, at a few sizes and densities
  (where ``matrix: auto`` switches).
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

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = dict(representation="reservoir", n_units=450, spectral_radius=0.59, leak=0.6,
                connectivity=0.25, input_scaling=0.1, noise_level=0.01, washout=5,
                bidirectional=True, n_pca=75, ridge=10.0, out_dim=64, scaling="series",
                fit_sample=4096, batch_size=1024)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_series(rng, n, T, step_days=6):
    """Mixed InSAR-like regimes (mm): noise, trends, seasonal, steps."""
    t_yr = np.arange(T) * step_days / 365.25
    kind = rng.integers(0, 4, n)
    amp = rng.uniform(2, 15, n)[:, None]
    base = np.where((kind == 0)[:, None], 0.0, 0.0)
    base = base + np.where((kind == 1)[:, None], -amp * t_yr, 0.0)
    base = base + np.where((kind == 2)[:, None], amp * np.sin(2 * np.pi * t_yr), 0.0)
    base = base + np.where((kind == 3)[:, None], amp * (t_yr > t_yr[T // 2]), 0.0)
    return (base + rng.normal(0, 2.0, (n, T))).astype(np.float32)


def write_shards(path, n, T, shard_size=16384, seed=0):
    """A synthetic shards.h5, written shard by shard (memory: one shard)."""
    from insarclust import h5io

    rng = np.random.default_rng(seed)
    grid = (17500 + 6 * np.arange(T)).astype(np.int32)
    attrs = {"site": "bench", "format": "ngu", "source_sha256": "0" * 64,
             "insarclust_version": "bench", "regularization": "linear"}
    with h5io.ShardsWriter(path, n, grid, grid, ["height"], attrs) as w:
        for a in range(0, n, shard_size):
            b = min(n, a + shard_size)
            reg = synthetic_series(rng, b - a, T)
            w.write(np.array([f"P{i}" for i in range(a, b)], dtype=object),
                    np.full(b - a, 60.0), np.full(b - a, 10.0),
                    np.zeros((b - a, 1), np.float32), reg, reg)


def run_ours(n, T, device, threads, batch_size=DEFAULTS["batch_size"]):
    """Child: fit + embed a synthetic site of n series; prints one JSON line."""
    import torch

    from insarclust import embed

    DEFAULTS["batch_size"] = batch_size

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(tmp) / "shards.h5"
        t0 = time.perf_counter()
        write_shards(shards, n, T)
        t_write = time.perf_counter() - t0
        rss_before = peak_rss_mb()
        t0 = time.perf_counter()
        model = embed.fit_site(shards, DEFAULTS, seed=42, device=device)
        embed.save_model(model, Path(tmp) / "model.pt")
        t_fit = time.perf_counter() - t0
        model = embed.load_model(Path(tmp) / "model.pt", device=device, batch_size=batch_size)
        t0 = time.perf_counter()
        embed.embed_range(shards, model, 0, n, Path(tmp) / "dyn.h5")
        t_embed = time.perf_counter() - t0
    print(json.dumps({"what": "ours", "n": n, "T": T, "device": device, "threads": threads,
                      "batch_size": batch_size,
                      "fit_s": round(t_fit, 1), "embed_s": round(t_embed, 1),
                      "series_per_s_embed": round(n / t_embed, 1),
                      "series_per_s_total": round(n / (t_fit + t_embed), 1),
                      "write_shards_s": round(t_write, 1),
                      "peak_rss_mb_before_fit": round(rss_before), "peak_rss_mb": round(peak_rss_mb())}))


def run_package(n, T):
    """Child: reservoir_computing's RC_model on n series, same set-up; prints one JSON line."""
    from reservoir_computing.modules import RC_model

    X = synthetic_series(np.random.default_rng(0), n, T).astype(np.float64)
    X = ((X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True))[:, :, None]
    np.random.seed(42)
    model = RC_model(n_internal_units=DEFAULTS["n_units"], spectral_radius=DEFAULTS["spectral_radius"],
                     leak=DEFAULTS["leak"], connectivity=DEFAULTS["connectivity"],
                     input_scaling=DEFAULTS["input_scaling"], noise_level=DEFAULTS["noise_level"],
                     n_drop=DEFAULTS["washout"], bidir=True, dimred_method="tenpca",
                     n_dim=DEFAULTS["n_pca"], mts_rep="reservoir", w_ridge_embedding=DEFAULTS["ridge"],
                     readout_type=None)
    t0 = time.perf_counter()
    model.fit(X, verbose=False)
    seconds = time.perf_counter() - t0
    print(json.dumps({"what": "package", "n": n, "T": T, "seconds": round(seconds, 1),
                      "series_per_s": round(n / seconds, 1), "dim": int(model.input_repr.shape[1]),
                      "peak_rss_mb": round(peak_rss_mb())}))


def run_matrix(threads):
    """Child: one recurrent step (2048 rows) dense vs CSR."""
    import torch

    torch.set_num_threads(threads)
    rows = []
    for n, density in [(450, 0.25), (450, 0.05), (1000, 0.05), (2000, 0.02), (4000, 0.01)]:
        g = torch.Generator().manual_seed(0)
        w = torch.rand(n, n, generator=g) * (torch.rand(n, n, generator=g) < density)
        w_t, w_csr = w.T.contiguous(), w.to_sparse_csr()
        h = torch.rand(2048, n, generator=g)
        out = torch.empty(2048, n)
        timing = {}
        for name, step in (("dense", lambda: torch.mm(h, w_t, out=out)),
                           ("sparse", lambda: torch.sparse.mm(w_csr, h.T))):
            step()
            t0 = time.perf_counter()
            for _ in range(10):
                step()
            timing[name] = (time.perf_counter() - t0) / 10 * 1e3
        rows.append({"n_units": n, "density": density, "dense_ms": round(timing["dense"], 1),
                     "sparse_ms": round(timing["sparse"], 1)})
    print(json.dumps({"what": "matrix", "rows": rows}))


def child(args) -> dict:
    """Run one measurement in a fresh interpreter (own peak RSS); returns its JSON line."""
    cmd = [sys.executable, __file__, "--child", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[20000, 40000], help="series for ours")
    ap.add_argument("--T", type=int, default=150)
    ap.add_argument("--n-package", type=int, default=2000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                    help="series per batch (larger on a GPU)")
    ap.add_argument("--only", choices=["ours", "package", "matrix"], nargs="+",
                    default=["ours", "package", "matrix"])
    ap.add_argument("--json", help="write all results here")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "ours":
            run_ours(int(rest[0]), int(rest[1]), rest[2], int(rest[3]), int(rest[4]))
        elif kind == "package":
            run_package(int(rest[0]), int(rest[1]))
        else:
            run_matrix(int(rest[0]))
        return
    results = []
    if "ours" in args.only:
        for n in args.n:
            results.append(child(["ours", str(n), str(args.T), args.device, str(args.threads),
                                  str(args.batch_size)]))
            print(json.dumps(results[-1]), flush=True)
    if "package" in args.only:
        results.append(child(["package", str(args.n_package), str(args.T)]))
        print(json.dumps(results[-1]), flush=True)
    if "matrix" in args.only:
        results.append(child(["matrix", str(args.threads)]))
        print(json.dumps(results[-1]), flush=True)
    ours = [r for r in results if r["what"] == "ours"]
    pkg = [r for r in results if r["what"] == "package"]
    if ours and pkg:
        print(f"speed-up (embedding, N={ours[0]['n']} vs package N={pkg[0]['n']}): "
              f"{ours[0]['series_per_s_embed'] / pkg[0]['series_per_s']:.1f}x; "
              f"including fit: {ours[0]['series_per_s_total'] / pkg[0]['series_per_s']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
