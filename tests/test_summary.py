import json
import math

import pandas as pd
import pytest

from insarclust import summary


def _result(site, method, k=3, ari=None, sil=0.4, extra=None):
    metrics = {"silhouette": sil, "davies_bouldin": 1.2, "calinski_harabasz": 350.5,
               "mean_intercentroid_distance": 2.5, "spatial_coherence": 0.8}
    if ari is not None:
        metrics.update({"ari": ari, "nmi": ari + 0.05, "label_match": 0.75})
    sizes = [100 * (j + 1) for j in range(k)]
    res = {"site": site, "method": method, "k": k, "n_points": sum(sizes),
           "n_train": int(0.8 * sum(sizes)), "n_test": sum(sizes) - int(0.8 * sum(sizes)),
           "sizes": sizes, "metrics": metrics,
           "clusters": [{"cluster": j, "size": s, "descriptors": {"trend_mm_yr": -3.0 * j},
                         "spread": {}, "label": ["stable", "subsiding", "seasonal", "step"][j % 4]}
                        for j, s in enumerate(sizes)]}
    res.update(extra or {})
    return res


def _write(tmp_path, site, method, result):
    path = tmp_path / "results" / site / "clusters" / f"{method}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return path


@pytest.fixture
def jsons(tmp_path):
    paths = [
        _write(tmp_path, "demo-a", "kmeans-dyn", _result("demo-a", "kmeans-dyn", ari=0.6)),
        _write(tmp_path, "demo-a", "dsc", _result("demo-a", "dsc", k=4, ari=0.9, sil=0.2,
                                                  extra={"device": "cuda", "train_seconds": 12.3,
                                                         "metrics_latent": {"silhouette": 0.5}})),
        # jsonio.to_jsonable writes an undefined metric (NaN) as null
        _write(tmp_path, "real", "kmeans-dyn", _result("real", "kmeans-dyn", sil=None)),
    ]
    return paths


def test_long_table_rows(jsons):
    table = summary.summarize(jsons)
    assert list(table.columns) == ["site", "method", "metric", "value"]
    get = lambda s, m, k: table[(table.site == s) & (table.method == m) & (table.metric == k)]["value"]
    assert get("demo-a", "kmeans-dyn", "k").item() == 3
    assert get("demo-a", "dsc", "k").item() == 4
    assert get("demo-a", "dsc", "ari").item() == 0.9
    assert get("demo-a", "dsc", "label_match").item() == 0.75
    assert get("demo-a", "dsc", "largest_cluster_share").item() == pytest.approx(400 / 1000)
    assert get("demo-a", "dsc", "metrics_latent.silhouette").item() == 0.5
    # run-dependent values stay out of the comparison table
    assert not table.metric.str.contains("seconds|device").any()
    # no truth on a real site: no ARI rows
    assert get("real", "kmeans-dyn", "ari").empty
    assert math.isnan(get("real", "kmeans-dyn", "silhouette").item())
    # input order for site/method, fixed metric order inside
    assert list(dict.fromkeys(zip(table.site, table.method))) == [
        ("demo-a", "kmeans-dyn"), ("demo-a", "dsc"), ("real", "kmeans-dyn")]
    first = table[(table.site == "demo-a") & (table.method == "kmeans-dyn")].metric.tolist()
    assert first[:4] == ["k", "n_points", "n_train", "n_test"]
    assert first.index("ari") < first.index("silhouette")


def test_tsv_roundtrip_and_bytes(jsons, tmp_path):
    table = summary.summarize(jsons)
    summary.write_summary(table, tmp_path / "a.tsv")
    summary.write_summary(summary.summarize(jsons), tmp_path / "b.tsv")
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    text = (tmp_path / "a.tsv").read_text().splitlines()
    assert text[0] == "site\tmethod\tmetric\tvalue"
    assert "demo-a\tkmeans-dyn\tk\t3" in text
    assert "real\tkmeans-dyn\tsilhouette\tnan" in text
    back = summary.read_summary(tmp_path / "a.tsv")
    assert len(back) == len(table)
    pd.testing.assert_series_equal(back["value"].astype(float), table["value"].astype(float),
                                   check_names=False)


