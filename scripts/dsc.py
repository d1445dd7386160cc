"""Rule ``dsc``: Deep Spatiotemporal Clustering -> clusters/dsc.h5 and dsc/train_log.tsv."""
import torch

from insarclust.dsc import write_train_log
from insarclust.dsc.stage import fit_stage
from insarclust.logs import start_rule

log = start_rule(snakemake)
torch.set_num_threads(max(1, int(snakemake.threads)))  # CPU work beside a GPU; on CPU dsc.cpu_threads rules
torch.backends.cudnn.benchmark = True  # fixed patch shapes: let cuDNN pick its fastest kernels
cfg, seed = dict(snakemake.params.cfg), int(snakemake.params.seed)
labelling, est = fit_stage(snakemake.input.shards, cfg={**snakemake.config["dsc"], **cfg}, seed=seed,
                           device=snakemake.config.get("device", "auto"),
                           checkpoint_dir=snakemake.params.checkpoint_dir,
                           silhouette_sample=None)  # both spaces measured by the evaluate job
labelling.stamp(snakemake.wildcards.site, "dsc", {"dsc": cfg, "seed": seed})
labelling.write(snakemake.output.labels)
write_train_log(est.history_, snakemake.output.train_log)
