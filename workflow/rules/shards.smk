rule shards:
    """Stream the site's CSV(s) into Hilbert-ordered, sharded shards.h5 with regular series."""
    input:
        source_files,
    output:
        "results/{site}/shards.h5",
    log:
        log_path("shards"),
    benchmark:
        bench_path("shards")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("shards")
    resources:
        **requests("shards"),
    params:
        fmt_name=format_name,
        fmt=lambda wc: site_format(wc.site),
        cfg=shards_params(),
        code=code_digest("shards"),
    script:
        "../../scripts/shards.py"
