"""Standard figures: written, non-empty PNGs with the agreed content."""
from __future__ import annotations

import json
import math
import runpy

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from insarclust import figures, h5io
from insarclust.cluster_series import cluster_series_stats
from insarclust.jsonio import write_json
from insarclust.labels import Labelling, order_labels

PNG = b"\x89PNG\r\n\x1a\n"

CLUSTERS = [
    {"cluster": 0, "label": "subsiding", "descriptors": {"trend_mm_yr": -8.04, "offset_mm": -1.0,
                                                         "annual_amplitude_mm": 0.1, "step_date": None}},
    {"cluster": 1, "label": "seasonal", "descriptors": {"trend_mm_yr": 0.1}},
    {"cluster": 2, "label": "stable", "descriptors": {}},
    {"cluster": 3, "label": "uplifting", "descriptors": {"trend_mm_yr": 5.0}},
]


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_colours_follow_the_kind_of_motion():
    assert figures.cluster_color(0) == figures.cluster_color(0 + len(figures.PALETTE))
    assert len({figures.cluster_color(k) for k in range(12)}) == 12
    colours = figures.cluster_colors(4, CLUSTERS)
    assert colours == [figures.REGIME_COLOURS[c["label"]][0] for c in CLUSTERS]
    # another method, other ids: the stable cluster is grey there too, two subsiding ones get two shades
    other = [{"cluster": 0, "label": "subsiding"}, {"cluster": 1, "label": "subsiding"},
             {"cluster": 2, "label": "stable"}]
    assert figures.cluster_colors(3, other) == [*figures.REGIME_COLOURS["subsiding"][:2],
                                                figures.REGIME_COLOURS["stable"][0]]
    assert figures.cluster_colors(2, None) == [figures.cluster_color(0), figures.cluster_color(1)]
    # every shade is a different colour
    shades = [c for family in figures.REGIME_COLOURS.values() for c in family]
    assert len(set(shades)) == len(shades)


def test_captions_say_what_the_fit_says():
    assert figures.cluster_caption(2, 4210, CLUSTERS[0]) == "2: subsiding, -8.0 mm/yr (n=4,210)"
    assert figures.cluster_caption(2, 5, None) == "2 (n=5)"
    # a step model has no trend term: its step, not a "+0.0 mm/yr" it never measured
    step = {"cluster": 1, "label": "step", "model": "step",
            "descriptors": {"trend_mm_yr": 0.0, "step_mm": -18.34, "step_date": 18479}}
    assert figures.cluster_caption(1, 10, step) == "1: step of -18.3 mm on 2020-08-05 (n=10)"
    # in a winter gap the data date it to the gap only, not to its middle day
    winter = {**step, "step_window": [18215, 18373], "step_in_gap": True}
    assert (figures.cluster_caption(1, 10, winter)
            == "1: step of -18.3 mm between 2019-11-15 and 2020-04-21 (n=10)")
    assert figures.cluster_caption(1, 10, {**winter, "step_in_gap": False}).endswith("on 2020-08-05 (n=10)")
    # a panel title that long takes two lines, to stay over its own panel
    assert (figures.panel_title(2, figures._describe(winter))
            == "Cluster 2: step of -18.3 mm\nbetween 2019-11-15 and 2020-04-21")
    assert figures.panel_title(2, "subsiding, -8.1 mm/yr") == "Cluster 2: subsiding, -8.1 mm/yr"
    assert figures.cluster_caption(0, 3, {"cluster": 0, "label": "stable",
                                          "descriptors": {"trend_mm_yr": -0.04}}) == "0: stable, +0.0 mm/yr (n=3)"


