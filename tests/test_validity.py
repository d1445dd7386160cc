"""bench/validity.py keeps running against the library: a tiny site through every stage."""
import json
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
validity = pytest.importorskip("validity")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sites_and_report_on_a_tiny_generated_site(tmp_path, capsys):
    out = tmp_path / "out"
    validity.main(["sites", "--sites", "gen-seasonality", "--scale", "0.05", "--seeds", "3", "--threads", "1",
                   "--methods", "kmeans-dyn", "raw-kmeans_smoothed", "--k", "true", "auto",
                   "--out", str(out), "--workdir", str(tmp_path / "work")])
    records = [json.loads(line) for line in (out / "sites.jsonl").read_text().splitlines()]
    assert [(r["method"], r["k_setting"]) for r in records] == [
        ("kmeans-dyn", "true"), ("kmeans-dyn", "auto"), ("raw-kmeans_smoothed", "true"),
        ("raw-kmeans_smoothed", "auto")]
    for r in records:
        assert r["site"] == "gen-seasonality" and r["n_classes"] == 4 and r["n_points"] == 300
        assert -0.5 <= r["ari"] <= 1 and 0 <= r["label_match"] <= 1
    assert records[0]["k"] == 4 and "k_selection" in records[1]
    capsys.readouterr()
    validity.main(["report", "--out", str(out)])
    text = capsys.readouterr().out
    assert "ARI at k = true" in text and "| kmeans-dyn |" in text and "true k found" in text


def test_candidates_are_complete_embed_sections():
    cfg = validity.load_config(["embed.n_units=7"])
    assert cfg["embed"]["n_units"] == 7
    shipped = validity.embed_params("shipped", validity.load_config())
    assert shipped == validity.load_config()["embed"]
    previous = validity.embed_params("previous", cfg)
    assert previous["n_units"] == 450 and previous["leak_form"] == "scaled" and previous["time_stride"] == 1
    with pytest.raises(SystemExit, match="unknown candidate"):
        validity.embed_params("nope", cfg)


def _tiny_site(spec, tmp_path, seed=3):
    cfg = {**validity.load_config(), "seed": seed}
    return validity.prepare_site("gen-tiny", spec, seed, cfg, tmp_path / "work"), cfg


def test_site_cache_follows_the_site_spec(tmp_path):
    # same site name, size and seed, another variant: the cached site must not be reused
    plain = validity.SiteSpec("mainland", "ngu", 300)
    mixed = validity.SiteSpec("mainland", "ngu", 300, variant=validity.Variant(mix="seasonality"))
    a, _ = _tiny_site(plain, tmp_path)
    b, _ = _tiny_site(mixed, tmp_path)
    assert a["dir"] != b["dir"]
    assert set(validity.truth_of(b)[0]) == set(validity.CLASSES["seasonality"])


def test_feature_cache_follows_the_embedding_code(tmp_path, monkeypatch):
    import shutil

    spec = validity.SiteSpec("mainland", "ngu", 300)
    paths, cfg = _tiny_site(spec, tmp_path)
    first = validity.embed_site(paths, cfg["embed"], cfg, 3, 1)
    # the same settings with other embedding code: new features, not the cached ones
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "src", tree / "src")
    with (tree / "src" / "insarclust" / "reservoir.py").open("a") as fh:
        fh.write("\n# changed\n")
    monkeypatch.setattr(validity, "ROOT", tree)
    second = validity.embed_site(paths, cfg["embed"], cfg, 3, 1)
    assert first["dyn"].parent != second["dyn"].parent


def test_a_graph_setting_reuses_the_site_and_its_embedding(tmp_path):
    """Another graph: the same site folder and dyn.h5, its own graph file and smoothed features."""
    spec = validity.SiteSpec("mainland", "ngu", 300)
    paths, cfg = _tiny_site(spec, tmp_path)
    first = validity.embed_site(paths, cfg["embed"], cfg, 3, 1)
    local = {**cfg, "graph": {**cfg["graph"], "bandwidth_m": "local"}}
    paths2 = validity.prepare_site("gen-tiny", spec, 3, local, tmp_path / "work")
    second = validity.embed_site(paths2, cfg["embed"], local, 3, 1)
    assert paths2["dir"] == paths["dir"] and paths2["graph"] != paths["graph"]
    assert second["dyn"] == first["dyn"] and second["dyn_smoothed"] != first["dyn_smoothed"]
    assert second["dyn_smoothed"].exists() and first["dyn_smoothed"].exists()


