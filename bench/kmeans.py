"""Benchmark of the batched k-means streamed from HDF5 against scikit-learn's in-memory recipe.

    .venv/bin/python bench/kmeans.py [--n 1000000] [--d 64] [--k 6] [--small 250000] [--repeats 1]

Data: N x D float32 features (K Gaussian regimes, rows in shard order with
one dominant regime per 16,384-row shard, as spatially coherent regimes are
in a real site) written to a temporary ``features.h5``; a second file with
``--small`` rows checks that memory does not grow with N. Each measurement
runs in a fresh child process, so its peak RSS is its own:

- ``inmemory``: the whole matrix read into memory first (not timed), then the
  seed recipe with scikit-learn defaults: 20 % test split, ``MiniBatchKMeans(k,
  batch_size=256).fit`` on S = 25,600 train points, ``partial_fit`` on every
  256-row train batch, ``predict`` on all points;
- ``inmemory-1thread``: the same with OpenMP/BLAS limited to one thread (as
  the streamed fit runs: 256-row steps gain nothing from threads, and on a
  shared machine their synchronisation costs many times the work);
- ``streamed``: :class:`insarclust.kmeans.BatchedKMeans` (engine numpy) on an
  :class:`~insarclust.batches.H5FeatureSource`, reads included;
- ``streamed-sklearn``: the same with ``engine="sklearn"`` (one ``partial_fit``
  call per batch).

Reports seconds (median of the repeats), peak RSS and the ARI of the labels
against the true regimes.
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

from machine import peak_rss_mb

SHARD_ROWS = 16384
BATCH, S, TEST_FRACTION = 256, 25600, 0.2


def write_features(path: Path, n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """Write ``/X (n, d)`` shard by shard; returns the true regime of each row."""
    from insarclust import h5io

    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (k, d)).astype(np.float32) * 2.5
    truth = np.empty(n, dtype=np.int32)
    with h5io.FeatureWriter(path, n, [f"f{j}" for j in range(d)]) as w:
        for start in range(0, n, SHARD_ROWS):
            stop = min(n, start + SHARD_ROWS)
            m = stop - start
            regime = np.where(rng.random(m) < 0.7, rng.integers(0, k), rng.integers(0, k, m))
            truth[start:stop] = regime
            w.write(start, centres[regime] + rng.normal(0.0, 1.0, (m, d)).astype(np.float32))
    return truth


def child(mode: str, path: str, k: int, labels_out: str) -> None:
    """One measurement; prints a JSON line with seconds and peak RSS."""
    from insarclust import h5io

    if mode.startswith("inmemory"):
        from sklearn.cluster import MiniBatchKMeans
        from threadpoolctl import threadpool_limits

        X = h5io.Features(path).read()
        if mode == "inmemory-1thread":
            threadpool_limits(limits=1)
        t0 = time.perf_counter()
        n = len(X)
        rng = np.random.default_rng(0)
        test = rng.choice(n, size=round(TEST_FRACTION * n), replace=False)
        is_train = np.ones(n, bool)
        is_train[test] = False
        train = rng.permutation(np.flatnonzero(is_train))
        model = MiniBatchKMeans(n_clusters=k, batch_size=BATCH, random_state=0).fit(X[train[:S]])
        for s in range(0, len(train), BATCH):
            model.partial_fit(X[train[s:s + BATCH]])
        labels = model.predict(X)
    else:
        from insarclust.batches import H5FeatureSource
        from insarclust.kmeans import BatchedKMeans

        n = h5io.Features(path).n_rows
        offsets = np.r_[np.arange(0, n, SHARD_ROWS), n]
        t0 = time.perf_counter()
        source = H5FeatureSource(path, shard_offsets=offsets)
        engine = "sklearn" if mode == "streamed-sklearn" else "numpy"
        labels = BatchedKMeans(n_clusters=k, batch_size=BATCH, warm_start_size=S,
                               test_fraction=TEST_FRACTION, random_state=0, engine=engine).fit(source).labels_
    seconds = time.perf_counter() - t0
    peak_mb = peak_rss_mb()
    np.save(labels_out, labels)
    print(json.dumps({"mode": mode, "n": int(n), "seconds": seconds, "peak_rss_mb": peak_mb}))


def measure(mode, path, k, tmp) -> dict:
    labels_out = str(Path(tmp) / f"labels-{mode}.npy")
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--path", str(path), "--k", str(k),
                          "--labels-out", labels_out], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["labels"] = np.load(labels_out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=250_000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child")
    parser.add_argument("--path")
    parser.add_argument("--labels-out")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path, args.k, args.labels_out)
        return

    from sklearn.metrics import adjusted_rand_score

    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for n in (args.n, args.small):
            path = Path(tmp) / f"features-{n}.h5"
            t0 = time.perf_counter()
            truth = write_features(path, n, args.d, args.k)
            print(f"wrote {n:,} x {args.d} features in {time.perf_counter() - t0:.1f}s", flush=True)
            modes = (["inmemory", "inmemory-1thread", "streamed", "streamed-sklearn"] if n == args.n
                     else ["streamed"])
            for mode in modes:
                runs = [measure(mode, path, args.k, tmp) for _ in range(args.repeats)]
                best = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
                best["ari_truth"] = adjusted_rand_score(truth, best.pop("labels"))
                rows.append(best)
                print(f"{mode:>17} N={n:>9,}: {best['seconds']:6.2f} s  peak RSS {best['peak_rss_mb']:7.0f} MB"
                      f"  ARI vs truth {best['ari_truth']:.3f}", flush=True)
            path.unlink()
    by = {(r["mode"], r["n"]): r for r in rows}
    ratio = by[("streamed", args.n)]["seconds"] / by[("inmemory", args.n)]["seconds"]
    ratio_1 = by[("streamed", args.n)]["seconds"] / by[("inmemory-1thread", args.n)]["seconds"]
    growth = by[("streamed", args.n)]["peak_rss_mb"] - by[("streamed", args.small)]["peak_rss_mb"]
    # O(N) arrays the streamed fit keeps: labels int32, split uint8, train rows int64
    expected = (args.n - args.small) * (4 + 1 + 8 * (1 - TEST_FRACTION)) / 2**20
    print(f"time ratio streamed / in-memory at N={args.n:,}: {ratio:.2f} (target <= 1.3); "
          f"/ in-memory one thread: {ratio_1:.2f}")
    print(f"peak RSS growth N={args.small:,} -> {args.n:,}: {growth:.0f} MB "
          f"(O(N) label/index arrays: {expected:.0f} MB; in-memory matrix alone: "
          f"{args.n * args.d * 4 / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
