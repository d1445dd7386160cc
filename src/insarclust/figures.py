"""The standard figures of every clustering method: cluster map, per-cluster series, k sweep.

A cluster's colour follows its kind of motion, the label the interpretation
gives it (:func:`cluster_colors`): red-orange subsiding, purple accelerating,
blue uplifting, green seasonal, black step, grey stable, in every method's
and every site's figures; clusters of one kind get shades of it in id order,
paler ones past the listed shades (ids are ordered by trend,
:func:`insarclust.labels.order_labels`). Without labels a cluster takes the
colour of its id (:func:`cluster_color`).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from . import h5io  # noqa: E402
from .interpret import TREND_WORDS, motion_text, trend_words  # noqa: E402
from .spans import acquisition_gaps  # noqa: E402

log = logging.getLogger(__name__)

# Okabe-Ito colours (colour-blind safe) ordered from warm to cold, so with
# trend-ordered ids subsidence reads red and uplift blue; then tab20 for k > 8.
_OKABE_ITO = ["#D55E00", "#E69F00", "#009E73", "#56B4E9", "#0072B2", "#CC79A7", "#F0E442", "#000000"]
PALETTE = _OKABE_ITO + [matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab20").colors]


def cluster_color(cluster: int) -> str:
    """The fixed colour of a cluster id (the same in every method's figures)."""
    return PALETTE[int(cluster) % len(PALETTE)]


# Colours by kind of motion (Okabe-Ito hues, colour-blind safe), then shades for
# several clusters of one kind. Step and stable share the grey axis, so their
# later shades are tinted (a dark blue-grey step, a blue- and a warm-grey stable):
# no two listed shades are closer than 34 in RGB (0-255), greys included.
REGIME_COLOURS = {
    "subsiding": ["#D55E00", "#E69F00", "#8C3A00", "#F5B26B"],
    "accelerating": ["#CC79A7", "#8E3F6F", "#E3B3CF"],
    "uplifting": ["#0072B2", "#56B4E9", "#003F63", "#A6D8F5"],
    "seasonal": ["#009E73", "#66C5AB", "#00553E"],
    "step": ["#000000", "#555555", "#2B3440"],
    "stable": ["#9E9E9E", "#6E6E6E", "#C8C8C8", "#9FB4D0", "#CDB49B"],
}
# an east-west component's trends take the colours of the vertical ones of the same sign (the
# two never share a map)
SAME_COLOURS = {word: vertical for words in TREND_WORDS.values()
                for word, vertical in zip(words, trend_words(None))}


# Colours closer than this (RGB distance, 0-255) are hard to tell apart as small map markers.
MIN_COLOUR_DISTANCE = 34
# Past a regime's listed shades: its shades mixed towards these (white and black first, keeping
# the hue), at these fractions, the first far enough from every colour of the figure.
_EXTRA_TOWARDS = ("#FFFFFF", "#000000", "#0072B2", "#E69F00", "#009E73", "#CC79A7")
_EXTRA_FRACTIONS = (0.35, 0.6)


def cluster_colors(k: int, clusters=None) -> list[str]:
    """The colour of each cluster id 0..k-1: its regime's (shades in id order), else its id's.

    Listed shades go first; a cluster past its regime's list (e.g. eight stable clusters at a
    large k) gets a mix of the regime's shades at least :data:`MIN_COLOUR_DISTANCE` from every
    other colour of the figure, or, when none is left, the shade mixed ever closer to white.
    """
    entries = _entries(clusters)
    labels = [(entries.get(j) or {}).get("label") for j in range(k)]
    out: list = [None] * k
    seen: dict = {}
    extra = []
    for j, label in enumerate(labels):
        family = SAME_COLOURS.get(label, label)
        shades = REGIME_COLOURS.get(family)
        if shades is None:
            out[j] = cluster_color(j)
            continue
        i = seen.get(family, 0)
        seen[family] = i + 1
        if i < len(shades):
            out[j] = shades[i]
        else:
            extra.append((j, shades, i))
    for j, shades, i in extra:
        out[j] = _extra_shade(shades, [c for c in out if c is not None]) or _shade(shades, i)
    return out


def _extra_shade(shades: list[str], used: list[str]) -> str | None:
    """The first mix of ``shades`` (see :data:`_EXTRA_TOWARDS`) far enough from every ``used`` colour."""
    used_rgb = np.array([matplotlib.colors.to_rgb(c) for c in used]) * 255
    for fraction in _EXTRA_FRACTIONS:
        for towards in _EXTRA_TOWARDS:
            target = np.array(matplotlib.colors.to_rgb(towards))
            for shade in shades:
                rgb = (1 - fraction) * np.array(matplotlib.colors.to_rgb(shade)) + fraction * target
                if not len(used_rgb) or np.min(np.linalg.norm(used_rgb - 255 * rgb, axis=1)) >= MIN_COLOUR_DISTANCE:
                    return matplotlib.colors.to_hex(rgb).upper()
    return None


def _shade(shades: list[str], i: int) -> str:
    """The i-th shade of a regime; past its list, the listed shades mixed ever closer to white,
    so that no two clusters of one regime share a colour."""
    if i < len(shades):
        return shades[i]
    towards_white = 1.0 - 0.5 ** (i // len(shades))
    rgb = np.array(matplotlib.colors.to_rgb(shades[i % len(shades)]))
    return matplotlib.colors.to_hex(rgb + (1.0 - rgb) * towards_white).upper()


def _style():
    try:
        import seaborn as sns

        sns.set_theme(style="whitegrid", context="notebook")
    except ImportError:  # seaborn only styles; the figures do not need it
        plt.style.use("default")


def _entries(clusters) -> dict:
    return {int(c["cluster"]): c for c in (clusters or [])}


def cluster_caption(cluster: int, size: int, entry: dict | None) -> str:
    """``"2: subsiding, -8.1 mm/yr (n=4,210)"``; label and motion when the JSON entry has them."""
    desc = _describe(entry)
    return f"{cluster}: {desc} (n={size:,})" if desc else f"{cluster} (n={size:,})"


def _describe(entry) -> str:
    """``"subsiding, -8.1 mm/yr"``, or ``"step of -15.9 mm on 2020-01-28"`` (the label said once)."""
    label, motion = (entry or {}).get("label"), motion_text(entry)
    if label == "step" and motion and motion.startswith("step"):
        return motion
    return ", ".join(p for p in [label, motion] if p)


def panel_title(cluster: int, desc: str | None, width: int = 46) -> str:
    """``"Cluster 2: subsiding, -8.1 mm/yr"``; past ``width`` characters (a step dated to a
    winter gap) on two lines, so that it stays over its own panel."""
    import textwrap

    title = f"Cluster {cluster}" + (f": {desc}" if desc else "")
    if len(title) <= width:
        return title
    if " between " in title:
        return title.replace(" between ", "\nbetween ", 1)
    # not at a hyphen: "peak mid-Jul" split as "mid-" / "Jul"
    return textwrap.fill(title, width, break_long_words=False, break_on_hyphens=False)


def _save(fig, path, dpi):
    with h5io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")


def map_sample(labels: np.ndarray, counts: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted rows of a seeded sample of ``max_points`` points, stratified by cluster: each cluster
    keeps its share, and at least ``min(size, max_points // (10 k))`` points, so that a small
    cluster does not vanish from the map."""
    n, k = len(labels), len(counts)
    floor = np.minimum(counts, max(max_points // (10 * max(k, 1)), 1))
    share = (counts - floor) * (max_points - floor.sum()) / max(n - floor.sum(), 1)
    quota = floor + np.floor(share).astype(np.int64)
    left = int(max_points - quota.sum())   # the rounding remainder, to the largest fractions
    if left > 0:
        quota[np.argsort(-(share - np.floor(share)), kind="stable")[:left]] += 1
    quota = np.minimum(quota, counts)
    perm = np.random.default_rng(seed).permutation(n)
    grouped = perm[np.argsort(labels[perm], kind="stable")]   # each cluster's rows, shuffled
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.sort(np.concatenate([grouped[a:a + q] for a, q in zip(starts, quota)]))


def plot_cluster_map(lat: np.ndarray, lon: np.ndarray, labels: np.ndarray, path=None, *,
                     clusters: list | None = None, n_clusters: int | None = None, title: str = "",
                     max_points: int = 200000, seed: int = 0, dpi: int = 150):
    """Lon/lat scatter coloured by cluster; returns the Figure (saved as PNG when ``path``).

    lat, lon (N,) degrees; labels (N,). Above ``max_points`` a seeded sample
    stratified by cluster is drawn (:func:`map_sample`; the legend counts stay
    those of all points). Larger clusters are drawn first, so smaller ones lie
    on top, and a cluster under 1 % of the points with larger markers. The axes aspect is
    1/cos(mean latitude) so distances look right, and a scale bar gives them in m or km
    (:func:`scale_bar`); points are rasterised.
    """
    _style()
    labels = np.asarray(labels)
    n = len(labels)
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    counts = np.bincount(labels, minlength=k)
    rows = np.arange(n) if n <= max_points else map_sample(labels, counts, max_points, seed)
    lon, east_of_180 = map_longitudes(lon)
    lat_s, lon_s, lab_s = np.asarray(lat)[rows], lon[rows], labels[rows]
    fig, ax = plt.subplots(figsize=(8, 7))
    size = float(np.clip(30000.0 / max(len(rows), 1), 0.2, 12.0))
    # a cluster under 1 % of the points (often the one that matters: a slide among stable
    # ground) is drawn with 4x the marker area, at least 4 pt^2 and at most 24 pt^2, so it shows
    # at any site size: 13x on 100,000 points shown, 2x on up to 2,500 (whose markers are 12 pt^2)
    small = counts < 0.01 * max(n, 1)
    sizes = np.where(small, min(max(4.0 * size, 4.0), 24.0), size)
    # largest cluster first, smallest last (on top): a small cluster inside a big one stays
    # visible; shuffled within a size so ties do not follow the storage order
    draw = np.random.default_rng(seed).permutation(len(rows))
    draw = draw[np.argsort(-counts[lab_s[draw]], kind="stable")]
    colours = cluster_colors(max(k, 1), clusters)
    rgba = np.array([matplotlib.colors.to_rgba(c) for c in colours])
    ax.scatter(lon_s[draw], lat_s[draw], c=rgba[lab_s[draw]], s=sizes[lab_s[draw]],
               linewidths=0, rasterized=True)
    mean_lat = float(np.nanmean(lat)) if n else 0.0
    ax.set_aspect(1.0 / max(math.cos(math.radians(mean_lat)), 1e-3))
    if len(rows):
        # the width the axes show, not the points' spread: one point, or points along one
        # meridian, span no longitude while the axes still show some
        x0, x1 = ax.get_xlim()
        _add_scale_bar(ax, float(x1 - x0), mean_lat)
    ax.set_xlabel("Longitude (°E, 0-360)" if east_of_180 else "Longitude (°E)")
    ax.set_ylabel("Latitude (°N)")
    ax.ticklabel_format(useOffset=False, style="plain")
    entries = _entries(clusters)
    handles = [Line2D([], [], marker="o", linestyle="", markersize=8, color=colours[j],
                      label=cluster_caption(j, int(counts[j]), entries.get(j)))
               for j in range(k) if counts[j] > 0]
    ax.legend(handles=handles, title="Cluster", loc="upper left", bbox_to_anchor=(1.02, 1.0),
              frameon=True)
    shown = f", {len(rows):,} of {n:,} points shown" if len(rows) < n else f", {n:,} points"
    ax.set_title(f"{title}{': ' if title else ''}{k} clusters{shown}")
    if path is not None:
        _save(fig, path, dpi)
    return fig


def map_longitudes(lon) -> tuple[np.ndarray, bool]:
    """Longitudes to draw: ``lon`` as given, or counted 0..360 (and True) where that spans less,
    as for a site astride the 180th meridian: read -180..180 its points at 179.99 and -179.99
    lie at both ends of a map 360 degrees wide, the site a line and its scale bar 2000 km."""
    lon = np.asarray(lon, dtype=np.float64)
    if len(lon) == 0 or np.ptp(lon) <= 180.0:
        return lon, False
    shifted = np.mod(lon, 360.0)
    return (shifted, True) if np.ptp(shifted) < np.ptp(lon) else (lon, False)


def scale_bar(width_deg: float, lat_deg: float) -> tuple[float, str]:
    """A scale bar for a lon/lat map ``width_deg`` degrees of longitude wide at ``lat_deg``:
    ``(length in degrees of longitude, label)``, the length a round 1, 2 or 5 x 10^n m near a
    fifth of the width (``"2 km"``, ``"500 m"``). Degree ticks give no distance: at 70 N a
    degree of longitude is 38 km, one of latitude 111 km."""
    from .geodesy import EARTH_RADIUS_M

    m_per_deg = math.radians(1.0) * EARTH_RADIUS_M * max(math.cos(math.radians(lat_deg)), 1e-6)
    target = max(width_deg, 1e-9) * m_per_deg / 5.0
    power = 10.0 ** math.floor(math.log10(target))
    if power > target:   # log10 rounded up just below a power of ten (999.9999999999999 -> 3.0)
        power /= 10.0
    metres = max(s * power for s in (1.0, 2.0, 5.0) if s * power <= target)
    label = f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"
    return metres / m_per_deg, label


def _add_scale_bar(ax, width_deg: float, lat_deg: float) -> None:
    """A ground-distance bar in the lower right corner of a lon/lat map (:func:`scale_bar`)."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length, label = scale_bar(width_deg, lat_deg)
    bar = AnchoredSizeBar(ax.transData, length, label, "lower right", pad=0.4, sep=3, borderpad=0.6,
                          frameon=True, size_vertical=0, fontproperties={"size": 9})
    bar.patch.set_alpha(0.8)
    bar.set_gid("scale_bar")
    ax.add_artist(bar)


def _model_curve(entry, grid_dates):
    """The fitted trend + annual + step curve of a cluster entry, or None; NaN outside the
    entry's ``span`` (a cluster whose members cover part of the period: fitted there only)."""
    try:
        from .descriptors import model_curve
    except ImportError:
        return None
    d = {name: v for name, v in ((entry or {}).get("descriptors") or {}).items() if v is not None}
    if not d:
        return None
    try:
        curve = np.asarray(model_curve(d, grid_dates, entry.get("reference_date")), dtype=float)
    except (KeyError, TypeError, ValueError):
        return None
    if not np.all(np.isfinite(curve)):
        return None
    span = entry.get("span")
    if span:
        dates = np.asarray(grid_dates)
        curve[(dates < span[0]) | (dates > span[1])] = np.nan
    return curve


def plot_cluster_series(grid_dates: np.ndarray, mean: np.ndarray, std: np.ndarray, counts: np.ndarray,
                        path=None, *, clusters: list | None = None, observed_dates=None,
                        max_gap_days: float = 36.0, title: str = "", dpi: int = 150,
                        components: tuple[str, str] | None = None,
                        second: tuple[np.ndarray, np.ndarray] | None = None,
                        ylabel: str = "Displacement (mm)"):
    """One panel per cluster (shared axes): mean +/- std displacement (mm) against the date.

    grid_dates (G,) days since 1970-01-01; mean, std (K, G) mm; counts (K,).
    ``observed_dates``: the acquisition dates; stretches without one longer
    than ``max_gap_days`` are hatched (the series is interpolated there). When
    a ``clusters`` entry has descriptors, the fitted trend + annual harmonic +
    step curve is drawn over the mean. ``second``: ``(mean, std)`` (K, G) of
    a second component (the east-west motion of a decomposed pair), drawn
    dotted over the first; ``components`` names both, e.g. ``("up", "east")``. ``ylabel``: what
    the values are and their sign (:func:`displacement_label`).
    """
    _style()
    mean, std = np.atleast_2d(mean), np.atleast_2d(std)
    k = len(mean)
    grid_dates = np.asarray(grid_dates)
    days = grid_dates.astype("datetime64[D]")
    gaps = [] if observed_dates is None else acquisition_gaps(observed_dates, max_gap_days)
    colours = cluster_colors(k, clusters)
    ncols = min(k, 3)
    nrows = math.ceil(k / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.2 * nrows), sharex=True,
                             sharey=True, squeeze=False)
    entries = _entries(clusters)
    for j in range(nrows * ncols):
        ax = axes.flat[j]
        if j >= k:
            ax.set_visible(False)
            continue
        color, entry = colours[j], entries.get(j)
        desc = "empty" if counts[j] == 0 else _describe(entry)   # no regime read from no points
        ax.set_title(panel_title(j, desc), fontsize=11)
        if counts[j] == 0:
            ax.text(0.5, 0.5, "empty", transform=ax.transAxes, ha="center", va="center")
            continue
        # the site's gaps, and the cluster's own (a season most of its members miss)
        # (the mean leaves the members' own holes out: there it rests on the few observed, or stops)
        own = [tuple(g) for g in (entry or {}).get("acquisition_gaps") or []]
        for spans, hatch, label in ((gaps, "///", "no acquisition: interpolated"),
                                    (own, "\\\\\\", "most members unobserved")):
            for n_gap, (a, b) in enumerate(spans):
                # hatched: a stable (grey) cluster's std band is a plain light grey too
                ax.axvspan(np.datetime64(a, "D"), np.datetime64(b, "D"), facecolor="0.95", edgecolor="0.8",
                           hatch=hatch, zorder=0, linewidth=0, label=label if n_gap == 0 else None)
        first_name = f"{components[0]} " if components else ""
        ax.fill_between(days, mean[j] - std[j], mean[j] + std[j], color=color, alpha=0.25,
                        linewidth=0, label="± 1 std")
        ax.plot(days, mean[j], color=color, linewidth=1.8, label=f"{first_name}mean (n={int(counts[j]):,})")
        if second is not None:
            m2, s2 = second[0][j], second[1][j]
            ax.fill_between(days, m2 - s2, m2 + s2, color="#555555", alpha=0.12, linewidth=0)
            # dotted and heavier: the fitted curve is a thin dashed black line
            ax.plot(days, m2, color="#333333", linewidth=1.8, linestyle=":",
                    label=f"{components[1] if components else 'second'} mean ± 1 std")
        curve = _model_curve(entry, grid_dates)
        if curve is not None:
            ax.plot(days, curve, color="black", linewidth=1.0, linestyle="--",
                    label="fit: trend + annual + step")
        ax.axhline(0.0, color="grey", linewidth=0.6, zorder=0)
        ax.legend(loc="best", fontsize=8, frameon=True)
    import matplotlib.dates as mdates

    years = max(1, int(math.ceil((int(grid_dates[-1]) - int(grid_dates[0])) / 365.25 / 6)))
    for ax in axes.flat:   # a tick per year (or per few years): readable whatever the width
        ax.xaxis.set_major_locator(mdates.YearLocator(years))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    for col in range(ncols):
        # the lowest visible panel of each column carries the x axis
        bottom = axes[(k - 1 - col) // ncols, col] if col < k else None
        if bottom is not None:
            bottom.xaxis.set_tick_params(labelbottom=True)
            bottom.set_xlabel("Date")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        _save(fig, path, dpi)
    return fig


K_SWEEP_PANELS = [
    ("silhouette", "Silhouette (higher is better)"),
    ("davies_bouldin", "Davies-Bouldin (lower is better)"),
    ("calinski_harabasz", "Calinski-Harabasz (higher is better)"),
    ("inertia", "Inertia: mean squared distance"),
    ("spatial_coherence", "Spatial coherence"),
    ("mean_intercentroid_distance", "Mean inter-centroid distance"),
]


def plot_k_sweep(table, path=None, *, title: str = "", chosen: int | None = None, dpi: int = 150):
    """Metrics vs k from :func:`insarclust.kmeans.sweep_k`; returns the Figure.

    ``chosen`` (default: the k of the best silhouette) is marked in every panel.
    """
    _style()
    k = table["k"].to_numpy()
    panels = [(col, name) for col, name in K_SWEEP_PANELS
              if (col == "inertia" and "inertia_train" in table) or col in table]
    if chosen is None and "silhouette" in table and np.isfinite(table["silhouette"]).any():
        chosen = int(k[int(np.nanargmax(table["silhouette"].to_numpy(dtype=float)))])
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.2 * nrows), sharex=True,
                             squeeze=False)
    for ax, (col, name) in zip(axes.flat, panels):
        if col == "inertia":
            ax.plot(k, table["inertia_train"], marker="o", label="train")
            if "inertia_test" in table:
                ax.plot(k, table["inertia_test"], marker="s", linestyle="--", label="test")
            ax.legend(fontsize=8)
        else:
            ax.plot(k, table[col], marker="o", color="#0072B2")
        if chosen is not None:
            ax.axvline(chosen, color="#D55E00", linestyle=":", linewidth=1.2)
        ax.set_title(name, fontsize=10)
        ax.set_xticks(k)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("k (clusters)")
    fig.suptitle((f"{title}: " if title else "") + "choice of k"
                 + (f" (best silhouette at k={chosen})" if chosen is not None else ""))
    fig.tight_layout()
    if path is not None:
        _save(fig, path, dpi)
    return fig


def displacement_label(shards: h5io.Shards) -> str:
    """The y label of the cluster series, with the direction and sign of the values: a decomposed
    pair's components (``"Displacement (mm)"`` over ``"+ up, + east"``), line of sight for a product read
    with acquisition geometry columns (EGMS L2a/L2b, InSAR Norway, Svalbard: ``"LOS displacement
    (mm)"`` over ``"+ towards satellite"``, two lines to fit beside a panel), an EGMS L3 site's component
    where its file names give it (``"Vertical displacement (mm)"``, ``"East-west displacement (mm)"``),
    else plain ``"Displacement (mm)"``."""
    if len(shards.components) > 1:
        return "Displacement (mm)\n" + ", ".join(f"+ {c}" for c in shards.components)
    if shards.components == ["up"]:
        return "Vertical displacement (mm)\n+ up"
    if shards.components == ["east"]:
        return "East-west displacement (mm)\n+ east"
    if list(shards.attrs.get("geometry_columns") or []):
        return "LOS displacement (mm)\n+ towards satellite"
    return "Displacement (mm)"


def method_figures(labels_path, metrics_path, shards_path, map_path, series_path, *,
                   max_map_points: int = 200000, seed: int = 0, dpi: int = 150,
                   title: str | None = None) -> None:
    """Both standard figures of one method from its ``clusters/{method}.h5|.json`` and ``shards.h5``."""
    from .cluster_series import cluster_series_stats

    labels = h5io.read_datasets(labels_path, ["labels"])["labels"]
    shards = h5io.Shards(shards_path)
    h5io.check_same_points(labels_path, len(labels), shards, "labels")
    result = json.loads(Path(metrics_path).read_text())
    k = int(result.get("k") or int(labels.max()) + 1)
    if title is None:
        title = " - ".join(str(result[key]) for key in ("site", "method") if result.get(key))
    lat, lon = shards.coords()
    clusters = result.get("clusters")
    fig = plot_cluster_map(lat, lon, labels, map_path, clusters=clusters, n_clusters=k, title=title,
                           max_points=max_map_points, seed=seed, dpi=dpi)
    plt.close(fig)
    from .descriptors import site_acquisition_dates
    from .interpret import fit_settings

    # the gaps the clusters were described with (their step_in_gap, the members' own holes
    # left out of the mean): interpret.max_gap_days
    max_gap_days = fit_settings((result.get("config") or {}).get("interpret"))["max_gap_days"]
    site_dates = site_acquisition_dates(shards)
    mean, std, counts = cluster_series_stats(shards_path, labels, k, max_gap_days=max_gap_days,
                                             site_dates=site_dates)
    second, names = None, None
    if len(shards.components) > 1:   # a decomposed pair: the east-west motion beside the vertical
        names = (shards.components[0], shards.components[1])
        m2, s2, _ = cluster_series_stats(shards_path, labels, k, dataset=shards.component_dataset(names[1]),
                                         max_gap_days=max_gap_days, site_dates=site_dates)
        second = (m2, s2)
    fig = plot_cluster_series(shards.grid_dates, mean, std, counts, series_path, clusters=clusters,
                              observed_dates=site_dates, title=title, dpi=dpi,
                              components=names, second=second, max_gap_days=max_gap_days,
                              ylabel=displacement_label(shards))
    plt.close(fig)
    log.info("figures of %s: %s, %s", title, map_path, series_path)


# --------------------------------------------------------------------------- #
# DSC training


def training_status(history: list[dict], converged: bool | None, tol: float | None = None) -> str | None:
    """One line on how DSC training ended: ``"converged: under 0.1 % of labels changed (dsc.tol)"``
    or ``"not converged: stopped at the epoch limit (dsc.epochs), 0.7 % of labels still changing
    (dsc.tol 0.1 %)"``; None when ``converged`` is unknown. Training that converged at an epoch's
    first target update logs no row for that epoch, so the log alone cannot tell: ``converged``
    comes from the fit record (``training.converged`` of ``clusters/dsc.h5``)."""
    if converged is None:
        return None
    tol_text = "" if tol is None else f"{100 * float(tol):.2g} %"
    if converged:
        return f"converged: under {tol_text} of labels changed (dsc.tol)" if tol_text else "converged (dsc.tol)"
    changes = [float(r.get("label_change", np.nan)) for r in history]
    changes = [c for c in changes if np.isfinite(c)]
    still = f", {100 * changes[-1]:.2g} % of labels still changing" if changes else ""
    return (f"not converged: stopped at the epoch limit (dsc.epochs){still}"
            + (f" (dsc.tol {tol_text})" if tol_text else ""))


def plot_training_curve(history: list[dict], path, title: str = "DSC training", dpi: int = 150, *,
                        converged: bool | None = None, tol: float | None = None):
    """PNG of recon_loss and kl_loss per epoch, pre-training and joint phases shaded apart, and
    (when logged) the share of points whose cluster changed in each joint epoch below.

    ``history``: the estimator's ``history_`` (or rows of train_log.tsv, :func:`read_train_log`).
    ``converged`` (the fit record's ``training.converged``) and ``tol`` (``dsc.tol``): the title
    says whether training converged or stopped at the epoch limit (:func:`training_status`).
    Returns the Figure (close it when done).
    """
    epochs = np.array([r["epoch"] for r in history], dtype=float)
    recon = np.array([r["recon_loss"] for r in history], dtype=float)
    kl = np.array([r["kl_loss"] for r in history], dtype=float)
    joint = np.array([r["phase"] == "joint" for r in history], dtype=bool)
    change = np.array([r.get("label_change", np.nan) for r in history], dtype=float)
    if np.isfinite(change).any():
        fig, (ax, ax_change) = plt.subplots(2, 1, figsize=(6.4, 5.4), sharex=True, constrained_layout=True,
                                            height_ratios=[2, 1])
        logged = np.isfinite(change)
        ax_change.bar(epochs[logged], 100 * change[logged], color="tab:gray", width=0.6)
        ax_change.set_ylabel("points that changed\ncluster (%)")
        ax_change.set_xlabel("epoch")
        if (~joint).any():
            # no clusters exist before the joint phase: say so rather than show empty 0 % bars
            pre = epochs[~joint]
            ax_change.text(0.5 * (pre.min() + pre.max()), 0.5, "pre-training:\nno clusters yet",
                           transform=ax_change.get_xaxis_transform(), ha="center", va="center",
                           fontsize=8, color="0.4")
    else:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    if np.isfinite(recon).any():
        ax.plot(epochs, recon, "o-", color="tab:blue", label="reconstruction MSE")
    if not np.isfinite(change).any():
        ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction MSE (scaled units)")
    handles, labels = ax.get_legend_handles_labels()
    if np.isfinite(kl).any():
        ax2 = ax.twinx()
        ax2.plot(epochs, kl, "s--", color="tab:red", label="KL(P||Q)")
        ax2.set_ylabel("clustering loss KL(P||Q)")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if joint.any() and (~joint).any():
        ax.axvspan(epochs[joint].min() - 0.5, epochs[joint].max() + 0.5, color="0.92", zorder=0)
        ax.text(epochs[joint].min() - 0.4, ax.get_ylim()[1], "joint", va="top", fontsize=8)
    if 0 < len(epochs) <= 12:
        ax.set_xticks(epochs)
    else:   # a tick per epoch would overlap: a dozen at most, on whole epochs
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=10, integer=True))
    if handles:
        ax.legend(handles, labels, loc="center right", fontsize=8)
    status = training_status(history, converged, tol)
    if status and len(status) > 56:   # on two lines, within the figure's width
        status = status.replace("), ", "),\n", 1)
    ax.set_title(title + (f"\n{status}" if status else ""), fontsize=None if not status else 10)
    with h5io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return fig


def read_training_record(clusters_path) -> dict:
    """The ``training`` entry of the fit record (``/fit``) of ``clusters/dsc.h5``, without
    reading its (N,) arrays; {} when there is none."""
    from .labels import Labelling

    return dict(Labelling.read_record(clusters_path).get("training") or {})


def read_train_log(path) -> list[dict]:
    """Rows of ``train_log.tsv`` as dicts (the figure is drawn from the file, apart from training)."""
    import pandas as pd

    return pd.read_csv(path, sep="\t").to_dict("records")
