"""Rule demo_data: write a synthetic demo site and its true regimes."""
from insarclust.demo import write_demo
from insarclust.formats import Format
from insarclust.logs import start_rule, timed

log = start_rule(snakemake)
site = snakemake.wildcards.site
demo = snakemake.params.demo
fmt = Format.from_dict(snakemake.params.fmt_name, snakemake.params.fmt)
with timed(log, f"demo site {site} ({snakemake.params.preset})"):
    write_demo(snakemake.output.csv, snakemake.output.truth, site, snakemake.params.preset, fmt,
               n_points=demo.get("n_points", 20000), start=demo.get("start", "2018-06-01"),
               years=demo.get("years", 4.5), seed=snakemake.params.seed)
