"""Rule los_shards: one track (asc or desc) of a pair site into a shards.h5 of LOS series."""
from insarclust.config import build_stage
from insarclust.formats import job_format
from insarclust.logs import start_rule, timed
from insarclust.shards import build_shards

log = start_rule(snakemake)
site, track = snakemake.wildcards.site, snakemake.wildcards.track
fmt = job_format(snakemake.params.fmt_name, snakemake.params.fmt, snakemake.config["formats"])
cfg = dict(snakemake.params.cfg)
seed = cfg.pop("seed", snakemake.config["seed"])
cfg = build_stage("shards", {**snakemake.config["shards"], **cfg}, seed=seed)
with timed(log, f"{track} track of {site}"):
    summary = build_shards(list(snakemake.input), fmt, snakemake.output[0], f"{site}.{track}", cfg)
log.info("summary: %s", summary)
