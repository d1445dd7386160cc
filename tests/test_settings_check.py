"""Settings the schema lets through but that would be clamped, ignored or fail deep in a job
are named before any job; command-line spellings become the types the code needs."""
from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from insarclust import h5io
from insarclust.config import coerce_to_schema, with_defaults
from insarclust.errors import InputError
from insarclust.kmeans import split_rows
from insarclust.settings_check import check_settings
from insarclust.sites import check_built_sites

from conftest import ROOT, make_shards_file

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
SITES = ["demo-mainland", "demo-arctic"]
STATIC = {"height", "mean_velocity", "temporal_coherence", "los_up"}


@pytest.fixture
def cfg():
    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    return with_defaults(coerce_to_schema(raw, SCHEMA), SCHEMA)


def changed(cfg, section, **values):
    out = copy.deepcopy(cfg)
    out[section].update(values)
    return with_defaults(coerce_to_schema(out, SCHEMA), SCHEMA)


def test_the_shipped_config_passes(cfg):
    check_settings(cfg, SITES, STATIC)


@pytest.mark.parametrize("section, values, needle", [
    ("interpret", {"stable_trend_mm_yr": "nan"}, "'interpret.stable_trend_mm_yr': nan is not a finite"),
    ("kmeans", {"test_fraction": float("nan")}, "'kmeans.test_fraction': nan"),
    ("embed", {"spectral_radius": float("inf")}, "'embed.spectral_radius': inf"),
    ("kmeans", {"k": "auto", "k_range": [8, 2]}, "[8, 2] is reversed"),
    ("embed", {"mode": "reference", "leak_form": "scaled"}, "'embed.leak_form'"),
    ("embed", {"n_pca": 500}, "more than the 200 state dimensions"),
    ("embed", {"reference_site": "demo-zz"}, "'demo-zz' is not a site"),
    ("embed", {"static_weight": {"hieght": 0.5}}, "'hieght' is no static column"),
    ("smooth", {"mode": "fanout", "H": 2}, "3 entries for smooth.H = 2"),
    ("kmeans", {"warm_start_size": 3}, "'kmeans.warm_start_size': 3 points for up to 4 clusters"),
    ("kmeans", {"warm_start_size": 6, "k": "auto"}, "6 points for up to 8 clusters"),
    ("dsc", {"train_sample": 2}, "'dsc.train_sample': 2 points for dsc.k = 4"),
    ("kmeans", {"silhouette_sample": 40, "k": "auto"}, "'kmeans.silhouette_sample': 40 points to choose k up to 8"),
    ("kmeans", {"silhouette_sample": 40, "k_sweep": True}, "use at least 80"),
])
def test_settings_that_would_not_do_what_they_say_are_named(cfg, section, values, needle):
    with pytest.raises(InputError) as err:
        check_settings(changed(cfg, section, **values), SITES, STATIC)
    assert needle in str(err.value) and "fix:" in str(err.value)


def test_a_small_silhouette_sample_passes_where_it_chooses_nothing(cfg):
    check_settings(changed(cfg, "kmeans", silhouette_sample=40), SITES, STATIC)   # k fixed: a metric only


def test_a_range_of_one_k_is_one_k_to_try(cfg):
    """k_range [5, 5] with k: auto tries k = 5 alone: only a reversed range has no k to try."""
    check_settings(changed(cfg, "kmeans", k="auto", k_range=[5, 5], silhouette_sample=100,
                           warm_start_size=100), SITES, STATIC)


def test_inf_is_a_bound_where_the_config_says_so(cfg):
    check_settings(changed(cfg, "shards", max_abs_mm=float("inf")), SITES, STATIC)


def test_documented_forms_pass(cfg):
    # one fanout value for every hop
    check_settings(changed(cfg, "smooth", mode="fanout", fanout=[10]), SITES, STATIC)
    # a decomposed pair's own static columns (the workflow adds them to the formats' columns)
    from insarclust.decompose import PAIR_STATIC

    check_settings(changed(cfg, "embed", static_weight={PAIR_STATIC[0]: 2.0}), SITES, STATIC | set(PAIR_STATIC))


