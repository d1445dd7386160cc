"""Cross-site, cross-method comparison table from the ``clusters/*.json`` metrics.

``results/summary.tsv`` is long form, one number per row::

    site  method  metric  value

so that adding a site, a method or a metric never changes the columns, and
``pandas.read_csv(path, sep="\\t")`` followed by :func:`pivot_wide` gives the
side-by-side view. Rows keep the order of the inputs (site, then method as
the workflow lists them) and metrics a fixed order, so the same metrics JSONs
always give a byte-identical file. Timings and devices are left out on
purpose: they vary between runs and belong in ``provenance.json``.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from insarclust import h5io
from insarclust.interpret import motion_text

COLUMNS = ["site", "method", "metric", "value"]

# Display and row order; anything else a method reports comes after, sorted.
METRIC_ORDER = [
    "k", "n_points", "n_train", "n_test", "largest_cluster_share",
    "ari", "nmi", "label_match", "n_truth",
    "silhouette", "davies_bouldin", "calinski_harabasz", "mean_intercentroid_distance",
    "spatial_coherence", "inertia_train", "inertia_test",
]

# Columns of the report's comparison table (the TSV keeps every metric).
DISPLAY_METRICS = ["k", "ari", "nmi", "label_match", "n_truth", "spatial_coherence", "silhouette",
                   "davies_bouldin", "calinski_harabasz", "largest_cluster_share", "seed_stability_ari"]
METRIC_TITLE = {"k": "k", "ari": "ARI", "nmi": "NMI", "label_match": "label match", "n_truth": "truth points",
                "spatial_coherence": "spatial coherence", "silhouette": "silhouette",
                "davies_bouldin": "Davies-Bouldin", "calinski_harabasz": "Calinski-Harabasz",
                "largest_cluster_share": "largest cluster share",
                "seed_stability_ari": "seed stability",
                "mean_intercentroid_distance": "mean inter-centroid distance"}

# Metrics whose best value per site is highlighted: only those against the true regimes.
# Feature-space metrics (silhouette, ...) compare methods only within one feature space, and
# spatial coherence favours methods smoothed on the graph it is measured on (and one big
# cluster), so a "best" across all methods would mislead.
HIGHER_IS_BETTER = {"ari", "nmi", "label_match"}
LOWER_IS_BETTER: set = set()
# ARI differences below this are within what another seed alone changes (docs/validity.md:
# seed-to-seed spread of one method on one site is often larger).
LEVEL_ARI = 0.05

METRIC_HELP = {
    "k": "number of clusters",
    "n_points": "points labelled",
    "largest_cluster_share": "share of points in the largest cluster (near 1: one cluster took all)",
    "ari": "adjusted Rand index vs the true regimes (demo sites, sites with a truth table; 1 = perfect, 0 = chance)",
    "nmi": "normalised mutual information vs the true regimes (demo sites, sites with a truth table; 0..1)",
    "label_match": "share of points whose cluster's suggested label equals their true regime",
    "n_truth": "points with a known regime that ARI, NMI and label match are measured on (only where the "
               "site's truth table covers some of its points)",
    "silhouette": "separation of clusters in feature space (-1..1, higher is better)",
    "davies_bouldin": "cluster overlap in feature space (>= 0, lower is better)",
    "calinski_harabasz": "between- over within-cluster dispersion (higher is better)",
    "mean_intercentroid_distance": "mean distance between cluster centres in feature space",
    "spatial_coherence": "share of neighbour-graph edges joining same-label points (0..1)",
    "seed_stability_ari": "ARI between the k-means fit and a refit with seed + 1 (kmeans.seed_stability; "
                          "1 = the same clusters, lower = another seed gives other clusters)",
}

# Keys of a metrics JSON that are not comparable numbers (or vary run to run).
_SKIP_KEYS = {"site", "method", "clusters", "sizes", "config", "params", "split", "seed",
              "metrics", "version", "insarclust_version"}
_VOLATILE = re.compile(r"(second|(^|_)s$|time|duration|elapsed|rss|device|host|version|path)",
                       re.IGNORECASE)


def _numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _flatten(prefix: str, value, out: dict, null_is_nan: bool = False) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out, null_is_nan)
    elif _VOLATILE.search(prefix.rsplit(".", 1)[-1]):
        return
    elif _numeric(value):
        out[prefix] = value
    elif value is None and null_is_nan:
        out[prefix] = float("nan")  # metrics JSONs store NaN (undefined metric) as null


def site_method_from_path(path) -> tuple[str, str]:
    """``results/{site}/clusters/{method}.json`` -> ``(site, method)``."""
    path = Path(path)
    return path.parent.parent.name, path.stem


def metrics_of(result: Mapping) -> dict[str, float]:
    """Flat ``{metric: number}`` of one metrics JSON (nested keys joined with ".").

    Takes everything numeric in ``metrics``, the top-level counts (``k``,
    ``n_points``, ...) and other top-level numbers, and reduces ``sizes`` to
    ``largest_cluster_share``. Timing/device-like keys are skipped.
    """
    out: dict[str, float] = {}
    for key, value in result.items():
        if key in _SKIP_KEYS or isinstance(value, (list, tuple, str)):
            continue
        _flatten(key, value, out)
    _flatten("", result.get("metrics") or {}, out, null_is_nan=True)
    sizes = result.get("sizes")
    if sizes is None and result.get("clusters"):
        sizes = [c.get("size", 0) for c in result["clusters"]]
    if isinstance(sizes, Mapping):
        sizes = list(sizes.values())
    if sizes:
        out.setdefault("k", len(sizes))
        total = sum(sizes)
        if total:
            out["largest_cluster_share"] = max(sizes) / total
    return out


def _metric_key(name: str):
    return (METRIC_ORDER.index(name), "") if name in METRIC_ORDER else (len(METRIC_ORDER), name)


def summarize(json_paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Long table (site, method, metric, value) from ``clusters/{method}.json`` files."""
    rows = []
    for path in json_paths:
        with open(path) as fh:
            result = json.load(fh)
        site_p, method_p = site_method_from_path(path)
        site = str(result.get("site") or site_p)
        method = str(result.get("method") or method_p)
        metrics = metrics_of(result)
        for name in sorted(metrics, key=_metric_key):
            rows.append((site, method, name, metrics[name]))
    # object dtype keeps counts as ints (``k`` = 4, not 4.0) in the TSV
    return pd.DataFrame({name: pd.Series([r[i] for r in rows], dtype=object if name == "value" else str)
                         for i, name in enumerate(COLUMNS)})


