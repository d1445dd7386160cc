"""The rule params are derived from the library's parameter lists, read without importing torch."""
from __future__ import annotations

import subprocess
import sys

import pytest

from insarclust import config

from conftest import ROOT


@pytest.mark.parametrize("name", sorted(config.STAGES))
def test_parameters_read_from_source_are_the_class_parameters(name):
    stage = config.STAGES[name]
    assert stage.param_names() == config.param_names(stage.cls())


def test_planning_the_params_imports_no_torch():
    code = ("import sys, yaml; from insarclust import config; "
            "cfg = yaml.safe_load(open('config/config.yaml')); "
            "[config.result_params(cfg, n) for n in config.STAGES]; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_ridge_under_a_pooled_representation_keeps_the_recorded_split():
    """embed.ridge is no param of a pooled representation (last, mean), so it must not enter the
    settings dyn.h5 records either: there a ridge change would throw away the recorded split
    (embed_parts), rerunning the embedding it does not change. A record made while it held
    ridge still matches; under reservoir and output ridge counts."""
    import copy
    import json

    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())

    def with_embed(**values):
        out = copy.deepcopy(cfg)
        out["embed"].update(values)
        return out

    for rep in config.POOLED_REPRESENTATIONS:
        old, new = with_embed(representation=rep, ridge=10.0), with_embed(representation=rep, ridge=99.0)
        assert config.embed_settings(old) == config.embed_settings(new)
        assert config.embed_result_params(old) == config.embed_result_params(new)
        assert config.same_embed_settings(json.loads(config.embed_settings(old)), new)
        record_with_ridge = {**config.result_params(old, "embed"), "seed": old["seed"]}
        assert "ridge" in record_with_ridge and config.same_embed_settings(record_with_ridge, new)
        assert not config.same_embed_settings(json.loads(config.embed_settings(with_embed(
            representation=rep, washout=old["embed"]["washout"] + 1))), new)
    for rep in ("reservoir", "output"):
        old, new = with_embed(representation=rep, ridge=10.0), with_embed(representation=rep, ridge=99.0)
        assert config.embed_settings(old) != config.embed_settings(new)
        assert not config.same_embed_settings(json.loads(config.embed_settings(old)), new)
    assert not config.same_embed_settings(None, cfg)
