"""Rule shards: stream the site's CSV(s) into shards.h5."""
from insarclust.formats import Format
from insarclust.logs import setup_logging, timed
from insarclust.shards import ShardsConfig, build_shards

log = setup_logging(snakemake.log[0])
site = snakemake.wildcards.site
fmt = Format.from_dict(snakemake.params.fmt_name, snakemake.params.fmt)
cfg = ShardsConfig.from_config(snakemake.params.cfg, seed=snakemake.params.seed)
with timed(log, f"shards {site}"):
    summary = build_shards(list(snakemake.input), fmt, snakemake.output[0], site, cfg)
log.info("summary: %s", summary)