def test_captions_give_the_number_the_regime_was_read_from():
    """A seasonal cluster was captioned by its velocity alone ("seasonal, -0.1 mm/yr"): a number
    near 0 that says nothing of the annual cycle that made it seasonal. Its amplitude and the
    time of year of its peak come first; an accelerating cluster gives its acceleration too."""
    seasonal = {"cluster": 2, "label": "seasonal", "model": "trend",
                "descriptors": {"trend_mm_yr": -0.115, "acceleration_mm_yr2": 0.12,
                                "annual_amplitude_mm": 4.283, "annual_peak_doy": 198.04, "step_mm": 0.0}}
    assert (figures.cluster_caption(2, 11766, seasonal)
            == "2: seasonal, ±4.3 mm annual (peak mid-Jul), -0.1 mm/yr (n=11,766)")
    # the peak day is on a circle: day 365.9 is the turn of the year, not past December
    winter = {**seasonal, "descriptors": {**seasonal["descriptors"], "annual_peak_doy": 365.9}}
    assert "(peak early-Jan)" in figures.cluster_caption(2, 1, winter)
    accelerating = {"cluster": 0, "label": "accelerating", "model": "trend",
                    "descriptors": {"trend_mm_yr": -6.04, "acceleration_mm_yr2": -2.13,
                                    "annual_amplitude_mm": 0.3, "annual_peak_doy": 20.0}}
    assert figures.cluster_caption(0, 50, accelerating) == "0: accelerating, -6.0 mm/yr, -2.1 mm/yr² (n=50)"
    # a subsiding cluster with a small annual cycle is still read by its velocity
    subsiding = {**accelerating, "label": "subsiding"}
    assert figures.cluster_caption(0, 50, subsiding) == "0: subsiding, -6.0 mm/yr (n=50)"
    # the panel title wraps the longer seasonal text onto two lines over its own panel
    title = figures.panel_title(2, figures._describe(seasonal))
    assert title.startswith("Cluster 2: seasonal, ±4.3 mm annual") and title.count("\n") == 1


def test_panel_titles_do_not_wrap_at_a_hyphen():
    """A seasonal cluster's title wrapped as '(peak mid-' / 'Jul), -0.1 mm/yr'."""
    title = figures.panel_title(2, "seasonal, ±4.3 mm annual (peak mid-Jul), -0.1 mm/yr")
    assert title == "Cluster 2: seasonal, ±4.3 mm annual (peak\nmid-Jul), -0.1 mm/yr"


def test_a_clusters_own_gaps_are_hatched_in_its_panel(shards_file):
    path, truth = shards_file
    mean, std, counts = cluster_series_stats(path, truth, n_clusters=4)
    grid = h5io.Shards(path).grid_dates
    clusters = [{"cluster": j, "label": "stable", "descriptors": {"trend_mm_yr": 0.0}} for j in range(4)]
    clusters[2]["acquisition_gaps"] = [[int(grid[40]), int(grid[80])]]
    fig = figures.plot_cluster_series(grid, mean, std, counts, clusters=clusters, observed_dates=grid)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    hatched = [[p for p in ax.patches if p.get_hatch()] for ax in axes]
    assert [len(h) for h in hatched] == [0, 0, 1, 0]
    # not "interpolated": the mean leaves the members' own holes out, its line stops there
    assert hatched[2][0].get_label() == "most members unobserved"
    assert "most members unobserved" in axes[2].get_legend_handles_labels()[1]
    plt.close(fig)


def test_cluster_map_has_a_ground_distance_scale_bar(tmp_path):
    """The maps had degree ticks only: at 69.6 N the 0.05-degree longitude ticks are 1.9 km apart
    and the 0.02-degree latitude ticks 2.2 km, so a reader could not tell a 200 m slide from a
    2 km one. A bar of a round length near a fifth of the map width now says it."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from insarclust.geodesy import EARTH_RADIUS_M

    # a 0.37-degree-wide site at 69.58 N (14.3 km): a 2 km bar, its length in degrees of longitude there
    length, label = figures.scale_bar(0.37, 69.58)
    assert label == "2 km"
    assert length * math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(69.58)) == pytest.approx(2000.0)
    assert figures.scale_bar(0.01, 60.0)[1] == "100 m"       # 556 m wide
    assert figures.scale_bar(3.0, 45.0)[1] == "20 km"        # 236 km wide
    assert figures.scale_bar(0.0, 60.0)[1].endswith(" m")    # a single point: no crash
    rng = np.random.default_rng(0)
    lat, lon = 69.52 + 0.13 * rng.random(2000), 20.05 + 0.37 * rng.random(2000)
    fig = figures.plot_cluster_map(lat, lon, np.arange(2000) % 3, tmp_path / "map.png")
    bars = [a for a in fig.axes[0].artists if isinstance(a, AnchoredSizeBar)]
    assert len(bars) == 1 and bars[0].get_gid() == "scale_bar"
    assert bars[0].txt_label.get_text() == "2 km"
    plt.close(fig)


@pytest.mark.parametrize("lat,lon", [([60.0], [10.0]),                                  # one point
                                     (list(np.linspace(60.0, 60.2, 50)), [10.0] * 50)])  # one meridian
def test_scale_bar_of_a_map_without_longitude_spread(lat, lon):
    """The bar was sized from the points' spread in longitude: a single point, or a line of points
    along one meridian, spans none, and got a '1e-05 m' bar on axes a degree wide. It is sized
    from the width the axes show."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    fig = figures.plot_cluster_map(np.array(lat), np.array(lon), np.arange(len(lat)) % 2)
    ax = fig.axes[0]
    x0, x1 = ax.get_xlim()
    bar = next(a for a in ax.artists if isinstance(a, AnchoredSizeBar))
    assert bar.txt_label.get_text() == figures.scale_bar(x1 - x0, float(np.mean(lat)))[1]
    assert bar.txt_label.get_text().endswith(" km")
    length = bar.size_bar.get_children()[0].get_width()
    assert (x1 - x0) / 10 < length <= (x1 - x0) / 5
    plt.close(fig)


