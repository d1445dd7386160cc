"""The report captions (workflow/report/*.rst) say what the figures and the configuration hold."""
from pathlib import Path
from types import SimpleNamespace

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[1]


def render(name: str, method: str, config: dict | None = None) -> str:
    config = config or yaml.safe_load((ROOT / "config/config.yaml").read_text())
    snakemake = SimpleNamespace(wildcards=SimpleNamespace(method=method, site="bench"), config=config)
    return jinja2.Template((ROOT / "workflow/report" / name).read_text()).render(snakemake=snakemake)


def test_map_caption_names_the_features_each_method_clustered():
    """The caption said kmeans-dyn+static clusters the static attributes '(height, velocity,
    coherence, geometry)', while the acquisition geometry is left out of dyn+static unless
    embed.static_weight names it; and that descriptors-kmeans uses 'residual noise', which is not
    among the default baselines.descriptor_features."""
    text = " ".join(render("cluster_map.rst", "kmeans-dyn+static").split())
    assert "height, velocity, coherence, geometry" not in text
    assert "the acquisition geometry only where ``embed.static_weight`` names it" in text
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    text = " ".join(render("cluster_map.rst", "descriptors-kmeans", config).split())
    assert "residual noise" not in text
    assert "descriptors (" + ", ".join(config["baselines"]["descriptor_features"]) + ")" in text
    config["baselines"]["descriptor_features"] = ["trend_mm_yr", "residual_rms_mm"]
    assert "descriptors (trend_mm_yr, residual_rms_mm)" in " ".join(
        render("cluster_map.rst", "descriptors-kmeans", config).split())