def test_site_and_method_from_path_when_json_lacks_them(tmp_path):
    res = _result("x", "y")
    del res["site"], res["method"]
    path = _write(tmp_path, "lyngen", "pca-kmeans", res)
    table = summary.summarize([path])
    assert set(table.site) == {"lyngen"} and set(table.method) == {"pca-kmeans"}


def test_pivot_wide(jsons):
    wide = summary.pivot_wide(summary.summarize(jsons))
    assert list(wide.index) == [("demo-a", "kmeans-dyn"), ("demo-a", "dsc"), ("real", "kmeans-dyn")]
    assert wide.loc[("demo-a", "dsc"), "ari"] == 0.9
    assert math.isnan(wide.loc[("real", "kmeans-dyn"), "ari"])
    assert list(wide.columns[:2]) == ["k", "n_points"]
    sub = summary.pivot_wide(summary.summarize(jsons), metrics=["ari", "silhouette", "absent"])
    assert list(sub.columns) == ["ari", "silhouette"]


def test_comparison_html(jsons, tmp_path):
    prov = tmp_path / "results" / "demo-a" / "provenance.json"
    prov.write_text(json.dumps({"site": "demo-a", "git": {"commit": "abc123", "dirty": False},
                                "inputs": {"source_sha256": "f" * 64, "files": []},
                                "stages": {"dsc": {"jobs": 1, "wall_s": 12.5, "max_rss_mb": 900.0,
                                                   "device": "cuda"}}}))
    out = tmp_path / "summary.html"
    summary.write_comparison_html(jsons, out, provenance_paths=[prov])
    text = out.read_text()
    assert text.startswith("<!doctype html>")
    # best ARI of demo-a (dsc, 0.900) highlighted; only one site has ARI
    assert '<td class="best">0.900</td>' in text
    assert "subsiding" in text and "-3.0 mm/yr" in text
    assert "abc123" in text and "cuda" in text
    assert text.count("<h2>") == 2


def test_embedding_verdicts_compare_like_for_like_and_say_when_the_embedding_loses(tmp_path):
    paths = [_write(tmp_path, s, m, _result(s, m, ari=a)) for s, m, a in [
        ("demo-a", "kmeans-dyn", 0.70), ("demo-a", "kmeans-dyn_smoothed", 0.80),
        ("demo-a", "raw-kmeans", 0.50), ("demo-a", "raw-kmeans_smoothed", 0.90),
        ("demo-a", "kmeans-dyn+static", 0.95),        # unsmoothed, with statics: not the smoothed pair
        ("demo-a", "descriptors-kmeans", 0.30),
        ("demo-b", "kmeans-dyn", 0.40), ("demo-b", "kmeans-dyn_smoothed", 0.85),
        ("demo-b", "raw-kmeans", 0.44), ("demo-b", "raw-kmeans_smoothed", 0.60),
        ("demo-b", "kmeans-dyn+static", float("nan")), ("demo-b", "descriptors-kmeans", 0.88)]]
    paths.append(_write(tmp_path, "real", "kmeans-dyn", _result("real", "kmeans-dyn")))
    table = summary.summarize(paths)
    verdicts = summary.embedding_verdicts(table)
    assert len(verdicts) == 2  # no ARI on the real site
    a, b = verdicts
    assert a.startswith("demo-a:")
    assert "(kmeans-dyn, ARI 0.700) beats the same on the raw series (raw-kmeans, 0.500)" in a
    assert "(kmeans-dyn_smoothed, ARI 0.800) loses to the same on the raw series (raw-kmeans_smoothed, 0.900)" in a
    assert "the embedding adds nothing here" in a
    assert "(kmeans-dyn+static, 0.950) beats k-means on per-point descriptors" in a
    assert "(kmeans-dyn, ARI 0.400) is level with the same on the raw series (raw-kmeans, 0.440)" in b
    assert "(kmeans-dyn_smoothed, ARI 0.850) beats" in b
    # a NaN variant is not the best one; a smoothed one is not compared with the descriptors
    assert "(kmeans-dyn, 0.400) loses to k-means on per-point descriptors" in b
    out = tmp_path / "summary.html"
    summary.write_comparison_html(paths, out)
    text = out.read_text()
    assert "Does the embedding earn its cost?" in text and "One fit per method with one seed" in text


