"""Do fresh embedding processes give the same features? oneMKL's first-call race, counted.

    python bench/vml_race.py                 # 100 processes with the guard, 100 without, alternated
    python bench/vml_race.py --n 40 --threads 2

Each child is a fresh interpreter that fits the shipped embedder on the same
synthetic series (the fit's first batch is the process's first two-thread
``tanh``) and prints a digest of the features of the first 256 series and
of all 2,048 embedded as ``embed_part`` does (blocks on worker threads). A
cold child (``--child cold``) replaces ``insarclust.vml.warm_up`` by a
function that does nothing, i.e. the code before the guard. The most common digest of the
guarded children is the reference; the script prints, for each side, how
many children gave another one (2026-12-02, Intel Xeon, 2 threads: 11 of 50
without the guard, 0 of 50 with it; docs/embedding.md). The race needs two
threads making a first call at once, so it is rarer on some hosts than others.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from machine import cpu_model, simd

ROOT = Path(__file__).resolve().parents[1]


def child(cold: bool, threads: int) -> str:
    """Fit and embed in this (fresh) process; returns the features' digest."""
    import torch

    import insarclust.vml
    from embed import DEFAULTS, synthetic_series
    from insarclust import embed

    if cold:
        insarclust.vml.warm_up = lambda: ()
    torch.set_num_threads(threads)
    X = synthetic_series(np.random.default_rng(0), 2048, 263).astype(np.float32)
    model = embed.embedder_from_config(dict(DEFAULTS), seed=42, device="cpu", step_years=6 / 365.25)
    features = model.fit(X).transform(X[:256])
    # and the embed_part path: blocks of 512 on `threads` worker threads (embed.embedded_blocks)
    blocks = [(a, a + 512, X[a:a + 512]) for a in range(0, len(X), 512)]
    parts = [f for _, _, f in embed.embedded_blocks(model, blocks, workers=threads)]
    return hashlib.sha256(features.tobytes() + np.concatenate(parts).tobytes()).hexdigest()[:12]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="processes per side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", choices=["cold", "warm"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(child(args.child == "cold", args.threads))
        return
    print(f"{cpu_model()} ({simd()}); {args.threads} torch threads; {args.n} processes per side", flush=True)
    digests = {"warm": [], "cold": []}
    t0 = time.perf_counter()
    for i in range(args.n):
        for side in ("cold", "warm"):  # alternated: the host's state is the same for both
            out = subprocess.run([sys.executable, __file__, "--child", side, "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True, cwd=ROOT)
            digests[side].append(out.stdout.strip().splitlines()[-1])
        if (i + 1) % 10 == 0:
            print(f"  {i + 1} of {args.n} pairs ({time.perf_counter() - t0:.0f} s)", flush=True)
    reference = collections.Counter(digests["warm"]).most_common(1)[0][0]
    for side, label in (("cold", "without the guard"), ("warm", "with vml.warm_up")):
        other = [d for d in digests[side] if d != reference]
        print(f"{label:>18}: {len(other)} of {args.n} processes gave other features "
              f"({len(set(other))} distinct)")


if __name__ == "__main__":
    main()
