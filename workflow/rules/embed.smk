rule embed_fit:
    """Reservoir + PCA/projection fitted on a seeded sample of the site's series."""
    input:
        "results/{site}/shards.h5",
    output:
        "results/{site}/embed/model.pt",
    log:
        log_path("embed_fit"),
    benchmark:
        bench_path("embed_fit")
    conda:
        "../../envs/torch.yaml"
    threads: threads_of("embed_fit")
    resources:
        **requests("embed_fit"),
    params:
        cfg=embed_params(),
        seed=config["seed"],
        code=code_digest("embed_fit"),
    script:
        "../../scripts/embed_fit.py"


rule embed_part:
    """Embed rows of part {part} of {n} (one cluster job per part)."""
    input:
        shards="results/{site}/shards.h5",
        model=embed_model,
    output:
        temp("results/{site}/embed/parts/{part}-of-{n}.h5"),
    log:
        log_path("embed", "{site}.{part}-of-{n}"),
    benchmark:
        bench_path("embed", "{site}.{part}-of-{n}")
    conda:
        "../../envs/torch.yaml"
    threads: threads_of("embed_part")
    resources:
        **requests("embed_part"),
    params:
        code=code_digest("embed_part"),
    script:
        "../../scripts/embed_part.py"


rule embed_gather:
    """Concatenate the parts into features/dyn.h5 (identical for any number of parts)."""
    input:
        embed_parts,
    output:
        "results/{site}/features/dyn.h5",
    log:
        log_path("embed_gather"),
    benchmark:
        bench_path("embed_gather")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("embed_gather")
    resources:
        **requests("embed_gather"),
    params:
        code=code_digest("embed_gather"),
    script:
        "../../scripts/embed_gather.py"


rule static_features:
    """dyn + standardised static columns -> features/dyn+static.h5."""
    input:
        dyn="results/{site}/features/dyn.h5",
        shards="results/{site}/shards.h5",
    output:
        "results/{site}/features/dyn+static.h5",
    log:
        log_path("static_features"),
    benchmark:
        bench_path("static_features")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("static_features")
    resources:
        **requests("static_features"),
    params:
        static_weight=static_weight_params,
        code=code_digest("static_features"),
    script:
        "../../scripts/static_features.py"
