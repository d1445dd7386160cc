"""End-to-end benchmark of one site: the whole workflow on an EGMS-format catalogue of N points.

    python bench/site.py --n 100000
    python bench/site.py --n 400000 --cores 2 --json bench-400k.json
    python bench/site.py --n 20000 --config 'dsc={"enabled": false}'
    python bench/site.py --n 400000 --set-threads kmeans=2 smooth=2   # does a second core pay?

The site is generated (``insarclust.demo``: mainland preset, Sentinel-1
calendar from 2018-06-01 over 4.5 years, 6-day revisit until the loss of
Sentinel-1B on 2021-12-23 and 12-day after, no acquisitions in the snow
season, atmosphere, missing epochs, six regimes), written once as an EGMS
CSV under ``--data`` and reused. The workflow (this checkout) is copied to a
fresh work folder and run with ``snakemake --cores C``; every rule's
``benchmark:`` file gives its wall time, CPU time and peak RSS. Printed per
rule: jobs, wall s, CPU s, peak RSS, share of the summed wall time; then
the end-to-end wall time of the run; then, per method, the agreement with
the generated regimes (the site table's ``truth`` column names them), so
that the methods are also compared at the site's size. ``--json`` also writes the figures
(the input of ``insarclust.resources``' cost model, which also gives a rule two
cores only where its CPU time is >= 1.25x its wall time in the largest record:
a rule measured on one core cannot show that, so measure it with
``--set-threads RULE=2`` before a record replaces the shipped ones).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
COPY = ["Snakefile", "workflow", "config", "scripts", "envs", "src"]


def make_site(n: int, years: float, seed: int, data: Path) -> Path:
    """The EGMS CSV of a generated site of ``n`` points (cached)."""
    sys.path.insert(0, str(ROOT / "src"))
    from insarclust.demo import generate
    from insarclust.formats import get_format, load_formats

    path = data / f"egms-{n}-{years:g}y-{seed}.csv"
    truth = path.with_suffix(".truth.csv")
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        fmt = get_format("egms", load_formats(ROOT / "config" / "formats.yaml"))
        table, regimes = generate("bench", "mainland", fmt, n_points=n, years=years, seed=seed)
        import pyarrow as pa
        import pyarrow.csv as pacsv

        tmp = path.with_suffix(".tmp")
        pacsv.write_csv(pa.Table.from_pandas(table, preserve_index=False), tmp)
        os.replace(tmp, path)
        regimes.to_csv(truth, index=False)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s",
              flush=True)
    return path


def read_benchmarks(workdir: Path) -> dict:
    """Per benchmark folder (one per rule): jobs, summed wall and CPU seconds, the longest
    job's wall seconds, peak RSS (MB)."""
    out = {}
    for tsv in sorted((workdir / "benchmarks").rglob("*.tsv")):
        stage = tsv.parent.relative_to(workdir / "benchmarks").as_posix()
        with open(tsv, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        rec = out.setdefault(stage, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "max_job_s": 0.0,
                                     "max_rss_mb": 0.0})
        for row in rows:
            rec["jobs"] += 1
            rec["wall_s"] += float(row["s"])
            rec["cpu_s"] += float(row.get("cpu_time") or 0.0)
            rec["max_job_s"] = max(rec["max_job_s"], float(row["s"]))
            rec["max_rss_mb"] = max(rec["max_rss_mb"], float(row.get("max_rss") or 0.0))
    return out


def request_margins(stages: dict, n_points: int, n_epochs: int, n_dates: int, config: dict) -> dict:
    """Per rule, the shipped model's request for this site over what its longest job took and
    its peak RSS (x1.0 = just covered; the model's safety factor is x3 on time, x1.5 on memory).
    A rule's plainest request (evaluate's k-means jobs ask for more)."""
    from insarclust import resources

    out = {}
    for stage, r in stages.items():
        rule = resources.FOLDER_RULE.get(stage, stage)
        if rule not in resources.SCALE or not r["jobs"]:
            continue
        req = resources.request(rule, n_points, n_epochs, n_dates, config)
        out[stage] = {"threads": resources.threads(rule), "runtime_min": req["runtime"], "mem_mb": req["mem_mb"],
                      "time_margin": req["runtime"] * 60 / max(r["max_job_s"], 1e-9),
                      "mem_margin": req["mem_mb"] / max(r["max_rss_mb"], 1e-9)}
    return out


