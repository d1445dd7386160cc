rule cluster_figures:
    """Cluster map and per-cluster mean +/- std series of one method."""
    input:
        labels="results/{site}/clusters/{method}.h5",
        metrics="results/{site}/clusters/{method}.json",
        shards="results/{site}/shards.h5",
    output:
        map=report("results/{site}/figures/{method}_map.png", caption="../report/cluster_map.rst",
                   category="{site}", subcategory="{method}"),
        clusters=report("results/{site}/figures/{method}_clusters.png",
                        caption="../report/cluster_series.rst", category="{site}",
                        subcategory="{method}"),
    log:
        log_path("figures", "{site}.{method}"),
    benchmark:
        bench_path("figures", "{site}.{method}")
    params:
        cfg=config.get("report", {}),
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=mem_mb(1500, 300),
        runtime=runtime_min(5, 10),
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/figures.py"


rule export_labels:
    """clusters.csv (pid,lat,lon,<method>...) and a GeoJSON layer for QGIS."""
    input:
        shards="results/{site}/shards.h5",
        labels=lambda wc: [f"results/{wc.site}/clusters/{m}.h5" for m in methods()],
    output:
        csv="results/{site}/clusters.csv",
        geojson="results/{site}/clusters.geojson",
    log:
        log_path("export"),
    benchmark:
        bench_path("export")
    params:
        methods=methods(),
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 500),
        runtime=runtime_min(5, 10),
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/export_labels.py"


rule provenance:
    """Resolved config, versions, input checksums, git commit, devices and wall times."""
    input:
        shards="results/{site}/shards.h5",
        metrics=lambda wc: [f"results/{wc.site}/clusters/{m}.json" for m in methods()],
    output:
        "results/{site}/provenance.json",
    log:
        log_path("provenance"),
    params:
        config=config,
        site=lambda wc: SITES.loc[wc.site].to_dict(),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/provenance.py"


rule summary:
    """Cross-site table: site x method x metric."""
    input:
        lambda wc: [f"results/{s}/clusters/{m}.json" for s in SITES.index for m in methods()],
    output:
        report("results/summary.tsv", caption="../report/summary.rst", category="Summary"),
    log:
        "logs/summary.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/summary.py"