def test_scale_bar_just_below_a_round_length():
    """A fifth of the width one float step below 1 km: log10 rounded it up to 3, no round length
    fitted under it, and max() of nothing stopped the map."""
    width = 0.04496601818622689   # at the equator, a fifth is 999.9999999999999 m
    length, label = figures.scale_bar(width, 0.0)
    assert label == "500 m"
    assert length < width / 5


def test_cluster_map(tmp_path, shards_file):
    path, truth = shards_file
    lat, lon = h5io.Shards(path).coords()
    out = tmp_path / "map.png"
    fig = figures.plot_cluster_map(lat, lon, truth, out, clusters=CLUSTERS, title="site - m",
                                   max_points=500, seed=1)
    ax = fig.axes[0]
    assert ax.get_aspect() == pytest.approx(1 / math.cos(math.radians(lat.mean())))
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    counts = np.bincount(truth)
    assert texts[0] == f"0: subsiding, -8.0 mm/yr (n={counts[0]:,})"  # counts of all points
    scatter = ax.collections[0]
    assert scatter.get_rasterized() and len(scatter.get_offsets()) == 500  # seeded subsample
    # colour of each drawn point is its cluster's fixed colour
    colours = {tuple(np.round(c, 4)) for c in scatter.get_facecolors()}
    assert colours == {tuple(np.round(matplotlib.colors.to_rgba(c), 4)) for c in figures.cluster_colors(4, CLUSTERS)}
    plt.close(fig)
    w, h = _png_size(out)
    assert w > 600 and h > 600


def test_cluster_series(tmp_path, shards_file):
    path, truth = shards_file
    mean, std, counts = cluster_series_stats(path, truth, n_clusters=5)  # id 4 empty
    grid = h5io.Shards(path).grid_dates
    out = tmp_path / "series.png"
    # acquisitions every 12 days but none for 150 days in the middle
    observed = np.concatenate([np.arange(grid[0], grid[40], 12), np.arange(grid[40] + 150, grid[-1] + 1, 12)])
    fig = figures.plot_cluster_series(grid, mean, std, counts, out, clusters=CLUSTERS, title="t",
                                      observed_dates=observed)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 5
    assert axes[0].get_title() == "Cluster 0: subsiding, -8.0 mm/yr"
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[3])
    labels0 = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert f"mean (n={counts[0]:,})" in labels0
    assert "fit: trend + annual + step" in labels0  # cluster 0 has descriptors
    assert "fit: trend + annual + step" not in [t.get_text() for t in axes[2].get_legend().get_texts()]
    assert "no acquisition: interpolated" in labels0
    gaps = [p for p in axes[0].patches if p.get_label() == "no acquisition: interpolated"]
    assert len(gaps) == 1
    # hatched, so that the light grey std band of a stable cluster is not taken for a gap
    assert gaps[0].get_hatch() and not axes[0].collections[0].get_hatch()
    line = axes[0].get_lines()[0]
    assert line.get_xdata()[0] == np.datetime64(int(grid[0]), "D")
    assert line.get_xdata()[-1] == np.datetime64(int(grid[-1]), "D")
    assert {ax.get_xlabel() for ax in axes[-3:]} == {"Date"}
    assert axes[4].texts[0].get_text() == "empty"
    plt.close(fig)
    _png_size(out)


