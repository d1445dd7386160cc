"""Input formats as data: which CSV columns hold the id, position, static
attributes and dated displacements (config/formats.yaml)."""
from __future__ import annotations

import codecs
import dataclasses
import logging
import re
import unicodedata
from dataclasses import dataclass, field, fields

import yaml

from .dates import parse_date
from .errors import InputError

UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
# A header field that looks like an acquisition date. Used to catch date columns that
# the format's date_pattern silently skips: any run of 6 or more digits (YYMMDD,
# a 7-digit "2020013", a 9-digit typo), year-month-day or day-month-year with
# separators ("2020-01-13", "13.01.2020", "2020 01 13"), or a month name ("13Jan2020").
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
DATE_LIKE = re.compile(
    r"(?<!\d)\d{6,}(?!\d)"
    r"|(?:19|20)\d{2}[-_/. ]\d{1,2}[-_/. ]\d{1,2}"
    r"|(?<!\d)\d{1,2}[-_/. ]\d{1,2}[-_/. ](?:19|20)\d{2}(?!\d)"
    rf"|(?<!\d)\d{{1,2}}[-_/. ]?{_MONTHS}[-_/. ,]*\d{{2,4}}(?!\d)"
    rf"|(?<![a-z]){_MONTHS}[-_/. ]?\d{{1,2}}[-_/. ,]+(?:19|20)\d{{2}}(?!\d)",
    re.IGNORECASE)
# Acquisition years accepted in a date column (ERS-1, the first InSAR archive, flew from 1991).
DATE_YEARS = (1978, 2100)
# Bytes that every delimiter, digit and line end must encode to: pyarrow and the
# line splitter read the bytes as ASCII-compatible text.
_ASCII_PROBE = "pid,lat;lon\t|0123456789.-+eE\r\n\""
DELIMITERS = (",", ";", "\t", "|")

