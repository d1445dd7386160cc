"""Rule ``smooth``: H-hop graph smoothing of a feature file -> features/{base}_smoothed.h5."""
from insarclust.logs import start_rule
from insarclust.smooth import smooth_feature_file

start_rule(snakemake)
smooth_feature_file(snakemake.input.features, snakemake.input.graph, snakemake.output[0],
                    snakemake.params.cfg, seed=snakemake.params.seed, n_threads=snakemake.threads)