def test_k_sweep_plot(tmp_path):
    table = pd.DataFrame({"k": [2, 3, 4, 5], "silhouette": [0.3, 0.5, 0.4, 0.35],
                          "davies_bouldin": [1.2, 0.8, 0.9, 1.0], "inertia_train": [9, 6, 5, 4.5],
                          "inertia_test": [9.5, 6.2, 5.1, 4.7]})
    fig = figures.plot_k_sweep(table, tmp_path / "k.png", title="s")
    assert "k=3" in fig._suptitle.get_text()
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3
    plt.close(fig)
    _png_size(tmp_path / "k.png")


def test_figures_script(tmp_path, shards_file):
    from snakemake.iocontainers import Namedlist

    path, truth = shards_file
    labels = order_labels(truth, path)
    h5, js = tmp_path / "clusters" / "dsc.h5", tmp_path / "clusters" / "dsc.json"
    Labelling(labels, np.zeros(len(labels), np.uint8), {"k": 4}, proba=np.full((len(labels), 4), 0.25),
              attrs={"site": "s", "method": "dsc"}).write(h5)
    write_json({"site": "s", "method": "dsc", "k": 4, "clusters": CLUSTERS}, js)

    class Snakemake:
        input = Namedlist(fromdict={"labels": str(h5), "metrics": str(js), "shards": str(path)})
        output = Namedlist(fromdict={"map": str(tmp_path / "figures" / "dsc_map.png"),
                                     "clusters": str(tmp_path / "figures" / "dsc_clusters.png")})
        params = Namedlist(fromdict={"cfg": {"max_map_points": 1000, "dpi": 80}, "seed": 0})
        wildcards = Namedlist(fromdict={"site": "s", "method": "dsc"})
        log = [str(tmp_path / "figures.log")]
        threads = 1

    runpy.run_path(str(ROOT / "scripts" / "figures.py"), init_globals={"snakemake": Snakemake})
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["dsc_clusters.png", "dsc_map.png"]
    for name in ("dsc_clusters.png", "dsc_map.png"):
        _png_size(tmp_path / "figures" / name)
    assert json.loads(js.read_text())["method"] == "dsc"


def test_small_cluster_stays_on_the_map():
    # 40,000 points of one cluster and 6 of another in their midst, drawn from a 4,000-point sample
    rng = np.random.default_rng(3)
    lat, lon = 78.2 + rng.uniform(0, 0.1, 40006), 15.4 + rng.uniform(0, 0.5, 40006)
    labels = np.zeros(40006, dtype=int)
    labels[rng.choice(40006, 6, replace=False)] = 1
    fig = figures.plot_cluster_map(lat, lon, labels, clusters=[{"cluster": 0, "label": "stable"},
                                                               {"cluster": 1, "label": "accelerating"}],
                                   max_points=4000, seed=0)
    ax = fig.axes[0]
    scatter = ax.collections[0]
    assert len(scatter.get_offsets()) == 4000
    assert ax.get_title() == "2 clusters, 4,000 of 40,006 points shown"
    faces = scatter.get_facecolors()
    accel = np.all(np.isclose(faces, matplotlib.colors.to_rgba(figures.REGIME_COLOURS["accelerating"][0])), axis=1)
    assert accel.sum() == 6                               # every point of the small cluster is drawn
    assert accel[-6:].all()                               # and drawn last, on top of the big one
    sizes = np.broadcast_to(scatter.get_sizes(), (4000,))
    assert np.all(sizes[accel] == 24.0) and np.all(sizes[~accel] == 7.5)   # 4x the area (at most 24), so it shows
    plt.close(fig)
    # the sample is seeded and keeps each cluster's share
    rows = figures.map_sample(labels, np.bincount(labels), 4000, seed=0)
    assert np.array_equal(rows, figures.map_sample(labels, np.bincount(labels), 4000, seed=0))
    assert len(rows) == 4000 and np.all(np.diff(rows) > 0) and np.bincount(labels[rows]).tolist() == [3994, 6]


def test_many_clusters_of_one_regime_keep_distinct_colours():
    # k = 8 with four stable and five subsiding clusters: more than each regime has shades
    names = ["subsiding"] * 5 + ["stable"] * 4
    colours = figures.cluster_colors(9, [{"cluster": j, "label": name} for j, name in enumerate(names)])
    assert len(set(colours)) == 9
    assert colours[:4] == figures.REGIME_COLOURS["subsiding"] and colours[5:9] == figures.REGIME_COLOURS["stable"][:4]
    others = {c for name, family in figures.REGIME_COLOURS.items() if name not in names for c in family}
    assert not others & set(colours)


