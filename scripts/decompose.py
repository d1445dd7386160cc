"""Rule decompose: the site's ascending + descending tracks -> vertical/east-west shards.h5."""
from insarclust.config import build_stage
from insarclust.decompose import decompose
from insarclust.logs import start_rule, timed
from insarclust.requirements import site_needs

log = start_rule(snakemake)
site = snakemake.wildcards.site
# runtime keys (max_noise_ratio: a check) come from the config, not the params
cfg = build_stage("decompose", {**snakemake.config["decompose"], **snakemake.params.cfg,
                                **snakemake.params.shards})
with timed(log, f"decompose {site}"):
    decompose(snakemake.input.asc, snakemake.input.desc, snakemake.output[0], site, cfg,
              fmt_name=snakemake.params.fmt_name, needs=site_needs(snakemake.config))
