"""Config and site table are validated before anything runs."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from insarclust.errors import InputError

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _dry_run(tmp_path, override: dict, sites: str | None = None):
    sites_path = tmp_path / "sites.tsv"
    sites_path.write_text(sites or "site\tsource\tformat\ndemo-a\tdemo:mainland\tngu\n")
    cfg = {"sites": str(sites_path), "formats": str(ROOT / "config" / "formats.yaml"), **override}
    (tmp_path / "over.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.run([SNAKEMAKE, "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                           "--configfile", str(ROOT / "config" / "config.yaml"), str(tmp_path / "over.yaml")],
                          capture_output=True, text=True, timeout=120)


def test_default_config_plans_every_stage(tmp_path):
    res = _dry_run(tmp_path, {})
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    for rule in ("demo_data", "shards", "graph", "embed_fit", "embed_part", "embed_gather", "smooth",
                 "kmeans", "descriptors", "baseline", "dsc", "cluster_figures", "summary"):
        assert rule in out, rule


@pytest.mark.parametrize("override,needle", [
    ({"shards": {"shard_sise": 100}}, "shard_sise"),
    ({"graph": {"k": "ten"}}, "ten"),
    ({"smooth": {"aggregation": "median"}}, "median"),
    ({"kmeans_k": 4}, "kmeans_k"),
])
def test_wrong_key_or_type_is_named(tmp_path, override, needle):
    res = _dry_run(tmp_path, override)
    assert res.returncode != 0
    assert needle in res.stderr + res.stdout


def test_unknown_format_in_site_table(tmp_path):
    res = _dry_run(tmp_path, {}, "site\tsource\tformat\nx\tdemo:mainland\tegms3\n")
    assert res.returncode != 0
    out = res.stderr + res.stdout
    assert "egms3" in out and "egms, egms-l3, ngu, svalbard" in out


def test_bad_site_name(tmp_path):
    res = _dry_run(tmp_path, {}, "site\tsource\tformat\nmy site/1\tdemo:mainland\tngu\n")
    assert res.returncode != 0 and "my site/1" in res.stderr + res.stdout


def test_site_table_errors_name_the_fix_that_fits(tmp_path):
    from insarclust.sites import read_site_table

    schema = yaml.safe_load((ROOT / "workflow/schemas/sites.schema.yaml").read_text())
    path = tmp_path / "sites.tsv"
    path.write_text("site\tsource\tformat\tnotes\nx\tdemo:mainland\tngu\tmy valley\n")
    with pytest.raises(InputError, match=r"(?s)column 'notes': the site table has column\(s\) \['notes'\].*notes can follow a #"):
        read_site_table(path, schema)
    path.write_text("site\tsource\tformat\n-x\tdemo:mainland\tngu\n")
    with pytest.raises(InputError, match="beginning with a letter or digit"):
        read_site_table(path, schema)
    path.write_text("site\tsource\tformat\nx\tdemo:mainland\t\n")
    with pytest.raises(InputError, match="source and format must not be empty"):
        read_site_table(path, schema)


def test_the_optional_truth_column_names_a_table_of_a_site_of_files(tmp_path, monkeypatch):
    from insarclust.sites import read_site_table, truth_path

    monkeypatch.chdir(tmp_path)
    schema = yaml.safe_load((ROOT / "workflow/schemas/sites.schema.yaml").read_text())
    (tmp_path / "inventory.csv").write_text("pid,regime\na,stable\n")
    path = tmp_path / "sites.tsv"
    path.write_text("site\tsource\tformat\ttruth\nvalley\tdata/*.csv\tngu\tinventory.csv\n"
                    "demo-a\tdemo:mainland\tngu\n")
    table = read_site_table(path, schema)
    assert truth_path(table, "valley") == "inventory.csv" and truth_path(table, "demo-a") is None
    path.write_text("site\tsource\tformat\nvalley\tdata/*.csv\tngu\n")
    assert truth_path(read_site_table(path, schema), "valley") is None
    path.write_text("site\tsource\tformat\ttruth\nvalley\tdata/*.csv\tngu\tnone.csv\n")
    with pytest.raises(InputError, match=r"(?s)row 1, column 'truth'.*'none.csv' does not exist.*fix: name a CSV"):
        read_site_table(path, schema)
    path.write_text("site\tsource\tformat\ttruth\ndemo-a\tdemo:mainland\tngu\tinventory.csv\n")
    with pytest.raises(InputError, match=r"(?s)column 'truth'.*demo site.*fix: leave the truth cell of a demo site empty"):
        read_site_table(path, schema)
    # a ~ is expanded, as in the source column
    monkeypatch.setenv("HOME", str(tmp_path))
    path.write_text("site\tsource\tformat\ttruth\nvalley\t~/data/*.csv\tngu\t~/inventory.csv\n")
    assert truth_path(read_site_table(path, schema), "valley") == str(tmp_path / "inventory.csv")


@pytest.mark.parametrize("name", ["gpkg_site", "GPKG-1", "gpkgvalley"])
def test_site_name_reserved_by_geopackage_is_refused_before_any_job(tmp_path, name):
    """GDAL refuses layer names beginning with 'gpkg' (any case): such a site would fail only
    at its last job, export_gpkg, after every stage had run."""
    from insarclust.errors import InputError
    from insarclust.sites import read_site_table

    path = tmp_path / "sites.tsv"
    path.write_text(f"site\tsource\tformat\n{name}\tdemo:mainland\tngu\nok\tdemo:mainland\tngu\n")
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "sites.schema.yaml").read_text())
    with pytest.raises(InputError, match=f"row 1, column 'site': site name '{name}' begins with 'gpkg'"):
        read_site_table(path, schema)
    path.write_text("site\tsource\tformat\nmy-gpkg\tdemo:mainland\tngu\n")
    assert list(read_site_table(path, schema).index) == ["my-gpkg"]


def _site_schema():
    return yaml.safe_load((ROOT / "workflow" / "schemas" / "sites.schema.yaml").read_text())


@pytest.mark.parametrize("text", [
    "site\tsource\tformat\ndemo-a\tdemo:mainland\tngu\t\n",                     # a trailing tab
    "site\tsource\tformat \ndemo-a \tdemo:mainland\tngu  # the main site\n",      # spaces, a comment
    "site\tsource\tformat\r\n\r\n# comment\r\ndemo-a\tdemo:mainland\tngu\r\n",   # Windows line ends
])
def test_site_table_cells_are_read_as_written(tmp_path, text):
    from insarclust.sites import read_site_table

    path = tmp_path / "sites.tsv"
    path.write_text(text)
    table = read_site_table(path, _site_schema())
    assert table.to_dict("records") == [{"site": "demo-a", "source": "demo:mainland", "format": "ngu"}]


@pytest.mark.parametrize("source", ["demo:mainlnd", "demo:", "asc=demo:artic;desc=demo:artic"])
def test_unknown_demo_preset_is_named_before_any_job(tmp_path, source):
    from insarclust.errors import InputError
    from insarclust.sites import read_site_table

    path = tmp_path / "sites.tsv"
    path.write_text(f"site\tsource\tformat\ndemo-a\t{source}\tngu\n")
    with pytest.raises(InputError, match=r"(?s)site 'demo-a': unknown demo preset .*demo:arctic, demo:mainland"):
        read_site_table(path, _site_schema())


def test_the_methods_a_configuration_switches_on():
    """The methods a run produces, in report order: the k-means variants as listed, the peers
    left on, then DSC when enabled. A method missing here has no rule target, no export column
    and no summary row, without an error."""
    from insarclust.methods import methods

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["kmeans"]["variants"] = ["dyn_smoothed", "dyn"]
    cfg["baselines"]["raw-kmeans"] = False
    cfg["dsc"]["enabled"] = True
    assert methods(cfg) == ["kmeans-dyn_smoothed", "kmeans-dyn", "pca-kmeans", "raw-kmeans_smoothed",
                            "descriptors-kmeans", "dsc"]
    cfg["dsc"]["enabled"] = False
    assert methods(cfg)[-1] == "descriptors-kmeans"


def test_a_setting_given_twice_stops_naming_both_lines(tmp_path):
    """YAML keeps the last of two equal keys without a word: a k added at the end of the section
    (or a whole section appended for a test run) would replace the one written above it."""
    base = (ROOT / "config" / "config.yaml").read_text()
    repeated = base.replace("  k_sweep: false", "  k_sweep: false\n  k: 6", 1)
    assert repeated != base
    cfg = tmp_path / "config.yaml"
    cfg.write_text(repeated)
    sites = tmp_path / "sites.tsv"
    sites.write_text("site\tsource\tformat\ndemo-a\tdemo:mainland\tngu\n")
    (tmp_path / "paths.yaml").write_text(yaml.safe_dump({"sites": str(sites),
                                                          "formats": str(ROOT / "config" / "formats.yaml")}))
    res = subprocess.run([SNAKEMAKE, "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                          "--configfile", str(cfg), str(tmp_path / "paths.yaml")],
                         capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    first = next(i for i, line in enumerate(repeated.splitlines(), 1) if line.startswith("  k: 4"))
    assert res.returncode != 0
    assert f"key 'kmeans.k' is given twice (lines {first} and " in out and str(cfg) in out, out


def test_a_format_defined_twice_stops(tmp_path):
    """A copied format block left under its old name would silently replace the provided one."""
    from insarclust.sites import read_formats

    schema = yaml.safe_load((ROOT / "workflow/schemas/formats.schema.yaml").read_text())
    text = (ROOT / "config" / "formats.yaml").read_text()
    path = tmp_path / "formats.yaml"
    path.write_text(text + "\nngu:\n  id: ID\n  lat: LAT\n  lon: LON\n  static: []\n"
                           "  date_pattern: '^(\\d{8})$'\n  displacement_unit: cm\n  static: [h]\n")
    with pytest.raises(InputError, match=r"file .*formats\.yaml: format 'ngu' is given twice \(lines \d+ and \d+\)"):
        read_formats(path, schema)
    path.write_text(text + "\nmine:\n  id: ID\n  lat: LAT\n  lon: LON\n  static: []\n"
                           "  date_pattern: '^(\\d{8})$'\n  displacement_unit: cm\n  static: [h]\n")
    with pytest.raises(InputError, match=r"key 'mine\.static' is given twice"):
        read_formats(path, schema)


@pytest.mark.parametrize("text, needle", [
    ("", "the site table is empty"),
    ("# every site commented out\n# demo-a\tdemo:mainland\tngu\n", "the site table is empty"),
    ("site\tsource\tformat\n# demo-a\tdemo:mainland\tngu\n", "has a header but no site row"),
    ("site\tsource\tformat\ndemo-a\tdemo:mainland\tngu\tegms\n", "row 1: the row has 4 tab-separated cells, "
                                                               "the header 3: 'egms' would be left out"),
    ("site\tsource\tformat\ndemo-a\tdemo:mainland\tngu\tegms\tx\n", "row 1: the row has 5 tab-separated cells, "
                                                                  "the header 3: 'egms' would be left out"),
])
def test_a_site_table_read_otherwise_than_written_stops(tmp_path, text, needle):
    """No site (a run that would only write an empty summary and exit 0) and a cell beyond the
    header (left out by the reader) stop, naming the file."""
    from insarclust.sites import read_site_table

    path = tmp_path / "sites.tsv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_site_table(path, _site_schema())
    assert needle in str(err.value) and str(path) in str(err.value) and "fix:" in str(err.value)


def test_a_hash_inside_a_source_path_is_part_of_it(tmp_path):
    """Only a # at the start of a line or after a space or tab begins a note: data/run#1/*.csv is
    a path, not 'data/run' and a note (which then read as a row without a format)."""
    from insarclust.sites import read_site_table

    path = tmp_path / "sites.tsv"
    path.write_text("site\tsource\tformat\nrun-1\tdata/run#1/*.csv\tngu\t# first run\n")
    table = read_site_table(path, _site_schema())
    assert table.to_dict("records") == [{"site": "run-1", "source": "data/run#1/*.csv", "format": "ngu"}]


@pytest.mark.parametrize("override, needle", [
    ({"kmeans": {"k": 1}}, "key 'kmeans.k': 1 is none of: an integer >= 2; 'auto'"),
    ({"baselines": {"k": [6, 8]}}, "key 'baselines.k': [6, 8] is none of: an integer >= 2; 'auto'; null"),
    ({"embed": {"static_weight": -1}}, "-1 is none of: a number >= 0; a mapping {name: a number >= 0}"),
    ({"device": False}, "quote the value if you mean the word"),
    ({"graph": {"bandwidth_m": "auto"}}, "'auto' is none of: null or a number > 0; 'local'"),
    ({"graph": {"bandwidth_m": 0}}, "0 is none of: null or a number > 0; 'local'"),
])
def test_a_refused_value_is_told_what_is_allowed(override, needle):
    """'is not valid under any of the given schemas' named no alternative; a YAML boolean (device:
    off) where a word is asked gets the quoting advice."""
    from insarclust.config import check_config, coerce_to_schema, with_defaults

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    cfg = with_defaults(coerce_to_schema(override, schema), schema)
    with pytest.raises(InputError) as err:
        check_config(cfg, schema)
    assert needle in str(err.value)


def test_an_unquoted_date_is_read_as_written():
    """start: 2018-06-01 without quotes is a YAML date; the setting is the text written."""
    from insarclust.config import check_config, coerce_to_schema, with_defaults

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    cfg = with_defaults(coerce_to_schema(yaml.safe_load("demo: {start: 2019-03-01}"), schema), schema)
    check_config(cfg, schema)
    assert cfg["demo"]["start"] == "2019-03-01"


@pytest.mark.parametrize("block, needle", [
    ("  lat: LAT\n  x: E\n  y: N\n  crs: EPSG:3035\n", "the position is given by lat, x, y, crs: a format needs lat "
                                                     "and lon (WGS84 degrees), or x, y and crs"),
    ("  lat: LAT\n", "the position is given by lat: a format needs lat and lon"),
    ("  lat: LAT\n  lon: LON\n  delimiter: '\\t'\n", 'write a tab as "\\t" in double quotes'),
])
def test_a_format_error_names_what_to_write(tmp_path, block, needle):
    from insarclust.sites import read_formats

    schema = yaml.safe_load((ROOT / "workflow/schemas/formats.schema.yaml").read_text())
    path = tmp_path / "formats.yaml"
    path.write_text("mine:\n  id: ID\n  static: []\n  date_pattern: '^(\\d{8})$'\n  displacement_unit: mm\n" + block)
    with pytest.raises(InputError) as err:
        read_formats(path, schema)
    assert needle in str(err.value) and "format 'mine'" in str(err.value)


@pytest.mark.parametrize("key", ["sites", "formats"])
def test_a_table_path_that_names_no_file_names_the_key(tmp_path, key):
    res = _dry_run(tmp_path, {key: "config/my-sites.tsv"})
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"key '{key}': the " in out and "config/my-sites.tsv does not exist" in out and "fix:" in out, out


def test_site_names_that_differ_only_in_case_are_refused(tmp_path):
    """results/Valley and results/valley are one folder on macOS and Windows (and one layer of a
    GeoPackage): the second site would overwrite the first's files."""
    from insarclust.sites import read_site_table

    path = tmp_path / "sites.tsv"
    path.write_text("site\tsource\tformat\nValley\tdemo:mainland\tngu\nother\tdemo:arctic\tngu\n"
                    "valley\tdemo:arctic\tngu\n")
    with pytest.raises(InputError, match=r"row 3, column 'site': site names \['Valley', 'valley'\] differ only "
                                         r"in upper/lower case"):
        read_site_table(path, _site_schema())
    path.write_text("site\tsource\tformat\nValley\tdemo:mainland\tngu\nvalley-2\tdemo:arctic\tngu\n")
    assert list(read_site_table(path, _site_schema()).index) == ["Valley", "valley-2"]


