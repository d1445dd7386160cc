"""Dates as the files store them: int days since 1970-01-01, and the year length used for rates."""
from __future__ import annotations

import datetime as dt

EPOCH = dt.date(1970, 1, 1)
# Julian year: rates (mm/yr) and annual cycles use the same year length everywhere.
DAYS_PER_YEAR = 365.25


def parse_date(text: str) -> int:
    """YYYYMMDD -> days since 1970-01-01."""
    return (dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])) - EPOCH).days


def days_to_iso(days) -> str:
    return (EPOCH + dt.timedelta(days=int(days))).isoformat()


def linear_trend_per_year(series, days):
    """Least-squares linear trend per year of each row of ``series (n, T)`` on dates ``days (T,)``
    (days since 1970-01-01), fitted on each row's finite values: a row with NaN epochs (a cluster
    mean at dates none of its members covers) keeps the trend of the rest, rows of NaN stay NaN,
    a single date gives 0."""
    import numpy as np

    series = np.atleast_2d(np.asarray(series, dtype=np.float64))
    t = (np.asarray(days, dtype=np.float64) - days[0]) / DAYS_PER_YEAR
    t_c = t - t.mean()
    denom = float(np.sum(t_c ** 2))
    if denom == 0:
        return np.zeros(len(series))
    out = (series - series.mean(axis=1, keepdims=True)) @ t_c / denom
    finite = np.isfinite(series)
    for i in np.flatnonzero(finite.any(axis=1) & ~finite.all(axis=1)):
        ti, yi = t[finite[i]], series[i, finite[i]]
        tc = ti - ti.mean()
        d = float(np.sum(tc ** 2))
        out[i] = float((yi - yi.mean()) @ tc / d) if d > 0 else 0.0
    return out
