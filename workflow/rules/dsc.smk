rule dsc:
    """Deep Spatiotemporal Clustering on each point's space-time patch (GPU when present)."""
    input:
        # not features/dyn.h5: DSC's labels never depend on the embedding, so its fit metrics in
        # the dyn space are measured by evaluate (an embedding setting does not retrain DSC)
        shards="results/{site}/shards.h5",
    output:
        labels="results/{site}/clusters/dsc.h5",
        train_log="results/{site}/dsc/train_log.tsv",
    log:
        log_path("dsc"),
    benchmark:
        bench_path("dsc")
    conda:
        "../../envs/torch-gpu.yaml"
    threads: int(config["dsc"].get("cpu_threads", 2))
    resources:
        **requests("dsc"),
        gpu=1,
    params:
        # silhouette_sample: read by the evaluate job, which measures DSC's fit
        cfg=dsc_params(),
        seed=config["seed"],
        checkpoint_dir=lambda wc: f"results/{wc.site}/dsc/checkpoints",
        code=code_digest("dsc"),
    script:
        "../../scripts/dsc.py"
