"""Rule ``graph``: geodesic k-NN graph of a site's points -> graph.h5."""
from insarclust.graph import build_graph_file
from insarclust.logs import start_rule

start_rule(snakemake)
build_graph_file(snakemake.input[0], snakemake.output[0], snakemake.params.cfg, workers=snakemake.threads)
