"""Rule decompose: the site's ascending + descending tracks -> vertical/east-west shards.h5."""
from insarclust.decompose import DecomposeConfig, decompose
from insarclust.logs import setup_logging, timed

log = setup_logging(snakemake.log[0])
site = snakemake.wildcards.site
cfg = DecomposeConfig.from_config(snakemake.params.cfg, snakemake.params.shards)
with timed(log, f"decompose {site}"):
    decompose(snakemake.input.asc, snakemake.input.desc, snakemake.output[0], site, cfg,
              fmt_name=snakemake.params.fmt_name)