def test_smooth_separability_scores_cached_sites(tmp_path, capsys):
    """bench/smooth_separability.py: nearest-class-centroid accuracy per bandwidth on a cached site."""
    import numpy as np

    import smooth_separability as sep

    X = np.array([[0.0], [0.2], [1.0], [0.9], [0.4]])
    y = np.array(["a", "a", "b", "b", "b"])       # centroids 0.1 and 0.767: 0.4 is nearer a
    assert sep.centroid_accuracy(X, y, np.ones(5, bool)) == pytest.approx(0.8)
    assert sep.centroid_accuracy(X, y, np.array([0, 0, 0, 0, 1], bool)) == 0.0
    spec = validity.SiteSpec("mainland", "ngu", 300)
    paths, cfg = _tiny_site(spec, tmp_path)
    validity.embed_site(paths, cfg["embed"], cfg, 3, 1)
    # another embedding cached beside it (other settings or earlier code), first in name order
    stale = paths["dir"] / "features-000000000000"
    stale.mkdir()
    (stale / "dyn.h5").write_bytes(b"not this one")
    assert [r[-1] for r in sep.site_rows(tmp_path / "work", cfg["embed"])] == \
        [validity.features_dir(paths["dir"], cfg["embed"]) / "dyn.h5"]
    assert not list(sep.site_rows(tmp_path / "work", {**cfg["embed"], "n_units": 7}))
    capsys.readouterr()
    sep.main(["--workdir", str(tmp_path / "work"), "--bandwidths", "median", "local", "300",
              "--threads", "1", "--out", str(tmp_path / "sep.jsonl")])
    (row,) = [json.loads(line) for line in (tmp_path / "sep.jsonl").read_text().splitlines()]
    assert row["site"] == "gen-tiny" and row["seed"] == 3
    for name in ("raw", "median", "local", "300"):
        assert 0.3 < row[f"{name}_all"] <= 1.0
    assert 0 <= row["lean_share"] < 0.5 and 0 <= row["sparse_share"] < 0.5
    assert "mean over sites and seeds" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no cached site"):
        sep.main(["--workdir", str(tmp_path / "empty")])


def test_embed_report_marks_candidates_measured_on_fewer_seeds():
    import pandas as pd

    recs = [{"site": s, "seed": seed, "candidate": c, "ari": 0.5}
            for c in ("a", "b") for seed in (0, 1, 2) for s in ("gen-x", "demo-y") if (c, seed) != ("b", 2)]
    lines = validity.report_embed(pd.DataFrame(recs)).splitlines()
    assert lines[2].startswith("| a | ")
    assert lines[3].startswith("| b (seeds 0, 1) | ")


def test_compare_pairs_runs_by_site_and_seed():
    """compare: per-run means over sites, and paired differences with wins counted per site/seed."""
    import pandas as pd

    def run(seeds, bonus):
        return pd.DataFrame([{"site": site, "seed": seed, "k_setting": "config", "method": m,
                              "ari": 0.4 + (bonus if m == "kmeans-dyn" else 0.0) + 0.01 * seed}
                             for site in ("gen-a", "demo-b") for seed in seeds
                             for m in ("kmeans-dyn", "raw-kmeans")])

    text = validity.report_compare(run([0, 1], 0.1), run([5, 6], -0.05))
    assert "| kmeans-dyn - raw-kmeans | config | +0.100 (4/4) | -0.050 (0/4) |" in text
    # gen. means per seed: 0.50, 0.51 in the first run -> 0.51 ± 0.01 (2 decimals)
    assert "| kmeans-dyn | config | 0.51 ± 0.01 | 0.41 ± 0.01 | 0.51 ± 0.01 | 0.41 ± 0.01 |" in text


def test_compare_reads_comma_separated_tags_as_one_run(tmp_path):
    """DSC and the k-means methods run apart on the same seeds are paired per site and seed."""
    def write(tag, method, ari):
        with (tmp_path / f"sites{tag}.jsonl").open("w") as fh:
            for site in ("gen-a", "demo-b"):
                for seed in (5, 6):
                    fh.write(json.dumps({"site": site, "seed": seed, "k_setting": "config", "method": method,
                                         "ari": ari + 0.01 * seed}) + "\n")

    write("-km", "kmeans-dyn_smoothed", 0.6)
    write("-dsc", "dsc", 0.7)
    runs = validity.read_tagged_runs(tmp_path, "-km,-dsc")
    assert sorted(set(runs.method)) == ["dsc", "kmeans-dyn_smoothed"] and len(runs) == 8
    text = validity.report_compare(runs, runs)
    assert "| dsc - kmeans-dyn_smoothed | config | +0.100 (4/4) | +0.100 (4/4) |" in text
    with pytest.raises(SystemExit, match="-nope"):
        validity.read_tagged_runs(tmp_path, "-km,-nope")
    write("-dsc2", "dsc", 0.1)   # the same method, sites and seeds in a second tag: not averaged
    with pytest.raises(SystemExit, match="more than once"):
        validity.read_tagged_runs(tmp_path, "-dsc,-dsc2")
    # a+b: run b's records replace a's of the same site, seed, k and method; the rest of a stays
    with (tmp_path / "sites-fix.jsonl").open("w") as fh:
        fh.write(json.dumps({"site": "gen-a", "seed": 5, "k_setting": "config", "method": "dsc", "ari": 0.0}) + "\n")
    over = validity.read_tagged_runs(tmp_path, "-dsc+-fix").set_index(["site", "seed"]).ari
    assert len(over) == 4 and over[("gen-a", 5)] == 0.0 and over[("gen-a", 6)] == pytest.approx(0.76)
    assert over[("demo-b", 5)] == pytest.approx(0.75)
    with pytest.raises(SystemExit, match="-nope"):
        validity.read_tagged_runs(tmp_path, "-dsc+-nope")
