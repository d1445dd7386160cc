"""Gather the embedding parts of a site -> results/{site}/features/dyn.h5."""
import json

from insarclust import embed
from insarclust.config import result_params
from insarclust.logs import start_rule

log = start_rule(snakemake)
# the settings the parts were made with: the workflow keeps this split only while they hold
settings = json.dumps({**result_params(snakemake.config, "embed"), "seed": snakemake.config["seed"]},
                      sort_keys=True)
embed.gather_parts(list(snakemake.input), snakemake.output[0], attrs={"embed_settings": settings})
log.info("%d part(s); embed.n_jobs is %d", len(snakemake.input), snakemake.config["embed"]["n_jobs"])
