"""Rule demo_pair: a synthetic ascending + descending pair and the true regime of its cells."""
from insarclust.demo import write_demo_pair
from insarclust.formats import Format
from insarclust.logs import start_rule, timed

log = start_rule(snakemake)
site = snakemake.wildcards.site
demo, cells = snakemake.params.demo, snakemake.params.cells
fmt = Format.from_dict(snakemake.params.fmt_name, snakemake.params.fmt)
with timed(log, f"demo pair {site} ({snakemake.params.preset})"):
    write_demo_pair({"asc": snakemake.output.asc, "desc": snakemake.output.desc}, snakemake.output.truth,
                    site, snakemake.params.preset, fmt, n_points=demo.get("n_points", 20000),
                    start=demo.get("start", "2018-06-01"), years=demo.get("years", 4.5),
                    seed=snakemake.params.seed, cell_size_m=cells.get("cell_size_m", 100.0),
                    crs=cells.get("crs", "EPSG:3035"))