def format_value(value) -> str:
    """Shortest exact text of a number (ints stay ints; NaN as ``nan``)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value)
    return str(value)


def write_summary(table: pd.DataFrame, path) -> None:
    """Write the long table as TSV, atomically and byte-reproducibly."""
    lines = ["\t".join(COLUMNS)]
    for site, method, metric, value in table[COLUMNS].itertuples(index=False, name=None):
        lines.append("\t".join([site, method, metric, format_value(value)]))
    with h5io.atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_summary(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"site": str, "method": str, "metric": str})


def pivot_wide(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Side-by-side view: one row per (site, method), one column per metric.

    Row order is the order of first appearance in ``table``; columns follow
    ``metrics`` (default: every metric, in the standard order).
    """
    if metrics is None:
        metrics = sorted(table["metric"].unique(), key=_metric_key)
    index = list(dict.fromkeys(zip(table["site"], table["method"])))
    wide = table.pivot_table(index=["site", "method"], columns="metric", values="value",
                             aggfunc="first", sort=False)
    wide = wide.reindex(pd.MultiIndex.from_tuples(index, names=["site", "method"]))
    return wide.reindex(columns=[m for m in metrics if m in wide.columns])


# --------------------------------------------------------------------------- #
# HTML page for the report: the comparison table, cluster labels, provenance

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.2em;margin-top:1.6em} h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th{background:#f2f2f2} td.l,th.l{text-align:left;white-space:nowrap}
td.best{font-weight:bold;background:#e6f4ea}
.note{color:#555;font-size:.85em;max-width:60em}
"""


def _fmt(value, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in {"k", "n_points", "n_train", "n_test", "n_truth"} or float(value).is_integer() and abs(value) > 1000:
        return f"{int(round(value)):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3f}"


def _best(values: pd.Series, metric: str):
    values = values.dropna()
    if values.empty or len(values) < 2:
        return None
    if metric in HIGHER_IS_BETTER:
        return values.max()
    if metric in LOWER_IS_BETTER:
        return values.min()
    return None


# The space each method's silhouette, Davies-Bouldin and Calinski-Harabasz are measured in: only
# rows that share one compare (DSC is measured in the dyn space, its own in metrics_latent).
_FEATURE_SPACES = {
    "dsc": "dyn",
    "pca-kmeans": "PCA of z-scored series",
    "raw-kmeans": "z-scored series",
    "raw-kmeans_smoothed": "z-scored series, smoothed",
    "descriptors-kmeans": "scaled descriptors",
}


def feature_space(method: str) -> str:
    """The feature space a method's silhouette (etc.) is measured in; '' when unknown."""
    if method.startswith("kmeans-"):
        return method[len("kmeans-"):]
    return _FEATURE_SPACES.get(method, "")


def comparison_table_html(table: pd.DataFrame, metrics: Sequence[str] = DISPLAY_METRICS) -> str:
    """HTML table of :func:`pivot_wide` (``metrics`` columns), best value per site and metric in bold."""
    wide = pivot_wide(table, metrics)
    head = "".join(f'<th title="{html.escape(METRIC_HELP.get(m, m))}">'
                   f"{html.escape(METRIC_TITLE.get(m, m))}</th>" for m in wide.columns)
    best = {(site, m): _best(wide.loc[site][m], m)
            for site in wide.index.get_level_values(0).unique() for m in wide.columns}
    rows = []
    for (site, method), row in wide.iterrows():
        cells = []
        for m in wide.columns:
            v = row[m]
            cls = ' class="best"' if best[(site, m)] is not None and v == best[(site, m)] else ""
            cells.append(f"<td{cls}>{_fmt(v, m)}</td>")
        rows.append(f'<tr><td class="l">{html.escape(site)}</td><td class="l">{html.escape(method)}</td>'
                    f'<td class="l">{html.escape(feature_space(method))}</td>'
                    + "".join(cells) + "</tr>")
    space = ('<th class="l" title="the space silhouette, Davies-Bouldin and Calinski-Harabasz are measured '
             'in: compare them only between rows that share it">feature space</th>')
    return (f'<table><thead><tr><th class="l">site</th><th class="l">method</th>{space}{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def clusters_table_html(results: Mapping[str, Mapping]) -> str:
    """Per method, each cluster's size, suggested label and trend (one site)."""
    k_max = max((len(r.get("clusters") or []) for r in results.values()), default=0)
    if k_max == 0:
        return '<p class="note">No cluster descriptions in the metrics files.</p>'
    head = "".join(f"<th>cluster {j}</th>" for j in range(k_max))
    rows = []
    for method, result in results.items():
        cells = []
        clusters = sorted(result.get("clusters") or [], key=lambda c: c.get("cluster", 0))
        for c in clusters:
            motion = motion_text(c)   # as the map legend: a step model's trend 0 is no velocity
            label = c.get("label") or ("empty" if c.get("size") == 0 else "?")
            text = f"{html.escape(str(label))}<br><small>n={int(c.get('size', 0)):,}"
            if motion is not None:
                text += f", {html.escape(motion)}"
            cells.append(f'<td class="l">{text}</small></td>')
        cells += ["<td></td>"] * (k_max - len(clusters))
        rows.append(f'<tr><td class="l">{html.escape(method)}</td>{"".join(cells)}</tr>')
    return (f'<table><thead><tr><th class="l">method</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def one_regime_notes(results: Mapping[str, Mapping]) -> list[str]:
    """A sentence per regime that is the only one of some methods' clusters (one site).

    On a site without deformation every method still returns k clusters, in k shades of
    grey on the maps, and smoothing over the graph makes them compact patches, which read
    as credible; each cluster's own word says stable, but nothing said that the partition
    then splits noise and atmosphere, not regimes. Clusters all of one moving regime
    differ in degree (rate, amplitude), not in kind."""
    by_label: dict[str, list[str]] = {}
    for method, result in results.items():
        labels = [c.get("label") for c in result.get("clusters") or [] if c.get("size")]
        if len(labels) >= 2 and len(set(labels)) == 1 and labels[0] is not None:
            by_label.setdefault(labels[0], []).append(f"{method} ({len(labels)})")
    notes = []
    for label, methods in by_label.items():
        which = f"every cluster of {', '.join(methods)}"
        if label == "stable":
            notes.append(f"{which} is stable: no cluster moves beyond the interpret thresholds, so "
                         "the clusters split noise and atmosphere, not deformation regimes, however "
                         "compact their patches on the map")
        else:
            notes.append(f"{which} is {label}: the clusters differ in degree, not in kind of motion")
    return notes


def provenance_html(prov: Mapping) -> str:
    """Short provenance block of one site: commit, devices, wall times, checksums."""
    git = prov.get("git") or {}
    parts = [f"<p>workflow commit <code>{html.escape(str(git.get('commit', 'unknown')))}</code>"
             + (" (with uncommitted changes)" if git.get("dirty") else "")
             + f"; provenance written {html.escape(str(prov.get('created', '')))}</p>"]
    checks = prov.get("inputs") or {}
    items = []
    if checks.get("source_sha256"):
        items.append(f"<li>source (as read by shards): <code>{checks['source_sha256']}</code></li>")
    for f in checks.get("files") or []:
        digest = f.get("sha256")
        shown = f"<code>{digest}</code>" if digest else "not hashed (<code>report.hash_sources: false</code>)"
        items.append(f"<li>{html.escape(str(f.get('path')))}: {shown}</li>")
    if items:
        parts.append("<p>input checksums (sha256):</p><ul>" + "".join(items) + "</ul>")
    stages = prov.get("stages") or {}
    warned = [(rule, w) for rule, stage in stages.items() for w in stage.get("warnings") or []]
    if warned:
        parts.append("<p>warnings in this site's logs (<code>logs/</code>):</p><ul>" + "".join(
            f"<li>{html.escape(rule)}: {html.escape(str(w))}</li>" for rule, w in warned) + "</ul>")
    if stages:
        rows = "".join(
            f'<tr><td class="l">{html.escape(rule)}</td><td>{s.get("jobs", 0)}</td>'
            f'<td>{_amount(s.get("wall_s"), 1)}</td><td>{_amount(s.get("max_rss_mb"), 0)}</td>'
            f'<td class="l">{html.escape(str(s.get("device", "")))}</td></tr>'
            for rule, s in stages.items())
        parts.append('<table><thead><tr><th class="l">rule</th><th>jobs</th><th>wall time (s)</th>'
                     '<th>peak memory (MB)</th><th class="l">device</th></tr></thead>'
                     f"<tbody>{rows}</tbody></table>")
    return "".join(parts)


def _amount(value, decimals: int) -> str:
    """A measured amount (seconds, MB) at the precision it is measured to; a dash when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):,.{decimals}f}"


def _ari(value: float) -> str:
    """An ARI as the verdicts print it: 3 decimals, as in the table."""
    return f"{value:.3f}"


def _versus(ours: float, peer: float) -> str:
    """'beats' / 'is level with' / 'loses to' for two ARIs (level: less than :data:`LEVEL_ARI` apart).

    Decided on the ARIs as printed (:func:`_ari`), in whole thousandths, so that the
    sentence agrees with its own numbers: at 2 decimals a printed gap of 0.05 was
    called level or not depending on the digits hidden by the rounding.
    """
    gap = round(float(_ari(ours)) * 1000) - round(float(_ari(peer)) * 1000)
    if abs(gap) < round(LEVEL_ARI * 1000):
        return "is level with"
    return "beats" if gap > 0 else "loses to"


def _other_k(k: Mapping, ours: str, peer: str) -> str:
    """'' when both methods have the same k (or it is unknown), else a clause naming both."""
    a, b = k.get(ours), k.get(peer)
    if a is None or b is None or a == b:
        return ""
    return (f", but at k = {a:g} against k = {b:g} (baselines.k, or k: auto): the number of "
            "clusters differs, not only the features")


def embedding_verdicts(table: pd.DataFrame) -> list[str]:
    """Per site with true regimes: does the embedding add anything beyond the raw series?

    Like for like, on ARI: ``kmeans-dyn`` (the embedding alone) against
    ``raw-kmeans``; ``kmeans-dyn_smoothed`` against ``raw-kmeans_smoothed``
    (the raw series with the same graph smoothing); and the best unsmoothed
    embedding variant against ``descriptors-kmeans`` (trend, acceleration, annual
    amplitude, step per point by default; no graph smoothing either: a smoothed
    variant could beat it by the smoothing alone). A difference under :data:`LEVEL_ARI`
    is called level: one seed's fit cannot tell it apart. Where the two methods
    have different k (``baselines.k``, or ``k: auto``) the sentence says so and
    puts nothing on the embedding. Plain sentences, also when the embedding loses; empty
    without ARI or without the peers.

    DSC, the most expensive stage, clusters space-time patches (spatial context
    like the graph smoothing): it is set against the raw series smoothed over
    the graph (``raw-kmeans_smoothed``), "DSC adds nothing here" unless it beats
    them, and against the smoothed embedding (``kmeans-dyn_smoothed``).
    """
    ari = table[table["metric"] == "ari"]
    ks = table[table["metric"] == "k"]
    out = []
    for site in dict.fromkeys(ari["site"]):
        scores = {m: float(v) for m, v in ari[ari["site"] == site][["method", "value"]].itertuples(index=False)
                  if not math.isnan(float(v))}
        k = {m: float(v) for m, v in ks[ks["site"] == site][["method", "value"]].itertuples(index=False)}
        parts = []
        for ours, peer, what in [("kmeans-dyn", "raw-kmeans", "the embedding alone"),
                                 ("kmeans-dyn_smoothed", "raw-kmeans_smoothed", "the smoothed embedding")]:
            if ours in scores and peer in scores:
                verdict = _versus(scores[ours], scores[peer])
                other_k = _other_k(k, ours, peer)
                parts.append(f"{what} ({ours}, ARI {_ari(scores[ours])}) {verdict} the same on the raw series "
                             f"({peer}, {_ari(scores[peer])})" + other_k
                             + (": the embedding adds nothing here" if verdict != "beats" and not other_k
                                else ""))
        # descriptors-kmeans uses no graph: against it only the variants that use none either
        variants = {m: v for m, v in scores.items() if m.startswith("kmeans-") and not m.endswith("_smoothed")}
        if variants and "descriptors-kmeans" in scores:
            best = max(variants, key=variants.get)
            verdict = _versus(variants[best], scores["descriptors-kmeans"])
            parts.append(f"the best unsmoothed embedding variant ({best}, {_ari(variants[best])}) {verdict} "
                         f"k-means on per-point descriptors (descriptors-kmeans, {_ari(scores['descriptors-kmeans'])})"
                         + _other_k(k, best, "descriptors-kmeans"))
        if "dsc" in scores:
            parts += _dsc_verdicts(scores, k)
        if parts:
            out.append(f"{site}: " + "; ".join(parts) + ".")
    return out


def _dsc_verdicts(scores: Mapping[str, float], k: Mapping) -> list[str]:
    """DSC against the smoothed raw series (its fair peer: both use spatial context) and the
    smoothed embedding; a part per peer present."""
    parts = []
    for peer, what in (("raw-kmeans_smoothed", "k-means on the raw series smoothed over the graph"),
                       ("kmeans-dyn_smoothed", "the smoothed embedding")):
        if peer not in scores:
            continue
        verdict = _versus(scores["dsc"], scores[peer])
        other_k = _other_k(k, "dsc", peer)
        nothing = peer == "raw-kmeans_smoothed" and verdict != "beats" and not other_k
        subject = "it" if parts else f"DSC (dsc, ARI {_ari(scores['dsc'])})"
        parts.append(f"{subject} {verdict} {what} ({peer}, {_ari(scores[peer])})"
                     + other_k + (": DSC adds nothing here" if nothing else ""))
    return parts


# Like-for-like pairs whose labels are compared with each other (:func:`method_agreement`): each
# costlier method against its cheaper peer, as in the verdicts.
AGREEMENT_PAIRS = [
    ("kmeans-dyn", "raw-kmeans", "the embedding adds little beyond the raw series"),
    ("kmeans-dyn_smoothed", "raw-kmeans_smoothed", "the embedding adds little beyond the raw series"),
    ("kmeans-dyn", "descriptors-kmeans", "the embedding adds little beyond the per-point descriptors"),
    ("dsc", "raw-kmeans_smoothed", "DSC adds little beyond the raw series smoothed over the graph"),
    ("dsc", "kmeans-dyn_smoothed", "DSC adds little beyond the smoothed embedding"),
]
# Two partitions this alike (ARI between their labels) are called nearly the same clusters.
SAME_CLUSTERS_ARI = 0.9


def method_agreement(label_paths: Iterable) -> dict[str, list[tuple[str, str, float]]]:
    """Per site, the ARI between the labels of each pair of :data:`AGREEMENT_PAIRS` that ran:
    ``{site: [(method, peer, ari), ...]}``, from ``results/{site}/clusters/{method}.h5``.

    It needs no true regimes: on a site without them it is the one like-for-like comparison
    there is (whether a costlier method finds other clusters than its cheap peer, not which
    is right). The labels are read :data:`AGREEMENT_BLOCK_ROWS` at a time
    (:func:`label_contingency`): the summary job is sized for JSONs, and a site's (N,) label
    arrays, several of them in int64, took it past its memory on a few million points."""
    by_site: dict[str, dict[str, Path]] = {}
    for path in label_paths:
        site, method = site_method_from_path(path)
        by_site.setdefault(site, {})[method] = Path(path)
    out = {}
    for site, paths in by_site.items():
        rows = [(ours, peer, ari_of_contingency(label_contingency(paths[ours], paths[peer])))
                for ours, peer, _ in AGREEMENT_PAIRS if ours in paths and peer in paths]
        if rows:
            out[site] = rows
    return out


# Labels read at a time by :func:`label_contingency` (a few int64 copies of a block in memory).
AGREEMENT_BLOCK_ROWS = 1 << 18


def label_contingency(path_a, path_b, block_rows: int = AGREEMENT_BLOCK_ROWS) -> np.ndarray:
    """(ka, kb) int64 counts of the points labelled i in ``path_a`` and j in ``path_b``
    (``labels`` of two ``clusters/{method}.h5`` of one site), read ``block_rows`` at a time."""
    from .h5io import open_h5

    table = np.zeros((0, 0), dtype=np.int64)
    with open_h5(path_a) as fa, open_h5(path_b) as fb:
        la, lb = fa["labels"], fb["labels"]
        if la.shape != lb.shape:
            raise ValueError(f"{path_a} holds {la.shape[0]} labels, {path_b} {lb.shape[0]}")
        for start in range(0, la.shape[0], block_rows):
            block = contingency(la[start:start + block_rows], lb[start:start + block_rows])
            shape = np.maximum(table.shape, block.shape)
            if tuple(shape) != table.shape:
                table = np.pad(table, [(0, shape[0] - table.shape[0]), (0, shape[1] - table.shape[1])])
            table[:block.shape[0], :block.shape[1]] += block
    return table


def contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(ka, kb) int64 counts of the points labelled i in ``a`` and j in ``b`` (one ``bincount``)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if not len(a):
        return np.zeros((0, 0), dtype=np.int64)
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    return np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb)


def labels_ari(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two integer label arrays (as scikit-learn's), from their
    contingency table (:func:`contingency`)."""
    return ari_of_contingency(contingency(a, b))


def ari_of_contingency(table: np.ndarray) -> float:
    """Adjusted Rand index (as scikit-learn's) of a (ka, kb) contingency table."""
    table = np.asarray(table, dtype=np.float64)
    n = float(table.sum())
    if n < 2:
        return 1.0

    def pairs(x):
        return float(np.sum(x * (x - 1.0)) / 2.0)

    index, sum_a, sum_b = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = sum_a * sum_b / (n * (n - 1.0) / 2.0)
    maximum = (sum_a + sum_b) / 2.0
    if maximum == expected:   # one cluster each, or every point its own: as scikit-learn
        return 1.0
    return float((index - expected) / (maximum - expected))


def agreement_sentences(site: str, rows: Sequence[tuple[str, str, float]], k: Mapping | None = None,
                        has_truth: bool = False) -> str:
    """One line per site of :func:`method_agreement`'s pairs, in words."""
    k = k or {}
    parts = []
    for ours, peer, value in rows:
        what = next(w for a, b, w in AGREEMENT_PAIRS if (a, b) == (ours, peer))
        other_k = _other_k(k, ours, peer)
        if value >= SAME_CLUSTERS_ARI and not other_k:
            parts.append(f"{ours} and {peer} agree (ARI {_ari(value)}): nearly the same clusters, "
                         f"so {what} on this site")
        elif value >= SAME_CLUSTERS_ARI:
            parts.append(f"{ours} and {peer} nearly agree (ARI {_ari(value)}) at k = {k[ours]:g} "
                         f"against k = {k[peer]:g}: one splits a cluster of the other or adds a small one, "
                         f"so {what} on this site")
        else:
            parts.append(f"{ours} and {peer} differ (ARI {_ari(value)}){other_k}")
    tail = ("" if has_truth or all(v >= SAME_CLUSTERS_ARI for *_, v in rows) else
            ". No true regimes here: which of two differing methods is right, only their maps and "
            "cluster series can tell")
    return f"{site}: " + "; ".join(parts) + tail + "."


def _verdicts_title(table: pd.DataFrame) -> str:
    if (table["method"] == "dsc").any():
        return "Do the embedding and DSC earn their cost?"
    return "Does the embedding earn its cost?"


def comparison_html(table: pd.DataFrame, results: Mapping[tuple[str, str], Mapping],
                    provenance: Mapping[str, Mapping] | None = None,
                    agreement: Mapping[str, Sequence] | None = None) -> str:
    """The report's "Summary" page: the comparison table, per-site clusters, provenance.

    ``results``: ``{(site, method): metrics JSON}``; ``provenance``: ``{site: provenance.json}``;
    ``agreement``: :func:`method_agreement`.
    """
    sites = list(dict.fromkeys(table["site"])) or list(dict.fromkeys(s for s, _ in results))
    legend = "".join(f"<li><b>{html.escape(METRIC_TITLE.get(m, m))}</b>: {html.escape(t)}</li>"
                     for m, t in METRIC_HELP.items() if m in DISPLAY_METRICS)
    body = ["<h1>Comparison of clustering methods</h1>",
            '<p class="note">One row per site and method; the best ARI, NMI and label match per '
            "site (agreement with the true regimes: demo sites, and sites given a truth table) are "
            "highlighted. The other columns "
            "are not ranked: feature-space metrics (silhouette, Davies-Bouldin, Calinski-Harabasz) "
            "compare methods only within the same feature space (the third column: DSC is measured "
            "in the dyn space, so beside kmeans-dyn), and spatial coherence is highest "
            "for methods smoothed on the graph it is measured on and for one big cluster (random "
            "labels give about the sum of the squared cluster shares). Seed stability (k-means "
            "variants) is the agreement of the fit with a refit from another random start: well "
            "below 1, the clusters depend on the seed, and so do their maps.</p>",
            comparison_table_html(table),
            f'<ul class="note">{legend}</ul>',
            *([f"<h2>{_verdicts_title(table)}</h2><ul>"
               + "".join(f"<li>{html.escape(v)}</li>" for v in verdicts) + "</ul>"
               + f'<p class="note">One fit per method with one seed: ARIs less than {LEVEL_ARI} apart (as '
               "printed) are called level, and another seed can move a method by more than that. docs/validity.md "
               "compares the methods over generated sites and seeds.</p>"]
              if (verdicts := embedding_verdicts(table)) else []),
            *_agreement_html(table, agreement),
            '<p class="note">Every metric of every method (train/test sizes, inertia, ...) is in '
            "<code>results/summary.tsv</code>.</p>"]
    for site in sites:
        body.append(f"<h2>{html.escape(site)}</h2>")
        body.append("<h3>Clusters and their suggested deformation regime</h3>")
        site_results = {m: r for (s, m), r in results.items() if s == site}
        body.append(clusters_table_html(site_results))
        if notes := one_regime_notes(site_results):
            body.append("<p>One suggested regime only:</p><ul>"
                        + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
        if provenance and site in provenance:
            body.append("<h3>Provenance</h3>")
            body.append(provenance_html(provenance[site]))
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>insarclust summary</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def _agreement_html(table: pd.DataFrame, agreement: Mapping[str, Sequence] | None) -> list[str]:
    if not agreement:
        return []
    truth = set(table.loc[table["metric"] == "ari", "site"])
    lines = []
    for site, rows in agreement.items():
        k = {m: float(v) for m, v in table[(table["site"] == site) & (table["metric"] == "k")]
             [["method", "value"]].itertuples(index=False)}
        lines.append(agreement_sentences(site, rows, k, has_truth=site in truth))
    return ["<h2>Do the costlier methods find other clusters than their peers?</h2><ul>"
            + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"
            + '<p class="note">ARI between the labels two methods gave the same points (1 = the same '
            f"clusters, 0 = no more alike than chance; from {SAME_CLUSTERS_ARI} on called nearly the same). "
            "It needs no true regimes, so on your own sites it is the like-for-like comparison there is: "
            "a method that agrees with its cheaper peer adds nothing there, one that differs may be better "
            "or worse, which the ARI against the true regimes (demo sites, a truth table) or the maps must "
            "tell.</p>"]


def write_comparison_html(json_paths: Sequence, html_path, provenance_paths: Sequence = (),
                          table: pd.DataFrame | None = None, label_paths: Sequence = ()) -> None:
    """Build :func:`comparison_html` from files and write it atomically; ``label_paths``
    (``clusters/{method}.h5``) give the agreement between methods (:func:`method_agreement`)."""
    table = summarize(json_paths) if table is None else table
    results = {}
    for path in json_paths:
        with open(path) as fh:
            result = json.load(fh)
        site_p, method_p = site_method_from_path(path)
        results[(str(result.get("site") or site_p), str(result.get("method") or method_p))] = result
    provenance = {}
    for path in provenance_paths:
        with open(path) as fh:
            prov = json.load(fh)
        provenance[prov.get("site") or Path(path).parent.name] = prov
    with h5io.atomic_path(html_path) as tmp:
        Path(tmp).write_text(comparison_html(table, results, provenance, method_agreement(label_paths)),
                             encoding="utf-8")
