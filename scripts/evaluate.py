"""Rule ``evaluate``: metrics, cluster descriptors and suggested labels of one method -> clusters/{method}.json."""
from insarclust.evaluate import evaluate_file
from insarclust.logs import start_rule, timed

log = start_rule(snakemake)
truth = list(snakemake.input.get("truth", []) or [])
# dsc: its fit is measured in dyn here; kmeans-{variant}: in its variant, with the k-means diagnostics
features = list(snakemake.input.get("features", []) or [])
fit = dict(snakemake.params.fit)
with timed(log, f"evaluate {snakemake.wildcards.method}"):
    evaluate_file(snakemake.input.labels, snakemake.output[0], graph_path=snakemake.input.graph,
                  shards_path=snakemake.input.shards, descriptors_path=snakemake.input.descriptors,
                  truth_path=truth[0] if truth else None, thresholds=dict(snakemake.params.thresholds),
                  features_path=features[0] if features else None,
                  partial_truth=snakemake.params.partial_truth, **fit)