def test_command_line_spellings_become_the_types_the_code_needs(cfg):
    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    raw.update(seed=42.0)
    raw["embed"].update(n_jobs=2.0, reference_site="null")
    raw["kmeans"].update(k=6.0)
    out = coerce_to_schema(raw, SCHEMA)
    assert type(out["seed"]) is int and out["seed"] == 42
    assert type(out["embed"]["n_jobs"]) is int and type(out["kmeans"]["k"]) is int
    assert out["embed"]["reference_site"] is None
    raw["kmeans"]["k"] = 6.5    # not a whole number: left for the schema to reject
    assert coerce_to_schema(raw, SCHEMA)["kmeans"]["k"] == 6.5


def test_an_integer_in_exponent_form_is_an_integer(cfg):
    """YAML 1.1 reads 2e4 (no dot, no exponent sign) as text; where the schema asks for an
    integer it must become 20000, not 20000.0, which numpy refuses as a size or a seed deep in
    a job (demo_data stopped with 'expected a sequence of integers')."""
    raw = yaml.safe_load("seed: 4.2e1\ndemo: {n_points: 2e4}\nkmeans: {k: 1e1, warm_start_size: 2.56e4}\n"
                         "shards: {read_block_mb: 1e3}\nembed: {ridge: 1e1}\n")
    assert raw["demo"]["n_points"] == "2e4"
    out = coerce_to_schema(raw, SCHEMA)
    for value, want in ((out["seed"], 42), (out["demo"]["n_points"], 20000), (out["kmeans"]["k"], 10),
                        (out["kmeans"]["warm_start_size"], 25600), (out["shards"]["read_block_mb"], 1000)):
        assert type(value) is int and value == want
    assert type(out["embed"]["ridge"]) is float and out["embed"]["ridge"] == 10.0   # default 10.0
    raw["demo"]["n_points"] = "2.55e1"   # not a whole number: left for the schema to reject
    assert not isinstance(coerce_to_schema(raw, SCHEMA)["demo"]["n_points"], int)


def test_one_number_has_one_spelling_in_the_rule_params():
    """``ridge: 10`` is ``ridge: 10.0``: rule params are compared by repr ("10" != "10.0"), so
    writing a number without its decimal point (in a config file or 'embed={"ridge": 10}') must
    not rerun the embedding and everything after it. A number takes its default's type."""
    from insarclust.config import result_params

    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    shipped = coerce_to_schema(raw, SCHEMA)
    assert shipped == raw and all(type(shipped["embed"][k]) is type(raw["embed"][k]) for k in raw["embed"])
    raw["embed"].update(ridge=10, leak="0.6")                         # 10.0; the command line's text
    raw["interpret"].update(max_gap_days=36.0)                       # default 36
    raw["decompose"].update(cell_size_m="400.0")                     # default 100
    raw["graph"].update(bandwidth_m=500)                             # default null: a float
    raw["embed"]["static_weight"] = {"height": 2}
    out = coerce_to_schema(raw, SCHEMA)
    assert repr(result_params(out, "embed")) == repr(result_params(shipped, "embed"))
    assert repr(out["interpret"]["max_gap_days"]) == "36" and repr(out["decompose"]["cell_size_m"]) == "400"
    assert repr(out["graph"]["bandwidth_m"]) == "500.0" and repr(out["embed"]["static_weight"]) == "{'height': 2.0}"
    raw["interpret"]["max_gap_days"] = 36.5                          # not a whole number: kept
    assert coerce_to_schema(raw, SCHEMA)["interpret"]["max_gap_days"] == 36.5


def test_a_misspelt_descriptor_scale_is_refused_by_the_schema():
    from insarclust.config import first_schema_error

    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    raw.setdefault("baselines", {})["descriptor_scale"] = {"trend_mm_y": 100}
    where, message = first_schema_error(with_defaults(coerce_to_schema(raw, SCHEMA), SCHEMA), SCHEMA)
    assert where[:2] == ["baselines", "descriptor_scale"] and "trend_mm_y" in message


