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


def rule_file_patterns(_wildcards=None):
    """Benchmark and log patterns of every rule, and whether it picks a torch device.

    provenance.py recovers each job of a site (and its wildcards) from these
    file names; the dict only changes when a rule's log/benchmark path does.
    """
    import re

    def plain(pattern):
        # drop wildcard constraints ({site,a|b} -> {site}): the site list must
        # not enter the params, or adding a site would rerun every provenance
        return re.sub(r"\{(\w+),(?:[^{}]|\{[^{}]*\})*\}", r"{\1}", str(pattern))

    out = {}
    for r in sorted(workflow.rules, key=lambda r: r.name):
        logs = [plain(f) for f in r.log]
        out[r.name] = {
            "benchmark": plain(r.benchmark) if r.benchmark else None,
            "log": logs[0] if logs else None,
            "device": "device" in r.params.keys(),
        }
    return out


def site_products(wildcards):
    """Everything a site's run leaves behind but its provenance (so provenance runs last)."""
    own = f"results/{wildcards.site}/provenance.json"
    return [f for f in site_outputs(wildcards.site) if f != own and not f.endswith(".json")]


rule export_labels:
    """clusters.csv (pid,lat,lon,<method>...) and, with report.geojson, a GeoJSON layer."""
    input:
        shards="results/{site}/shards.h5",
        labels=lambda wc: [f"results/{wc.site}/clusters/{m}.h5" for m in methods()],
    output:
        csv="results/{site}/clusters.csv",
        **({"geojson": "results/{site}/clusters.geojson"} if GEOJSON else {}),
    log:
        log_path("export"),
    benchmark:
        bench_path("export")
    params:
        methods=methods(),
    threads: 1
    resources:
        mem_mb=mem_mb(500, 60),
        runtime=runtime_min(5, 10),
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/export_labels.py"


rule provenance:
    """Resolved config, versions, input checksums, git commit, devices and wall times."""
    input:
        shards="results/{site}/shards.h5",
        sources=source_files,
        truth=truth_file,
        metrics=lambda wc: [f"results/{wc.site}/clusters/{m}.json" for m in methods()],
        products=site_products,
    output:
        report("results/{site}/provenance.json", caption="../report/provenance.rst",
               category="{site}", subcategory="provenance"),
    log:
        log_path("provenance"),
    params:
        # Only what describes this site; the resolved config is read at run time
        # (a config param would rerun every site's provenance on any change).
        site=lambda wc: SITES.loc[wc.site].to_dict(),
        fmt=lambda wc: FORMATS[SITES.loc[wc.site, "format"]],
        rules=rule_file_patterns,
        hash_sources=config.get("report", {}).get("hash_sources", True),
    threads: 1
    resources:
        mem_mb=500,
        runtime=runtime_min(5, 10),
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/provenance.py"


rule summary:
    """Cross-site table (site x method x metric) and the report's comparison page."""
    input:
        metrics=lambda wc: [f"results/{s}/clusters/{m}.json" for s in SITES.index for m in methods()],
        provenance=expand("results/{site}/provenance.json", site=SITES.index),
    output:
        tsv=report("results/summary.tsv", caption="../report/summary.rst", category="Summary"),
        html=report("results/summary.html", caption="../report/comparison.rst", category="Summary"),
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
