"""Benchmark of stage embed: series/s of the shipped embedder against the bare recurrent loop
of the same shape and against the reference package, at realistic series lengths.

    python bench/embed.py                      # T = 150 and 263, all three, one run each
    python bench/embed.py --T 263 --only ours bare
    python bench/embed.py --device cuda --n 1000000 --T 263 --only ours --batch-size 16384  # GPU

For each T (regular epochs; 263 = 4.3 years on the 6-day grid, a real
Sentinel-1 archive), each in its own process:

- ours: the stage path on a synthetic shards.h5 (fit on the seeded sample,
  embed every row into a feature file) with the shipped ``embed:`` settings
  of config/config.yaml; series/s of the embedding pass (fit reported apart);
- bare: the recurrent loop alone, ``h = tanh(u w_in + h W)`` over the same
  number of rows per batch (series x directions), units and steps
  (``time_stride`` applied), float32, same threads: the floor of any
  reservoir embedding of this shape. ours/bare is the share of that floor
  the stage reaches (the target is >= 0.8);
- floor: the bare loop plus the representation of the shipped shape in
  stock torch ops (the kept states projected to ``n_pca`` dims in one
  product, the per-series ridge of the reservoir-model space: Gram and cross
  products, Cholesky, solve), no I/O, scaling or noise: the floor of this
  representation. ours/floor is the share of it the stage reaches; the
  arithmetic ceiling of ours/bare (loop FLOPs over loop + readout FLOPs) is
  printed beside it;
- package: ``reservoir_computing`` (``RC_model``, the paper's code, same
  reservoir settings, ``readout_type=None``) on ``--n-package`` series,
  block-averaged by ``time_stride`` first (the same steps as ours);
- matrix (``--only matrix``): one recurrent step dense vs CSR at a few sizes
  and densities (where ``matrix: auto`` switches).

``--candidate NAME`` replaces the shipped settings by a candidate of
``bench/validity.py`` on all sides (``previous``: 450 units on 6-day steps,
state PCA 75, out_dim 64, the default before the shipped shape):

    python bench/embed.py --candidate previous --n 20000 40000 --T 150 --n-package 2000 --only ours package matrix
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
import yaml

from machine import cpu_model, peak_rss_mb, simd

ROOT = Path(__file__).resolve().parents[1]
# the shipped settings: what a site is embedded with
DEFAULTS = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["embed"]


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

    cfg = {**DEFAULTS, "batch_size": batch_size}

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(tmp) / "shards.h5"
        t0 = time.perf_counter()
        write_shards(shards, n, T)
        t_write = time.perf_counter() - t0
        rss_before = peak_rss_mb()
        t0 = time.perf_counter()
        model = embed.fit_site(shards, cfg, seed=42, device=device)
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


def shipped_shape(T):
    """(units, directions, steps, kept steps, PCA dims) of the shipped settings for T epochs."""
    units = int(DEFAULTS["n_units"])
    directions = 2 if DEFAULTS["bidirectional"] else 1
    steps = -(-T // int(DEFAULTS.get("time_stride", 1) or 1))
    washout = int(DEFAULTS["washout"])
    kept = steps - washout if steps > washout else steps
    return units, directions, steps, kept, int(DEFAULTS["n_pca"])


def readout_flop_share(T):
    """Loop FLOPs / (loop + readout FLOPs) per series: the ceiling of ours/bare at equal efficiency.

    Loop: input and recurrent products of every step and direction. Readout:
    projection of each kept state to the PCA dims, the Gram and cross
    products of the ridge, the Cholesky factor and the two triangular solves.
    """
    units, directions, steps, kept, p = shipped_shape(T)
    loop = steps * directions * 2 * units * (units + 1)
    project = kept * 2 * (directions * units) * p
    # Gram and cross over kept - 1 pairs; Cholesky; two triangular solves for p targets
    ridge = 2 * 2 * (kept - 1) * p * p + p ** 3 / 3 + 2 * p * p * p
    return loop / (loop + project + ridge)


def run_bare(n, T, threads, batch_size=DEFAULTS["batch_size"], readout=False):
    """Child: the bare recurrent loop of the shipped shape on n series (``readout``: plus the
    representation in stock torch ops, the floor of the shape); prints one JSON line."""
    import torch

    torch.set_num_threads(threads)
    units, directions, steps, kept, p = shipped_shape(T)
    series = min(batch_size, n)
    rows = directions * series
    g = torch.Generator().manual_seed(0)
    W = (torch.rand(units, units, generator=g) - 0.5) * (torch.rand(units, units, generator=g)
                                                        < DEFAULTS["connectivity"])
    w_in = torch.rand(1, units, generator=g) - 0.5
    proj = torch.linalg.qr(torch.randn(directions * units, p, generator=g))[0].contiguous()
    u = torch.randn(steps, rows, 1, generator=g)
    states = torch.zeros(steps + 1, rows, units)  # states[t + 1] = h after step t
    pre = torch.empty(rows, units)
    done, t0 = 0, time.perf_counter()
    while done < n:
        for t in range(steps):
            torch.mm(u[t], w_in, out=pre)
            pre.addmm_(states[t], W)
            torch.tanh(pre, out=states[t + 1])
        if readout:
            z = (states[steps + 1 - kept:].reshape(kept * series, directions * units) @ proj)
            z = z.view(kept, series, p).transpose(0, 1)
            x, y = z[:, :-1], z[:, 1:]
            xc, yc = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
            gram = torch.bmm(xc.mT, xc)
            gram.diagonal(dim1=1, dim2=2).add_(float(DEFAULTS["ridge"]))
            torch.cholesky_solve(torch.bmm(xc.mT, yc), torch.linalg.cholesky(gram))
        done += series
    seconds = time.perf_counter() - t0
    print(json.dumps({"what": "floor" if readout else "bare", "n": done, "T": T, "steps": steps,
                      "rows": rows, "units": units, "threads": threads,
                      "series_per_s": round(done / seconds, 1)}))


def run_package(n, T):
    """Child: reservoir_computing's RC_model on n series, same reservoir; prints one JSON line."""
    from reservoir_computing.modules import RC_model

    X = synthetic_series(np.random.default_rng(0), n, T).astype(np.float64)
    X = ((X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True))[:, :, None]
    # the package has no time step of its own: give it the same block-averaged steps as ours
    stride = int(DEFAULTS.get("time_stride", 1) or 1)
    X = np.stack([X[:, a:a + stride].mean(axis=1) for a in range(0, T, stride)], axis=1)
    np.random.seed(42)
    model = RC_model(n_internal_units=DEFAULTS["n_units"], spectral_radius=DEFAULTS["spectral_radius"],
                     leak=DEFAULTS["leak"], connectivity=DEFAULTS["connectivity"],
                     input_scaling=DEFAULTS["input_scaling"], noise_level=DEFAULTS["noise_level"],
                     n_drop=DEFAULTS["washout"], bidir=DEFAULTS["bidirectional"], dimred_method="tenpca",
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


def child(args, settings=None) -> dict:
    """Run one measurement in a fresh interpreter (own peak RSS); returns its JSON line. ``settings``
    (overrides of the shipped ones) travel as JSON: the child imports nothing more for them."""
    cmd = [sys.executable, __file__, *(["--settings", json.dumps(settings)] if settings else []), "--child", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[100000],
                    help="series for ours, bare and floor (100,000: runs of seconds, not noise)")
    ap.add_argument("--T", type=int, nargs="+", default=[150, 263])
    ap.add_argument("--n-package", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                    help="series per batch (larger on a GPU)")
    ap.add_argument("--only", choices=["ours", "bare", "floor", "package", "matrix"], nargs="+",
                    default=["ours", "bare", "floor", "package"])
    ap.add_argument("--json", help="write all results here")
    ap.add_argument("--candidate", help="embed settings of this bench/validity.py candidate instead of the "
                    "shipped ones (e.g. previous)")
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    settings = json.loads(args.settings) if args.settings else {}
    if args.candidate:
        from validity import candidate_overrides

        settings = {**settings, **candidate_overrides(args.candidate)}
    DEFAULTS.update(settings)
    if args.child:
        kind, *rest = args.child
        if kind == "ours":
            run_ours(int(rest[0]), int(rest[1]), rest[2], int(rest[3]), int(rest[4]))
        elif kind == "bare":
            run_bare(int(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]))
        elif kind == "floor":
            run_bare(int(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]), readout=True)
        elif kind == "package":
            run_package(int(rest[0]), int(rest[1]))
        else:
            run_matrix(int(rest[0]))
        return
    shape = {k: DEFAULTS.get(k) for k in ("representation", "n_units", "bidirectional", "time_stride", "n_pca",
                                             "out_dim", "mode")}
    which = f"candidate {args.candidate!r}" if args.candidate else "shipped"
    print(f"{cpu_model()} ({simd()}); {args.threads} threads; {which} embed settings {shape}", flush=True)
    results = []
    for T in args.T:
        for n in args.n:
            if "ours" in args.only:
                results.append(child(["ours", str(n), str(T), args.device, str(args.threads),
                                      str(args.batch_size)], settings))
                print(json.dumps(results[-1]), flush=True)
            for kind in ("bare", "floor"):
                if kind in args.only and args.device == "cpu":
                    results.append(child([kind, str(n), str(T), str(args.threads), str(args.batch_size)],
                                         settings))
                    print(json.dumps(results[-1]), flush=True)
        if "package" in args.only:
            results.append(child(["package", str(args.n_package), str(T)], settings))
            print(json.dumps(results[-1]), flush=True)
    if "matrix" in args.only:
        results.append(child(["matrix", str(args.threads)], settings))
        print(json.dumps(results[-1]), flush=True)
    print(f"\n{'T':>4} {'ours series/s':>14} {'bare loop':>10} {'ours/bare':>10} {'ceiling':>8} "
          f"{'floor':>8} {'ours/floor':>11} {'package':>9} {'ours/package':>13}")

    def rate(what, T):
        row = next((r for r in results if r["what"] == what and r["T"] == T), None)
        key = "series_per_s_embed" if what == "ours" else "series_per_s"
        return row[key] if row else float("nan")

    for T in args.T:
        o, b, f, k = (rate(w, T) for w in ("ours", "bare", "floor", "package"))
        print(f"{T:>4} {o:>14.0f} {b:>10.0f} {o / b:>10.2f} {readout_flop_share(T):>8.2f} "
              f"{f:>8.0f} {o / f:>11.2f} {k:>9.1f} {o / k:>13.1f}")
    print("ceiling: loop FLOPs / (loop + readout FLOPs), the most ours/bare can be at equal efficiency")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
