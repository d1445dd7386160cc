"""Embed one part (contiguous whole shards) of a site -> results/{site}/embed/parts/{part}-of-{n}.h5."""
import torch

from insarclust import embed
from insarclust.logs import start_rule

log = start_rule(snakemake)
torch.set_num_threads(snakemake.threads)
embed.embed_part(snakemake.input.shards, snakemake.input.model, int(snakemake.wildcards.part),
                 int(snakemake.wildcards.n), snakemake.output[0], device=snakemake.config["device"],
                 batch_size=snakemake.config["embed"]["batch_size"])
