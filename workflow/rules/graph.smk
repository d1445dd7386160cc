rule graph:
    """Geodesic k-NN graph (CSR) with distance-based edge weights."""
    input:
        "results/{site}/shards.h5",
    output:
        "results/{site}/graph.h5",
    log:
        log_path("graph"),
    benchmark:
        bench_path("graph")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("graph")
    resources:
        **requests("graph"),
    params:
        cfg=graph_params(),
        code=code_digest("graph"),
    script:
        "../../scripts/graph.py"
