"""Gather the embedding parts of a site -> results/{site}/features/dyn.h5."""
from insarclust import embed
from insarclust.config import embed_settings
from insarclust.logs import start_rule

log = start_rule(snakemake)
# the settings the parts were made with: the workflow keeps this split only while they hold
embed.gather_parts(list(snakemake.input), snakemake.output[0],
                   attrs={"embed_settings": embed_settings(snakemake.config)})
log.info("%d part(s); embed.n_jobs is %d", len(snakemake.input), snakemake.config["embed"]["n_jobs"])
