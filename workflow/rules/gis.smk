rule export_gpkg:
    """clusters.gpkg: one point layer with every method's label and regime and the descriptors."""
    input:
        shards="results/{site}/shards.h5",
        labels=lambda wc: [f"results/{wc.site}/clusters/{m}.h5" for m in METHODS],
        metrics=lambda wc: [f"results/{wc.site}/clusters/{m}.json" for m in METHODS],
        descriptors="results/{site}/features/descriptors.h5",
    output:
        "results/{site}/clusters.gpkg",
    log:
        log_path("export_gpkg"),
    benchmark:
        bench_path("export_gpkg")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("export_gpkg")
    resources:
        **requests("export_gpkg"),
    params:
        methods=METHODS,
        code=code_digest("export_gpkg"),
    script:
        "../../scripts/export_gpkg.py"