def test_dsc_is_set_against_the_smoothed_raw_series_and_the_smoothed_embedding(tmp_path):
    """DSC, the most expensive stage, gets its own verdict, also when it loses; a different
    dsc.k is named and put on nobody."""
    paths = [_write(tmp_path, s, m, _result(s, m, k=k, ari=a)) for s, m, k, a in [
        ("demo-a", "kmeans-dyn_smoothed", 4, 0.88), ("demo-a", "raw-kmeans_smoothed", 4, 0.87),
        ("demo-a", "dsc", 4, 0.69),
        ("demo-b", "kmeans-dyn_smoothed", 4, 0.50), ("demo-b", "raw-kmeans_smoothed", 4, 0.46),
        ("demo-b", "dsc", 4, 0.62),
        ("demo-c", "raw-kmeans_smoothed", 4, 0.80), ("demo-c", "dsc", 6, 0.60)]]
    a, b, c = summary.embedding_verdicts(summary.summarize(paths))
    assert ("DSC (dsc, ARI 0.690) loses to k-means on the raw series smoothed over the graph "
            "(raw-kmeans_smoothed, 0.870): DSC adds nothing here") in a
    assert "DSC adds nothing here; it loses to the smoothed embedding (kmeans-dyn_smoothed, 0.880)" in a
    assert "DSC (dsc, ARI 0.620) beats k-means on the raw series smoothed over the graph" in b
    assert "DSC adds nothing" not in b and "; it beats the smoothed embedding" in b
    assert "k = 6 against k = 4" in c and "adds nothing" not in c and c.count("DSC (dsc, ARI 0.600)") == 1
    # only the smoothed embedding beside it: DSC is still the subject
    paths = [_write(tmp_path, "demo-d", m, _result("demo-d", m, ari=a)) for m, a in
             [("kmeans-dyn_smoothed", 0.70), ("dsc", 0.50)]]
    (d,) = summary.embedding_verdicts(summary.summarize(paths))
    assert d == "demo-d: DSC (dsc, ARI 0.500) loses to the smoothed embedding (kmeans-dyn_smoothed, 0.700)."
    out = tmp_path / "summary.html"
    summary.write_comparison_html(paths, out)
    assert "Do the embedding and DSC earn their cost?" in out.read_text()


def test_only_truth_metrics_are_highlighted(tmp_path):
    """Silhouette & co. live in each method's own feature space and spatial coherence favours
    smoothed methods: no 'best' across methods for them."""
    paths = [_write(tmp_path, "demo-a", m, _result("demo-a", m, ari=a)) for m, a in
             [("kmeans-dyn", 0.7), ("raw-kmeans", 0.5)]]
    table = summary.summarize(paths)
    html_text = summary.comparison_table_html(table, metrics=["ari", "silhouette", "spatial_coherence"])
    assert html_text.count('class="best"') == 1 and '<td class="best">0.700</td>' in html_text


def test_embedding_verdicts_name_a_different_k_and_credit_the_embedding_with_nothing(tmp_path):
    """baselines.k (or k: auto) can give a peer another k: its ARI then differs by the number of
    clusters as much as by the features, and no verdict may put that on the embedding."""
    paths = [_write(tmp_path, "demo-a", m, _result("demo-a", m, k=k, ari=a)) for m, k, a in [
        ("kmeans-dyn", 4, 0.60), ("raw-kmeans", 6, 0.80),
        ("kmeans-dyn_smoothed", 4, 0.70), ("raw-kmeans_smoothed", 4, 0.50),
        ("descriptors-kmeans", 6, 0.90)]]
    (v,) = summary.embedding_verdicts(summary.summarize(paths))
    first, second, third = v.split("; ")
    assert "(kmeans-dyn, ARI 0.600) loses to the same on the raw series (raw-kmeans, 0.800)" in first
    assert "k = 4 against k = 6" in first and "adds nothing" not in first
    assert "(kmeans-dyn_smoothed, ARI 0.700) beats" in second and "k = " not in second
    assert "k = 4 against k = 6" in third


