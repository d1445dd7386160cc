"""dyn + standardised static columns -> results/{site}/features/dyn+static.h5."""
from insarclust import embed
from insarclust.logs import setup_logging

log = setup_logging(snakemake.log[0])
embed.write_dyn_static(snakemake.input.dyn, snakemake.input.shards, snakemake.output[0],
                       static_weight=snakemake.params.static_weight)
