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
    params:
        # only the fit settings: a change of a label threshold must not refit every point
        fit={k: v for k, v in config.get("interpret", {}).items()
             if k in ("max_gap_days", "min_segment_days", "step_z_min")},
    threads: 2
    resources:
        # one shard of series and its step scan at a time, whatever N
        mem_mb=mem_mb(1000, 0),
        runtime=runtime_min(5, 2),
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/descriptors.py"


rule baseline:
    """Peer methods: pca-kmeans, raw-kmeans, raw-kmeans_smoothed, descriptors-kmeans."""
    input:
        shards="results/{site}/shards.h5",
        descriptors="results/{site}/features/descriptors.h5",
        graph="results/{site}/graph.h5",
        truth=truth_file,
    output:
        labels="results/{site}/clusters/{baseline}.h5",
        metrics="results/{site}/clusters/{baseline}.json",
    log:
        log_path("baseline", "{site}.{baseline}"),
    benchmark:
        bench_path("baseline", "{site}.{baseline}")
    params:
        cfg=config["kmeans"],
        baselines=config.get("baselines", {}),
        interpret=config.get("interpret", {}),
        # only the smoothed peer reads the smooth: section (others must not rerun on its change)
        smooth=lambda wc: config["smooth"] if wc.baseline == "raw-kmeans_smoothed" else {},
        seed=config["seed"],
    threads: 2
    resources:
        mem_mb=mem_mb(1500, 100),
        runtime=runtime_min(5, 15),
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/baseline.py"
