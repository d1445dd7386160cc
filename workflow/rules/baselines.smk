rule descriptors:
    """Per-point trend, acceleration, annual amplitude/phase, step, residual RMS."""
    input:
        "results/{site}/shards.h5",
    output:
        "results/{site}/features/descriptors.h5",
    log:
        log_path("descriptors"),
    benchmark:
        bench_path("descriptors")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("descriptors")
    resources:
        **requests("descriptors"),
    params:
        # only the fit settings: a change of a label threshold must not refit every point
        fit={k: config["interpret"][k] for k in FIT_SETTINGS},
        code=code_digest("descriptors"),
    script:
        "../../scripts/descriptors.py"


rule baseline:
    """Peer methods: pca-kmeans, raw-kmeans, raw-kmeans_smoothed, descriptors-kmeans.

    In the torch environment: the smoothed peer smooths the series like the seed method.
    """
    input:
        shards="results/{site}/shards.h5",
        # only descriptors-kmeans reads the descriptors (a descriptor setting refits no other peer)
        descriptors=lambda wc: (
            f"results/{wc.site}/features/descriptors.h5"
            if wc.baseline == "descriptors-kmeans"
            else []
        ),
        # only the smoothed peer reads the graph
        graph=lambda wc: (
            f"results/{wc.site}/graph.h5"
            if wc.baseline == "raw-kmeans_smoothed"
            else []
        ),
    output:
        "results/{site}/clusters/{baseline}.h5",
    log:
        log_path("baseline", "{site}.{baseline}"),
    benchmark:
        bench_path("baseline", "{site}.{baseline}")
    conda:
        "../../envs/torch.yaml"
    threads: threads_of("baseline")
    resources:
        **requests("baseline"),
    params:
        cfg=baseline_params,
        seed=config["seed"],
        code=code_digest("baseline"),
    script:
        "../../scripts/baseline.py"
