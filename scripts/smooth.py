"""Rule ``smooth``: H-hop graph smoothing of a feature file -> features/{base}_smoothed.h5."""
from insarclust.logs import setup_logging
from insarclust.smooth import smooth_feature_file

setup_logging(snakemake.log[0])
smooth_feature_file(snakemake.input.features, snakemake.input.graph, snakemake.output[0],
                    snakemake.params.cfg, seed=snakemake.params.seed, n_threads=snakemake.threads)