def test_a_built_demo_site_is_checked_against_the_config(tmp_path, cfg):
    make_shards_file(tmp_path / "results/demo-a/shards.h5", n=300, n_grid=80, shard_size=128)
    sites = pd.DataFrame({"source": ["demo:mainland"], "format": ["ngu"]}, index=["demo-a"])
    same_size = changed(cfg, "demo", n_points=300)
    check_built_sites(sites, same_size, results=tmp_path / "results")
    with pytest.raises(InputError, match=r"too small.*graph\.k: 500"):
        check_built_sites(sites, changed(same_size, "graph", k=500), results=tmp_path / "results")
    # a demo of another size is regenerated first: not judged by the old file
    check_built_sites(sites, changed(changed(cfg, "demo", n_points=5000), "graph", k=500),
                      results=tmp_path / "results")
    # nor are its dates (demo.start/years regenerate it): 80 epochs, a washout that needs more
    check_built_sites(sites, changed(same_size, "embed", washout=100), results=tmp_path / "results")


def test_a_built_site_is_judged_by_its_grid_while_it_is_the_one_the_config_makes(tmp_path, cfg):
    """A washout the grid cannot hold stops before any job: also for a built demo site whose dates
    are the demo settings' (the embedding used to drop no washout at all then, and exit 0); not
    for a demo of other dates, nor by a grid of another step (both rebuilt and checked by shards:
    lowering shards.grid_step_days, as the message advises, must not stop on the old grid)."""
    from insarclust.demo import write_demo
    from insarclust.formats import get_format, load_formats
    from insarclust.shards import ShardsConfig, build_shards

    fmt = get_format("ngu", load_formats(ROOT / "config" / "formats.yaml"))
    src = tmp_path / "resources/demo/demo-a.csv.gz"
    src.parent.mkdir(parents=True)
    write_demo(src, tmp_path / "demo-a.truth.csv", "demo-a", "mainland", fmt, n_points=60, start="2019-06-01",
               years=1.0, seed=3)
    build_shards([src], fmt, tmp_path / "results/demo-a/shards.h5", "demo-a", ShardsConfig(grid_step_days=6))
    small = changed(changed(changed(cfg, "graph", k=5), "kmeans", k=2), "demo", n_points=60,
                    start="2019-06-01", years=1.0)
    demo = pd.DataFrame({"source": ["demo:mainland"], "format": ["ngu"]}, index=["demo-a"])
    check_built_sites(demo, small, results=tmp_path / "results")
    with pytest.raises(InputError, match=r"site 'demo-a' is too small.*regular epochs of 6 days.*embed\.washout: 20"):
        check_built_sites(demo, changed(small, "embed", washout=20), results=tmp_path / "results")
    # other demo dates: regenerated first, not judged by the old file
    check_built_sites(demo, changed(changed(small, "embed", washout=20), "demo", years=3.0),
                      results=tmp_path / "results")
    # nor of the same number of dates from another start
    from insarclust.demo import PRESETS, acquisition_dates

    assert len(acquisition_dates("2019-07-01", 1.0, PRESETS["mainland"])) == \
        len(acquisition_dates("2019-06-01", 1.0, PRESETS["mainland"]))
    check_built_sites(demo, changed(changed(small, "embed", washout=20), "demo", start="2019-07-01"),
                      results=tmp_path / "results")
    # the same file as a site of files: a finer grid is rebuilt by shards, not judged by the old one
    files = pd.DataFrame({"source": [str(src)], "format": ["ngu"]}, index=["demo-a"])
    with pytest.raises(InputError, match="too small"):
        check_built_sites(files, changed(small, "embed", washout=20), results=tmp_path / "results")
    check_built_sites(files, changed(changed(small, "embed", washout=20), "shards", grid_step_days=1),
                      results=tmp_path / "results")


