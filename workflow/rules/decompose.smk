# Sites declared as an ascending + descending pair (source asc=...;desc=...):
# each track is read like any site into results/{site}/los/{track}.h5, then
# decompose solves for vertical and east-west series on grid cells and writes
# the site's shards.h5, which every later stage takes as usual.


rule demo_pair:
    """Synthetic ascending + descending tracks of one ground motion, and the true regime of each cell."""
    output:
        asc="resources/demo/{site}.asc.csv.gz",
        desc="resources/demo/{site}.desc.csv.gz",
        truth="resources/demo/{site}.cells.truth.csv",
    log:
        log_path("demo_pair"),
    benchmark:
        bench_path("demo_pair")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("demo_pair")
    resources:
        **requests("demo_pair"),
    params:
        preset=lambda wc: SOURCES[wc.site].preset,
        fmt_name=format_name,
        fmt=lambda wc: site_format(wc.site),
        demo=config["demo"],
        cells={k: config["decompose"][k] for k in ("cell_size_m", "crs")},
        seed=config["seed"],
        code=code_digest("demo_pair"),
    script:
        "../../scripts/demo_pair.py"


rule los_shards:
    """One track of a pair site: its CSV(s) into a shards.h5 of line-of-sight series."""
    input:
        lambda wc: track_files(wc.site, wc.track),
    output:
        temp("results/{site}/los/{track}.h5"),
    log:
        log_path("los_shards", "{site}.{track}"),
    benchmark:
        bench_path("los_shards", "{site}.{track}")
    wildcard_constraints:
        track="asc|desc",
    conda:
        "../../envs/io.yaml"
    threads: threads_of("los_shards")
    resources:
        **requests("los_shards"),
    params:
        fmt_name=format_name,
        fmt=lambda wc: site_format(wc.site),
        cfg=shards_params(),
        code=code_digest("los_shards"),
    script:
        "../../scripts/los_shards.py"


rule decompose:
    """Ascending + descending line of sight -> vertical and east-west series on grid cells (shards.h5)."""
    input:
        asc="results/{site}/los/asc.h5",
        desc="results/{site}/los/desc.h5",
    output:
        f"results/{{site,{pair_constraint()}}}/shards.h5",
    log:
        log_path("decompose"),
    benchmark:
        bench_path("decompose")
    conda:
        "../../envs/io.yaml"
    threads: threads_of("decompose")
    resources:
        **requests("decompose"),
    params:
        cfg=result_params(config, "decompose"),
        shards={k: config["shards"][k] for k in ("grid_step_days", "shard_size")},
        fmt_name=format_name,
        code=code_digest("decompose"),
    script:
        "../../scripts/decompose.py"


ruleorder: decompose > shards
