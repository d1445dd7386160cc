"""Embedded demo sites: deterministic and realistic where it matters downstream."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from insarclust.dates import EPOCH
from insarclust.demo import CLASSES, PRESETS, REGIMES, Variant, acquisition_dates, generate
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


def _series(table, fmt_name="ngu"):
    cols = plan_columns(list(table.columns), get_format(fmt_name, FORMATS), "demo").date_columns
    days = np.array([(dt.date.fromisoformat(f"{c[:4]}-{c[4:6]}-{c[6:]}") - EPOCH).days for c in cols])
    return table[cols].to_numpy(), (days - days[0]) / 365.25


def test_default_variant_is_the_plain_demo(mainland):
    table, truth = generate("demo-x", "mainland", get_format("ngu", FORMATS), n_points=3000, seed=42,
                            variant=Variant())
    assert table.equals(mainland[0]) and truth.equals(mainland[1]) and list(truth.columns) == ["pid", "regime"]
    with pytest.raises(ValueError, match="unknown mix"):
        generate("demo-x", "mainland", get_format("ngu", FORMATS), n_points=10, variant=Variant(mix="tidal"))


def test_noise_and_missing_variants():
    fmt = get_format("ngu", FORMATS)
    plain, _ = generate("v", "mainland", fmt, n_points=1500, seed=3)
    rough, _ = generate("v", "mainland", fmt, n_points=1500, seed=3,
                        variant=Variant(noise_mm=4.0, atmo_mm=6.0, missing=(0.2, 0.4)))
    (a, _), (b, _) = _series(plain), _series(rough)
    assert 0.2 < np.median(np.isnan(b).mean(axis=1)) < 0.4
    # first differences: white noise sqrt(2) x std, plus the atmosphere
    assert np.nanstd(np.diff(b, axis=1)) > 1.8 * np.nanstd(np.diff(a, axis=1))


def test_sparse_variant_scatters_a_share_of_the_points_over_the_site():
    """Variant(sparse=s): s of the points spread uniformly (hillside) beside the patchy layout:
    the share of points whose median link to 10 neighbours exceeds 300 m grows by about s."""
    from scipy.spatial import cKDTree

    fmt = get_format("ngu", FORMATS)
    far = {}
    for share in (0.0, 0.3):
        table, truth = generate("d", "mainland", fmt, n_points=4000, seed=5, variant=Variant(sparse=share))
        assert len(table) == len(truth) == 4000 and set(truth["regime"]) == set(REGIMES)
        lat, lon = table[fmt.lat].to_numpy(), table[fmt.lon].to_numpy()
        xy = np.c_[lat * 111_320.0, lon * 111_320.0 * np.cos(np.radians(lat))]
        d = cKDTree(xy).query(xy, k=11)[0][:, 1:]
        far[share] = (np.median(d, axis=1) > 300).mean()
    assert far[0.0] < 0.12 and far[0.3] - far[0.0] > 0.2    # measured 0.09 and 0.32
    with pytest.raises(ValueError, match="share of the points"):
        generate("d", "mainland", fmt, n_points=10, variant=Variant(sparse=1.5))


def _fit(disp, t_yr, design):
    """Least-squares coefficients per series of a design (T, P), NaN epochs skipped."""
    out = []
    for y in disp:
        ok = np.isfinite(y)
        out.append(np.linalg.lstsq(design[ok], y[ok], rcond=None)[0])
    return np.array(out)


def test_seasonality_mix_shares_the_trend_and_differs_in_the_cycle():
    table, truth = generate("v-season", "mainland", get_format("ngu", FORMATS), n_points=2000, seed=5,
                            variant=Variant(mix="seasonality"))
    assert set(truth["class"]) == set(CLASSES["seasonality"])
    assert set(truth.regime) == {"subsiding", "seasonal"}
    disp, t_yr = _series(table)
    w = 2 * np.pi * t_yr
    coef = _fit(disp, t_yr, np.c_[np.ones_like(t_yr), t_yr, np.cos(w), np.sin(w)])
    by = pd.DataFrame({"trend": coef[:, 1], "amp": np.hypot(coef[:, 2], coef[:, 3]),
                       "phase": np.arctan2(coef[:, 3], coef[:, 2]), "cls": truth["class"]}).groupby("cls")
    trend, amp, phase = by.trend.median(), by.amp.median(), by.phase.median()
    assert trend.max() - trend.min() < 1.5 and trend.max() < -2  # one common trend
    # fitted amplitude = half peak-to-peak
    assert amp["trend"] < 0.8 < amp["weak-cycle"] < 3.5 < amp["thaw-cycle"]
    assert amp["late-cycle"] > 3.5
    shift = np.angle(np.exp(1j * (phase["late-cycle"] - phase["thaw-cycle"])))
    assert 1.5 < abs(shift) < 2.6  # about four months apart (2.06 rad)


def test_acceleration_mix_shares_the_mean_velocity():
    table, truth = generate("v-acc", "mainland", get_format("ngu", FORMATS), n_points=2000, seed=5,
                            variant=Variant(mix="acceleration"))
    assert set(truth["class"]) == set(CLASSES["acceleration"])
    disp, t_yr = _series(table)
    coef = _fit(disp, t_yr, np.c_[np.ones_like(t_yr), t_yr - t_yr.mean(), (t_yr - t_yr.mean()) ** 2])
    by = pd.DataFrame({"velocity": coef[:, 1], "acc": 2 * coef[:, 2], "cls": truth["class"]}).groupby("cls")
    velocity, acc = by.velocity.median(), by.acc.median()
    assert velocity.max() - velocity.min() < 3.5 and velocity.max() < -5
    assert acc["accelerating"] < -1 and acc["onset"] < -1 and acc["decelerating"] > 1
    assert abs(acc["linear"]) < 0.5

def test_egms_model_columns_are_fitted_to_the_series():
    """EGMS's acceleration, seasonality, their errors and rmse describe the series (they were
    drawn as noise: five uninformative static features on every EGMS-format site)."""
    fmt = get_format("egms", FORMATS)
    table, truth = generate("v-egms", "mainland", fmt, n_points=1500, seed=3, variant=Variant(mix="acceleration"))
    disp, t_yr = _series(table, "egms")
    # a direct least-squares fit of the same model, one series at a time
    t = t_yr - (t_yr[0] + t_yr[-1]) / 2
    w = 2 * np.pi * t_yr
    coef = _fit(disp[:200], t_yr, np.c_[np.ones_like(t), t, t ** 2 / 2, np.cos(w), np.sin(w)])
    np.testing.assert_allclose(table["acceleration"][:200], coef[:, 2], atol=0.03)  # the CSV rounds to 0.1 mm
    np.testing.assert_allclose(table["seasonality"][:200], np.hypot(coef[:, 3], coef[:, 4]), atol=0.03)
    by = table.assign(cls=truth["class"].to_numpy()).groupby("cls")
    acc = by["acceleration"].median()
    assert acc["accelerating"] < -1 and acc["onset"] < -1 and acc["decelerating"] > 1 and abs(acc["linear"]) < 0.5
    # errors: positive, the acceleration's well below the class differences; rmse near the noise
    for col in ("mean_velocity_std", "acceleration_std", "seasonality_std"):
        assert (table[col] > 0).all() and table[col].median() < 1.0, col
    assert 1.0 < table["rmse"].median() < 5.0
    s_table, s_truth = generate("v-egms-s", "mainland", fmt, n_points=1500, seed=3, variant=Variant(mix="seasonality"))
    amp = s_table.assign(cls=s_truth["class"].to_numpy()).groupby("cls")["seasonality"].median()
    assert amp["trend"] < 1.0 < amp["weak-cycle"] < amp["thaw-cycle"]


def test_model_columns_of_series_with_too_few_observations_are_left_empty():
    """A short archive with gaps leaves some points 5 observations or fewer: their normal matrix
    can be singular, and np.linalg.solve over the batch stopped the whole generator (a demo site of
    an EGMS format with demo.years: 0.51 from October). Those points get no model values; the
    others the same values as fitted alone."""
    from insarclust.demo import FITTED_COLUMNS, fitted_columns

    rng = np.random.default_rng(0)
    t_yr = np.arange(40) * 12 / 365.25
    disp = rng.normal(0, 3, (8, 40)) + 5 * t_yr
    for i, n_obs in enumerate((1, 2, 3, 4, 5)):   # the first epoch observed, as the generator keeps it
        disp[i, 1 + n_obs - 1:] = np.nan
    disp[6, rng.choice(np.arange(1, 40), 30, replace=False)] = np.nan   # 10 observations
    out = fitted_columns(disp, t_yr)
    assert set(out) == set(FITTED_COLUMNS)
    for name, values in out.items():
        assert np.isnan(values[:5]).all() and np.isfinite(values[5:]).all(), name
        # the same values to rounding (a batch's solve may round the last bits otherwise)
        np.testing.assert_allclose(values[5:], fitted_columns(disp[5:], t_yr)[name], rtol=1e-12)
    table, _ = generate("short", "mainland", get_format("egms", FORMATS), n_points=3000, start="2019-10-05",
                        years=0.51, seed=2)
    dates = [c for c in table.columns if c.isdigit()]
    few = table[dates].notna().sum(axis=1).to_numpy() <= 5
    assert few.any() and table.loc[few, "acceleration"].isna().all()
    assert table.loc[~few, list(FITTED_COLUMNS)].notna().all().all()