@pytest.mark.parametrize("cell, value", [
    ('"data/my #1/*.csv"', "data/my #1/*.csv"),     # a # after a space, inside quotes: part of the path
    ('"data/a\tb.csv"', "data/a\tb.csv"),           # a tab inside quotes: one cell
    ('"data/a ""b"" #1.csv"', 'data/a "b" #1.csv'),  # an escaped quote does not end the quoted cell
    ('data/a"b.csv', 'data/a"b.csv'),                # a quote inside an unquoted cell opens nothing
])
def test_a_quoted_cell_of_the_site_table_reads_as_written(tmp_path, cell, value):
    from insarclust.sites import read_site_table

    path = tmp_path / "sites.tsv"
    path.write_text(f"site\tsource\tformat\nrun-1\t{cell}\tngu\t# a note\n")
    table = read_site_table(path, _site_schema())
    assert table.to_dict("records") == [{"site": "run-1", "source": value, "format": "ngu"}]


def test_a_site_table_saved_with_a_byte_order_mark_reads(tmp_path):
    """Notepad and Excel save UTF-8 with a byte-order mark: the first column is still 'site'."""
    from insarclust.sites import read_site_table

    path = tmp_path / "sites.tsv"
    path.write_bytes("site\tsource\tformat\ndemo-a\tdemo:mainland\tngu\n".encode("utf-8-sig"))
    assert read_site_table(path, _site_schema()).to_dict("records") == [
        {"site": "demo-a", "source": "demo:mainland", "format": "ngu"}]


