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
