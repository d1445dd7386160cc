"""dyn + standardised static columns -> results/{site}/features/dyn+static.h5."""
from insarclust import embed
from insarclust.logs import start_rule

log = start_rule(snakemake)
embed.write_dyn_static(snakemake.input.dyn, snakemake.input.shards, snakemake.output[0],
                       static_weight=snakemake.params.static_weight)
