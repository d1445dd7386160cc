"""Rule ``kmeans_sweep``: metrics for every k in kmeans.k_range -> clusters/kmeans-{variant}_k.tsv."""
from insarclust import h5io, kmeans
from insarclust.batches import H5FeatureSource
from insarclust.logs import start_rule, timed

log = start_rule(snakemake)
cfg, seed = dict(snakemake.params.cfg), int(snakemake.params.seed)
lo, hi = (int(k) for k in cfg["k_range"])
source = H5FeatureSource(snakemake.input.features, shard_offsets=h5io.Shards(snakemake.input.shards).offsets)
with timed(log, f"k sweep {lo}..{hi}"):
    table = kmeans.sweep_k(source, range(lo, hi + 1), seed=seed,
                           silhouette_sample=int(cfg["silhouette_sample"]),
                           graph_path=snakemake.input.graph, **kmeans.kmeans_params(cfg))
with h5io.atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
