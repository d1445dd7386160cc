rule smooth:
    """H-hop graph smoothing of standardised features."""
    input:
        features="results/{site}/features/{base}.h5",
        graph="results/{site}/graph.h5",
    output:
        "results/{site}/features/{base}_smoothed.h5",
    log:
        log_path("smooth", "{site}.{base}"),
    benchmark:
        bench_path("smooth", "{site}.{base}")
    conda:
        "../../envs/torch.yaml"
    threads: threads_of("smooth")
    resources:
        **requests("smooth"),
    params:
        cfg=smooth_params(),
        code=code_digest("smooth"),
    script:
        "../../scripts/smooth.py"
