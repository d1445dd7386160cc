"""Suggested labels for clusters from the descriptors of their mean series.

A cluster's mean series averages thousands of points, so its descriptors
(:mod:`insarclust.descriptors`: trend, acceleration, annual amplitude, step)
are nearly noise-free, and the label is read off them with four thresholds
(the ``interpret:`` config section; reasoning in docs/interpretation.md):

1. Each signature is *present* when it exceeds its threshold: the trend when
   |trend| >= ``stable_trend_mm_yr`` or, with |acceleration| >=
   ``acceleration_mm_yr2``, the velocity at either end of the period does
   (speeding up, or subsidence that turns to rebound: a mid-period velocity
   near 0 does not mean the ground stood still),
   the annual cycle when its amplitude >= ``seasonal_amplitude_mm``, the step
   when |step| >= ``step_mm``.
2. Step or trend: a drop can be explained by a trend or by a step, and the
   mean of a cluster of steps at different dates looks like a ramp. The mean
   series is therefore also fitted with a step instead of the trend
   (:func:`insarclust.descriptors.step_or_trend`); when that fits at least as
   well and its step reaches ``step_mm``, the step (of that model) replaces
   the trend as a signature, and the cluster is described by that model.
3. No signature present: ``stable``.
4. Otherwise the present signature that moved the ground most over the
   observation period wins, measured in mm: the range of the polynomial
   trend over the period, the annual peak-to-peak (2 x amplitude), the step
   size.
5. A winning trend is ``accelerating`` when |acceleration| >=
   ``acceleration_mm_yr2``, the motion speeds up (acceleration and trend of
   the same sign) and the end-of-period velocity reaches the trend threshold;
   else ``subsiding`` (negative trend: away from the satellite, mostly down)
   or ``uplifting``; for an east-west component (EGMS L3 ``E``), ``westward``
   or ``eastward``.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .dates import DAYS_PER_YEAR
from .descriptors import (DESCRIPTOR_NAMES, FIT_DEFAULTS, SPAN_YEARS, DescriptorModel, infer_acquisition_dates,
                          observed_grid_mask, step_or_trend)
from .spans import acquisition_gaps, span_mask

VOCABULARY = ("stable", "subsiding", "uplifting", "seasonal", "accelerating", "step", "westward", "eastward")
# The words of a trend by its sign, for the direction the series measure: vertical and line of
# sight (away from the satellite is mostly down) by default, an east-west component otherwise.
TREND_WORDS = {"east": ("westward", "eastward")}
_VERTICAL = ("subsiding", "uplifting")
TREND_WORDS_ALL = (*_VERTICAL, *(w for words in TREND_WORDS.values() for w in words))


def trend_words(component: str | None) -> tuple[str, str]:
    """The words of a falling and a rising trend of series of ``component`` (None: vertical or
    line of sight)."""
    return TREND_WORDS.get(component, _VERTICAL)

DEFAULT_THRESHOLDS = {
    "stable_trend_mm_yr": 2.0,
    "seasonal_amplitude_mm": 4.0,
    "step_mm": 8.0,
    "acceleration_mm_yr2": 1.5,
}


def _thresholds(thresholds: Mapping | None) -> dict:
    out = dict(DEFAULT_THRESHOLDS)
    unknown = set(thresholds or {}) - set(out) - set(FIT_DEFAULTS)
    if unknown:
        raise ValueError(f"interpret: unknown key(s) {sorted(unknown)}; known: "
                         f"{sorted(set(out) | set(FIT_DEFAULTS))}")
    out.update({k: float(v) for k, v in (thresholds or {}).items() if k in out})
    return out


def fit_settings(interpret_cfg: Mapping | None) -> dict:
    """Keyword arguments of :func:`insarclust.descriptors.compute_descriptors` from the config."""
    cfg = interpret_cfg or {}
    return {k: float(cfg.get(k, v)) for k, v in FIT_DEFAULTS.items()}


def polynomial_range_mm(trend_mm_yr: float, acceleration_mm_yr2: float, span_years: float) -> float:
    """max - min (mm) of trend*t + acceleration*t^2/2 over t in [-span/2, span/2]."""
    v, a, h = float(trend_mm_yr), float(acceleration_mm_yr2), 0.5 * float(span_years)
    values = [v * -h + 0.5 * a * h * h, v * h + 0.5 * a * h * h]
    if a != 0 and abs(v / a) < h:  # the vertex lies inside the period
        values.append(-0.5 * v * v / a)
    return max(values) - min(values)


def step_explains(step_model: Mapping | None, thresholds: Mapping) -> bool:
    """The step-instead-of-trend model fits at least as well and its step reaches the threshold."""
    if not step_model:
        return False
    return (float(step_model["rss_step"]) <= float(step_model["rss_trend"])
            and abs(float(step_model["step_mm"])) >= thresholds["step_mm"])


def signature_magnitudes(descriptors: Mapping, span_years: float, thresholds: Mapping | None = None,
                         step_model: Mapping | None = None) -> dict:
    """Ground motion (mm over the period) of each *present* signature: trend, seasonal, step.

    ``step_model``: ``step_mm``, ``rss_step``, ``rss_trend`` of
    :func:`insarclust.descriptors.step_or_trend` for this series (optional).
    """
    thr = _thresholds(thresholds)
    v = float(descriptors["trend_mm_yr"])
    a = float(descriptors["acceleration_mm_yr2"])
    amplitude = float(descriptors["annual_amplitude_mm"])
    step = float(descriptors["step_mm"])
    out = {}
    if step_explains(step_model, thr):
        out["step"] = abs(float(step_model["step_mm"]))
    else:
        if abs(v) >= thr["stable_trend_mm_yr"] or curving(v, a, span_years, thr):
            out["trend"] = polynomial_range_mm(v, a, span_years)
        if abs(step) >= thr["step_mm"]:
            out["step"] = abs(step)
    if amplitude >= thr["seasonal_amplitude_mm"]:
        out["seasonal"] = 2.0 * amplitude
    return out


def curving(trend_mm_yr: float, acceleration_mm_yr2: float, span_years: float, thresholds: Mapping) -> bool:
    """|a| above threshold and the velocity at the start or the end of the period above the
    trend threshold, whatever the mid-period velocity (which includes :func:`is_accelerating`)."""
    v, a, h = float(trend_mm_yr), float(acceleration_mm_yr2), 0.5 * float(span_years)
    return (abs(a) >= thresholds["acceleration_mm_yr2"]
            and max(abs(v - a * h), abs(v + a * h)) >= thresholds["stable_trend_mm_yr"])


def is_accelerating(trend_mm_yr: float, acceleration_mm_yr2: float, span_years: float,
                    thresholds: Mapping) -> bool:
    """Speeding up: |a| above threshold, a and trend of one sign, end velocity above the trend threshold."""
    v, a = float(trend_mm_yr), float(acceleration_mm_yr2)
    end_velocity = v + a * 0.5 * span_years
    return (abs(a) >= thresholds["acceleration_mm_yr2"] and a * v > 0
            and abs(end_velocity) >= thresholds["stable_trend_mm_yr"])


def suggest_label(descriptors: Mapping, span_years: float, thresholds: Mapping | None = None,
                  step_model: Mapping | None = None, component: str | None = None) -> str:
    """One word of :data:`VOCABULARY` for a (mean) series' descriptors; rules in the module doc.
    ``component``: the direction of the series (``"east"``: :data:`TREND_WORDS`; else vertical or
    line of sight)."""
    thr = _thresholds(thresholds)
    magnitudes = signature_magnitudes(descriptors, span_years, thr, step_model)
    if not magnitudes:
        return "stable"
    winner = max(magnitudes, key=lambda name: magnitudes[name])
    if winner != "trend":
        return winner
    v, a = float(descriptors["trend_mm_yr"]), float(descriptors["acceleration_mm_yr2"])
    if is_accelerating(v, a, span_years, thr):
        return "accelerating"
    down, up = trend_words(component)
    return down if v < 0 else up


def motion_text(entry: Mapping | None) -> str | None:
    """What a cluster entry's fitted model says: ``"-8.1 mm/yr"``, or for a step model (which has
    no trend term: its trend 0 is no measurement) ``"step of -18.3 mm on 2020-08-05"``; a step in
    an acquisition gap (a winter) ``"step of -18.3 mm between 2019-11-14 and 2020-04-21"``, since
    the data cannot date it closer; None without descriptors. One wording for the map legend and
    the comparison page.

    The number is the one the label was read from: a ``seasonal`` cluster leads with its annual
    cycle, ``"±4.3 mm annual (peak mid-Jul), -0.1 mm/yr"`` (its velocity alone, near 0, said
    nothing of the motion that made it seasonal), an ``accelerating`` one adds its acceleration,
    ``"-6.0 mm/yr, -2.1 mm/yr²"``."""
    from .dates import days_to_iso

    entry = entry or {}
    d = entry.get("descriptors") or {}
    if entry.get("model") == "step" and d.get("step_mm") is not None:
        window = entry.get("step_window")
        if entry.get("step_in_gap") and window:
            when = f" between {days_to_iso(window[0])} and {days_to_iso(window[1])}"
        else:
            when = f" on {days_to_iso(d['step_date'])}" if d.get("step_date") is not None else ""
        return f"step of {float(d['step_mm']):+.1f} mm{when}"
    trend = d.get("trend_mm_yr")
    if trend is None:
        return None
    velocity = f"{0.0 if abs(trend) < 0.05 else float(trend):+.1f} mm/yr"   # no "-0.0"
    label = entry.get("label")
    if label == "seasonal" and d.get("annual_amplitude_mm") is not None:
        peak = d.get("annual_peak_doy")
        when = f" (peak {_day_of_year_text(peak)})" if peak is not None else ""
        return f"±{float(d['annual_amplitude_mm']):.1f} mm annual{when}, {velocity}"
    if label == "accelerating" and d.get("acceleration_mm_yr2") is not None:
        return f"{velocity}, {float(d['acceleration_mm_yr2']):+.1f} mm/yr²"
    return velocity


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day_of_year_text(doy: float) -> str:
    """``"mid-Jul"`` for day of year 198 (1 = 1 January): early (1st-10th), mid (11th-20th) or
    late (21st on) in the month; the annual fit dates its peak no closer than that."""
    import datetime

    day = datetime.date(2001, 1, 1) + datetime.timedelta(days=int(round(float(doy) - 1.0)) % 365)
    part = "early" if day.day <= 10 else "mid" if day.day <= 20 else "late"
    return f"{part}-{_MONTHS[day.month - 1]}"   # not strftime: its month names follow the locale


def _json_float(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def describe_clusters(mean_series: np.ndarray, grid_dates: np.ndarray, counts: np.ndarray,
                      thresholds: dict, member_spread: dict | None = None, *,
                      observed_dates: np.ndarray | None = None,
                      cluster_dates: list | None = None, component: str | None = None) -> list[dict]:
    """One dict per cluster: ``cluster``, ``size``, ``descriptors``, ``spread``, ``label`` (+ evidence).

    mean_series (K, G) mm on the regular grid; grid_dates (G,) days since
    1970-01-01; counts (K,); thresholds: the ``interpret:`` config section;
    member_spread: descriptor name -> (K,) std of that descriptor across
    cluster members. ``observed_dates`` (the site's acquisition dates,
    ``/series/dates``) leaves winter-gap epochs out of the fit, as for the
    per-point descriptors; without it the gaps are recognised in the means
    themselves (:func:`insarclust.descriptors.infer_acquisition_dates`: linear
    interpolation leaves them straight; gaps filled otherwise count as data).
    ``model`` says which fit the ``descriptors`` come from: ``trend`` (the
    joint trend + annual + step fit of the per-point descriptors) or ``step``
    (rule 2: offset + annual + one step, trend and acceleration 0), so that
    the curve :func:`insarclust.descriptors.model_curve` draws is the one the
    label was read from. ``evidence_mm`` is the ground motion of each present
    signature; ``step_instead_of_trend`` the step model of rule 2 (its step,
    date and residual ratio to the trend model; < 1: the step fits better).
    An empty cluster (size 0: a centre nobody chose) has no mean series: its ``label``,
    ``model`` and ``descriptors`` are None. All values are JSON-ready (non-finite -> None).
    ``cluster_dates``: each cluster's own acquisition dates
    (:func:`insarclust.cluster_series.cluster_acquisition_dates`), in place of
    ``observed_dates``: a season most of a cluster's members miss is left out of its fit as a
    winter, and such a cluster's entry gets ``acquisition_gaps``, its gaps the site has not.
    A cluster whose own dates no longer determine the model's terms (as a point's holes must,
    :func:`_own_dates_determine_fit`) is fitted on ``observed_dates``; without those, the site's
    dates are taken as every date of some cluster (the winters are the site's gaps, not a cluster's).
    ``component``: the direction of the series, for the trend's word (:func:`suggest_label`).
    """
    if cluster_dates is not None:
        if observed_dates is None and len(cluster_dates):
            observed_dates = np.unique(np.concatenate([np.asarray(d) for d in cluster_dates]))
        return _describe_by_dates(mean_series, grid_dates, counts, thresholds, member_spread,
                                  observed_dates, cluster_dates, component)
    grid_dates = np.asarray(grid_dates)
    mean_series, spans = covered_spans(mean_series)
    counts = np.asarray(counts)
    thr = _thresholds(thresholds)
    if observed_dates is None:
        observed_dates = infer_acquisition_dates(mean_series, grid_dates)
    fit = fit_settings(thresholds)
    model = DescriptorModel(grid_dates, observed_dates, fit["max_gap_days"], fit["min_segment_days"],
                            fit["step_z_min"]).fit()
    descriptors = model.transform(mean_series.astype(np.float32), spans)
    partial = model.partial(spans)
    alternative = step_or_trend(mean_series, grid_dates, observed_dates=observed_dates,
                                max_gap_days=fit["max_gap_days"], min_segment_days=fit["min_segment_days"])
    out = []
    for j, row in enumerate(descriptors):
        a, b = int(spans[j, 0]), int(spans[j, 1])
        span_years = (float(grid_dates[b]) - float(grid_dates[a])) / DAYS_PER_YEAR
        alt = {k: v[j] for k, v in alternative.items()}
        if partial[j]:   # the step model on the covered epochs only, where a trend model can be told apart
            alt = None
            if span_years >= SPAN_YEARS["acceleration"]:
                sub = step_or_trend(mean_series[j:j + 1, a:b + 1], grid_dates[a:b + 1],
                                    observed_dates=observed_dates, max_gap_days=fit["max_gap_days"],
                                    min_segment_days=fit["min_segment_days"])
                alt = {k: v[0] for k, v in sub.items()}
        step_model = None if alt is None else {k: float(alt[k]) for k in ("step_mm", "rss_step", "rss_trend")}
        model_name = "step" if step_explains(step_model, thr) else "trend"
        if model_name == "step":  # describe the mean with the model the label is read from
            row = alt["descriptors_step"]
        d = {name: _json_float(value) for name, value in zip(DESCRIPTOR_NAMES, row)}
        finite = {k: (v if v is not None else 0.0) for k, v in d.items()}
        spread = {}
        for name, values in (member_spread or {}).items():
            spread[name] = _json_float(np.asarray(values)[j])
        magnitudes = signature_magnitudes(finite, span_years, thr, step_model)
        out.append({
            "cluster": int(j),
            "size": int(counts[j]),
            "descriptors": d,
            "spread": spread,
            "label": suggest_label(finite, span_years, thr, step_model, component),
            "model": model_name,
            "evidence_mm": {k: round(v, 3) for k, v in magnitudes.items()},
            "step_instead_of_trend": {
                "step_mm": _json_float(step_model["step_mm"]) if step_model else None,
                "step_date": _json_float(alt["step_date"]) if step_model else None,
                "rss_ratio": _json_float(step_model["rss_step"] / step_model["rss_trend"])
                if step_model and step_model["rss_trend"] > 0 else None,
            },
        })
        if counts[j] == 0:   # no members, no mean series: no regime and no descriptors of one
            out[-1].update(descriptors=dict.fromkeys(DESCRIPTOR_NAMES), label=None, model=None,
                           evidence_mm={}, step_instead_of_trend=dict.fromkeys(out[-1]["step_instead_of_trend"]))
            continue
        if d["step_mm"] and d["step_date"] is not None:
            # where the data place the step: one revisit, or a whole winter when it fell in a gap
            before, after = model.step_window(d["step_date"])[0]
            if np.isfinite(before) and np.isfinite(after):
                out[-1]["step_window"] = [int(before), int(after)]
                out[-1]["step_in_gap"] = bool(after - before > fit["max_gap_days"])
        if partial[j]:   # where the mean (and its fit) holds: the curve is drawn there only
            out[-1]["span"] = [int(grid_dates[a]), int(grid_dates[b])]
            out[-1]["reference_date"] = float(model.span_reference(a, b))
    return out


def _describe_by_dates(mean_series, grid_dates, counts, thresholds, member_spread, site_dates,
                       cluster_dates, component=None) -> list[dict]:
    """:func:`describe_clusters` of each group of clusters sharing their acquisition dates."""
    mean_series, counts = np.atleast_2d(mean_series), np.asarray(counts)
    fit = fit_settings(thresholds)
    max_gap = fit["max_gap_days"]
    if site_dates is not None:
        site_model = DescriptorModel(np.asarray(grid_dates), site_dates, max_gap, fit["min_segment_days"],
                                     fit["step_z_min"]).fit()
        spans = covered_spans(mean_series)[1]
        cluster_dates = [dates if _own_dates_determine_fit(site_model, dates, spans[j]) else site_dates
                         for j, dates in enumerate(cluster_dates)]
    groups: dict = {}
    for j, dates in enumerate(cluster_dates):
        groups.setdefault(tuple(np.asarray(dates).tolist()), []).append(j)
    site_gaps = set() if site_dates is None else set(acquisition_gaps(site_dates, max_gap))
    out: list = [None] * len(mean_series)
    for dates, rows in groups.items():
        spread = None if member_spread is None else {k: np.asarray(v)[rows] for k, v in member_spread.items()}
        entries = describe_clusters(mean_series[rows], grid_dates, counts[rows], thresholds, spread,
                                    observed_dates=np.array(dates), component=component)
        own = [g for g in acquisition_gaps(np.array(dates), max_gap) if g not in site_gaps]
        for j, entry in zip(rows, entries):
            entry["cluster"] = int(j)
            if own:
                entry["acquisition_gaps"] = [[int(a), int(b)] for a, b in own]
            out[j] = entry
    return out


def _own_dates_determine_fit(site_model: DescriptorModel, dates, span) -> bool:
    """The epochs a cluster's own ``dates`` back within its covered ``span`` (grid indices) still
    determine the terms the site's dates fit there, by the rule the per-point fit applies to a
    point's holes (:meth:`insarclust.descriptors.DescriptorModel.holes_keep_terms`): the epochs
    its dates leave out are passed as holes. A cluster whose members have holes nearly
    everywhere is otherwise fitted on a handful of scattered epochs (five terms and a step on 8)."""
    grid = np.asarray(site_model.grid_dates)
    own = observed_grid_mask(grid, dates, site_model.max_gap_days)
    a, b = int(span[0]), int(span[1])
    within = span_mask(np.array([[a, b]]), len(grid))[0]
    dropped = site_model.mask_ & ~own & within
    if not dropped.any():
        return True
    edges = np.diff(np.r_[0, dropped.astype(np.int8), 0])
    holes = tuple(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))
    return site_model.holes_keep_terms(a, b, holes)


def covered_spans(mean_series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster mean series (K, G) with NaN where no member is observed -> (filled series, spans (K, 2)).

    ``spans`` are the first and last covered grid index of each row; NaN
    inside is interpolated linearly, beyond held (the descriptor fit uses the
    span only); a row of NaN (an empty cluster) becomes 0 over the whole grid.
    """
    Y = np.array(mean_series, dtype=np.float64, ndmin=2)
    G = Y.shape[1]
    spans = np.tile([0, G - 1], (len(Y), 1))
    cols = np.arange(G)
    for j, row in enumerate(Y):
        ok = np.isfinite(row)
        if not ok.any():
            Y[j] = 0.0
        elif not ok.all():
            Y[j] = np.interp(cols, cols[ok], row[ok])
            spans[j] = np.flatnonzero(ok)[[0, -1]]
    return Y, spans
