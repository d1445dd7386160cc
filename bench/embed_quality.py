"""Clustering quality of the reservoir embedding on labelled UCR/UEA data sets.

k-means (k = number of classes) on the embedding vs on the raw z-normalised
series; ARI and NMI against the class labels (TRAIN + TEST pooled). The data
sets ship inside the ``aeon`` wheel (dev-only dependency, installed with
``pip install --no-deps aeon==1.6.0``: only its data files are read, aeon
itself is not imported), so nothing is downloaded. Series of unequal length
are not read: name the equal-length copy aeon ships (``JapaneseVowels_eq``).

The embedder is :class:`insarclust.reservoir.ReservoirEmbedder` with its
defaults (the shipped shape: 100 units, state PCA 40), or with a candidate of
``bench/validity.py`` (``--candidate previous``: the 450-unit, state-PCA-75
default before it); ``time_stride`` is 1 either way (no 6-day grid here).

    python bench/embed_quality.py [--datasets GunPoint ItalyPowerDemand] [--out-dim 64] [--json out.json]
    python bench/embed_quality.py --candidate previous --datasets BasicMotions JapaneseVowels_eq GunPoint --out-dim 16
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

DATASETS = ["GunPoint", "ItalyPowerDemand", "ArrowHead", "BasicMotions", "OSULeaf"]


def aeon_data_dir() -> Path | None:
    """The data folder of the installed aeon wheel, found without importing aeon."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return path if path.is_dir() else None


def read_ts(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A ``.ts`` file of equal-length series -> (X (N, T, V) float64, labels (N,) str)."""
    series, labels, in_data = [], [], False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower().startswith("@data")
            continue
        *dims, label = line.split(":")
        series.append([[float(v) for v in d.split(",")] for d in dims])
        labels.append(label.strip())
    lengths = {len(d) for s in series for d in s}
    if len(lengths) > 1:
        raise ValueError(f"{path.name}: series of unequal length ({min(lengths)}-{max(lengths)} samples); "
                         "use the equal-length copy (name + '_eq') where aeon ships one")
    X = np.asarray(series, dtype=np.float64).transpose(0, 2, 1)
    return X, np.asarray(labels)


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """TRAIN and TEST of a data set shipped with aeon, pooled: (X (N, T, V), y (N,))."""
    root = aeon_data_dir()
    if root is None:
        raise FileNotFoundError("aeon is not installed: pip install --no-deps aeon==1.6.0")
    folder = root / name if (root / name).is_dir() else root / name.removesuffix("_eq")
    parts = [read_ts(folder / f"{name}_{split}.ts") for split in ("TRAIN", "TEST")]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def znorm(X: np.ndarray) -> np.ndarray:
    sd = X.std(axis=1, keepdims=True)
    return (X - X.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def kmeans_scores(F: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    k = len(np.unique(y))
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(F)
    return {"ari": float(adjusted_rand_score(y, labels)), "nmi": float(normalized_mutual_info_score(y, labels))}


def candidate_params(name: str | None) -> dict:
    """The embedder settings of a ``bench/validity.py`` candidate (its overrides of the shipped
    ``embed:`` section); ``None``: the embedder's own defaults."""
    if name is None:
        return {}
    from validity import candidate_overrides

    return candidate_overrides(name)


def evaluate(name: str, seed: int = 0, **params) -> dict:
    """Scores of raw z-normalised k-means and of embedding k-means on one data set."""
    from insarclust.reservoir import ReservoirEmbedder

    X, y = load_dataset(name)
    raw = kmeans_scores(znorm(X).reshape(len(X), -1), y, seed)
    t0 = time.perf_counter()
    # every sample a reservoir step: these series have no 6-day grid to coarsen
    model = ReservoirEmbedder(seed=seed, **{**params, "time_stride": 1})
    E = model.fit(X).transform(X)
    seconds = time.perf_counter() - t0
    emb = kmeans_scores(E, y, seed)
    return {"dataset": name, "n": int(X.shape[0]), "T": int(X.shape[1]), "V": int(X.shape[2]),
            "classes": int(len(np.unique(y))), "raw": raw, "embedding": emb,
            "dim": int(E.shape[1]), "seconds": round(seconds, 2)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=DATASETS,
                    help="aeon data sets of equal-length series (e.g. JapaneseVowels_eq)")
    ap.add_argument("--candidate", help="embedder settings of this bench/validity.py candidate "
                    "(e.g. previous); default: the embedder's defaults")
    ap.add_argument("--representation", default=None, help="default: the candidate's, else reservoir")
    ap.add_argument("--out-dim", default="64", help="integer or 'none'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    out_dim = None if args.out_dim.lower() == "none" else int(args.out_dim)
    params = candidate_params(args.candidate)
    params["representation"] = args.representation or params.get("representation", "reservoir")
    params["out_dim"] = out_dim
    rows = []
    print(f"{'dataset':18s} {'N':>5s} {'T':>5s} {'V':>2s} {'k':>3s}  raw ARI/NMI    emb ARI/NMI    dim    s")
    for name in args.datasets:
        r = evaluate(name, seed=args.seed, **params)
        rows.append(r)
        print(f"{name:18s} {r['n']:5d} {r['T']:5d} {r['V']:2d} {r['classes']:3d}  "
              f"{r['raw']['ari']:.3f}/{r['raw']['nmi']:.3f}    {r['embedding']['ari']:.3f}/"
              f"{r['embedding']['nmi']:.3f}  {r['dim']:5d} {r['seconds']:5.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
