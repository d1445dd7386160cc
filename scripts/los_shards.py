"""Rule los_shards: one track (asc or desc) of a pair site into a shards.h5 of LOS series."""
from insarclust.formats import Format
from insarclust.logs import setup_logging, timed
from insarclust.shards import ShardsConfig, build_shards

log = setup_logging(snakemake.log[0])
site, track = snakemake.wildcards.site, snakemake.wildcards.track
fmt = Format.from_dict(snakemake.params.fmt_name, snakemake.params.fmt)
cfg = ShardsConfig.from_config(snakemake.params.cfg, seed=snakemake.params.seed)
with timed(log, f"{track} track of {site}"):
    summary = build_shards(list(snakemake.input), fmt, snakemake.output[0], f"{site}.{track}", cfg)
log.info("summary: %s", summary)
