rule cluster_figures:
    """Cluster map and per-cluster mean +/- std series of one method."""
    input:
        labels="results/{site}/clusters/{method}.h5",
        metrics="results/{site}/clusters/{method}.json",
        shards="results/{site}/shards.h5",
    output:
        map=report(
            "results/{site}/figures/{method}_map.png",
            caption="../report/cluster_map.rst",
            category="{site}",
            subcategory="{method}",
        ),
        clusters=report(
            "results/{site}/figures/{method}_clusters.png",
            caption="../report/cluster_series.rst",
            category="{site}",
            subcategory="{method}",
        ),
    log:
        log_path("figures", "{site}.{method}"),
    benchmark:
        bench_path("figures", "{site}.{method}")
    conda:
        "../../envs/report.yaml"
    threads: threads_of("cluster_figures")
    resources:
        **requests("cluster_figures"),
    params:
        cfg=report_params(),
        seed=config["seed"],
        code=code_digest("figures"),
    script:
        "../../scripts/figures.py"


rule dsc_figure:
    """DSC loss per epoch, drawn from the training log; the title says whether it converged."""
    input:
        train_log="results/{site}/dsc/train_log.tsv",
        # written with the log by the dsc job: its record says whether training converged
        labels="results/{site}/clusters/dsc.h5",
    output:
        report(
            "results/{site}/figures/dsc_loss.png",
            caption="../report/dsc_loss.rst",
            category="{site}",
            subcategory="dsc",
        ),
    log:
        log_path("dsc_figure"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        dpi=config["report"]["dpi"],
        variant=config["dsc"]["variant"],
        tol=config["dsc"]["tol"],
        code=code_digest("dsc_figure"),
    script:
        "../../scripts/dsc_figure.py"


rule k_sweep_figure:
    """Quality metrics against k, to choose k (kmeans.k_sweep: true)."""
    input:
        "results/{site}/clusters/kmeans-{variant}_k.tsv",
    output:
        report(
            "results/{site}/figures/kmeans-{variant}_k.png",
            caption="../report/k_sweep.rst",
            category="{site}",
            subcategory="k choice",
        ),
    log:
        log_path("k_sweep_figure", "{site}.{variant}"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        dpi=config["report"]["dpi"],
        code=code_digest("k_sweep_figure"),
    script:
        "../../scripts/k_sweep_figure.py"


rule export_labels:
    """clusters.csv (pid,lat,lon,<method>...) and, with report.geojson, a GeoJSON layer."""
    input:
        shards="results/{site}/shards.h5",
        labels=lambda wc: [f"results/{wc.site}/clusters/{m}.h5" for m in METHODS],
    output:
        **({"geojson": "results/{site}/clusters.geojson"} if GEOJSON else {}),
        csv="results/{site}/clusters.csv",
    log:
        log_path("export"),
    benchmark:
        bench_path("export")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("export_labels")
    resources:
        **requests("export_labels"),
    params:
        methods=METHODS,
        code=code_digest("export_labels"),
    script:
        "../../scripts/export_labels.py"


rule provenance:
    """Resolved config, versions, input checksums, git commit, devices and wall times."""
    input:
        shards="results/{site}/shards.h5",
        sources=source_files,
        truth=truth_file,
        metrics=lambda wc: [f"results/{wc.site}/clusters/{m}.json" for m in METHODS],
        # a changed product (a redrawn figure too) rewrites the record, so the config it
        # holds is the one behind every file; not ancient(): Snakemake does not carry a
        # rerun past an ancient() input, which left provenance and the summary a run behind
        products=site_products,
    output:
        report(
            "results/{site}/provenance.json",
            caption="../report/provenance.rst",
            category="{site}",
            subcategory="provenance",
        ),
    log:
        log_path("provenance"),
    conda:
        "../../envs/io.yaml"
    threads: threads_of("provenance")
    resources:
        **requests("provenance"),
    params:
        # Only what describes this site; the resolved config is read at run time
        # (a config param would rerun every site's provenance on any change).
        site=site_row,
        fmt=lambda wc: site_format(wc.site),
        rules=rule_file_patterns,
        hash_sources=config["report"]["hash_sources"],
        code=code_digest("provenance"),
    script:
        "../../scripts/provenance.py"


rule summary:
    """Cross-site table (site x method x metric) and the report's comparison page."""
    input:
        metrics=[f"results/{s}/clusters/{m}.json" for s in SITES.index for m in METHODS],
        # how alike the methods' clusters are (the comparison page), also on sites without truth
        labels=[f"results/{s}/clusters/{m}.h5" for s in SITES.index for m in METHODS],
        provenance=expand("results/{site}/provenance.json", site=SITES.index),
    output:
        tsv=report(
            "results/summary.tsv", caption="../report/summary.rst", category="Summary"
        ),
        html=report(
            "results/summary.html",
            caption="../report/comparison.rst",
            category="Summary",
        ),
    log:
        "logs/summary.log",
    conda:
        "../../envs/io.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        # the tables list the sites in the site table's order: reordering its rows reorders them
        # (Snakemake compares the set of input files, not their order)
        sites=list(SITES.index),
        code=code_digest("summary"),
    script:
        "../../scripts/summary.py"
