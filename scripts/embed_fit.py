"""Fit the reservoir embedder of a site on a seeded sample -> results/{site}/embed/model.pt."""
import torch

from insarclust import __version__, embed
from insarclust.logs import start_rule

log = start_rule(snakemake)
torch.set_num_threads(snakemake.threads)
# params hold the settings that change the model; memory and kernel settings come from the run's config
cfg = {**snakemake.config["embed"], **snakemake.params.cfg}
model = embed.fit_site(snakemake.input[0], cfg, seed=snakemake.params.seed, device=snakemake.config["device"])
embed.save_model(model, snakemake.output[0],
                 meta={"site": snakemake.wildcards.site, "insarclust_version": __version__})