def test_grey_regimes_keep_shades_apart():
    """Step and stable clusters share the grey axis: up to three step and five stable clusters
    get colours at least 34 apart in RGB (0-255), and so do any two listed shades."""
    import itertools

    def rgb(c):
        return 255 * np.array(matplotlib.colors.to_rgb(c))

    names = ["step"] * 3 + ["stable"] * 5
    colours = figures.cluster_colors(8, [{"cluster": j, "label": name} for j, name in enumerate(names)])
    listed = [c for family in figures.REGIME_COLOURS.values() for c in family]
    for group in (colours, listed):
        closest = min(np.linalg.norm(rgb(a) - rgb(b)) for a, b in itertools.combinations(group, 2))
        assert closest >= 34, closest


@pytest.mark.parametrize("regime", list(figures.REGIME_COLOURS))
def test_many_clusters_of_one_regime_stay_apart_from_every_other(regime):
    """A large k can label many clusters alike (twelve stable ones on a quiet site): past the
    listed shades each still gets a colour at least 34 from every other of the figure, beside
    one cluster of each other regime."""
    import itertools

    names = [regime] * 12 + [r for r in figures.REGIME_COLOURS if r != regime]
    colours = figures.cluster_colors(len(names), [{"cluster": j, "label": n} for j, n in enumerate(names)])
    rgb = [255 * np.array(matplotlib.colors.to_rgb(c)) for c in colours]
    assert min(np.linalg.norm(a - b) for a, b in itertools.combinations(rgb, 2)) >= figures.MIN_COLOUR_DISTANCE
    listed = figures.REGIME_COLOURS[regime]
    assert colours[:len(listed)] == listed     # the listed shades first, unchanged


def test_second_component_line_differs_from_the_fitted_curve():
    """A decomposed pair's east mean and the fitted curve are told apart by style and width."""
    grid = np.arange(17500, 17500 + 6 * 80, 6)
    t = np.arange(80) / 60.0
    mean, std = -5.0 * t[None, :], np.ones((1, 80))
    clusters = [{"cluster": 0, "label": "subsiding", "model": "trend",
                 "descriptors": {"trend_mm_yr": -5.0, "offset_mm": 0.0}}]
    fig = figures.plot_cluster_series(grid, mean, std, np.array([10]), clusters=clusters,
                                      components=("up", "east"), second=(2.0 * t[None, :], std))
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    east = next(line for label, line in lines.items() if label.startswith("east"))
    fit = next(line for label, line in lines.items() if label.startswith("fit"))
    assert east.get_linestyle() == ":" and fit.get_linestyle() == "--"
    assert east.get_linewidth() >= 1.5 * fit.get_linewidth()
    plt.close(fig)


def test_empty_cluster_claims_no_motion():
    # the interpretation describes an empty cluster's all-zero mean as "stable, +0.0 mm/yr"
    grid = np.arange(17500, 17500 + 6 * 50, 6)
    mean, std = np.zeros((2, 50)), np.ones((2, 50))
    mean[1], std[1] = np.nan, np.nan
    clusters = [{"cluster": 0, "label": "subsiding", "descriptors": {"trend_mm_yr": -5.0}},
                {"cluster": 1, "label": "stable", "descriptors": {"trend_mm_yr": 0.0}}]
    fig = figures.plot_cluster_series(grid, mean, std, np.array([10, 0]), clusters=clusters)
    assert [ax.get_title() for ax in fig.axes] == ["Cluster 0: subsiding, -5.0 mm/yr", "Cluster 1: empty"]
    plt.close(fig)


def test_training_curve_marks_pretraining_as_having_no_clusters(tmp_path):
    """Pre-training epochs have no clusters: no 0 % bars, a note instead; joint epochs get bars."""
    history = [{"epoch": e, "phase": "pretrain" if e <= 3 else "joint", "recon_loss": 1.0 / e,
                "kl_loss": np.nan if e <= 3 else 0.1, "label_change": np.nan if e <= 3 else 0.02 * e}
               for e in range(1, 7)]
    fig = figures.plot_training_curve(history, tmp_path / "loss.png")
    ax_change = fig.axes[1]
    assert [p.get_x() + p.get_width() / 2 for p in ax_change.patches] == [4, 5, 6]
    np.testing.assert_allclose([p.get_height() for p in ax_change.patches], [8, 10, 12])
    assert any("pre-training" in t.get_text() for t in ax_change.texts)
    plt.close(fig)


