rule evaluate:
    """Metrics, cluster descriptors and suggested labels of one method -> clusters/{method}.json."""
    input:
        labels="results/{site}/clusters/{method}.h5",
        shards="results/{site}/shards.h5",
        graph="results/{site}/graph.h5",
        descriptors="results/{site}/features/descriptors.h5",
        truth=truth_file,
        # dsc only: its fit is measured here in the dyn space (the dsc job does not read it)
        features=lambda wc: (
            [f"results/{wc.site}/features/dyn.h5"] if wc.method == "dsc" else []
        ),
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
        mem_mb=evaluate_mem_mb,
        runtime=request("evaluate", "runtime"),
    params:
        thresholds={k: config["interpret"][k] for k in (*THRESHOLDS, *FIT_SETTINGS)},
        fit=lambda wc: (
            {
                "seed": config["seed"],
                "silhouette_sample": config["dsc"]["silhouette_sample"],
            }
            if wc.method == "dsc"
            else {}
        ),
    script:
        "../../scripts/evaluate.py"