def method_scores(summary_tsv: Path) -> dict:
    """Per method of the run's summary.tsv: ARI, NMI and label match against the generated
    regimes, and the k-means seed stability (where measured)."""
    out: dict = {}
    with open(summary_tsv, newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["metric"] in ("ari", "nmi", "label_match", "seed_stability_ari"):
                out.setdefault(row["method"], {})[row["metric"]] = float(row["value"])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100000, help="points of the site")
    ap.add_argument("--years", type=float, default=4.5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path("/tmp/insarclust-bench/data"),
                    help="where the generated CSV is cached")
    ap.add_argument("--workdir", type=Path, default=None, help="default: /tmp/insarclust-bench/site-N")
    ap.add_argument("--config", nargs="*", default=[], help="snakemake --config overrides")
    ap.add_argument("--set-threads", nargs="*", default=[], metavar="RULE=N",
                    help="snakemake --set-threads overrides, e.g. kmeans=2 to measure whether a "
                         "one-core rule's threads would pay (insarclust.resources.fit_threads)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    csv_path = make_site(args.n, args.years, args.seed, args.data)
    workdir = args.workdir or Path(f"/tmp/insarclust-bench/site-{args.n}")
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, workdir / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, workdir / name)
    # the generated regimes as the site's truth table: every method scored at this size
    truth = csv_path.with_suffix(".truth.csv")
    (workdir / "config/sites.tsv").write_text(f"site\tsource\tformat\ttruth\nbench\t{csv_path}\tegms\t{truth}\n")
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [str(snakemake), "--cores", str(args.cores)]
    if args.config:
        cmd += ["--config", *args.config]
    if args.set_threads:
        cmd += ["--set-threads", *args.set_threads]
    print(f"running {' '.join(cmd)} in {workdir}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-5000:]}")

    sys.path.insert(0, str(workdir / "src"))
    from insarclust import h5io, resources

    shards = h5io.Shards(workdir / "results/bench/shards.h5")
    n_dates = resources.shards_size(workdir / "results/bench/shards.h5").n_dates
    stages = read_benchmarks(workdir)
    total = sum(r["wall_s"] for r in stages.values())
    print(f"\nsite of {shards.n_points:,} points, {n_dates} dates, {len(shards.grid_dates)} regular epochs; "
          f"{args.cores} cores; {cpu_model()}")
    print(f"{'rule (benchmark folder)':<24} {'jobs':>4} {'wall s':>9} {'CPU s':>9} {'peak RSS MB':>12} {'share':>7}")
    for stage, r in sorted(stages.items(), key=lambda kv: -kv[1]["wall_s"]):
        print(f"{stage:<24} {r['jobs']:>4} {r['wall_s']:>9.1f} {r['cpu_s']:>9.1f} {r['max_rss_mb']:>12.0f} "
              f"{100 * r['wall_s'] / total:>6.1f}%")
    print(f"{'sum over jobs':<24} {'':>4} {total:>9.1f} {sum(r['cpu_s'] for r in stages.values()):>9.1f}")
    print(f"end to end (snakemake --cores {args.cores}): {wall:.1f} s = {wall / 60:.1f} min; "
          f"largest peak RSS {max(r['max_rss_mb'] for r in stages.values()):.0f} MB")
    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    for item in args.config:          # the run's --config overrides, as snakemake merged them
        key, _, value = item.partition("=")
        value = yaml.safe_load(value)
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    margins = request_margins(stages, shards.n_points, len(shards.grid_dates), n_dates, config)
    print(f"\nrequests of the shipped model for this site (insarclust.resources), over the longest job / peak RSS")
    print(f"{'rule (benchmark folder)':<24} {'cores':>5} {'runtime min':>11} {'x longest':>9} {'mem MB':>7} "
          f"{'x peak':>7}")
    for stage, m in sorted(margins.items(), key=lambda kv: kv[1]["time_margin"]):
        print(f"{stage:<24} {m['threads']:>5} {m['runtime_min']:>11} {m['time_margin']:>9.1f} {m['mem_mb']:>7} "
              f"{m['mem_margin']:>7.1f}")
    scores = method_scores(workdir / "results/summary.tsv")
    print("\nagreement with the generated regimes (ARI, NMI, label match) and seed stability, per method")
    print(f"{'method':<28} {'ARI':>6} {'NMI':>6} {'match':>6} {'seed':>6}")
    for method, m in scores.items():
        print(f"{method:<28} " + " ".join(f"{m.get(k, float('nan')):>6.3f}"
                                           for k in ("ari", "nmi", "label_match", "seed_stability_ari")))
    if args.json:
        args.json.write_text(json.dumps({
            "n_points": shards.n_points, "n_dates": n_dates, "n_grid": len(shards.grid_dates),
            "cores": args.cores, "cpu": cpu_model(), "date": time.strftime("%Y-%m-%d"),
            "config": args.config, "set_threads": args.set_threads, "end_to_end_s": wall,
            "rules": stages, "requests": margins, "scores": scores}, indent=2) + "\n")


if __name__ == "__main__":
    main()
