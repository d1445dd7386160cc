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


def test_map_caption_says_small_clusters_get_larger_markers():
    """A cluster under 1 % of the points is drawn with larger markers (figures.plot_cluster_map):
    4x the area, at least 4 pt^2 and at most 24 pt^2, i.e. 13x the 0.3 pt^2 of the others on a
    100,000-point map and 2x the 12 pt^2 of a map of 2,500 points or fewer (the caption said
    'at least 4 times'). Its patches look larger than they are, which the caption did not say."""
    import numpy as np

    from insarclust import figures

    text = " ".join(render("cluster_map.rst", "kmeans-dyn").split())
    assert ("a cluster under 1 % of the points is drawn with larger markers (4 times the area of the "
            "others' markers from 5,000 points shown on, 13 times on a 100,000-point map; on maps of fewer "
            "points, whose markers are large already, down to twice the area)") in text
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    for n, ratio in [(100000, 13), (5000, 4), (2000, 2)]:
        labels = np.where(np.arange(n) < n // 200, 1, 0)
        fig = figures.plot_cluster_map(69.5 + 0.1 * rng.random(n), 20 + 0.3 * rng.random(n), labels)
        sizes = fig.axes[0].collections[0].get_sizes()
        assert round(sizes.max() / sizes.min()) == ratio, n
        plt.close(fig)


def test_front_page_names_what_the_comparison_page_holds():
    """The comparison page gained a feature space column, seed stability and the agreement
    between methods on every site; the front page's guide to it named none of them."""
    from jinja2 import Environment

    source = (ROOT / "workflow/report/workflow.rst").read_text()
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    text = " ".join(Environment().from_string(source).render(
        snakemake=SimpleNamespace(config=config), categories={}).split())
    assert "with the feature space each is measured in" in text
    assert "the seed stability of k-means" in text
    assert "how alike each costlier method's clusters are to its cheap peer's" in text


def test_captions_name_every_regime_word_and_its_colour():
    """An EGMS L3 east-west site's trends are labelled westward/eastward, in the colours of
    subsiding/uplifting (figures.SAME_COLOURS): the map caption listed the regimes and colours
    of vertical sites only, and the series caption said what negative values mean in line of
    sight and in a vertical component only."""
    from insarclust import figures
    from insarclust.interpret import VOCABULARY

    text = " ".join(render("cluster_map.rst", "kmeans-dyn").split())
    assert all(word in text for word in VOCABULARY)
    for word, family in figures.SAME_COLOURS.items():
        assert f"{family} (or {word})" in text
    assert "westward in an east-west one" in " ".join(render("cluster_series.rst", "kmeans-dyn").split())
    front = " ".join((ROOT / "workflow/report/workflow.rst").read_text().split())
    assert "westward and eastward on an EGMS L3 east-west site" in front