def test_descriptors_peer_is_compared_with_the_unsmoothed_embedding(tmp_path):
    """descriptors-kmeans uses no graph: a smoothed variant beating it may owe that to the
    smoothing alone (here the smoothed raw series score as well), not to the embedding."""
    paths = [_write(tmp_path, "demo-a", m, _result("demo-a", m, ari=a)) for m, a in [
        ("kmeans-dyn", 0.50), ("kmeans-dyn_smoothed", 0.80), ("raw-kmeans_smoothed", 0.80),
        ("kmeans-dyn+static", 0.52), ("kmeans-dyn+static_smoothed", 0.82), ("descriptors-kmeans", 0.60)]]
    (v,) = summary.embedding_verdicts(summary.summarize(paths))
    assert ("the best unsmoothed embedding variant (kmeans-dyn+static, 0.520) loses to k-means on "
            "per-point descriptors (descriptors-kmeans, 0.600)") in v
    # only smoothed variants: no like-for-like comparison with the descriptors
    paths = [_write(tmp_path, "demo-b", m, _result("demo-b", m, ari=a)) for m, a in [
        ("kmeans-dyn_smoothed", 0.800), ("descriptors-kmeans", 0.600)]]
    assert summary.embedding_verdicts(summary.summarize(paths)) == []


def test_verdicts_agree_with_the_aris_they_print(tmp_path):
    """The demo page printed '(0.51) is level with (0.46)' beside '(0.83) loses to (0.88)': the same
    printed gap, two verdicts, since the call was made on unrounded ARIs. The ARIs are printed as
    in the table (3 decimals) and the call is made on exactly those numbers."""
    paths = [_write(tmp_path, "demo-a", m, _result("demo-a", m, ari=a)) for m, a in [
        ("kmeans-dyn_smoothed", 0.5087), ("raw-kmeans_smoothed", 0.4601),   # 0.509 vs 0.460: level
        ("dsc", 0.8265),                                                      # 0.827 vs 0.460: beats
        ("kmeans-dyn", 0.80), ("raw-kmeans", 0.75)]]                          # 0.800 vs 0.750: beats
    (v,) = summary.embedding_verdicts(summary.summarize(paths))
    assert "(kmeans-dyn, ARI 0.800) beats the same on the raw series (raw-kmeans, 0.750)" in v
    assert "(kmeans-dyn_smoothed, ARI 0.509) is level with the same on the raw series (raw-kmeans_smoothed, 0.460)" in v
    # a printed gap of exactly 0.050 is never level, whatever the float rounding of the difference
    assert summary._versus(0.85, 0.80) == summary._versus(0.80, 0.75) == "beats"
    assert summary._versus(0.8004, 0.7506) == "is level with"   # prints 0.800 vs 0.751
    assert summary._versus(0.8006, 0.7504) == "beats"           # prints 0.801 vs 0.750


def test_cluster_table_says_what_the_fitted_model_says(tmp_path):
    """A step-model cluster has no trend term (its descriptors carry trend 0): the page printed
    'step, n=1,675, +0.0 mm/yr' for a mean that drops 16 mm, where the map legend gives the step.
    The table says what the legend says, and a tiny negative trend is not '-0.0'."""
    result = _result("demo-a", "kmeans-dyn", k=3)
    result["clusters"][1].update(label="step", model="step",
                                 descriptors={"trend_mm_yr": 0.0, "step_mm": -15.7, "step_date": 18289.0})
    result["clusters"][2].update(label="seasonal", model="trend", descriptors={"trend_mm_yr": -0.004})
    cells = summary.clusters_table_html({"kmeans-dyn": result}).split('<td class="l">')[2:]
    assert "n=100, +0.0 mm/yr" in cells[0]
    assert "n=200, step of -15.7 mm on 2020-01-28" in cells[1] and "mm/yr" not in cells[1]
    assert "n=300, +0.0 mm/yr" in cells[2]


def test_cluster_table_gives_a_seasonal_clusters_annual_cycle(tmp_path):
    """The page listed a seasonal cluster as 'seasonal, n=11,766, -0.1 mm/yr': its amplitude and
    peak, from which the label was read, were in the JSON only."""
    result = _result("bench", "raw-kmeans_smoothed", k=3)
    result["clusters"][2].update(label="seasonal", model="trend", descriptors={
        "trend_mm_yr": -0.115, "acceleration_mm_yr2": 0.12, "annual_amplitude_mm": 4.283,
        "annual_peak_doy": 198.04, "step_mm": 0.0})
    cells = summary.clusters_table_html({"raw-kmeans_smoothed": result}).split('<td class="l">')[2:]
    assert "n=300, ±4.3 mm annual (peak mid-Jul), -0.1 mm/yr" in cells[2]


