rule evaluate:
    """Metrics, cluster descriptors and suggested labels of one method -> clusters/{method}.json."""
    input:
        labels="results/{site}/clusters/{method}.h5",
        shards="results/{site}/shards.h5",
        graph="results/{site}/graph.h5",
        descriptors="results/{site}/features/descriptors.h5",
        truth=truth_file,
    output:
        "results/{site}/clusters/{method}.json",
    log:
        log_path("evaluate", "{site}.{method}"),
    benchmark:
        bench_path("evaluate", "{site}.{method}")
    conda:
        "../../envs/io.yaml"
    threads: 1
    resources:
        **requests("evaluate"),
    params:
        thresholds={k: config["interpret"][k] for k in (*THRESHOLDS, *FIT_SETTINGS)},
    script:
        "../../scripts/evaluate.py"
