"""Rule ``kmeans``: batched mini-batch k-means on one feature variant -> clusters/kmeans-{variant}.h5."""
from insarclust import kmeans
from insarclust.logs import start_rule, timed

log = start_rule(snakemake)
cfg, seed, variant = dict(snakemake.params.cfg), int(snakemake.params.seed), snakemake.wildcards.variant
with timed(log, f"kmeans {variant}"):
    # the diagnostics (silhouette_sample, seed_stability) are measured by the evaluate job
    labelling = kmeans.fit_stage(snakemake.input.features, snakemake.input.shards, cfg=cfg, seed=seed,
                                 measure=False)
labelling.record["variant"] = variant
labelling.stamp(snakemake.wildcards.site, f"kmeans-{variant}", {"kmeans": cfg, "seed": seed})
labelling.write(snakemake.output[0])
