"""Rule ``dsc``: Deep Spatiotemporal Clustering -> clusters/dsc.h5|.json, train_log.tsv, loss figure."""
import torch

from insarclust import evaluate
from insarclust.dsc import write_train_log
from insarclust.dsc.plots import plot_training_curve
from insarclust.dsc.stage import run_stage
from insarclust.logs import start_rule

log = start_rule(snakemake)
torch.set_num_threads(max(1, int(snakemake.threads)))
torch.backends.cudnn.benchmark = True  # fixed patch shapes: let cuDNN pick its fastest kernels
cfg = dict(snakemake.params.cfg)
truth = snakemake.input.get("truth") or []  # demo sites only: a file name or a list of one
truth = [truth] if isinstance(truth, str) else list(truth)
labels, split, proba, latent, result, est = run_stage(
    snakemake.input.shards, snakemake.input.graph, snakemake.input.dyn, cfg=cfg,
    seed=int(snakemake.params.seed), device=snakemake.params.device,
    checkpoint_dir=snakemake.params.checkpoint_dir, interpret_cfg=dict(snakemake.params.interpret),
    descriptors_path=snakemake.input.get("descriptors"), truth_path=truth[0] if truth else None,
    silhouette_sample=int(snakemake.params.kmeans.get("silhouette_sample", 10000)))
result = {"site": snakemake.wildcards.site, "method": "dsc", **result,
          "config": {"dsc": cfg, "seed": int(snakemake.params.seed)}}
write_train_log(est.history_, snakemake.output.train_log)
plot_training_curve(est.history_, snakemake.output.loss,
                    title=f"DSC ({est.variant}) on {snakemake.wildcards.site}")
evaluate.write_method_outputs(snakemake.output.labels, snakemake.output.metrics, labels, split, result,
                              proba=proba, latent=latent)