def test_a_table_path_that_names_a_folder_says_so(tmp_path):
    from insarclust.sites import check_table_paths

    (tmp_path / "sites.tsv").mkdir()
    with pytest.raises(InputError, match=r"key 'sites': the site table .*sites\.tsv is a folder"):
        check_table_paths({"sites": str(tmp_path / "sites.tsv"), "formats": str(ROOT / "config" / "formats.yaml")})
    check_table_paths({"sites": str(ROOT / "config" / "sites.tsv"), "formats": str(ROOT / "config" / "formats.yaml")})


def test_an_unclosed_quote_in_the_site_table_stops_naming_the_file(tmp_path):
    from insarclust.sites import read_site_table

    path = tmp_path / "sites.tsv"
    path.write_text('site\tsource\tformat\nrun-1\t"data/a.csv\tngu\n')
    with pytest.raises(InputError) as err:
        read_site_table(path, _site_schema())
    assert str(path) in str(err.value) and "quote" in str(err.value) and "fix:" in str(err.value)


def test_a_schema_in_words():
    from insarclust.config import describe

    assert describe({"type": "number", "exclusiveMinimum": 0}) == "a number > 0"
    assert describe({"type": "integer", "minimum": 2, "maximum": 9}) == "an integer >= 2 and <= 9"
    assert describe({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}) == "a number > 0 and < 1"
    assert describe({"type": ["string", "null", "integer", "number"]}) == "an integer or null or a number or a text"
    assert describe({"const": None}) == "null" and describe({"const": "auto"}) == "'auto'"
    assert describe({"enum": ["error", "warn"]}) == "one of 'error', 'warn'"
    assert describe({"$ref": "#/$defs/k"}, {"k": {"type": "integer", "minimum": 2}}) == "an integer >= 2"
    assert describe({}) == "a value"


