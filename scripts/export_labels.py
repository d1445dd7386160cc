"""Rule export_labels: clusters.csv (and, with report.geojson, clusters.geojson) of one site."""
from insarclust.export import export_labels
from insarclust.logs import start_rule

start_rule(snakemake)
methods = list(snakemake.params.methods)
label_paths = dict(zip(methods, snakemake.input.labels))
export_labels(snakemake.input.shards, label_paths, snakemake.output.csv,
              geojson_path=snakemake.output.get("geojson"), layer_name=snakemake.wildcards.site)
