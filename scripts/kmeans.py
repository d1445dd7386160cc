"""Rule ``kmeans``: batched mini-batch k-means on one feature variant -> clusters/kmeans-{variant}.h5|.json."""
from insarclust import evaluate, kmeans
from insarclust.logs import start_rule, timed

log = start_rule(snakemake)
cfg = dict(snakemake.params.cfg)
truth = snakemake.input.get("truth") or []  # demo sites only: a file name or a list of one
truth = [truth] if isinstance(truth, str) else list(truth)
with timed(log, f"kmeans {snakemake.wildcards.variant}"):
    labels, split, result = kmeans.run_stage(
        snakemake.input.features, snakemake.input.shards, snakemake.input.graph, cfg=cfg,
        seed=int(snakemake.params.seed), interpret_cfg=dict(snakemake.params.interpret),
        descriptors_path=snakemake.input.get("descriptors"), truth_path=truth[0] if truth else None)
result = {"site": snakemake.wildcards.site, "method": f"kmeans-{snakemake.wildcards.variant}",
          "variant": snakemake.wildcards.variant, **result,
          "config": {"kmeans": cfg, "seed": int(snakemake.params.seed)}}
evaluate.write_method_outputs(snakemake.output.labels, snakemake.output.metrics, labels, split, result)
