"""Rule ``smooth``: H-hop graph smoothing of a feature file -> features/{base}_smoothed.h5."""
from insarclust.logs import start_rule
from insarclust.smooth import smooth_feature_file

start_rule(snakemake)
cfg = dict(snakemake.params.cfg)
seed = cfg.pop("seed", snakemake.config["seed"])   # a param only where sampling reads it (fanout)
# a diagnostic of the attrs (Moran's I of the leading columns), not of the features: from the run's config
cfg["moran_features"] = snakemake.config["smooth"]["moran_features"]
smooth_feature_file(snakemake.input.features, snakemake.input.graph, snakemake.output[0], cfg, seed=seed,
                    n_threads=snakemake.threads)