log = logging.getLogger("insarclust.formats")


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
    # viewing-geometry columns (the LOS unit vector): read like optional_static and kept
    # for the decompose stage, but not features (left out of dyn+static)
    geometry: tuple[str, ...] = ()
    displacement_unit: str = "mm"
    delimiter: str = ","
    na_values: tuple[str, ...] = ("", "NaN", "nan", "NA")
    encoding: str = "utf-8"
    unmatched_dates: str = "error"   # error | warn: date-like columns the pattern does not take
    # (west, south, east, north) in degrees WGS84: the provider's coverage; a point outside it
    # stops the shards stage (latitude and longitude swapped land outside, still in range)
    area: tuple[float, float, float, float] | None = None
    description: str = ""

    @classmethod
    def from_dict(cls, name: str, spec: dict, source: str = "config/formats.yaml") -> "Format":
        """The format ``name`` of formats.yaml; a bad value stops naming the format and key."""
        spec = dict(spec)
        spec["static"] = tuple(spec.get("static", ()))
        spec["optional_static"] = tuple(spec.get("optional_static", ()))
        spec["geometry"] = tuple(spec.get("geometry", ()))
        spec["na_values"] = tuple(spec.get("na_values", cls.na_values))
        unknown = sorted(set(spec) - {f.name for f in fields(cls)} - {"name"})
        if unknown:
            raise InputError(f"format '{name}' has unknown key(s) {unknown}", file=source,
                             column=unknown[0], fix="remove or correct them (keys: see the comments "
                                                    f"at the top of {source})")
        if "crs" in spec:
            spec["crs"] = str(spec["crs"])
        if isinstance(spec.get("area"), list):
            spec["area"] = tuple(spec["area"])
        fmt = cls(name=name, **spec)
        fmt.check(source)
        return fmt

    def check(self, source: str = "config/formats.yaml") -> None:
        """Values that would otherwise fail late, or silently (a pattern that matches nothing)."""
        def bad(key, problem, fix):
            raise InputError(f"format '{self.name}', key '{key}': {problem}", file=source, column=key,
                             fix=fix)

        try:
            pattern = re.compile(self.date_pattern)
        except re.error as err:
            bad("date_pattern", f"'{self.date_pattern}' is not a valid regular expression ({err})",
                "write a Python regular expression whose first group is the YYYYMMDD date, "
                "e.g. '^(\\d{8})$' or '^D(\\d{8})$'; in YAML, quote it with single quotes")
        if pattern.groups > 1:
            bad("date_pattern", f"'{self.date_pattern}' has {pattern.groups} groups",
                "use one group around the YYYYMMDD part (make others non-capturing: (?:...))")
        if self.displacement_unit not in UNIT_TO_MM:
            bad("displacement_unit", f"unknown unit '{self.displacement_unit}'",
                f"use one of {', '.join(UNIT_TO_MM)}")
        if len(self.delimiter) != 1:
            bad("delimiter", f"'{self.delimiter}' is not one character",
                "e.g. ',' or ';' or \"\\t\" (a tab, in double quotes)")
        if self.delimiter.isalnum() or self.delimiter in '.-+"\r\n':
            # these occur inside numbers, dates or quoted ids: every row would split wrongly
            bad("delimiter", f"{self.delimiter!r} is part of numbers, dates or quoting",
                "e.g. ',' or ';' or \"\\t\" (a tab, in double quotes; a decimal comma needs delimiter ';')")
        if self.crs:
            from .coords import normalize_crs   # pyproj: only for formats with projected positions

            try:
                normalize_crs(self.crs)
            except InputError as err:
                bad("crs", err.message, err.fix)
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            bad("encoding", f"unknown text encoding '{self.encoding}'", "e.g. utf-8 or latin-1")
        try:
            encoder = codecs.getincrementalencoder(self.encoding)()
            encoder.encode("x")   # a byte-order mark, if the codec writes one, comes out here
            probe = encoder.encode(_ASCII_PROBE)
        except (TypeError, ValueError, LookupError):   # bytes-to-bytes codecs (base64, zlib)
            probe = None
        if probe != _ASCII_PROBE.encode("ascii"):
            bad("encoding", f"'{self.encoding}' does not store digits, delimiters and line ends as "
                            "single ASCII bytes (UTF-16/UTF-32, EBCDIC), which the block reader needs",
                f"convert the file, e.g. iconv -f {self.encoding} -t utf-8 in.csv > out.csv, and set "
                "encoding: utf-8")
        if self.unmatched_dates not in ("error", "warn"):
            bad("unmatched_dates", f"'{self.unmatched_dates}' is not error or warn",
                "error stops on date-like columns that date_pattern does not take; warn lists them "
                "and ignores them")
        if self.area is not None:
            box = self.area
            numbers = (isinstance(box, tuple) and len(box) == 4
                       and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box))
            if not (numbers and -180 <= box[0] < box[2] <= 180 and -90 <= box[1] < box[3] <= 90):
                bad("area", f"{list(box) if isinstance(box, tuple) else box!r} is not [west, south, east, north] "
                            "in degrees", "e.g. area: [-10, 56, 36, 82] (west < east, south < north), or leave "
                                          "area out to accept any position")
        geographic, projected = bool(self.lat and self.lon), bool(self.x and self.y and self.crs)
        if geographic == projected:
            raise InputError(f"format '{self.name}' must give either lat and lon, or x, y and crs",
                             file=source,
                             fix="name the WGS84 latitude/longitude columns (lat:, lon:), or the "
                                 "projected coordinate columns and their CRS (x:, y:, crs: EPSG:3035)")

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
        """This format with the optional static and geometry columns that every header has
        appended to ``static`` (none left optional; ``geometry`` keeps those present), so all
        files of a site share one static layout."""
        headers = [{h.strip() for h in header} for header in headers]

        def present(columns):
            return tuple(c for c in columns if c not in self.static and all(c in h for h in headers))

        optional, geometry = present(self.optional_static), present(self.geometry)
        return dataclasses.replace(self, static=self.static + optional + geometry, optional_static=(),
                                   geometry=geometry)


def load_formats(path) -> dict[str, dict]:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def job_format(name: str, params: dict, formats_path) -> Format:
    """A job's format: its params plus the ``area`` read from the run's formats file. The area
    is no param (it only stops a build; a build it lets through is the same file), so adding or
    widening one reruns nothing."""
    spec = dict(params)
    area = (load_formats(formats_path).get(name) or {}).get("area")
    if area is not None:
        spec["area"] = area
    return Format.from_dict(name, spec, source=str(formats_path))


