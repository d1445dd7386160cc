"""Rule export_gpkg: clusters.gpkg (labels, suggested regimes, descriptors) of one site."""
from insarclust.export import write_geopackage
from insarclust.logs import start_rule, timed

log = start_rule(snakemake)
methods = list(snakemake.params.methods)
with timed(log, f"GeoPackage of {snakemake.wildcards.site}"):
    write_geopackage(snakemake.input.shards, dict(zip(methods, snakemake.input.labels)),
                     snakemake.output[0], metrics_paths=dict(zip(methods, snakemake.input.metrics)),
                     descriptors_path=snakemake.input.descriptors, layer_name=snakemake.wildcards.site)