def test_a_key_given_twice_is_found_with_its_path_and_lines():
    from insarclust.config import repeated_key

    assert repeated_key("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n") == ("b.c", 3, 5)
    # inside a list of mappings, and inside a mapping merged in place
    assert repeated_key("sites:\n  - {name: a}\n  - name: b\n    name: c\n") == ("sites[1].name", 3, 4)
    assert repeated_key("x:\n  <<: {k: 1,\n        k: 2}\n  y: 3\n") == ("x.k", 2, 3)
    # anchors and merges are no repeats: a merged key may be set again, and two merges both apply
    assert repeated_key("a: &a {k: 1}\nb: &b {j: 2}\nc:\n  <<: *a\n  <<: *b\n  k: 3\nd: *a\n") is None
    assert repeated_key("a: 1\n  b: [\n") is None      # not YAML: the loader names that
    assert repeated_key("") is None


def test_a_boolean_gets_the_quoting_advice_only_where_a_text_is_asked():
    """device: off is a boolean where a word is asked; method: yes is no word of the list either way."""
    from insarclust.config import check_config, coerce_to_schema, with_defaults

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    cfg = with_defaults(coerce_to_schema({"shards": {"method": True}}, schema), schema)
    with pytest.raises(InputError) as err:
        check_config(cfg, schema)
    assert "key 'shards.method'" in str(err.value) and "quote the value" not in str(err.value)


def test_a_table_path_with_a_tilde_is_refused_with_the_full_path(tmp_path, monkeypatch):
    """The stages read the path as written: '~/sites.tsv' passed a check that expanded it and
    then stopped with a FileNotFoundError traceback."""
    from insarclust.sites import check_table_paths

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "sites.tsv").write_text((ROOT / "config" / "sites.tsv").read_text())
    with pytest.raises(InputError, match=r"key 'sites'.*does not exist") as err:
        check_table_paths({"sites": "~/sites.tsv", "formats": str(ROOT / "config" / "formats.yaml")})
    assert f"without ~ (it is not expanded), e.g. sites: {tmp_path / 'sites.tsv'}" in str(err.value)
