"""Rule ``baseline``: one peer method (pca-kmeans, raw-kmeans[_smoothed], descriptors-kmeans) -> clusters/{baseline}.h5."""
from insarclust.baselines import fit_baseline
from insarclust.logs import start_rule, timed

log = start_rule(snakemake)
method, seed = snakemake.wildcards.baseline, int(snakemake.params.seed)
cfg = {key: dict(value) for key, value in snakemake.params.cfg.items()}
descriptors = snakemake.input.get("descriptors") or None   # an input of descriptors-kmeans only
with timed(log, f"{method} {snakemake.wildcards.site}"):
    labelling = fit_baseline(method, snakemake.input.shards, descriptors, kmeans_cfg=cfg["kmeans"],
                             baselines_cfg=cfg["baselines"], seed=seed, graph_path=snakemake.input.get("graph"),
                             smooth_cfg=cfg.get("smooth"), out_path=snakemake.output[0])
labelling.stamp(snakemake.wildcards.site, method, {**cfg, "seed": seed})
labelling.write(snakemake.output[0])
