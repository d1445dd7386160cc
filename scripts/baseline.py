"""Rule ``baseline``: one peer method (pca-kmeans, raw-kmeans[_smoothed], descriptors-kmeans) -> clusters/{baseline}.h5|.json."""
from insarclust import evaluate
from insarclust.baselines import run_baseline
from insarclust.logs import setup_logging, timed

log = setup_logging(snakemake.log[0])
method = snakemake.wildcards.baseline
kmeans_cfg = dict(snakemake.params.cfg)
baselines_cfg = dict(snakemake.params.baselines)
seed = int(snakemake.params.seed)
truth = list(snakemake.input.get("truth", []) or [])
with timed(log, f"{method} {snakemake.wildcards.site}"):
    labels, split, result = run_baseline(
        method, snakemake.input.shards, snakemake.input.graph, snakemake.input.descriptors,
        kmeans_cfg=kmeans_cfg, baselines_cfg=baselines_cfg,
        interpret_cfg=dict(snakemake.params.interpret), seed=seed,
        truth_path=truth[0] if truth else None, smooth_cfg=dict(snakemake.params.smooth))
result = {"site": snakemake.wildcards.site, "method": method, **result,
          "config": {"kmeans": kmeans_cfg, "baselines": baselines_cfg, "seed": seed}}
evaluate.write_method_outputs(snakemake.output.labels, snakemake.output.metrics, labels, split, result)