def test_comparison_table_shows_seed_stability(tmp_path):
    """On a 100,000-point site kmeans-dyn's refit with seed + 1 agreed with its fit at ARI 0.57
    (seed_stability_ari in summary.tsv): clusters that depend on the random start, which the
    comparison page did not show. It is a column now; methods without a refit show a dash."""
    paths = [_write(tmp_path, "bench", "kmeans-dyn",
                    _result("bench", "kmeans-dyn", extra={"seed_stability_ari": 0.5696632823823312})),
             _write(tmp_path, "bench", "raw-kmeans", _result("bench", "raw-kmeans"))]
    page = summary.comparison_html(summary.summarize(paths), {})
    head = page.split("<thead>")[1].split("</thead>")[0]
    assert ">seed stability</th>" in head
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert rows[0].split("<td")[-1] == ">0.570</td></tr>"
    assert rows[1].split("<td")[-1].startswith(">–</td>")
    assert "<b>seed stability</b>: ARI between the k-means fit and a refit with seed + 1" in page


def test_provenance_times_and_memory_at_their_precision():
    """The provenance table printed '37.220' s and '976.990' MB: Snakemake's benchmark times are
    not measured to the millisecond, nor its sampled peak memory to the kB."""
    page = summary.provenance_html({"stages": {
        "baseline": {"jobs": 4, "wall_s": 37.22, "max_rss_mb": 976.99, "device": "cpu"},
        "dsc": {"jobs": 1, "wall_s": 1663.87, "max_rss_mb": None, "device": "cuda"}}})
    assert "<td>4</td><td>37.2</td><td>977</td>" in page
    assert "<td>1</td><td>1,663.9</td><td>–</td>" in page


def _labels(tmp_path, site, method, labels):
    import numpy as np

    from insarclust import h5io

    path = tmp_path / "results" / site / "clusters" / f"{method}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, dtype=np.int32)
    h5io.write_clusters(path, labels, np.zeros(len(labels), dtype=np.uint8))
    return path