def test_a_lowered_bound_is_checked_against_the_largest_reading(tmp_path, cfg):
    """shards.h5 stores its largest |displacement| read; a bound lowered below it stops, with
    the same float32 comparison as the shards stage (a bound equal to the reading passes)."""
    from insarclust.demo import generate
    from insarclust.formats import get_format, load_formats
    from insarclust.shards import ShardsConfig, build_shards

    fmt = get_format("ngu", load_formats(ROOT / "config" / "formats.yaml"))
    table, _ = generate("site-a", "mainland", fmt, n_points=60, years=1.0, seed=3)
    dates = [c for c in table.columns if c.isdigit()]
    assert table[dates].abs().max().max() < 800
    table.loc[7, dates[4]] = -812.3          # the site's largest reading
    src = tmp_path / "site.csv"
    table.to_csv(src, index=False)
    out = tmp_path / "results/site-a/shards.h5"
    build_shards([src], fmt, out, "site-a", ShardsConfig(grid_step_days=6))
    assert h5io.read_attrs(out)["max_abs_mm_read"] == float(np.float32(812.3))
    sites = pd.DataFrame({"source": [str(src)], "format": ["ngu"]}, index=["site-a"])
    small = changed(changed(cfg, "graph", k=5), "kmeans", k=2)
    for bound in (1000, 812.3, None):
        check_built_sites(sites, changed(small, "shards", max_abs_mm=bound), results=tmp_path / "results")
    with pytest.raises(InputError, match=r"site 'site-a' was built from displacements up to 812\.3 mm.*"
                                         r"shards\.max_abs_mm = 500") as err:
        check_built_sites(sites, changed(small, "shards", max_abs_mm=500), results=tmp_path / "results")
    assert f"delete {out}" in str(err.value) and "at least 812.3" in str(err.value)


def test_a_lowered_bound_is_checked_against_a_built_demo_pair(tmp_path, cfg):
    """A demo pair's shards.h5 (decomposed cells) stores its tracks' largest reading: a bound lowered
    below it stops too, while both tracks still have the demo's size (another size regenerates
    it); its cell count is never judged against the demo's point count."""
    import h5py

    out = tmp_path / "results/pair-a/shards.h5"
    make_shards_file(out, n=300, n_grid=80, shard_size=128)   # 300 cells of two 400-point tracks
    with h5py.File(out, "a") as f:
        f.attrs.update(max_abs_mm_read=81.5, n_points_ascending=400, n_points_descending=400)
    sites = pd.DataFrame({"source": ["asc=demo:mainland;desc=demo:mainland"], "format": ["egms"]},
                         index=["pair-a"])
    demo = changed(cfg, "demo", n_points=400)
    for bound in (81.5, None, float("inf")):
        check_built_sites(sites, changed(demo, "shards", max_abs_mm=bound), results=tmp_path / "results")
    with pytest.raises(InputError, match=r"site 'pair-a' was built from displacements up to 81\.5 mm"):
        check_built_sites(sites, changed(demo, "shards", max_abs_mm=50), results=tmp_path / "results")
    # another demo size: regenerated first, not judged by the old file
    check_built_sites(sites, changed(changed(cfg, "demo", n_points=500), "shards", max_abs_mm=50),
                      results=tmp_path / "results")


def test_a_shard_split_that_holds_out_nothing_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="insarclust.kmeans"):
        split = split_rows(1000, 0.2, "shard", np.array([0, 500, 1000]), seed=0)
    assert split.sum() == 0 and "none held out" in caplog.text


def test_an_out_of_range_number_from_the_command_line_is_named_by_its_range():
    from insarclust.config import first_schema_error

    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    raw["shards"]["grid_step_days"] = "0"     # --config 'shards={"grid_step_days": 0}' hands over text
    out = coerce_to_schema(raw, SCHEMA)
    assert out["shards"]["grid_step_days"] == 0
    where, message = first_schema_error(with_defaults(out, SCHEMA), SCHEMA)
    assert where == ["shards", "grid_step_days"] and "minimum" in message


