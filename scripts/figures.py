"""Rule ``cluster_figures``: cluster map and per-cluster mean +/- std series of one method."""
from insarclust import figures
from insarclust.logs import start_rule

start_rule(snakemake)
cfg = snakemake.params.cfg or {}
figures.method_figures(snakemake.input.labels, snakemake.input.metrics, snakemake.input.shards,
                       snakemake.output.map, snakemake.output.clusters,
                       max_map_points=int(cfg.get("max_map_points", 200000)),
                       dpi=int(cfg.get("dpi", 150)), seed=int(snakemake.params.seed),
                       title=f"{snakemake.wildcards.site} - {snakemake.wildcards.method}")