def get_format(name: str, formats: dict, source: str = "config/formats.yaml") -> Format:
    """The named format, or an error that lists the known ones."""
    if name not in formats:
        raise InputError(f"unknown format '{name}'", file=source,
                         fix=f"use one of {', '.join(sorted(formats))} in the site table's format "
                             f"column, or add a '{name}' block to {source}")
    return Format.from_dict(name, formats[name], source=source)


@dataclass
class ColumnPlan:
    """Where the needed columns are in one file's header."""

    file: str
    header: list[str]
    date_columns: list[str] = field(default_factory=list)
    dates: list[int] = field(default_factory=list)   # days since epoch, same order


def plan_columns(header: list[str], fmt: Format, file: str) -> ColumnPlan:
    """Check the header against the format and find the date columns, in date order.

    Exports list dates in any order (some newest first); the plan sorts them so
    that column ``j`` of every parsed block is the ``j``-th date. Raises
    InputError naming the missing column(s), a date column that is not a date,
    or the date pattern.
    """
    header = [h.strip() for h in header]
    required = [fmt.id, *fmt.position_columns, *fmt.static]
    missing = [c for c in required if c not in header]
    _check_hidden_characters(header, fmt, file, missing)
    if missing:
        fix = (f"check that the site uses the right format, or edit the '{fmt.name}' block "
               "of config/formats.yaml to match the file's column names")
        guess = _guess_delimiter(header, fmt, required)
        if guess is not None:
            fix = (f"the header looks {_DELIMITER_NAMES[guess]}-separated: set delimiter: "
                   f"'{guess if guess != chr(9) else chr(92) + 't'}' in the '{fmt.name}' block of "
                   "config/formats.yaml (or add a format for this export)")
        shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
        shown = shown if len(shown) <= 300 else shown[:300] + " ..."
        raise InputError(
            f"missing required column(s) {', '.join(repr(c) for c in missing)} for format "
            f"'{fmt.name}' (header has: {shown})", file=file, row=0, column=missing[0], fix=fix)
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError(f"repeated column name(s) {dup}", file=file, row=0, column=dup[0],
                         fix="give every column a unique name")
    pattern = re.compile(fmt.date_pattern)
    columns, dates, skipped = [], [], []
    for col in header:
        m = pattern.match(col)
        if not m:
            if col not in required and DATE_LIKE.search(col):
                skipped.append(col)
            continue
        text = m.group(1) if m.groups() else m.group(0)
        try:
            if len(text) != 8 or not text.isdigit():
                raise ValueError(text)
            day = parse_date(text)
        except ValueError:
            fix = (f"rename the column or narrow date_pattern of format '{fmt.name}'" if m.groups() else
                   f"date_pattern '{fmt.date_pattern}' of format '{fmt.name}' has no group: put one around "
                   "the 8 digits of the date, e.g. '^D(\\d{8})$'")
            raise InputError(f"date column '{col}' is not a valid YYYYMMDD date", file=file,
                             row=0, column=col, fix=fix) from None
        if not DATE_YEARS[0] <= int(text[:4]) <= DATE_YEARS[1]:
            raise InputError(f"date column '{col}' is in the year {int(text[:4])}, outside "
                             f"{DATE_YEARS[0]}-{DATE_YEARS[1]}", file=file, row=0, column=col,
                             fix="correct the column name (YYYYMMDD), or narrow date_pattern of format "
                                 f"'{fmt.name}' if it is not a date")
        columns.append(col)
        dates.append(day)
    _check_renamed_repeats(skipped, columns, fmt, file)
    if skipped:
        what = (f"{len(skipped)} column(s) look like dates but do not match date_pattern "
                f"'{fmt.date_pattern}' of format '{fmt.name}': {', '.join(skipped[:8])}"
                f"{', ...' if len(skipped) > 8 else ''}")
        if fmt.unmatched_dates == "error":
            raise InputError(what + "; their values would be left out", file=file, row=0, column=skipped[0],
                             fix="rename them to the format's date form (e.g. YYYYMMDD), or set "
                                 f"unmatched_dates: warn in the '{fmt.name}' block of config/formats.yaml "
                                 "to leave them out on purpose")
        log.warning("%s: %s; left out (unmatched_dates: warn)", file, what)
    if not columns:
        raise InputError(
            f"no date columns match date_pattern '{fmt.date_pattern}' of format '{fmt.name}'",
            file=file, row=0,
            fix="check the site's format, or set date_pattern in config/formats.yaml "
                "(e.g. '^(\\d{8})$' for 20180605 or '^D(\\d{8})$' for D20180605)")
    if len(set(dates)) != len(dates):
        seen: dict = {}
        for col, day in zip(columns, dates):
            if day in seen:
                raise InputError(f"date columns '{seen[day]}' and '{col}' name the same date", file=file,
                                 row=0, column=col, fix="remove the repeated acquisition column")
            seen[day] = col
    order = sorted(range(len(dates)), key=dates.__getitem__)
    return ColumnPlan(file=file, header=header, date_columns=[columns[i] for i in order],
                      dates=[dates[i] for i in order])