def test_training_curve_says_whether_training_converged(tmp_path):
    """On a 100,000-point site DSC stopped at dsc.epochs with 0.7 % of its labels still changing
    (tol 0.1 %, ``converged: false`` in clusters/dsc.h5) while the figure and its caption ("training
    stops when fewer than dsc.tol of the labels change") read as if it had converged. The title now
    says which, from the fit record: a run that converged at an epoch's first target update
    logs no row for that epoch, so the log's last change can be above tol and still converged."""
    from insarclust.labels import Labelling

    history = [{"epoch": e, "phase": "pretrain" if e <= 5 else "joint", "recon_loss": 1.0 / e,
                "kl_loss": np.nan if e <= 5 else 0.08, "label_change": [np.nan] * 5 + [0.049, 0.018, 0.058, 0.007]}
               for e in range(1, 10)]
    for row in history:
        row["label_change"] = row["label_change"][row["epoch"] - 1]
    fit = Labelling(labels=np.zeros(4, dtype=np.int64), split=np.zeros(4, dtype=np.uint8),
                    record={"k": 1, "training": {"epochs_run": 9, "converged": False}})
    fit.write(tmp_path / "dsc.h5")
    record = figures.read_training_record(tmp_path / "dsc.h5")
    assert record == {"epochs_run": 9, "converged": False}
    fig = figures.plot_training_curve(history, tmp_path / "loss.png", title="DSC on bench",
                                      converged=record["converged"], tol=0.001)
    title = fig.axes[0].get_title()
    assert title == ("DSC on bench\nnot converged: stopped at the epoch limit (dsc.epochs),\n"
                     "0.7 % of labels still changing (dsc.tol 0.1 %)")
    plt.close(fig)
    fig = figures.plot_training_curve(history, tmp_path / "loss.png", title="DSC on bench", converged=True,
                                      tol=0.001)
    assert fig.axes[0].get_title() == "DSC on bench\nconverged: under 0.1 % of labels changed (dsc.tol)"
    plt.close(fig)
    # without a record (a log drawn on its own) the title claims neither
    fig = figures.plot_training_curve(history, tmp_path / "loss.png", title="DSC on bench")
    assert fig.axes[0].get_title() == "DSC on bench"
    plt.close(fig)


def test_training_curve_ticks_stay_readable(tmp_path):
    history = [{"epoch": e, "phase": "pretrain" if e <= 50 else "joint", "recon_loss": 1.0 / e,
                "kl_loss": np.nan if e <= 50 else 0.1, "label_change": np.nan if e <= 50 else 0.01}
               for e in range(1, 201)]
    fig = figures.plot_training_curve(history, tmp_path / "loss.png")
    ticks = fig.axes[1].get_xticks()
    assert len(ticks) <= 12 and np.all(ticks == np.round(ticks))
    plt.close(fig)


@pytest.mark.parametrize("geometry,ylabel", [(["incidence_angle", "track_angle"],
                                               "LOS displacement (mm)\n+ towards satellite"),
                                              ([], "Displacement (mm)")])
def test_cluster_series_say_which_motion_and_sign(tmp_path, shards_file, monkeypatch, geometry, ylabel):
    """The series of a line-of-sight product (EGMS L2b, InSAR Norway: read with acquisition
    geometry columns) were labelled 'Displacement (mm)' only: the PNG under figures/ did not say
    that the values are along the line of sight, nor that positive is towards the satellite (a
    subsiding cluster's mean is negative). A product without geometry (EGMS L3, vertical or
    east-west per file) keeps the plain label."""
    import h5py

    path, truth = shards_file
    with h5py.File(path, "a") as f:
        f.attrs.create("geometry_columns", geometry, dtype=h5io.STR)   # as the shards stage writes it
    assert figures.displacement_label(h5io.Shards(path)) == ylabel
    labels = tmp_path / "labels.h5"
    with h5py.File(labels, "w") as f:
        f["labels"] = truth.astype(np.int32)
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"site": "s", "method": "m", "k": 4, "clusters": CLUSTERS[:4]}))
    drawn = []
    original = figures.plot_cluster_series
    monkeypatch.setattr(figures, "plot_cluster_series",
                        lambda *a, **k: drawn.append(original(*a, **k)) or drawn[-1])
    figures.method_figures(labels, metrics, path, tmp_path / "map.png", tmp_path / "series.png")
    assert {ax.get_ylabel() for ax in drawn[0].axes if ax.get_ylabel()} == {ylabel}
    plt.close("all")


