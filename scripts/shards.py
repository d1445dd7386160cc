"""Rule shards: stream the site's CSV(s) into shards.h5."""
from insarclust.config import build_stage
from insarclust.formats import job_format
from insarclust.logs import start_rule, timed
from insarclust.requirements import site_needs
from insarclust.shards import build_shards

log = start_rule(snakemake)
site = snakemake.wildcards.site
fmt = job_format(snakemake.params.fmt_name, snakemake.params.fmt, snakemake.config["formats"])
# params hold what changes shards.h5; the read block size comes from the run's config
cfg = dict(snakemake.params.cfg)
seed = cfg.pop("seed", snakemake.config["seed"])   # a param only where ransac reads it
cfg = build_stage("shards", {**snakemake.config["shards"], **cfg}, seed=seed)
# The minimum site size follows from the later stages' settings; read from the run's
# config rather than params, so that changing kmeans.k does not rebuild shards.h5.
needs = site_needs(snakemake.config)
with timed(log, f"shards {site}"):
    summary = build_shards(list(snakemake.input), fmt, snakemake.output[0], site, cfg, needs=needs)
log.info("summary: %s", summary)
