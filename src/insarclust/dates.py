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