def test_comparison_page_says_how_alike_the_methods_clusters_are_without_truth(tmp_path):
    """On a site without true regimes the page compared nothing: no ARI, so no verdict, and the
    feature-space columns compare no two methods. On a 100,000-point generated site run as a
    user's own, DSC agreed with kmeans-dyn at ARI 0.995 and kmeans-dyn_smoothed with
    raw-kmeans_smoothed at 0.69 only (which, against the regimes the generator knew, lost by
    0.72 to 0.85): the page now gives the agreement of each costlier method with its cheap
    peer, and says that which of two differing methods is right is not known there."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    raw = rng.integers(0, 4, 2000)
    emb = np.where(rng.random(2000) < 0.6, raw, rng.integers(0, 4, 2000))   # other clusters
    dsc = np.where(rng.random(2000) < 0.99, raw, (raw + 1) % 4)              # nearly raw's
    methods = {"kmeans-dyn_smoothed": emb, "raw-kmeans_smoothed": raw, "dsc": dsc}
    jsons = [_write(tmp_path, "bench", m, _result("bench", m, k=4)) for m in methods]
    labels = [_labels(tmp_path, "bench", m, v) for m, v in methods.items()]
    agreement = summary.method_agreement(labels)
    assert [(a, b) for a, b, _ in agreement["bench"]] == [("kmeans-dyn_smoothed", "raw-kmeans_smoothed"),
                                                          ("dsc", "raw-kmeans_smoothed"),
                                                          ("dsc", "kmeans-dyn_smoothed")]
    for a, b, value in agreement["bench"]:
        assert value == pytest.approx(adjusted_rand_score(methods[a], methods[b]))
    out = tmp_path / "summary.html"
    summary.write_comparison_html(jsons, out, label_paths=labels)
    page = out.read_text()
    assert "Do the costlier methods find other clusters than their peers?" in page
    line = page.split("<li>bench: ")[1].split("</li>")[0]
    ari_emb = summary._ari(agreement["bench"][0][2])
    assert line.startswith(f"kmeans-dyn_smoothed and raw-kmeans_smoothed differ (ARI {ari_emb}); "
                           "dsc and raw-kmeans_smoothed agree (ARI ")
    assert ("nearly the same clusters, so DSC adds little beyond the raw series smoothed over the graph "
            "on this site") in line
    assert line.endswith("No true regimes here: which of two differing methods is right, only their maps "
                         "and cluster series can tell.")
    # with true regimes the ARI columns and verdicts say which is right: no such sentence
    with_truth = [_write(tmp_path, "bench", m, _result("bench", m, k=4, ari=0.5)) for m in methods]
    summary.write_comparison_html(with_truth, out, label_paths=labels)
    assert "No true regimes here" not in out.read_text()
    # without label files (an older call) the page has no such section
    summary.write_comparison_html(jsons, out)
    assert "Do the costlier methods" not in out.read_text()


def test_labels_ari_is_scikit_learns():
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(3)
    for n, ka, kb in [(5000, 4, 4), (300, 7, 2), (2, 1, 2)]:
        a, b = rng.integers(0, ka, n), rng.integers(0, kb, n)
        b[: n // 2] = a[: n // 2] % kb
        assert summary.labels_ari(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    assert summary.labels_ari(np.zeros(10, int), np.zeros(10, int)) == 1.0


def test_method_agreement_reads_the_labels_by_block(tmp_path):
    """The agreement read each method's (N,) labels whole, kept them all, and took several int64
    copies per pair: on 5 million points and six methods the summary job (500 MB) peaked at
    417 MB, and a larger site would have run out. It reads a block of labels at a time."""
    import tracemalloc

    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    n = 4_000_000
    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, n).astype(np.int32)
    b = np.where(rng.random(n) < 0.7, a, rng.integers(0, 5, n)).astype(np.int32)
    paths = [_labels(tmp_path, "big", "kmeans-dyn", a), _labels(tmp_path, "big", "raw-kmeans", b)]
    expected = adjusted_rand_score(a, b)
    del a, b
    tracemalloc.start()
    try:
        got = summary.method_agreement(paths)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got["big"][0][2] == pytest.approx(expected, abs=1e-12)
    assert peak < 4 * n   # under one int32 copy of the site's labels


def test_label_contingency_grows_with_labels_of_later_blocks(tmp_path):
    import numpy as np

    a = np.array([0, 0, 1, 1, 0, 1, 3, 3, 2])   # cluster 3 (and 2) only in later blocks
    b = np.array([0, 1, 0, 1, 0, 0, 1, 1, 4])
    pa, pb = _labels(tmp_path, "s", "kmeans-dyn", a), _labels(tmp_path, "s", "raw-kmeans", b)
    for block_rows in (1, 2, 4, 100):
        np.testing.assert_array_equal(summary.label_contingency(pa, pb, block_rows), summary.contingency(a, b))
    assert summary.ari_of_contingency(summary.label_contingency(pa, pb, 2)) == summary.labels_ari(a, b)


def test_comparison_table_says_which_feature_space_each_row_is_measured_in(tmp_path):
    """The page said to compare silhouette, Davies-Bouldin and Calinski-Harabasz only between
    methods sharing a feature space, but not which share one: descriptors-kmeans' 0.756 looked
    best on a 100,000-point site, while only kmeans-dyn and dsc (measured in the dyn space) compare."""
    methods = ["kmeans-dyn", "kmeans-dyn+static_smoothed", "dsc", "pca-kmeans", "raw-kmeans",
               "raw-kmeans_smoothed", "descriptors-kmeans"]
    paths = [_write(tmp_path, "bench", m, _result("bench", m)) for m in methods]
    page = summary.comparison_table_html(summary.summarize(paths))
    assert '<th class="l" title="the space silhouette' in page
    spaces = [row.split('<td class="l">')[3].split("</td>")[0] for row in page.split("<tr>")[2:]]
    assert spaces == ["dyn", "dyn+static_smoothed", "dyn", "PCA of z-scored series", "z-scored series",
                      "z-scored series, smoothed", "scaled descriptors"]


def test_cluster_table_names_an_empty_cluster_empty(tmp_path):
    """An empty cluster has no suggested regime (None in the JSON): 'empty', not 'None' or '?'."""
    result = _result("demo-a", "dsc", k=2)
    result["clusters"][1].update(size=0, label=None, model=None, descriptors={"trend_mm_yr": None})
    cells = summary.clusters_table_html({"dsc": result}).split('<td class="l">')[2:]
    assert cells[1].startswith("empty<br><small>n=0</small>")


def test_timings_stay_out_and_values_keep_every_digit(tmp_path):
    """summary.tsv must be the same bytes for the same metrics: run-dependent numbers (a wall
    time in seconds written as ``fit_s``, ``train_time``, a peak RSS) are left out, while a
    count whose name merely ends in s (``n_points``) stays. A value is written in its shortest
    exact form, so reading the TSV back gives the float of the JSON, digit for digit."""
    res = _result("demo-a", "kmeans-dyn", ari=0.1234567890123, extra={
        "fit_s": 12.5, "embed_wall_s": 3.25, "train_time": 4.0, "max_rss_mb": 900.0,
        "training": {"epoch_s": 1.5, "epochs": 9}})
    res["metrics"]["calinski_harabasz"] = 1234.5678901234567
    path = _write(tmp_path, "demo-a", "kmeans-dyn", res)
    table = summary.summarize([path])
    assert not {"fit_s", "embed_wall_s", "train_time", "max_rss_mb", "training.epoch_s"} & set(table.metric)
    assert {"n_points", "training.epochs"} <= set(table.metric)
    summary.write_summary(table, tmp_path / "s.tsv")
    back = summary.read_summary(tmp_path / "s.tsv")
    value = dict(zip(back.metric, back.value))
    assert float(value["ari"]) == 0.1234567890123
    assert float(value["calinski_harabasz"]) == 1234.5678901234567


def test_agreement_at_different_k_reads_as_agreement():
    """Two methods at ARI 0.95 but at k = 4 against k = 5 read "differ (ARI 0.950), but at k = 4
    against k = 5": a near-identical partition, one cluster split, was called a difference."""
    k = {"kmeans-dyn_smoothed": 4, "raw-kmeans_smoothed": 5}
    line = summary.agreement_sentences("bench", [("kmeans-dyn_smoothed", "raw-kmeans_smoothed", 0.95)], k)
    assert line == ("bench: kmeans-dyn_smoothed and raw-kmeans_smoothed nearly agree (ARI 0.950) at k = 4 "
                    "against k = 5: one splits a cluster of the other or adds a small one, so the embedding "
                    "adds little beyond the raw series on this site.")
    low = summary.agreement_sentences("bench", [("kmeans-dyn_smoothed", "raw-kmeans_smoothed", 0.5)], k,
                                      has_truth=True)
    assert "differ (ARI 0.500), but at k = 4 against k = 5" in low


