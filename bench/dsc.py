"""Benchmark of DSC training and labelling throughput (patches per second).

    .venv/bin/python bench/dsc.py [--device auto] [--threads 2] [--preset demo|gpu-target]
                                  [--batch-size N] [--n-steps T] [--patch-size P] [--channels 8,16]
                                  [--lstm-hidden H] [--latent-dim D] [--precision auto] [--seconds 20]
                                  [--fit] [--label N]

Two measurements on synthetic patches (random series of U distinct points,
10 % empty cells), the model and the exact per-batch code of training
(:func:`insarclust.dsc.train.training_step`: gather on the device, forward,
masked MSE + gamma * KL, backward, Adam step):

- ``train``: joint-phase optimiser steps for about ``--seconds`` after two
  warm-up steps; patches/s = steps x batch / time (device synchronised);
- ``embed``: encoder-only forward passes (what labelling all points costs
  per patch, patch building excluded).

``--fit`` also times :class:`DeepSpatiotemporalClustering.fit` + labelling of
a synthetic 20,000-point lattice site with the demo configuration, end to
end (patch index, k-means init, target refreshes included). ``--label N``
times only the labelling of an N-point lattice site (the part of the stage
that grows with the site), with ``dsc.cpu_threads`` from the configuration.

Presets: ``demo`` = the CPU defaults of config/config.yaml on a 6-day grid of
4.5 years (T = 272 / 8 = 34 steps, P = 9, channels 8,16, hidden 32, batch 32);
``gpu-target`` = the GPU target shape (P = 9, T = 200, channels
16,32, hidden 64, latent 16, batch 1024): one epoch over 400,000 patches must
take under 60 s on one H100, i.e. at least 6,667 patches/s.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

PRESETS = {
    "demo": dict(batch_size=32, n_steps=34, patch_size=9, channels="8,16", lstm_hidden=32, latent_dim=8),
    "gpu-target": dict(batch_size=1024, n_steps=200, patch_size=9, channels="16,32", lstm_hidden=64,
                       latent_dim=16),
}


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def synthetic_memory(n_patches: int, n_series: int, n_steps: int, patch_size: int, device: str, seed: int = 0):
    from insarclust.dsc.patches import PatchSet
    from insarclust.dsc.train import _DeviceMemory

    rng = np.random.default_rng(seed)
    series = np.concatenate([rng.normal(size=(n_series, n_steps)).astype(np.float32),
                             np.zeros((1, n_steps), np.float32)])
    index = rng.integers(0, n_series, (n_patches, patch_size, patch_size))
    index[rng.random(index.shape) < 0.1] = n_series
    distance = rng.uniform(0, 200, (n_patches, patch_size * patch_size)).astype(np.float32)
    ps = PatchSet(rows=np.arange(n_patches), index=index, series=series, distance_m=distance)
    return _DeviceMemory(ps, 1.0, device)


def measure(args, device: str) -> dict:
    from insarclust.dsc.model import DSCNet
    from insarclust.dsc.train import autocast_dtype, training_step

    channels = [int(c) for c in args.channels.split(",")]
    amp = autocast_dtype(device, args.precision)
    torch.manual_seed(0)
    model = DSCNet(args.n_steps, args.patch_size, 4, latent_dim=args.latent_dim, channels=channels,
                   lstm_hidden=args.lstm_hidden).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    n_patches = max(args.batch_size * 8, 4096)
    data = synthetic_memory(n_patches, min(n_patches, 20000), args.n_steps, args.patch_size, device)
    target = torch.full((n_patches, 4), 0.25, device=device)
    rng = np.random.default_rng(1)

    def step():
        pos = torch.from_numpy(rng.integers(0, n_patches, args.batch_size)).to(device)
        x, dist = data.batch(pos)
        training_step(model, x, dist, target[pos], optimizer, scaler, gamma=0.1, centre_weight=0.5,
                      amp_dtype=amp)

    for _ in range(2):
        step()
    synchronise(device)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        step()
        steps += 1
        if device.startswith("cuda") and steps % 10:
            continue
        synchronise(device)
    synchronise(device)
    train_s = time.perf_counter() - t0
    train_rate = steps * args.batch_size / train_s

    model.eval()
    embed_batch = args.batch_size * 4
    with torch.no_grad():
        autocast = torch.autocast("cuda", dtype=amp) if amp else torch.autocast("cpu", enabled=False)
        n_embed, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds / 2:
            pos = torch.from_numpy(rng.integers(0, n_patches, embed_batch)).to(device)
            x, dist = data.batch(pos)
            with autocast:
                model.embed(x, dist)
            n_embed += embed_batch
        synchronise(device)
        embed_rate = n_embed / (time.perf_counter() - t0)
    return {"train_patches_per_s": round(train_rate, 1), "train_steps": steps,
            "embed_patches_per_s": round(embed_rate, 1),
            "epoch_400k_s": round(400_000 / train_rate, 1)}


def lattice_site(n_points: int, seed: int = 0):
    """A synthetic lattice site of ~``n_points`` points 15 m apart (with jitter), 272 epochs on
    the 6-day grid, four regimes in vertical bands: ``(PointSeries, regime)``."""
    import math

    from insarclust.dsc import PointSeries
    from insarclust.geodesy import EARTH_RADIUS_M

    rng = np.random.default_rng(seed)
    side = int(round(math.sqrt(n_points)))
    r, c = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    east = c.ravel() * 15.0 + rng.uniform(-4, 4, side * side)
    north = -r.ravel() * 15.0 + rng.uniform(-4, 4, side * side)
    lat = 69.5 + np.degrees(north / EARTH_RADIUS_M)
    lon = 20.2 + np.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(69.5))))
    t_yr = np.arange(272) * 6 / 365.25
    regime = (c.ravel() * 4 // side)
    base = np.stack([0 * t_yr, -8 * t_yr, 6 * np.sin(2 * np.pi * t_yr), 4 * t_yr])
    regular = (base[regime] + rng.normal(0, 2.0, (side * side, 272))).astype(np.float32)
    return PointSeries.from_arrays(lat, lon, regular, 17683 + 6 * np.arange(272)), regime


def demo_estimator(device: str, **changes):
    import yaml
    from pathlib import Path

    from insarclust.dsc.stage import estimator_from_config

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())["dsc"]
    return estimator_from_config({**cfg, **changes}, seed=42, device=device)


def fit_demo(device: str) -> dict:
    """End-to-end fit + labelling on a synthetic 20,000-point lattice with the demo configuration."""
    points, regime = lattice_site(20_164)  # 142 x 142
    est = demo_estimator(device)
    t0 = time.perf_counter()
    est.fit(points)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels = est.predict(points)
    label_s = time.perf_counter() - t0
    from sklearn.metrics import adjusted_rand_score

    passes = est.train_sample * len(est.history_)
    return {"fit_s": round(fit_s, 1), "label_s": round(label_s, 1), "n_points": int(points.n_points),
            "epochs": len(est.history_), "fit_patches_per_s": round(passes / fit_s, 1),
            "ari": round(float(adjusted_rand_score(regime, labels)), 3)}


def label_site(device: str, n_points: int, repeats: int = 2) -> dict:
    """Labelling every point of an ``n_points`` lattice site with the demo configuration (what the
    ``dsc`` stage does after training): points/s, best of ``repeats``. The model is trained
    briefly (one epoch on 1,000 points): the cost of labelling does not depend on the weights."""
    points, _ = lattice_site(n_points)
    est = demo_estimator(device, train_sample=1000, pretrain_epochs=1, epochs=1)
    est.fit(points)
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        est.embed_and_assign(points)
        seconds.append(time.perf_counter() - t0)
    return {"n_points": int(points.n_points), "cpu_threads": int(est.cpu_threads),
            "label_s": [round(x, 2) for x in seconds],
            "label_points_per_s": round(points.n_points / min(seconds), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--label", type=int, metavar="N", default=None,
                        help="only time labelling an N-point lattice site (demo configuration)")
    for key, value in PRESETS["demo"].items():
        parser.add_argument("--" + key.replace("_", "-"), type=type(value), default=None)
    args = parser.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    from insarclust.device import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "cpu"
    result = {"preset": args.preset, "device": device, "device_name": name, "threads": args.threads,
              "precision": args.precision if device.startswith("cuda") else "fp32",
              "batch_size": args.batch_size, "n_steps": args.n_steps, "patch_size": args.patch_size,
              "channels": args.channels, "lstm_hidden": args.lstm_hidden, "latent_dim": args.latent_dim,
              "torch": torch.__version__}
    if args.label:
        result["label"] = label_site(device, args.label)
        print(json.dumps(result))
        return
    result.update(measure(args, device))
    if args.fit:
        result["fit_demo"] = fit_demo(device)
    if not torch.cuda.is_available():
        result["cuda"] = "unmeasured: no CUDA device on this machine"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
