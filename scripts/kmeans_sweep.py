"""Rule ``kmeans_sweep``: metrics for every k in kmeans.k_range -> clusters/kmeans-{variant}_k.tsv + figure."""
import matplotlib.pyplot as plt

from insarclust import figures, h5io, kmeans
from insarclust.batches import H5FeatureSource
from insarclust.logs import start_rule, timed

log = start_rule(snakemake)
cfg = snakemake.params.cfg
seed = int(snakemake.params.seed)
lo, hi = (int(k) for k in cfg["k_range"])
source = H5FeatureSource(snakemake.input.features, shard_offsets=h5io.Shards(snakemake.input.shards).offsets)
with timed(log, f"k sweep {lo}..{hi}"):
    table = kmeans.sweep_k(source, range(lo, hi + 1), seed=seed,
                           silhouette_sample=int(cfg.get("silhouette_sample", 10000)),
                           graph_path=snakemake.input.graph, **kmeans.kmeans_params(cfg))
with h5io.atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
fig = figures.plot_k_sweep(table, snakemake.output.figure,
                           title=f"{snakemake.wildcards.site} - kmeans-{snakemake.wildcards.variant}")
plt.close(fig)
