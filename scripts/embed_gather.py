"""Gather the embedding parts of a site -> results/{site}/features/dyn.h5."""
from insarclust import embed
from insarclust.logs import setup_logging

log = setup_logging(snakemake.log[0])
embed.gather_parts(list(snakemake.input), snakemake.output[0])
