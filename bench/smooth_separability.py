"""How well the true classes separate point by point after graph smoothing, per graph bandwidth.

The site-wide ARI of a clustering (bench/validity.py) moves by +-0.1-0.4 between
runs that differ in a detail, as k-means lands in another partition; a change of
the graph's weights is better judged on the features themselves. For every site
and seed that a ``bench/validity.py sites`` run cached in ``--workdir``, this
standardises its ``dyn.h5`` (the embedding of the shipped ``embed:`` settings, or
of the run's ``--set``, with today's code; a site folder also keeps others) as
the smooth stage does, smooths it over the k-NN
graph of each ``--bandwidths`` setting (``median``: the shipped default, the
site's median link; ``local``: each point's own median link; a number: metres)
with the shipped ``smooth:`` settings, and scores the nearest-class-centroid
accuracy (centroids of the true classes over all points) on:

- ``all`` points;
- ``lean`` points: those the median bandwidth leaves barely smoothed (effective
  neighbours below 1.5, the graph stage's ``n_one_neighbour``);
- ``sparse`` points: those whose own median link exceeds three times the site's.

``raw`` is the same score before smoothing. Prints one row per site (mean over
its seeds) and the mean over all; ``--out`` writes the per-site-and-seed rows as
JSON lines.

    python bench/validity.py sites --methods kmeans-dyn_smoothed --k config   # fills the cache
    python bench/smooth_separability.py --bandwidths median local
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def centroid_accuracy(X: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    """Share of the masked points nearest to their own class's centroid (centroids over all points)."""
    if not mask.any():
        return float("nan")
    classes = np.unique(y)
    centres = np.stack([X[y == c].mean(axis=0) for c in classes])
    d2 = ((X[mask, None, :] - centres[None]) ** 2).sum(axis=-1)
    return float((classes[d2.argmin(axis=1)] == y[mask]).mean())


def site_rows(workdir: Path, embed_cfg: dict):
    """(site, seed, shards.h5, truth.csv, dyn.h5) of each cached site and seed (the first copy of
    each) whose embedding of ``embed_cfg`` with today's code is cached: a site folder also keeps
    the embeddings of other settings (``--set embed....``) and of earlier code."""
    from validity import features_dir

    seen = set()
    for d in sorted(workdir.glob("*.seed*")):
        site, _, seed = d.name.split(".")[:3]
        dyn = features_dir(d, embed_cfg) / "dyn.h5"
        if (site, seed) in seen or not dyn.exists() or not (d / "truth.csv").exists():
            continue
        seen.add((site, seed))
        yield site, int(seed[len("seed"):]), d / "shards.h5", d / "truth.csv", dyn


def score_site(shards_path, truth_path, dyn_path, bandwidths, graph_cfg: dict, smooth_cfg: dict) -> dict:
    from insarclust import h5io
    from insarclust.graph import GeodesicKNNGraph, effective_neighbours, local_scales
    from insarclust.smooth import GraphSmoother

    shards = h5io.Shards(shards_path)
    truth = pd.read_csv(truth_path, dtype=str).set_index("pid").loc[shards.pids()]
    y = (truth["class"] if "class" in truth else truth["regime"]).to_numpy()
    X, _ = h5io.read_features(dyn_path)
    X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)
    lat, lon = shards.coords()
    graph_kw = {k: graph_cfg[k] for k in ("k", "weighting", "symmetric", "max_distance_m")}
    median = GeodesicKNNGraph(**graph_kw).fit(lat, lon)
    masks = {"all": np.ones(len(y), dtype=bool),
             "lean": effective_neighbours(median.indptr_, median.weight_) < 1.5,
             "sparse": local_scales(median.indptr_, median.distance_m_, 1.0) > 3 * median.bandwidth_m_}
    out = {f"{m}_share": float(mask.mean()) for m, mask in masks.items() if m != "all"}
    out.update({f"raw_{m}": centroid_accuracy(X, y, mask) for m, mask in masks.items()})
    smooth_kw = {k: smooth_cfg[k] for k in ("H", "alpha", "aggregation")}
    for name in bandwidths:
        bw = None if name == "median" else name if name == "local" else float(name)
        g = median if bw is None else GeodesicKNNGraph(**graph_kw, bandwidth_m=bw).fit(lat, lon)
        Xs = GraphSmoother(**smooth_kw).fit(g.indptr_, g.indices_, g.weight_).transform(X)
        out.update({f"{name}_{m}": centroid_accuracy(Xs, y, mask) for m, mask in masks.items()})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "insarclust-validity"),
                    help="the --workdir of a bench/validity.py sites run")
    ap.add_argument("--bandwidths", nargs="+", default=["median", "local"],
                    help="median | local | metres, one graph each")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="JSON-lines file of the per-site-and-seed rows")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="the validity run's config overrides (its embedding is the one scored)")
    args = ap.parse_args(argv)

    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    from validity import load_config

    torch.set_num_threads(args.threads)
    cfg = load_config(args.set)
    rows = []
    for site, seed, shards, truth, dyn in site_rows(Path(args.workdir), cfg["embed"]):
        row = {"site": site, "seed": seed, **score_site(shards, truth, dyn, args.bandwidths, cfg["graph"],
                                                        cfg["smooth"])}
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if not rows:
        sys.exit(f"no cached site with dyn.h5 under {args.workdir}: run bench/validity.py sites first")
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    df = pd.DataFrame(rows).drop(columns="seed")
    pd.set_option("display.width", 250)
    print(df.groupby("site").mean().round(3).to_string())
    print(df.drop(columns="site").mean().round(3).to_frame("mean over sites and seeds").T.to_string())


if __name__ == "__main__":
    main()
