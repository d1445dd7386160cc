"""Embedded demo sites: deterministic and realistic where it matters downstream."""
import datetime as dt

import numpy as np
import pytest

from insarclust.demo import PRESETS, REGIMES, acquisition_dates, generate
from insarclust.dates import EPOCH
from insarclust.formats import get_format, load_formats, plan_columns
from insarclust.interpret import VOCABULARY

from conftest import ROOT

FORMATS = load_formats(ROOT / "config" / "formats.yaml")


@pytest.fixture(scope="module")
def mainland():
    return generate("demo-x", "mainland", get_format("ngu", FORMATS), n_points=3000, seed=42)


def test_deterministic(mainland):
    again = generate("demo-x", "mainland", get_format("ngu", FORMATS), n_points=3000, seed=42)
    assert mainland[0].equals(again[0]) and mainland[1].equals(again[1])
    other = generate("demo-y", "mainland", get_format("ngu", FORMATS), n_points=3000, seed=42)
    assert not mainland[0].equals(other[0])


@pytest.mark.parametrize("preset,months", [("mainland", {12, 1, 2, 3}), ("arctic", {11, 12, 1, 2, 3, 4, 5})])
def test_sentinel1_epochs_without_winter(preset, months):
    dates = acquisition_dates("2018-06-01", 4.5, PRESETS[preset])
    days = [EPOCH + dt.timedelta(days=int(d)) for d in dates]
    assert (days[-1] - days[0]).days > 4 * 365
    assert not {d.month for d in days} & months
    steps = set(np.diff(dates)) - {6, 12}
    # steps are 6 or 12 days except across the winter gap (several months)
    assert all(s > 90 for s in steps)
    before = np.diff([d for d, day in zip(dates, days) if day < dt.date(2021, 12, 23)])
    assert np.median(before) == 6 and np.median(np.diff(dates[-20:])) == 12


def test_table_matches_format_and_truth(mainland):
    table, truth = mainland
    fmt = get_format("ngu", FORMATS)
    plan = plan_columns(list(table.columns), fmt, "demo")
    assert len(plan.date_columns) > 100
    assert set(truth.regime) == set(REGIMES) and set(REGIMES) <= set(VOCABULARY)
    assert list(truth.pid) == list(table.pid)
    disp = table[plan.date_columns].to_numpy()
    missing = np.isnan(disp).mean(axis=1)
    assert 0.03 < np.median(missing) < 0.08 and missing.max() < 0.2  # 3-8 % per point, binomial spread
    assert np.all(disp[:, 0] == 0)  # referenced to the first epoch
    assert table.latitude.between(69, 70.2).all() and table.longitude.between(19.5, 21).all()


def test_regimes_are_spatially_coherent_and_distinct(mainland):
    table, truth = mainland
    from scipy.spatial import cKDTree

    xyz = np.c_[table.latitude * 111.3, table.longitude * 111.3 * np.cos(np.deg2rad(69.6))]
    _, nn = cKDTree(xyz).query(xyz, k=6)
    same = (truth.regime.to_numpy()[nn[:, 1:]] == truth.regime.to_numpy()[:, None]).mean()
    assert same > 0.8  # neighbours share the regime far more than chance (~0.25)
    fmt = get_format("ngu", FORMATS)
    cols = plan_columns(list(table.columns), fmt, "demo").date_columns
    last = table[cols].iloc[:, -40:].mean(axis=1)
    by = last.groupby(truth.regime.to_numpy()).mean()
    assert by["subsiding"] < -10 and by["uplifting"] > 5 and abs(by["stable"]) < 3
    assert by["accelerating"] < by["stable"] and by["step"] < -10


def test_svalbard_columns():
    table, _ = generate("demo-s", "arctic", get_format("svalbard", FORMATS), n_points=200, seed=1)
    assert {"CODE", "LAT", "LON", "ELEVATION", "DOYMAX"} <= set(table.columns)
    assert any(c.startswith("D20") for c in table.columns)
    assert table.LAT.between(77.9, 78.5).all()
