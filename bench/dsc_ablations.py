"""DSC ablations on a site the workflow has already built (the paper's variant table).

    .venv/bin/python bench/dsc_ablations.py                       # demo-mainland, demo-arctic
    .venv/bin/python bench/dsc_ablations.py --sites demo-mainland --variants cnn-lstm cnn

For every variant (and ``cnn-lstm`` with the SpatialFeatureClustering branch)
it runs :func:`insarclust.dsc.stage.fit_stage` and
:func:`insarclust.evaluate.evaluate_labelling` (what the ``dsc`` and
``evaluate`` rules run) with the ``dsc:`` section of
``config/config.yaml`` (only ``variant`` / ``spatial_branch`` changed) on
``results/{site}/shards.h5``, ``graph.h5`` and ``features/dyn.h5`` and prints
one row per run: ARI / NMI vs the demo truth, silhouette and Davies-Bouldin in
DSC's latent space (the paper's metrics) and in the shared ``dyn`` space,
spatial coherence, label match and training seconds. Nothing under
``results/`` is written (checkpoints go to a temporary directory).
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
import yaml

from insarclust.dsc.stage import fit_stage
from insarclust.evaluate import evaluate_labelling

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["cnn-lstm", "cnn", "lstm", "no-skip", "encoder-only", "cnn-lstm+spatial"]


def run(site: str, variant: str, cfg: dict, seed: int, results: Path) -> dict:
    cfg = dict(cfg)
    cfg.pop("enabled", None)
    cfg["variant"], cfg["spatial_branch"] = variant.split("+")[0], variant.endswith("+spatial")
    d = results / site
    truth = ROOT / "resources" / "demo" / f"{site}.truth.csv"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        labelling, _ = fit_stage(d / "shards.h5", d / "features" / "dyn.h5", cfg=cfg, seed=seed,
                                 device="cpu", checkpoint_dir=tmp)
        wall = time.perf_counter() - t0
    result = evaluate_labelling(labelling, graph_path=d / "graph.h5", shards_path=d / "shards.h5",
                                descriptors_path=d / "features" / "descriptors.h5",
                                truth_path=truth if truth.exists() else None)
    m, lat = result["metrics"], result["metrics_latent"]
    return {"site": site, "variant": variant, "ari": m.get("ari"), "nmi": m.get("nmi"),
            "silhouette_latent": lat["silhouette"], "davies_bouldin_latent": lat["davies_bouldin"],
            "silhouette_dyn": m["silhouette"], "davies_bouldin_dyn": m["davies_bouldin"],
            "spatial_coherence": m["spatial_coherence"], "label_match": m.get("label_match"),
            "epochs": result["training"]["epochs_run"], "seconds": round(wall, 1)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", nargs="+", default=["demo-mainland", "demo-arctic"])
    ap.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    rows = []
    cols = ["site", "variant", "ari", "nmi", "silhouette_latent", "davies_bouldin_latent",
            "silhouette_dyn", "davies_bouldin_dyn", "spatial_coherence", "label_match", "epochs", "seconds"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols), flush=True)
    for site in args.sites:
        for variant in args.variants:
            row = run(site, variant, config["dsc"], int(config.get("seed", 42)), Path(args.results))
            rows.append(row)
            print("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                                    for c in cols) + " |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
