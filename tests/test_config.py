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
