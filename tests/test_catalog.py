"""Snakemake workflow-catalog hygiene: formatting, lint, documented config, use as a module."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_workflow

BIN = Path(sys.executable).parent


def test_snakefmt_check():
    proc = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint(tmp_path):
    work = copy_workflow(tmp_path)
    proc = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=work, capture_output=True, text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Congratulations, your workflow is in a good condition" in out, out


def test_config_readme_documents_every_key_group():
    text = (ROOT / "config" / "README.md").read_text()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for key, value in config.items():
        assert f"`{key}" in text, key
        for sub in (value if isinstance(value, dict) else {}):
            assert f"`{sub}`" in text or f"{key}.{sub}" in text, f"{key}.{sub}"
    for name in ("sites.tsv", "formats.yaml", "config.yaml"):
        assert name in text


def test_config_yaml_equals_the_schema_defaults():
    """Defaults live in the schema; config/config.yaml spells them out, and must agree."""
    from insarclust.config import schema_defaults

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert schema_defaults(schema) == config


@pytest.fixture(scope="module")
def wrapper(tmp_path_factory):
    """Another project's workflow that uses insarclust as a Snakemake module."""
    work = tmp_path_factory.mktemp("wrapper")
    (work / "config").mkdir()
    shutil.copy2(ROOT / "config/formats.yaml", work / "config/formats.yaml")
    (work / "config/sites.tsv").write_text("site\tsource\tformat\nvalley\tdemo:mainland\tngu\n")
    # a user's config may omit any key: the schema's defaults fill the rest
    (work / "config/config.yaml").write_text(yaml.safe_dump({
        "sites": "config/sites.tsv", "formats": "config/formats.yaml",
        "demo": {"n_points": 300, "years": 2.0}, "graph": {"k": 6}, "dsc": {"enabled": False}}))
    (work / "Snakefile").write_text(f'''configfile: "config/config.yaml"


module insarclust:
    snakefile:
        "{ROOT / "Snakefile"}"
    config:
        config


use rule * from insarclust as insarclust_*
''')
    return work


def test_the_workflow_runs_as_a_module(wrapper):
    run = [str(BIN / "snakemake"), "--cores", "2"]
    plan = subprocess.run([*run, "-n", "results/summary.tsv"], cwd=wrapper,
                          capture_output=True, text=True, timeout=300)
    out = plan.stdout + plan.stderr
    assert plan.returncode == 0, out[-3000:]
    for rule in ("insarclust_shards", "insarclust_embed_fit", "insarclust_kmeans", "insarclust_evaluate",
                 "insarclust_summary"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, rule
    # the module's scripts and library resolve from its own folder
    done = subprocess.run([*run, "results/valley/shards.h5"], cwd=wrapper, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    from insarclust import h5io

    assert h5io.Shards(wrapper / "results/valley/shards.h5").n_points == 300
