rule evaluate:
    """Metrics, cluster descriptors and suggested labels of one method -> clusters/{method}.json."""
    input:
        labels="results/{site}/clusters/{method}.h5",
        shards="results/{site}/shards.h5",
        graph="results/{site}/graph.h5",
        descriptors="results/{site}/features/descriptors.h5",
        truth=truth_file,
        # dsc: its fit is measured here in the dyn space (the dsc job does not read it);
        # kmeans-{variant}: the k-means diagnostics, in the variant it was fitted on
        features=evaluate_features,
    output:
        "results/{site}/clusters/{method}.json",
    log:
        log_path("evaluate", "{site}.{method}"),
    benchmark:
        bench_path("evaluate", "{site}.{method}")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("evaluate")
    resources:
        mem_mb=evaluate_mem_mb,
        runtime=evaluate_runtime,
    params:
        thresholds={k: config["interpret"][k] for k in (*THRESHOLDS, *FIT_SETTINGS)},
        fit=evaluate_fit_params,
        # a user's truth table may list only some points (a demo's lists every point)
        partial_truth=lambda wc: not is_demo(wc.site),
        code=code_digest("evaluate"),
    script:
        "../../scripts/evaluate.py"
