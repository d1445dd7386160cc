"""Gather the embedding parts of a site -> results/{site}/features/dyn.h5."""
from insarclust import embed
from insarclust.logs import start_rule

log = start_rule(snakemake)
embed.gather_parts(list(snakemake.input), snakemake.output[0])
