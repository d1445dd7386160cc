rule kmeans:
    """Batched mini-batch k-means on one feature variant, with metrics JSON."""
    input:
        features="results/{site}/features/{variant}.h5",
        graph="results/{site}/graph.h5",
        shards="results/{site}/shards.h5",
        descriptors="results/{site}/features/descriptors.h5",
        truth=truth_file,
    output:
        labels="results/{site}/clusters/kmeans-{variant}.h5",
        metrics="results/{site}/clusters/kmeans-{variant}.json",
    log:
        log_path("kmeans", "{site}.{variant}"),
    benchmark:
        bench_path("kmeans", "{site}.{variant}")
    params:
        cfg=config["kmeans"],
        interpret=config.get("interpret", {}),
        seed=config["seed"],
    threads: 2
    resources:
        mem_mb=mem_mb(1500, 100),
        runtime=runtime_min(5, 10),
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/kmeans.py"


rule kmeans_sweep:
    """Metrics for every k in kmeans.k_range, to choose k (kmeans.k_sweep: true)."""
    input:
        features="results/{site}/features/{variant}.h5",
        graph="results/{site}/graph.h5",
        shards="results/{site}/shards.h5",
    output:
        table="results/{site}/clusters/kmeans-{variant}_k.tsv",
        figure=report("results/{site}/figures/kmeans-{variant}_k.png",
                      caption="../report/k_sweep.rst", category="{site}", subcategory="k choice"),
    log:
        log_path("kmeans_sweep", "{site}.{variant}"),
    benchmark:
        bench_path("kmeans_sweep", "{site}.{variant}")
    params:
        cfg=config["kmeans"],
        seed=config["seed"],
    threads: 2
    resources:
        mem_mb=mem_mb(1500, 100),
        runtime=runtime_min(10, 30),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/kmeans_sweep.py"