def test_decomposed_series_name_both_components_in_the_label(tmp_path, shards_file):
    import h5py

    path, _ = shards_file
    with h5py.File(path, "a") as f:
        f.attrs.create("components", ["up", "east"], dtype=h5io.STR)
    assert figures.displacement_label(h5io.Shards(path)) == "Displacement (mm)\n+ up, + east"
    # an EGMS L3 site of one component (from its file names)
    for component, label in (["up", "Vertical displacement (mm)\n+ up"],
                             ["east", "East-west displacement (mm)\n+ east"]):
        with h5py.File(path, "a") as f:
            f.attrs.create("components", [component], dtype=h5io.STR)
        assert figures.displacement_label(h5io.Shards(path)) == label


def test_east_west_trends_take_the_colours_of_vertical_ones_of_their_sign():
    east = figures.cluster_colors(3, [{"cluster": j, "label": n} for j, n in enumerate(["westward", "westward",
                                                                                        "eastward"])])
    up = figures.cluster_colors(3, [{"cluster": j, "label": n} for j, n in enumerate(["subsiding", "subsiding",
                                                                                      "uplifting"])])
    assert east == up


@pytest.mark.parametrize("max_gap_days,hatched", [(None, 0), (24, 1)])
def test_method_figures_hatch_the_gaps_of_interpret_max_gap_days(tmp_path, shards_file, monkeypatch,
                                                                 max_gap_days, hatched):
    """The cluster series hatch the acquisition gaps the clusters were described with: a step
    dated 'between A and B' (step_in_gap, interpret.max_gap_days) lies in a hatched stretch, and
    a gap the fit bridged as data is not hatched. A 30-day gap with max_gap_days 24 was left
    unhatched (the figure used 36 days whatever the config)."""
    import h5py

    import insarclust.descriptors

    path, truth = shards_file
    grid = h5io.Shards(path).grid_dates
    observed = np.concatenate([grid[:40], grid[40:][grid[40:] >= grid[39] + 30]])   # a 30-day gap
    monkeypatch.setattr(insarclust.descriptors, "site_acquisition_dates", lambda shards: observed)
    labels = tmp_path / "labels.h5"
    with h5py.File(labels, "w") as f:
        f["labels"] = truth.astype(np.int32)
    result = {"site": "s", "method": "m", "k": 4, "clusters": CLUSTERS[:4]}
    if max_gap_days is not None:
        result["config"] = {"interpret": {"max_gap_days": max_gap_days}}
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps(result))
    drawn = []
    original = figures.plot_cluster_series
    monkeypatch.setattr(figures, "plot_cluster_series",
                        lambda *a, **k: drawn.append(original(*a, **k)) or drawn[-1])
    figures.method_figures(labels, metrics, path, tmp_path / "map.png", tmp_path / "series.png")
    ax = drawn[0].axes[0]
    assert len([p for p in ax.patches if p.get_hatch()]) == hatched


def test_cluster_map_of_a_site_astride_the_180th_meridian(tmp_path):
    """A site astride 180 degrees (Chukotka, Fiji, the Aleutians) has points at 179.99 and
    -179.99: drawn as read, the 4 km site filled a map 360 degrees wide (two lines at its ends,
    a 2000 km scale bar). Its longitudes are drawn 0-360, so the map is the site's 4 km."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    rng = np.random.default_rng(0)
    lat = 65.5 + 0.03 * rng.random(500)
    lon = 179.96 + 0.08 * rng.random(500)           # 179.96 .. 180.04 E, 4 km wide at 65.5 N
    lon = np.where(lon > 180.0, lon - 360.0, lon)   # as files write them: -180..180
    assert np.ptp(lon) > 359
    fig = figures.plot_cluster_map(lat, lon, np.arange(500) % 2, tmp_path / "map.png")
    ax = fig.axes[0]
    x0, x1 = ax.get_xlim()
    assert 179.9 < x0 < 179.97 and 180.03 < x1 < 180.1
    bar = next(a for a in ax.artists if isinstance(a, AnchoredSizeBar))
    assert bar.txt_label.get_text() in ("500 m", "1 km")
    assert ax.get_xlabel() == "Longitude (°E, 0-360)"
    # a site on the 0 meridian keeps its signed longitudes
    assert figures.map_longitudes(np.array([-0.05, 0.05]))[1] is False
    plt.close(fig)
