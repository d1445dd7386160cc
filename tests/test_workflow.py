"""End-to-end: real Snakemake runs of the whole workflow on tiny demo sites.

The workflow (Snakefile, workflow/, config/, scripts/, envs/, src/) is copied
into a temporary directory with a small configuration, run once for the
module, and then checked: the file contract, one label per point and method,
the comparison table, provenance, the HTML report, the jobs an added site or
a changed ``smooth.H`` plans, and that untouched outputs keep their
timestamps. The slow test reruns everything from scratch and compares bytes.
"""
from __future__ import annotations

import base64
import copy
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from insarclust import h5io, methods

from conftest import copy_workflow

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SITES = [("demo-a", "demo:mainland", "ngu"), ("demo-b", "demo:arctic", "svalbard")]
N_POINTS = 1500

# Each module's tests share one run: keep them on one xdist worker.
pytestmark = pytest.mark.xdist_group("workflow")

TINY = {
    "demo": {"n_points": N_POINTS, "years": 3.0},
    "shards": {"shard_size": 512},
    "graph": {"k": 6},
    "embed": {"n_units": 40, "n_pca": 8, "out_dim": 8, "fit_sample": 500, "batch_size": 512},
    "smooth": {"H": 2},
    "kmeans": {"k": 4, "warm_start_size": 600, "silhouette_sample": 500},
    "baselines": {"pca_max_components": 8},
    "dsc": {"enabled": True, "k": 4, "patch_size": 5, "channels": [4, 8], "lstm_hidden": 8,
            "latent_dim": 4, "time_stride": 4, "batch_size": 128, "pretrain_epochs": 1,
            "epochs": 1, "train_sample": 400, "update_interval": 5},
    "report": {"max_map_points": 100000},
    "device": "cpu",
}


# The module's shared run: two sites, one raw and one smoothed k-means variant
# and one peer (enough for every incremental-rerun question). The slow test
# runs every method, DSC included.
FAST = {
    "kmeans": {"variants": ["dyn", "dyn+static", "dyn_smoothed"]},
    "baselines": {"pca-kmeans": False, "raw-kmeans": False, "raw-kmeans_smoothed": False,
                  "descriptors-kmeans": True},
    "dsc": {"enabled": False},
}


def _deep_update(base: dict, new: dict) -> dict:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def write_sites(workdir: Path, sites) -> None:
    """The site table of ``sites``: (site, source, format) or (site, source, format, truth) rows."""
    if any(len(s) > 3 for s in sites):
        lines = ["site\tsource\tformat\ttruth"] + ["\t".join((*s, "")[:4]) for s in sites]
    else:
        lines = ["site\tsource\tformat"] + ["\t".join(s) for s in sites]
    (workdir / "config/sites.tsv").write_text("\n".join(lines) + "\n")


def edit_config(workdir: Path, changes: dict) -> dict:
    """Deep-update config/config.yaml of ``workdir``; returns the previous config."""
    path = workdir / "config/config.yaml"
    before = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(_deep_update(copy.deepcopy(before), changes), sort_keys=False))
    return before


def make_workdir(dest: Path, sites=SITES, changes: dict | None = None) -> Path:
    """A runnable copy of the workflow with the tiny configuration, as its own git repo."""
    copy_workflow(dest)
    edit_config(dest, _deep_update(copy.deepcopy(TINY), changes or {}))
    write_sites(dest, sites)
    git = ["git", "-C", str(dest), "-c", "user.name=test", "-c", "user.email=test@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "workflow under test"], check=True)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> str:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))
                         if "Error" in p.read_text() or "Traceback" in p.read_text())
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{out[-6000:]}\n{logs}")
    return out


def planned_jobs(workdir: Path, *args: str) -> list[dict]:
    """``[{"rule", "output": [...], "wildcards": {...}}]`` of a dry-run."""
    out = snakemake(workdir, "--dry-run", *args)
    jobs = []
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\S+):$", line)
        if m:
            jobs.append({"rule": m.group(1), "output": [], "wildcards": {}})
        elif jobs and line.startswith("    output: "):
            jobs[-1]["output"] = line[len("    output: "):].split(", ")
        elif jobs and line.startswith("    wildcards: "):
            jobs[-1]["wildcards"] = dict(kv.split("=", 1) for kv in line[len("    wildcards: "):].split(", "))
    return jobs


