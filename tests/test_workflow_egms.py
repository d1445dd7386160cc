"""End-to-end: EGMS as downloaded, in a real Snakemake run of the workflow.

Two tiny demo sites: an EGMS L3 Ortho file (``format: egms-l3``: easting /
northing in EPSG:3035, no column edits) and an EGMS L2b ascending +
descending pair (``asc=...;desc=...``) decomposed into vertical and
east-west series on grid cells; and an EGMS file in data/ whose site table
row names a truth table of some of its points. One k-means variant keeps the run short;
everything else is covered by tests/test_workflow.py.
"""
from __future__ import annotations

import csv
import gzip
import json
import re

import numpy as np
import pandas as pd
import pytest

from insarclust import coords, h5io

from test_workflow import edit_config, make_workdir, planned_after_editing_script, planned_jobs, snakemake

pytestmark = pytest.mark.xdist_group("workflow-egms")

SITES = [("l3", "demo:mainland", "egms-l3"), ("ud", "asc=demo:mainland;desc=demo:mainland", "egms"),
         ("inv", "data/inv.csv", "egms", "data/inv-truth.csv")]
CHANGES = {
    "demo": {"n_points": 800, "years": 2.5},
    "decompose": {"cell_size_m": 400},     # 800 scattered points a track over 16 x 16 km: ~100 cells hold both
    "kmeans": {"variants": ["dyn"], "k": 4},
    "baselines": {"pca-kmeans": False, "raw-kmeans": False, "raw-kmeans_smoothed": False,
                  "descriptors-kmeans": False},
    "dsc": {"enabled": False},
    "embed": {"fit_sample": 300, "n_units": 30},
}
METHODS = ["kmeans-dyn"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    dest = tmp_path_factory.mktemp("egms") / "repo"
    (dest / "data").mkdir(parents=True)
    _inventory_site(dest / "data")
    workdir = make_workdir(dest, sites=SITES, changes=CHANGES)
    snakemake(workdir)
    return workdir


def _inventory_site(data):
    """A site of files (EGMS CSV) whose truth column names an inventory of 60 % of its points,
    plus a point of another site."""
    from insarclust.demo import generate
    from insarclust.formats import get_format, load_formats
    from conftest import ROOT

    fmt = get_format("egms", load_formats(ROOT / "config" / "formats.yaml"))
    table, regimes = generate("inv", "mainland", fmt, n_points=800, years=2.5, seed=5)
    table.to_csv(data / "inv.csv", index=False)
    known = regimes.sample(frac=0.6, random_state=5).sort_index()
    pd.concat([known, pd.DataFrame({"pid": ["OTHER-SITE-1"], "regime": ["stable"]})]).to_csv(
        data / "inv-truth.csv", index=False)


def _gpkg(path):
    import pyogrio
    import pyogrio.raw

    info = pyogrio.read_info(path)
    meta, _, _, values = pyogrio.raw.read(path)
    return info, dict(zip(meta["fields"], values))


def test_egms_l3_file_runs_end_to_end(run):
    res = run / "results/l3"
    s = h5io.Shards(res / "shards.h5")
    assert s.attrs["format"] == "egms-l3" and s.crs == "EPSG:3035" and s.n_points == 800
    with gzip.open(run / "resources/demo/l3.csv.gz", "rt") as fh:
        table = pd.read_csv(fh)
    assert list(table.columns[:3]) == ["pid", "easting", "northing"]
    by_pid = table.set_index("pid").loc[s.pids()]
    x, y, crs = s.xy()
    np.testing.assert_array_equal(x, by_pid["easting"].to_numpy())
    lat, lon = s.coords()
    xb, yb = coords.from_wgs84(lat, lon, crs)
    assert np.max(np.hypot(xb - x, yb - y)) < 0.01       # 1 cm round trip
    with open(res / "clusters.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["pid", "lat", "lon", *METHODS] and len(rows) == 801
    info, col = _gpkg(res / "clusters.gpkg")
    assert info["crs"] == "EPSG:3035" and info["features"] == 800
    np.testing.assert_array_equal(col["x"], x)
    assert set(col["kmeans-dyn_regime"]) <= {"stable", "subsiding", "uplifting", "seasonal", "accelerating", "step"}
    assert not (res / "clusters.geojson").exists()    # report.geojson is off by default


def test_ascending_descending_pair_runs_end_to_end(run):
    res = run / "results/ud"
    s = h5io.Shards(res / "shards.h5")
    assert s.components == ["up", "east"] and s.crs == "EPSG:3035"
    assert s.attrs["cell_size_m"] == 400 and s.attrs["los_source_ascending"] == "los_east/los_north/los_up"
    truth = pd.read_csv(run / "resources/demo/ud.cells.truth.csv")
    assert sorted(truth.pid) == sorted(s.pids()) and s.n_points > 50
    # the embedding saw both components
    names = h5io.Features(res / "features/dyn.h5").names
    assert {"trend_mm_yr_up", "trend_mm_yr_east"} <= set(names)
    for method in METHODS:
        result = json.loads((res / f"clusters/{method}.json").read_text())
        assert sum(result["sizes"]) == s.n_points
        # the regimes of the cells are found (0.52 / 0.65 on these ~90 cells; chance is 0)
        assert result["metrics"]["ari"] > 0.3 and result["metrics"]["label_match"] > 0.45
        assert (res / f"figures/{method}_clusters.png").stat().st_size > 5000
    info, col = _gpkg(res / "clusters.gpkg")
    assert info["features"] == s.n_points and {"x", "y", "trend_mm_yr"} <= set(info["fields"])
    # the track files were temporary; the summary has both sites
    assert not (res / "los/asc.h5").exists()
    summary = pd.read_csv(run / "results/summary.tsv", sep="\t")
    assert set(summary.site) == {"l3", "ud", "inv"}
    prov = json.loads((res / "provenance.json").read_text())
    assert {"demo_pair", "los_shards", "decompose"} <= set(prov["stages"])
    assert prov["stages"]["los_shards"]["jobs"] == 2


def test_an_edited_track_script_reruns_the_pair(run):
    """The track files of a pair (los_shards) are temporary, so Snakemake cannot compare their
    time with scripts/los_shards.py: its digest, a param, must rerun both tracks and the
    decomposition after an edit, and nothing of the other site."""
    jobs = planned_after_editing_script(run, "los_shards")
    assert sorted(j["wildcards"]["track"] for j in jobs if j["rule"] == "los_shards") == ["asc", "desc"]
    assert [j["wildcards"]["site"] for j in jobs if j["rule"] == "decompose"] == ["ud"]
    assert not [j for j in jobs if j["wildcards"].get("site") == "l3"]
    assert planned_jobs(run) == []


def test_the_pair_noise_check_reruns_nothing(run):
    """decompose.max_noise_ratio only decides whether the stage stops: a changed value plans nothing,
    and the decomposition log shows the two tracks' typical change between acquisitions (the demo
    pair's tracks share their noise)."""
    old = edit_config(run, {"decompose": {"max_noise_ratio": 3}})
    try:
        assert planned_jobs(run) == []
    finally:
        edit_config(run, old)
    log = (run / "logs/decompose/ud.log").read_text()
    asc, desc = (float(v) for v in re.search(r"typical change between acquisitions: ([\d.]+) mm ascending, "
                                             r"([\d.]+) mm descending", log).groups())
    assert 0.67 < asc / desc < 1.5


def test_a_truth_column_scores_a_site_of_files_on_its_known_points(run):
    """A user's inventory (the site table's truth column) of some points: ARI, NMI and label match
    of those points in the summary and the report, with their count; demo sites show no count."""
    from sklearn.metrics import adjusted_rand_score

    truth = pd.read_csv(run / "data/inv-truth.csv", dtype=str).set_index("pid")["regime"]
    labels = pd.read_csv(run / "results/inv/clusters.csv", dtype={"pid": str}).set_index("pid")
    known = labels.index[labels.index.isin(truth.index)]
    assert len(known) == 480 and len(labels) == 800
    summary = pd.read_csv(run / "results/summary.tsv", sep="\t")
    inv = summary[(summary.site == "inv") & (summary.method == "kmeans-dyn")].set_index("metric")["value"]
    assert inv["n_truth"] == 480
    assert inv["ari"] == pytest.approx(adjusted_rand_score(truth[known], labels.loc[known, "kmeans-dyn"]))
    assert inv["ari"] > 0.3
    l3 = set(summary[summary.site == "l3"].metric)
    assert "ari" in l3 and "n_truth" not in l3
    page = (run / "results/summary.html").read_text()
    assert "truth points" in page and "480" in page
    log = (run / "logs/evaluate/inv.kmeans-dyn.log").read_text()
    assert "480 of 800 points have a true regime" in log and "OTHER-SITE-1" in log
    prov = json.loads((run / "results/inv/provenance.json").read_text())
    assert prov["site_row"]["truth"] == "data/inv-truth.csv"
    # the inventory is an input of the record: its checksum beside the CSV's
    assert [f["path"] for f in prov["inputs"]["files"]] == ["data/inv.csv", "data/inv-truth.csv"]
    assert all(len(f["sha256"]) == 64 for f in prov["inputs"]["files"])


def test_an_edited_truth_table_reruns_only_its_sites_evaluation(run):
    """The truth table is an input of the site's evaluate jobs: an edit reruns them and what
    reads their results, and nothing of the other sites or of the fits."""
    import os

    path = run / "data/inv-truth.csv"
    text, stat = path.read_text(), path.stat()
    head, *rows = text.splitlines()
    path.write_text("\n".join([head, *sorted(rows)]) + "\n")   # one more point known would do as well
    try:
        jobs = planned_jobs(run)
    finally:
        path.write_text(text)
        os.utime(path, (stat.st_atime, stat.st_mtime))
    rules = {j["rule"] for j in jobs}
    assert "evaluate" in rules and "summary" in rules
    assert not rules & {"shards", "graph", "embed_fit", "embed_part", "kmeans", "smooth", "descriptors"}
    assert {j["wildcards"].get("site") for j in jobs} <= {"inv", None}
    assert planned_jobs(run) == []
