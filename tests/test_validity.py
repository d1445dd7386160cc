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