def planned_after_editing_script(workdir: Path, name: str) -> list[dict]:
    """:func:`planned_jobs` with a comment appended to ``scripts/{name}.py`` (restored after)."""
    script = workdir / "scripts" / f"{name}.py"
    old = script.read_text()
    try:
        script.write_text(old + "# edited\n")
        return planned_jobs(workdir)
    finally:
        script.write_text(old)


def config_of(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config/config.yaml").read_text())


def methods_of(cfg: dict) -> list[str]:
    return methods.methods(cfg)


def fingerprint(workdir: Path) -> dict:
    """Bytes that must repeat exactly: label arrays, clusters.csv, summary.tsv."""
    out = {"summary.tsv": (workdir / "results/summary.tsv").read_bytes()}
    for path in sorted((workdir / "results").glob("*/clusters/*.h5")):
        data = h5io.read_datasets(path, ["labels", "split"])
        out[str(path.relative_to(workdir))] = data["labels"].tobytes() + data["split"].tobytes()
    for path in sorted((workdir / "results").glob("*/clusters.csv")):
        out[str(path.relative_to(workdir))] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The tiny workflow (FAST methods) run once from scratch: ``(workdir, fingerprint)``."""
    workdir = make_workdir(tmp_path_factory.mktemp("workflow") / "repo", changes=FAST)
    snakemake(workdir)
    return workdir, fingerprint(workdir)


# --------------------------------------------------------------------------- #
# checks shared by the fast run and the full (slow) runs


def check_contract(workdir: Path) -> None:
    cfg = config_of(workdir)
    methods = methods_of(cfg)
    for site, _, fmt in SITES:
        res = workdir / "results" / site
        shards = h5io.Shards(res / "shards.h5")
        n = shards.n_points
        assert n == N_POINTS
        data = h5io.read_datasets(res / "shards.h5", ["points/lat", "points/lon", "points/static",
                                                     "series/displacement", "series/regular",
                                                     "series/dates", "series/grid_dates"])
        assert data["points/lat"].dtype == np.float64 and np.all(np.abs(data["points/lat"]) <= 90)
        assert data["points/static"].dtype == np.float32 and data["points/static"].shape[0] == n
        assert data["series/dates"].dtype == np.int32 and data["series/grid_dates"].dtype == np.int32
        assert data["series/displacement"].shape == (n, len(data["series/dates"]))
        assert data["series/regular"].shape == (n, len(data["series/grid_dates"]))
        assert not np.isnan(data["series/regular"]).any()
        assert shards.offsets[0] == 0 and shards.offsets[-1] == n and np.all(np.diff(shards.offsets) > 0)
        assert shards.offsets.dtype == np.int64
        assert shards.attrs["site"] == site and shards.attrs["format"] == fmt
        assert re.fullmatch(r"[0-9a-f]{64}", shards.attrs["source_sha256"])
        pids = shards.pids()
        assert len(set(pids)) == n

        # every point exactly one label per method, in clusters.csv too
        with open(res / "clusters.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["pid", "lat", "lon", *methods]
        assert [r[0] for r in rows[1:]] == list(pids)
        for j, method in enumerate(methods):
            clusters = h5io.read_clusters(res / "clusters" / f"{method}.h5")
            labels, split = clusters["labels"], clusters["split"]
            assert labels.shape == (n,) and labels.dtype == np.int32
            assert split.shape == (n,) and split.dtype == np.uint8 and set(np.unique(split)) <= {0, 1}
            result = json.loads((res / "clusters" / f"{method}.json").read_text())
            assert labels.min() >= 0 and labels.max() < result["k"]
            assert sum(result["sizes"]) == n
            np.testing.assert_array_equal([int(r[3 + j]) for r in rows[1:]], labels)
        if cfg["report"].get("geojson"):
            geo = json.loads((res / "clusters.geojson").read_text())
            assert len(geo["features"]) == n
            assert set(geo["features"][0]["properties"]) == {"pid", "lat", "lon", *methods}
        check_gpkg(res / "clusters.gpkg", pids, methods)

        for method in methods:
            for kind in ("map", "clusters"):
                png = res / "figures" / f"{method}_{kind}.png"
                assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        if cfg["dsc"]["enabled"]:
            assert (res / "figures/dsc_loss.png").stat().st_size > 5000


def check_gpkg(path: Path, pids, methods) -> None:
    """The site's GeoPackage: one point layer, every point in shard order, labels and regimes."""
    import pyogrio
    import pyogrio.raw

    info = pyogrio.read_info(path)
    assert info["geometry_type"] == "Point" and info["features"] == len(pids)
    assert {*methods, *(f"{m}_regime" for m in methods), "trend_mm_yr"} <= set(info["fields"])
    meta, _, _, values = pyogrio.raw.read(path, columns=["pid", *methods[:1]], max_features=5)
    assert list(values[0]) == list(pids[:5])


def check_summary(workdir: Path) -> None:
    methods = methods_of(config_of(workdir))
    with open(workdir / "results/summary.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert list(rows[0]) == ["site", "method", "metric", "value"]
    table = {(r["site"], r["method"], r["metric"]): r["value"] for r in rows}
    assert {(s, m) for s, m, _ in table} == {(s, m) for s, *_ in SITES for m in methods}
    for site, *_ in SITES:
        for method in methods:
            result = json.loads((workdir / f"results/{site}/clusters/{method}.json").read_text())
            assert int(table[(site, method, "k")]) == result["k"]
            for metric in ("ari", "nmi", "label_match", "silhouette", "davies_bouldin",
                           "spatial_coherence"):
                value = result["metrics"][metric]
                expect = float("nan") if value is None else value
                np.testing.assert_equal(float(table[(site, method, metric)]), expect)
            assert 0 <= float(table[(site, method, "label_match")]) <= 1
    html = (workdir / "results/summary.html").read_text()
    assert all(f"<h2>{site}</h2>" in html for site, *_ in SITES)


def check_provenance(workdir: Path) -> None:
    cfg = config_of(workdir)
    head = subprocess.run(["git", "-C", str(workdir), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    for site, source, fmt in SITES:
        prov = json.loads((workdir / f"results/{site}/provenance.json").read_text())
        assert prov["site"] == site
        assert prov["site_row"] == {"site": site, "source": source, "format": fmt}
        assert prov["config"] == config_of(workdir)
        assert prov["git"]["commit"] == head
        assert prov["packages"]["numpy"] == np.__version__
        demo_csv = workdir / f"resources/demo/{site}.csv.gz"
        files = {f["path"]: f["sha256"] for f in prov["inputs"]["files"]}
        assert files[f"resources/demo/{site}.csv.gz"] == hashlib.sha256(demo_csv.read_bytes()).hexdigest()
        assert prov["inputs"]["source_sha256"] == h5io.read_attrs(
            workdir / f"results/{site}/shards.h5")["source_sha256"]
        stages = prov["stages"]
        for rule in ("demo_data", "shards", "graph", "embed_fit", "embed_part", "smooth", "kmeans",
                     "baseline", "cluster_figures", "export_labels", "export_gpkg"):
            assert stages[rule]["jobs"] >= 1 and stages[rule]["wall_s"] > 0, rule
        n_variants = len(cfg["kmeans"]["variants"])
        assert stages["kmeans"]["jobs"] == n_variants
        assert stages["smooth"]["jobs"] == len({v.replace("_smoothed", "") for v in cfg["kmeans"]["variants"]
                                                if v.endswith("_smoothed")})
        assert stages["cluster_figures"]["jobs"] == len(methods_of(cfg))
        # the config asks for the CPU: torch stages must have recorded it
        torch_rules = ["embed_fit", "embed_part"] + (["dsc"] if cfg["dsc"]["enabled"] else [])
        for rule in torch_rules:
            assert stages[rule]["device"] == "cpu", (rule, stages[rule])
        # the code of each stage: the digest its rule's outputs were made with
        from insarclust.code_digest import code_digest

        assert stages["graph"]["code"] == code_digest(workdir / "scripts/graph.py", workdir / "src/insarclust")
        assert stages["cluster_figures"]["code"] == code_digest(workdir / "scripts/figures.py",
                                                                workdir / "src/insarclust")
        assert all(re.fullmatch(r"[0-9a-f]{64}", stage["code"]) for stage in stages.values()), stages


def check_report(workdir: Path) -> None:
    snakemake(workdir, "--report", "report.html")
    text = (workdir / "report.html").read_text(encoding="utf-8")
    results = json.loads(re.search(r"var results = (\{.*?\});\n", text, re.S).group(1))
    figures = sorted(str(p.relative_to(workdir)) for p in (workdir / "results").glob("*/figures/*.png"))
    assert figures
    expected = figures + ["results/summary.tsv", "results/summary.html"]
    expected += [f"results/{s}/provenance.json" for s, *_ in SITES]
    assert set(expected) <= set(results)
    for path in expected:
        entry = results[path]
        payload = entry["data_uri"].split("base64,", 1)[1]
        assert base64.b64decode(payload) == (workdir / path).read_bytes(), path
        assert entry["caption"].strip(), f"{path} has no caption"
        assert "TODO" not in entry["caption"]
    # captions are rendered per site/method
    some_map = next(p for p in figures if p.endswith("kmeans-dyn_smoothed_map.png"))
    assert "kmeans-dyn_smoothed" in results[some_map]["caption"]
    assert "smoothed over each point" in results[some_map]["caption"]
    # front page lists the sites and explains the run; nothing is fetched from the network
    desc = json.loads(re.search(r"var workflow_desc = (\".*?\");\n", text, re.S).group(1))
    assert all(site in desc for site, *_ in SITES)
    assert "What the pipeline did" in desc
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']https?://", text)


def test_outputs_follow_the_contract(run):
    check_contract(run[0])


def test_summary_table(run):
    check_summary(run[0])


def test_provenance(run):
    check_provenance(run[0])


def test_report_embeds_every_figure(run):
    check_report(run[0])


def test_added_site_plans_only_its_jobs(run):
    workdir, _ = run
    write_sites(workdir, [*SITES, ("demo-c", "demo:mainland", "ngu")])
    try:
        jobs = planned_jobs(workdir)
    finally:
        write_sites(workdir, SITES)
    others = [j for j in jobs if j["wildcards"].get("site") != "demo-c"]
    assert sorted(j["rule"] for j in others) == ["all", "summary"]
    rules = {j["rule"] for j in jobs}
    assert {"demo_data", "shards", "graph", "embed_fit", "kmeans", "baseline", "cluster_figures",
            "export_labels", "provenance"} <= rules


def test_reordered_sites_rerun_only_the_summary(run):
    """summary.tsv and summary.html list the sites in the site table's order; Snakemake compares
    the set of input files, not their order, so reordering the table's rows must rerun the
    summary (and nothing of the sites)."""
    workdir, _ = run
    write_sites(workdir, SITES[::-1])
    try:
        jobs = planned_jobs(workdir)
    finally:
        write_sites(workdir, SITES)
    assert sorted(j["rule"] for j in jobs) == ["all", "summary"]


def test_an_edited_script_of_a_temporary_output_reruns_its_jobs(run):
    """Snakemake reruns a job whose script is newer than its outputs; embed_part's outputs are
    temporary (removed once dyn.h5 is gathered), so that comparison cannot see an edit of
    scripts/embed_part.py. Its digest, a param, must rerun the embedding of every site."""
    workdir, _ = run
    jobs = planned_after_editing_script(workdir, "embed_part")
    assert sorted(j["wildcards"]["site"] for j in jobs if j["rule"] == "embed_part") == sorted(s for s, *_ in SITES)
    assert sum(j["rule"] == "embed_gather" for j in jobs) == len(SITES)
    assert planned_jobs(workdir) == []


def test_edited_library_code_reruns_the_stages_that_import_it(run):
    """Snakemake follows a rule's script, not the library it imports: each rule's code digest
    (a param) must rerun the graph, and what follows from it, after a code change in
    insarclust.graph, and nothing after a comment or docstring edit."""
    workdir, _ = run
    module = workdir / "src/insarclust/graph.py"
    old = module.read_text()
    try:
        module.write_text(old + "\n# a comment\n")
        assert planned_jobs(workdir) == []
        module.write_text(old + "\n_EDITED = 1\n")
        jobs = planned_jobs(workdir)
    finally:
        module.write_text(old)
    planned = {j["rule"] for j in jobs}
    assert sorted(j["wildcards"]["site"] for j in jobs if j["rule"] == "graph") == sorted(s for s, *_ in SITES)
    assert "smooth" in planned
    assert not planned & {"shards", "embed_fit", "embed_part", "embed_gather", "descriptors"}
    assert planned_jobs(workdir) == []


# A changed setting plans exactly the jobs whose result it can change (per site, the
# rules and the wildcard they run for). FAST runs kmeans-{dyn, dyn+static, dyn_smoothed}
# and descriptors-kmeans; every site-level aggregate (exports, provenance) and the
# summary follow any changed method result.
AGGREGATES = {"export_labels", "export_gpkg", "provenance", "summary", "all"}
FIT_RULES = {"shards", "graph", "embed_fit", "embed_part", "embed_gather", "descriptors", "smooth", "kmeans",
             "baseline", "dsc"}
PLANS = {
    # memory and parallelism: nothing to redo
    "embed.batch_size": ({"embed": {"batch_size": 256}}, set()),
    "embed.n_jobs": ({"embed": {"n_jobs": 2}}, set()),
    # how many columns the smoothing's diagnostic Moran's I (attrs only) covers: the smoothed
    # features, and so every fit on them, are the same
    "smooth.moran_features": ({"smooth": {"moran_features": 2}}, set()),
    # the static columns' weight: dyn+static and what reads it, never the embedding
    "embed.static_weight": ({"embed": {"static_weight": 2.0}},
                            {("static_features", None), ("kmeans", "kmeans-dyn+static"),
                             ("evaluate", "kmeans-dyn+static"), ("cluster_figures", "kmeans-dyn+static"),
                             *AGGREGATES}),
    # a label threshold: the evaluation and what shows it (clusters.csv holds labels only), never a fit
    "interpret.step_mm": ({"interpret": {"step_mm": 9.0}},
                          {"export_gpkg", "provenance", "summary", "all",
                           *(("evaluate", m) for m in ("kmeans-dyn", "kmeans-dyn+static", "kmeans-dyn_smoothed",
                                                       "descriptors-kmeans")),
                           *(("cluster_figures", m) for m in ("kmeans-dyn", "kmeans-dyn+static",
                                                              "kmeans-dyn_smoothed", "descriptors-kmeans"))}),
    # a new variant: its own smoothing, fit, evaluation and figures
    "kmeans.variants +1": ({"kmeans": {"variants": ["dyn", "dyn+static", "dyn_smoothed", "dyn+static_smoothed"]}},
                           {("smooth", "dyn+static"), ("kmeans", "kmeans-dyn+static_smoothed"),
                            ("evaluate", "kmeans-dyn+static_smoothed"),
                            ("cluster_figures", "kmeans-dyn+static_smoothed"), *AGGREGATES}),
    # a method left out: the exports, and in the same run the record and the summary that listed it
    "kmeans.variants -1": ({"kmeans": {"variants": ["dyn", "dyn+static"]}},
                           {"export_labels", "export_gpkg", "provenance", "summary", "all"}),
    # the figures' resolution: the figures, and the record of the config they were drawn with
    "report.dpi": ({"report": {"dpi": 100}},
                   {*(("cluster_figures", m) for m in ("kmeans-dyn", "kmeans-dyn+static", "kmeans-dyn_smoothed",
                                                       "descriptors-kmeans")), "provenance", "summary", "all"}),
}


def _job_key(job: dict):
    rule, wc = job["rule"], job["wildcards"]
    if rule in AGGREGATES:
        return rule
    if rule == "kmeans":
        return rule, f"kmeans-{wc['variant']}"
    return rule, wc.get("method") or wc.get("baseline") or wc.get("base")


@pytest.mark.parametrize("name", list(PLANS))
def test_a_changed_setting_plans_exactly_its_jobs(run, name):
    workdir, _ = run
    change, expected = PLANS[name]
    assert planned_jobs(workdir) == [], "the finished run must plan nothing before the change"
    old = edit_config(workdir, change)
    try:
        jobs = planned_jobs(workdir)
    finally:
        edit_config(workdir, old)
    for site, *_ in SITES:
        planned = {_job_key(j) for j in jobs if j["wildcards"].get("site") in (site, None)}
        assert planned == set(expected), f"{name} on {site}: planned {sorted(map(str, planned))}"


def test_a_lowered_displacement_bound_stops_a_built_site(run):
    """shards.max_abs_mm reruns nothing (it cannot change a shards.h5), so a bound lowered below
    a built site's largest reading stops the workflow before any job, naming the site and the fix."""
    workdir, _ = run
    largest = {p.parent.name: h5io.read_attrs(p)["max_abs_mm_read"] for p in (workdir / "results").glob("*/shards.h5")}
    assert largest and all(0 < v < 10000 for v in largest.values())
    site, top = max(largest.items(), key=lambda kv: kv[1])
    old = edit_config(workdir, {"shards": {"max_abs_mm": top / 2}})
    try:
        proc = subprocess.run([SNAKEMAKE, "--cores", "1", "--dry-run"], cwd=workdir, capture_output=True,
                              text=True, timeout=300)
        edit_config(workdir, {"shards": {"max_abs_mm": float(top)}})
        at_the_largest = planned_jobs(workdir)
    finally:
        edit_config(workdir, old)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"site '{site}'" in out and "shards.max_abs_mm" in out
    assert f"delete results/{site}/shards.h5" in out
    assert at_the_largest == []


def test_a_format_area_reruns_nothing(run):
    """A format's area only stops a build (a build it lets through is the same file): widening it
    (a user's export over the border) must not rebuild every site of the format."""
    workdir, _ = run
    path = workdir / "config" / "formats.yaml"
    old = path.read_text()
    assert "area: [-10, 56, 36, 82]" in old
    try:
        path.write_text(old.replace("area: [-10, 56, 36, 82]", "area: [-20, 50, 40, 85]"))
        assert planned_jobs(workdir) == []
    finally:
        path.write_text(old)


def test_a_static_weight_of_one_format_reruns_only_its_sites(run):
    """embed.static_weight as a mapping reruns the dyn+static chain of the sites whose format has
    a named column, and nothing of the others (their weights cannot change)."""
    workdir, _ = run
    chain = PLANS["embed.static_weight"][1] - {"summary", "all"}
    for weight, changed_site, same_site in (({"ELEVATION": 0.5}, "demo-b", "demo-a"),     # svalbard's
                                            ({"height": 0.5}, "demo-a", "demo-b")):       # ngu's
        old = edit_config(workdir, {"embed": {"static_weight": weight}})
        try:
            jobs = planned_jobs(workdir)
        finally:
            edit_config(workdir, old)
        planned = {site: {_job_key(j) for j in jobs if j["wildcards"].get("site") == site} for site, *_ in SITES}
        assert planned[changed_site] == chain, weight
        assert planned[same_site] == set(), weight


def test_changed_smooth_H_reruns_only_smoothing_and_dependents(run):
    workdir, _ = run
    methods = methods_of(config_of(workdir))
    before = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*") if p.is_file()}
    old = edit_config(workdir, {"smooth": {"H": 3}})
    try:
        jobs = planned_jobs(workdir)
        allowed = {"smooth", "kmeans", "kmeans_sweep", "evaluate", "cluster_figures", "export_labels",
                   "export_gpkg",
                   "provenance", "summary", "all"}
        assert {j["rule"] for j in jobs} <= allowed
        for job in jobs:
            if job["rule"] in ("kmeans", "kmeans_sweep"):
                assert job["wildcards"]["variant"].endswith("_smoothed"), job
            if job["rule"] in ("cluster_figures", "evaluate"):
                assert job["wildcards"]["method"].endswith("_smoothed"), job
        n_sites = len(SITES)
        smoothed = [v for v in config_of(workdir)["kmeans"]["variants"] if v.endswith("_smoothed")]
        assert sum(j["rule"] == "smooth" for j in jobs) == len(smoothed) * n_sites
        assert sum(j["rule"] == "kmeans" for j in jobs) == len(smoothed) * n_sites
        assert sum(j["rule"] == "cluster_figures" for j in jobs) == len(smoothed) * n_sites
        assert sum(j["rule"] == "provenance" for j in jobs) == n_sites

        # run it: everything else keeps its timestamp
        snakemake(workdir)
    finally:
        edit_config(workdir, old)
    changed = {p for p, t in before.items() if p.stat().st_mtime_ns != t}
    rel = {str(p.relative_to(workdir / "results")) for p in changed}
    for site, *_ in SITES:
        assert f"{site}/features/dyn_smoothed.h5" in rel
        assert f"{site}/clusters/kmeans-dyn.h5" not in rel
        assert f"{site}/figures/kmeans-dyn_map.png" not in rel
        assert f"{site}/shards.h5" not in rel and f"{site}/features/dyn.h5" not in rel
        if "dsc" in methods:
            assert f"{site}/clusters/dsc.h5" not in rel
    assert all(re.search(r"_smoothed|clusters\.(csv|geojson|gpkg)$|provenance\.json$|summary\.", r) for r in rel), rel



def test_each_peer_reads_only_the_files_it_uses(tmp_path):
    """A descriptor setting refits only descriptors-kmeans, a graph setting only the smoothed peer:
    the DAG (every peer on) has those edges and no others into the peers."""
    peers = {"pca-kmeans": True, "raw-kmeans": True, "raw-kmeans_smoothed": True, "descriptors-kmeans": True}
    workdir = make_workdir(tmp_path / "repo", sites=SITES[:1], changes={"baselines": peers})
    dot = snakemake(workdir, "--dag")
    labels = {m.group(1): m.group(2).replace("\\n", " ")
              for m in re.finditer(r'^\s*(\d+)\[label = "([^"]*)"', dot, re.M)}
    edges = re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)
    into = {}
    for a, b in edges:
        if labels[b].startswith("baseline"):
            into.setdefault(labels[b].split(": ")[-1], set()).add(labels[a].split()[0])
    assert set(into) == set(peers)
    assert into["descriptors-kmeans"] == {"shards", "descriptors"}
    assert into["raw-kmeans_smoothed"] == {"shards", "graph"}
    assert into["pca-kmeans"] == into["raw-kmeans"] == {"shards"}


def test_dsc_is_trained_without_the_embedding(tmp_path):
    """DSC's labels never depend on the embedding: its job reads shards.h5 alone, and its fit is
    measured in the dyn space by its evaluate job, so an embedding setting (embed.n_units ...)
    reruns that evaluation, never the GPU training and labelling of every point."""
    workdir = make_workdir(tmp_path / "repo", sites=SITES[:1], changes={"dsc": {"enabled": True}})
    dot = snakemake(workdir, "--dag")
    labels = {m.group(1): m.group(2).replace("\\n", " ")
              for m in re.finditer(r'^\s*(\d+)\[label = "([^"]*)"', dot, re.M)}
    into = {}
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M):
        into.setdefault(labels[b], set()).add(labels[a].split()[0])
    assert into["dsc"] == {"shards"}
    assert "embed_gather" in into["evaluate method: dsc"]
    assert "embed_gather" not in into["evaluate method: kmeans-dyn+static"]


def test_dsc_diagnostics_do_not_rerun_dsc(tmp_path):
    """dsc.silhouette_sample is read by DSC's evaluate job (both spaces measured there from
    stored vectors): changing it plans no DSC training or labelling; a model setting does."""
    workdir = make_workdir(tmp_path / "repo", sites=SITES[:1], changes={"dsc": {"enabled": True}})
    target = "results/demo-a/clusters/dsc.h5"
    snakemake(workdir, target)
    assert planned_jobs(workdir, target) == []
    old = edit_config(workdir, {"dsc": {"silhouette_sample": 300}})
    assert planned_jobs(workdir, target) == []
    edit_config(workdir, {"dsc": {"k": 3}})
    assert [j["rule"] for j in planned_jobs(workdir, target)] == ["dsc"]
    edit_config(workdir, old)


def test_kmeans_diagnostics_do_not_refit(tmp_path):
    """kmeans.silhouette_sample and seed_stability are measured by the evaluate job of each
    variant (with a fixed k): changing them plans that job only, never the fit; a model
    setting refits. With k: auto the silhouette chooses k, so there it refits."""
    workdir = make_workdir(tmp_path / "repo", sites=SITES[:1])
    fit, measured = "results/demo-a/clusters/kmeans-dyn.h5", "results/demo-a/clusters/kmeans-dyn.json"
    snakemake(workdir, measured)
    for change in ({"kmeans": {"silhouette_sample": 321}}, {"kmeans": {"seed_stability": False}}):
        old = edit_config(workdir, change)
        try:
            assert planned_jobs(workdir, fit) == [], change
            assert [j["rule"] for j in planned_jobs(workdir, measured)] == ["evaluate"], change
        finally:
            edit_config(workdir, old)
    old = edit_config(workdir, {"kmeans": {"n_passes": 2}})
    assert [j["rule"] for j in planned_jobs(workdir, fit)] == ["kmeans"]
    edit_config(workdir, old)
    old = edit_config(workdir, {"kmeans": {"k": "auto"}})
    snakemake(workdir, fit)
    edit_config(workdir, {"kmeans": {"silhouette_sample": 321}})
    assert [j["rule"] for j in planned_jobs(workdir, fit)] == ["kmeans"]
    edit_config(workdir, old)


def _check_unread(workdir: Path, off: dict, on: dict, unread: list, targets: list) -> None:
    """Under ``off`` each change of ``unread`` plans nothing; under ``on`` it plans its rule."""
    for switch, reads in ((off, False), (on, True)):
        edit_config(workdir, switch)
        snakemake(workdir, *targets)
        for rule, change in unread:
            old = edit_config(workdir, change)
            try:
                planned = {j["rule"] for j in planned_jobs(workdir, *targets)}
            finally:
                edit_config(workdir, old)
            assert planned == ({rule} if reads else set()), (switch, change, planned)


def test_a_setting_its_switch_leaves_unread_reruns_nothing(tmp_path):
    """A setting read only under another setting's choice is no param under the other choices
    (as kmeans.k_range, shards.ransac): graph.bandwidth_m with binary weights, the descriptor
    scales of the peer with z-scored descriptors, dsc.spatial_bands without the spatial branch,
    pre-training and the reconstruction weight of DSC without a decoder. Under the choice
    that reads it, the same change reruns its job."""
    off = {"graph": {"weighting": "binary"}, "baselines": {"descriptor_scaling": "zscore"},
           "dsc": {"enabled": True, "variant": "encoder-only", "spatial_branch": False}}
    on = {"graph": {"weighting": "gaussian"}, "baselines": {"descriptor_scaling": "threshold"},
          "dsc": {"variant": "cnn-lstm", "spatial_branch": True}}
    unread = [("graph", {"graph": {"bandwidth_m": 50.0}}),
              ("baseline", {"baselines": {"descriptor_scale": {"step_mm": 5.0}}}),
              ("dsc", {"dsc": {"spatial_bands": 3}}), ("dsc", {"dsc": {"pretrain_epochs": 2}}),
              ("dsc", {"dsc": {"centre_weight": 0.3}})]
    workdir = make_workdir(tmp_path / "repo", sites=SITES[:1], changes=off)
    targets = [f"results/demo-a/{f}" for f in ("graph.h5", "clusters/descriptors-kmeans.h5", "clusters/dsc.h5")]
    _check_unread(workdir, off, on, unread, targets)


def test_the_unread_settings_of_a_representation_or_variant_rerun_nothing(tmp_path):
    """embed.ridge with a pooled representation (mean, last) and dsc.channels with the LSTM-only
    variant (no CNN) are no params; with the reservoir representation and the CNN they are."""
    off = {"embed": {"representation": "mean"}, "dsc": {"enabled": True, "variant": "lstm"}}
    on = {"embed": {"representation": "reservoir"}, "dsc": {"variant": "cnn-lstm"}}
    unread = [("embed_fit", {"embed": {"ridge": 3.0}}), ("dsc", {"dsc": {"channels": [4, 6]}})]
    workdir = make_workdir(tmp_path / "repo", sites=SITES[:1], changes=off)
    targets = [f"results/demo-a/{f}" for f in ("embed/model.pt", "clusters/dsc.h5")]
    _check_unread(workdir, off, on, unread, targets)


@pytest.mark.slow
def test_two_full_runs_from_scratch_are_complete_and_identical(tmp_path):
    """Every method (DSC and all peers): the checks above, then byte equality of two runs."""
    first = make_workdir(tmp_path / "first")
    snakemake(first)
    check_contract(first)
    check_summary(first)
    check_provenance(first)
    check_report(first)
    # the second run splits the embedding into two jobs: the split changes nothing
    second = make_workdir(tmp_path / "second", changes={"embed": {"n_jobs": 2}})
    snakemake(second)
    a, b = fingerprint(first), fingerprint(second)
    assert sorted(a) == sorted(b)
    assert any("/dsc.h5" in key for key in a)
    for key in a:
        assert a[key] == b[key], f"{key} differs between two runs from scratch"