def test_comparison_page_says_when_every_cluster_is_stable(tmp_path):
    """On a site of stable ground and noise (no deformation at all) every method still gave
    4 clusters, which smoothing made compact patches on the map (spatial coherence 0.94),
    and the page listed them without a word that they split noise. It says so now; a
    method whose clusters all move one way is said to differ in degree only."""
    stable = _result("quiet", "kmeans-dyn_smoothed", k=4)
    for c in stable["clusters"]:
        c.update(label="stable", descriptors={"trend_mm_yr": 0.1})
    moving = _result("quiet", "raw-kmeans", k=3)
    for c in moving["clusters"]:
        c["label"] = "subsiding"
    mixed = _result("quiet", "descriptors-kmeans", k=3)
    empty = _result("quiet", "dsc", k=2)
    empty["clusters"][0].update(label="stable")
    empty["clusters"][1].update(label=None, size=0)
    paths = [_write(tmp_path, "quiet", m, r) for m, r in
             (("kmeans-dyn_smoothed", stable), ("raw-kmeans", moving), ("descriptors-kmeans", mixed),
              ("dsc", empty))]
    out = tmp_path / "summary.html"
    summary.write_comparison_html(paths, out)
    page = out.read_text()
    assert ("every cluster of kmeans-dyn_smoothed (4) is stable: no cluster moves beyond the interpret "
            "thresholds, so the clusters split noise and atmosphere") in page
    assert "every cluster of raw-kmeans (3) is subsiding: the clusters differ in degree, not in kind" in page
    assert "descriptors-kmeans (" not in page and "dsc (" not in page   # several regimes; one non-empty cluster
    assert summary.one_regime_notes({"x": _result("demo-a", "x", k=4)}) == []
    both = summary.one_regime_notes({"a": stable, "b": stable})
    assert both == [both[0]] and both[0].startswith("every cluster of a (4), b (4) is stable")