@pytest.mark.parametrize("section, key, value", [
    ("graph", "bandwidth_m", "0"),          # the graph job stopped on it, after the shards
    ("graph", "max_distance_m", -100),      # every edge dropped: no smoothing at all
    ("shards", "ransac", {"threshold_mm": -1}),   # no inliers: ransac silently a plain line
])
def test_a_distance_or_threshold_must_be_positive(section, key, value):
    from insarclust.config import check_config, first_schema_error

    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    raw[section][key] = value
    where, _ = first_schema_error(with_defaults(coerce_to_schema(raw, SCHEMA), SCHEMA), SCHEMA)
    assert where[:2] == [section, key]
    with pytest.raises(InputError) as err:
        check_config(with_defaults(coerce_to_schema(raw, SCHEMA), SCHEMA), SCHEMA)
    # bandwidth_m is also 'local': the message lists both
    assert ("null or a number > 0; 'local'" if key == "bandwidth_m" else "minimum of 0") in str(err.value)
    raw[section][key] = {"threshold_mm": None} if key == "ransac" else None    # null: the documented default
    assert first_schema_error(with_defaults(coerce_to_schema(raw, SCHEMA), SCHEMA), SCHEMA) is None


def test_a_setting_from_the_command_line_is_not_blamed_on_config_yaml(cfg):
    """A reversed k_range given with --config or --configfile is not in config/config.yaml: the
    message names the key and where settings come from, not that one file."""
    bad = changed(cfg, "kmeans", k_range=[8, 2])
    bad["sites"] = "data/my-sites.tsv"
    with pytest.raises(InputError) as err:
        check_settings(bad, SITES, STATIC)
    text = str(err.value)
    assert not text.startswith("file config/config.yaml") and "--config" in text and "'kmeans.k_range'" in text
    with pytest.raises(InputError, match=r"name a site of data/my-sites\.tsv"):
        check_settings(changed(bad, "kmeans", k_range=[2, 8]) | {"embed": {**bad["embed"], "reference_site": "x"}},
                       SITES, STATIC)


@pytest.mark.parametrize("section, values, needle, fix", [
    ("kmaens", {"k": 6}, "key 'kmaens': no such setting", "did you mean 'kmeans'?"),
    ("kmeans", {"kk": "6"}, "key 'kmeans.kk': no such setting", "did you mean 'kmeans.k'?"),
    ("graph", {"k": "2.5"}, "key 'graph.k': '2.5' is not of type 'integer'", "config.schema.yaml"),
])
def test_a_misspelt_key_or_a_wrong_type_is_named_in_a_few_lines(section, values, needle, fix):
    """Snakemake's validate prints the whole schema (500+ lines for a misspelt top-level key);
    check_config, run before it, names the key, the closest known key and the sources."""
    from insarclust.config import check_config

    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    raw[section] = {**raw.get(section, {}), **values}
    with pytest.raises(InputError) as err:
        check_config(with_defaults(coerce_to_schema(raw, SCHEMA), SCHEMA), SCHEMA)
    text = str(err.value)
    assert needle in text and fix in text and "--config" in text and len(text.splitlines()) <= 3


def test_the_workflow_checks_the_config_before_snakemake_validates_it():
    smk = (ROOT / "workflow/rules/common.smk").read_text()
    assert smk.index("check_config(config, _CONFIG_SCHEMA)") < smk.index("validate(")


@pytest.mark.parametrize("crs,needle", [("EPSG:4326", "not a projected CRS"), ("EPSG:999999", "decompose.crs"),
                                        ("not a crs", "decompose.crs")])
def test_a_decompose_crs_that_cannot_make_cells_stops_the_planning(cfg, crs, needle):
    """It stopped the decompose job, after both tracks of the pair had been read."""
    from insarclust.settings_check import check_decompose_crs

    check_decompose_crs(cfg)
    check_decompose_crs(changed(cfg, "decompose", crs=3035))
    with pytest.raises(InputError) as err:
        check_decompose_crs(changed(cfg, "decompose", crs=crs))
    assert "key 'decompose.crs'" in str(err.value) and needle in str(err.value)


def test_the_workflow_checks_decompose_crs_when_a_pair_site_reads_it():
    smk = (ROOT / "workflow/rules/common.smk").read_text()
    assert "if PAIRS:\n    _settings_check.check_decompose_crs(config)" in smk
