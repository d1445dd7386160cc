rule dsc:
    """Deep Spatiotemporal Clustering on each point's space-time patch (GPU when present)."""
    input:
        shards="results/{site}/shards.h5",
        graph="results/{site}/graph.h5",
        dyn="results/{site}/features/dyn.h5",
        descriptors="results/{site}/features/descriptors.h5",
        truth=truth_file,
    output:
        labels="results/{site}/clusters/dsc.h5",
        metrics="results/{site}/clusters/dsc.json",
        train_log="results/{site}/dsc/train_log.tsv",
        loss=report("results/{site}/figures/dsc_loss.png", caption="../report/dsc_loss.rst",
                    category="{site}", subcategory="dsc"),
    log:
        log_path("dsc"),
    benchmark:
        bench_path("dsc")
    params:
        cfg=config["dsc"],
        kmeans=config["kmeans"],
        interpret=config.get("interpret", {}),
        seed=config["seed"],
        device=config["device"],
        checkpoint_dir=lambda wc: f"results/{wc.site}/dsc/checkpoints",
    threads: 2
    resources:
        # training memory is set by train_sample and the patch size, not N; the
        # per-million term covers the k-d tree, latents and label arrays
        mem_mb=mem_mb(3000, 1500),
        runtime=runtime_min(30, 60),
        gpu=1,
    conda:
        "../../envs/torch-gpu.yaml"
    script:
        "../../scripts/dsc.py"
