rule kmeans:
    """Batched mini-batch k-means on one feature variant: labels, centres, fit metrics."""
    input:
        features="results/{site}/features/{variant}.h5",
        shards="results/{site}/shards.h5",
    output:
        "results/{site}/clusters/kmeans-{variant}.h5",
    log:
        log_path("kmeans", "{site}.{variant}"),
    benchmark:
        bench_path("kmeans", "{site}.{variant}")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("kmeans")
    resources:
        **requests("kmeans"),
    params:
        cfg=kmeans_params(),
        seed=config["seed"],
        code=code_digest("kmeans"),
    script:
        "../../scripts/kmeans.py"


rule kmeans_sweep:
    """Metrics for every k in kmeans.k_range, to choose k (kmeans.k_sweep: true)."""
    input:
        features="results/{site}/features/{variant}.h5",
        graph="results/{site}/graph.h5",
        shards="results/{site}/shards.h5",
    output:
        "results/{site}/clusters/kmeans-{variant}_k.tsv",
    log:
        log_path("kmeans_sweep", "{site}.{variant}"),
    benchmark:
        bench_path("kmeans_sweep", "{site}.{variant}")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("kmeans_sweep")
    resources:
        **requests("kmeans_sweep"),
    params:
        cfg=kmeans_params(sweep=True),
        seed=config["seed"],
        code=code_digest("kmeans_sweep"),
    script:
        "../../scripts/kmeans_sweep.py"