def _check_renamed_repeats(skipped: list[str], date_columns: list[str], fmt: Format, file: str) -> None:
    """Stop, naming the date, on a date column repeated and renamed by a tool ('20200113.1':
    pandas' read_csv renames a repeated column so, and to_csv writes the new name).

    Which of the two columns holds the acquisition cannot be known; leaving the renamed one out
    (``unmatched_dates: warn``) would keep one of them silently. Only a copy of a date column the
    file has is a repeat: dates written as numbers ('20200113.0') are date-like columns."""
    for col in skipped:
        base, dot, count = col.rpartition(".")
        if dot and count.isdigit() and base in date_columns:
            raise InputError(f"date column '{col}' repeats the date column '{base}' (a repeated column "
                             "renamed by pandas' read_csv, written back by to_csv): the file holds two "
                             "columns for one acquisition", file=file, row=0, column=col,
                             fix="keep one of the two columns in the export (check which holds the "
                                 "acquisition's values) and remove the other")


_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

# A UTF-8 byte-order mark read in a single-byte encoding (latin-1, cp1252).
_BOM_AS_LATIN = "\u00ef\u00bb\u00bf"


def _visible(text: str) -> str:
    """``text`` without invisible format characters (byte-order mark, zero-width space, direction marks)."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _check_hidden_characters(header: list[str], fmt: Format, file: str, missing: list[str]) -> None:
    """Stop, naming the character, when a needed column (or a date column) is written with an
    invisible one: 'missing column height (header has: ..., height, ...)' gave no clue."""
    if header and header[0].startswith(_BOM_AS_LATIN) and header[0][3:].strip() in missing:
        raise InputError(f"the file starts with a UTF-8 byte-order mark, read as {fmt.encoding} text "
                         f"('{header[0]}'): the file is UTF-8", file=file, row=0, column=header[0][3:].strip(),
                         fix=f"set encoding: utf-8 in the '{fmt.name}' block of config/formats.yaml (or add a "
                             "format for this export)")
    pattern = re.compile(fmt.date_pattern)
    for col in header:
        shown = _visible(col).strip()
        if shown == col or not (shown in missing or pattern.match(shown)):
            continue
        hidden = ", ".join(sorted({f"U+{ord(ch):04X} {unicodedata.name(ch, '')}".strip()
                                   for ch in col if unicodedata.category(ch) == "Cf"}))
        raise InputError(f"column {shown!r} is written with an invisible character ({hidden}): {col!r}",
                         file=file, row=0, column=shown,
                         fix="remove the character from the header line (e.g. files pasted side by side keep "
                             "the second one's byte-order mark: sed -i '1s/\\xEF\\xBB\\xBF//g' in.csv)")


def _guess_delimiter(header: list[str], fmt: Format, required: list[str]) -> str | None:
    """Another delimiter that splits the header into the format's columns, if one does."""
    line = fmt.delimiter.join(header)
    for delim in DELIMITERS:
        if delim == fmt.delimiter:
            continue
        fields_ = [f.strip().strip('"') for f in line.split(delim)]
        if len(fields_) > 1 and sum(c in fields_ for c in required) > len(required) / 2:
            return delim
    return None
