rule demo_data:
    """Synthetic demo site (CSV in the site's format) and its true regimes."""
    output:
        csv="resources/demo/{site}.csv.gz",
        truth="resources/demo/{site}.truth.csv",
    log:
        log_path("demo"),
    benchmark:
        bench_path("demo")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("demo_data")
    resources:
        **requests("demo_data"),
    params:
        preset=lambda wc: demo_preset(wc.site),
        fmt_name=format_name,
        fmt=lambda wc: site_format(wc.site),
        demo=config["demo"],
        seed=config["seed"],
        code=code_digest("demo_data"),
    script:
        "../../scripts/demo_data.py"
