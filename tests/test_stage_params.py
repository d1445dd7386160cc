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


def test_a_static_weight_entry_at_its_default_is_no_param():
    """embed.static_weight as a mapping reaches a site's static_features only where it changes a
    weight there: an entry equal to the weight its column gets unnamed (1; 0 for a geometry
    column) is the same dyn+static.h5, so it must not change the params (adding or removing
    {rmse: 1.0} reran the site's dyn+static chain). A pair site has no geometry columns."""
    import yaml

    from insarclust.embed import static_weights
    from insarclust.settings_check import site_static_weight

    ngu = yaml.safe_load((ROOT / "config" / "formats.yaml").read_text())["ngu"]
    names = [*ngu["static"], *ngu["geometry"]]

    def weights(weight):   # what static_features does with the param
        return static_weights(names, weight, ngu["geometry"]).tolist()

    base = site_static_weight({"height": 0.5}, ngu)
    for same in ({"height": 0.5, "temporal_coherence": 1.0}, {"height": 0.5, "incidence_angle": 0},
                 {"height": 0.5, "ELEVATION": 3.0}):
        assert site_static_weight(same, ngu) == base, same
        assert weights(same) == weights(base)
    for default in ({}, {"height": 1}, {"incidence_angle": 0.0, "mean_velocity": 1.0}):
        assert site_static_weight(default, ngu) == 1.0, default
        assert weights(default) == weights(1.0)
    # a geometry column named with a weight, or a static one off its default, counts
    assert site_static_weight({"incidence_angle": 0.5}, ngu) == {"incidence_angle": 0.5}
    assert site_static_weight({"height": 0.0}, ngu) == {"height": 0.0}
    assert site_static_weight(2.0, ngu) == 2.0
    # a decomposed pair: its own columns, none of them geometry
    assert site_static_weight({"height": 1.0, "incidence_angle": 0.5}, ngu, pair=True) == 1.0


def test_the_params_of_the_shipped_config_are_the_result_settings_only():
    """With config/config.yaml the rule params hold the settings that can change a stage's
    result and none of the others: memory, parallelism and device settings (read_block_mb,
    batch_size of the embedding, n_jobs, predict_block_rows), a bound that only stops the
    stage (max_abs_mm), a diagnostic that leaves the features as they are (smooth.moran_features),
    and the settings other rules read (the k-means variants and sweep,
    embed.static_weight and reference_site, dsc.enabled). A key dropped from the params would
    not rerun its stage when changed; one added would rerun it for nothing."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    params = {name: set(config.result_params(cfg, name)) for name in config.STAGES}
    # a group of settings (shards.ransac.*) counts through its members' parameter names
    assert {"ransac", "method", "grid_step_days", "shard_size"} <= params["shards"]
    assert not params["shards"] & {"read_block_mb", "max_abs_mm"}
    assert {"k", "weighting", "bandwidth_m", "max_distance_m", "symmetric"} <= params["graph"]
    assert {"n_units", "spectral_radius", "leak", "washout", "ridge", "fit_sample"} <= params["embed"]
    assert not params["embed"] & {"batch_size", "n_jobs", "matrix", "reference_site", "static_weight"}
    assert {"k", "k_range", "silhouette_sample", "seed_stability", "warm_start_size"} <= params["kmeans"]
    assert not params["kmeans"] & {"variants", "k_sweep"}
    assert {"k", "epochs", "train_sample", "silhouette_sample"} <= params["dsc"]
    assert not params["dsc"] & {"enabled", "predict_block_rows"}
    assert {"H", "alpha", "standardize"} <= params["smooth"]
    # how many columns the diagnostic Moran's I in the attrs covers: the features are the same
    assert "moran_features" not in params["smooth"]
