"""Input formats as data: which CSV columns hold the id, position, static
attributes and dated displacements (config/formats.yaml)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import InputError

UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class Format:
    """One provider's CSV layout (a block of formats.yaml)."""

    name: str
    id: str
    static: tuple[str, ...]
    date_pattern: str
    # position: WGS84 lat/lon columns, or projected x/y columns in ``crs`` (see insarclust.coords)
    lat: str = ""
    lon: str = ""
    x: str = ""
    y: str = ""
    crs: str = ""
    # static columns read when a file has them (every file of the site), skipped otherwise
    optional_static: tuple[str, ...] = ()
    displacement_unit: str = "mm"
    delimiter: str = ","
    na_values: tuple[str, ...] = ("", "NaN", "nan", "NA")
    description: str = ""

    @classmethod
    def from_dict(cls, name: str, spec: dict) -> "Format":
        spec = dict(spec)
        spec["static"] = tuple(spec.get("static", ()))
        spec["optional_static"] = tuple(spec.get("optional_static", ()))
        spec["na_values"] = tuple(spec.get("na_values", cls.na_values))
        if "crs" in spec:
            spec["crs"] = str(spec["crs"])
        fmt = cls(name=name, **spec)
        geographic, projected = bool(fmt.lat and fmt.lon), bool(fmt.x and fmt.y and fmt.crs)
        if geographic == projected:
            raise InputError(f"format '{name}' must give either lat and lon, or x, y and crs",
                             file="config/formats.yaml",
                             fix="name the WGS84 latitude/longitude columns (lat:, lon:), or the "
                                 "projected coordinate columns and their CRS (x:, y:, crs: EPSG:3035)")
        return fmt

    @property
    def to_mm(self) -> float:
        return UNIT_TO_MM[self.displacement_unit]

    @property
    def projected(self) -> bool:
        """Positions come as projected x/y in ``crs`` (converted to WGS84 on reading)."""
        return bool(self.crs)

    @property
    def position_columns(self) -> tuple[str, str]:
        """``(y/lat column, x/lon column)``: the columns the reader takes the position from."""
        return (self.y, self.x) if self.projected else (self.lat, self.lon)

    def with_optional(self, headers) -> "Format":
        """This format with the optional static columns that every header has appended to
        ``static`` (and none left optional), so all files of a site share one static layout."""
        headers = [{h.strip() for h in header} for header in headers]
        present = tuple(c for c in self.optional_static
                        if c not in self.static and all(c in h for h in headers))
        return dataclasses.replace(self, static=self.static + present, optional_static=())


def load_formats(path) -> dict[str, dict]:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def get_format(name: str, formats: dict, source: str = "config/formats.yaml") -> Format:
    """The named format, or an error that lists the known ones."""
    if name not in formats:
        raise InputError(f"unknown format '{name}'", file=source,
                         fix=f"use one of {', '.join(sorted(formats))} in the site table's format "
                             f"column, or add a '{name}' block to {source}")
    return Format.from_dict(name, formats[name])


def parse_date(text: str) -> int:
    """YYYYMMDD -> days since 1970-01-01."""
    return (dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])) - EPOCH).days


def days_to_iso(days) -> str:
    return (EPOCH + dt.timedelta(days=int(days))).isoformat()


@dataclass
class ColumnPlan:
    """Where the needed columns are in one file's header."""

    file: str
    header: list[str]
    date_columns: list[str] = field(default_factory=list)
    dates: list[int] = field(default_factory=list)   # days since epoch, same order


def plan_columns(header: list[str], fmt: Format, file: str) -> ColumnPlan:
    """Check the header against the format and find the date columns.

    Raises InputError naming the missing column(s) or the date pattern.
    """
    header = [h.strip() for h in header]
    required = [fmt.id, *fmt.position_columns, *fmt.static]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(
            f"missing required column(s) {', '.join(repr(c) for c in missing)} for format "
            f"'{fmt.name}' (header has: {', '.join(header[:12])}{', ...' if len(header) > 12 else ''})",
            file=file, row=0, column=missing[0],
            fix=f"check that the site uses the right format, or edit the '{fmt.name}' block "
                "of config/formats.yaml to match the file's column names")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError(f"repeated column name(s) {dup}", file=file, row=0, column=dup[0],
                         fix="give every column a unique name")
    pattern = re.compile(fmt.date_pattern)
    plan = ColumnPlan(file=file, header=header)
    for col in header:
        m = pattern.match(col)
        if not m:
            continue
        text = m.group(1) if m.groups() else m.group(0)
        try:
            day = parse_date(text)
        except ValueError:
            raise InputError(f"date column '{col}' is not a valid YYYYMMDD date", file=file,
                             row=0, column=col,
                             fix=f"rename the column or narrow date_pattern of format '{fmt.name}'") from None
        plan.date_columns.append(col)
        plan.dates.append(day)
    if not plan.date_columns:
        raise InputError(
            f"no date columns match date_pattern '{fmt.date_pattern}' of format '{fmt.name}'",
            file=file, row=0,
            fix="check the site's format, or set date_pattern in config/formats.yaml "
                "(e.g. '^(\\d{8})$' for 20180605 or '^D(\\d{8})$' for D20180605)")
    if len(set(plan.dates)) != len(plan.dates):
        raise InputError("two date columns name the same date", file=file, row=0,
                         fix="remove the repeated acquisition column")
    return plan


def format_path_default() -> Path:
    return Path(__file__).resolve().parents[2] / "config" / "formats.yaml"
