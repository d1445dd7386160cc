"""The site table (config/sites.tsv) and the input formats (config/formats.yaml), checked
before any job runs, with messages that name the file, row and key.

Three kinds of ``source``::

    data/lyngen/*.csv                               files: a path or glob (plain, .gz, .zip)
    demo:mainland                                   the embedded synthetic generator
    asc=data/egms/asc/*.zip;desc=data/egms/desc/*.zip   an ascending + descending pair

A pair names two line-of-sight sources of the same area and period, each a
path/glob (both tracks read with the site's format); the site is then the
vertical/east-west decomposition of the two (stage ``decompose``). A demo
pair is ``asc=demo:mainland;desc=demo:mainland`` (one preset, both sides).
"""
from __future__ import annotations

import csv
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import yaml

from .config import first_violation, check_unique_keys, first_schema_error
from .errors import InputError
from .formats import Format
from .requirements import check_site, site_needs

COLUMNS = ("site", "source", "format")
# a pid,regime table of known regimes the clusters are scored against (demo sites bring their own)
OPTIONAL_COLUMNS = ("truth",)


def _without_note(line: str) -> str:
    """``line`` up to its note: a # at the start of the line or after a space or tab, outside a
    double-quoted cell (``"data/my #1.csv"`` is a path)."""
    quoted, start, i = False, True, 0
    while i < len(line):
        ch = line[i]
        if quoted:
            if ch == '"':
                if line.startswith('""', i):   # an escaped quote inside the cell
                    i += 2
                    continue
                quoted = False
        elif ch == '"' and start:
            quoted = True
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
        start = not quoted and ch == "\t"
        i += 1
    return line


def _cells(line: str) -> list[str]:
    """The tab-separated cells of a line as the reader splits them (a quoted cell may hold a tab)."""
    return next(csv.reader([line], delimiter="\t"), [])


def check_table_paths(config: Mapping) -> None:
    """The site table and the formats file named by the configuration exist (a setting of
    ``sites`` or ``formats`` that names no file stops naming the key, not with a traceback)."""
    from .config import CONFIG_SOURCES

    for key, what in (("sites", "site table"), ("formats", "formats file")):
        path = Path(str(config[key]))   # read as written by every stage: a ~ is not expanded
        if not path.is_file():
            problem = "is a folder" if path.is_dir() else "does not exist"
            fix = f"name an existing file, e.g. {key}: config/{'sites.tsv' if key == 'sites' else 'formats.yaml'}"
            if str(config[key]).startswith("~"):
                fix = f"write the path without ~ (it is not expanded), e.g. {key}: {path.expanduser()}"
            raise InputError(f"configuration ({CONFIG_SOURCES}), key '{key}': the {what} {config[key]} {problem} "
                             f"(relative to the working directory {Path.cwd()})", fix=fix)


def read_site_table(path, schema: Mapping) -> pd.DataFrame:
    """The site table, indexed by site name; every row checked against ``schema``."""
    import io
    import warnings

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"the site table is not UTF-8 text ({err.reason} at byte {err.start})", file=path,
                         fix="save it as UTF-8 (plain text, tab-separated)") from None
    # a # at the start of a line or after a space or tab begins a note; one inside a cell
    # (data/run#1/*.csv) is part of the value. Trailing tabs and spaces end no cell.
    lines = [_without_note(line).rstrip() for line in text.splitlines()]
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise InputError("the site table is empty", file=path,
                         fix="the first line must be: site<TAB>source<TAB>format (tab-separated), then one "
                             "row per site")
    # index_col=False: a short row's cells stay in their columns (a long one stops below)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        try:
            table = pd.read_csv(io.StringIO("\n".join(lines) + "\n"), sep="\t", dtype=str, index_col=False,
                                comment=None).fillna("")
        except pd.errors.ParserError as err:
            raise InputError(f"the site table cannot be read as tab-separated cells ({err})", file=path,
                             fix='close every double quote that opens a cell ("data/my #1.csv"), or write '
                                 "the cell without quotes") from None
    table = table.rename(columns=str.strip).apply(lambda col: col.str.strip())
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"the site table lacks column(s) {missing} (it has {list(table.columns)})",
                         file=path, row=0, fix="the first line must be: site<TAB>source<TAB>format (tab-separated)")
    extra = [c for c in table.columns if c not in COLUMNS + OPTIONAL_COLUMNS]
    if extra:
        raise InputError(f"the site table has column(s) {extra} besides {', '.join(COLUMNS)} (and the optional "
                         f"{', '.join(OPTIONAL_COLUMNS)})", file=path, row=0, column=extra[0],
                         fix="remove the extra column(s); notes can follow a # on a line")
    width = len(_cells(lines[0]))
    for i, line in enumerate(lines[1:], start=1):
        cells = _cells(line)
        if len(cells) > width:
            raise InputError(f"the row has {len(cells)} tab-separated cells, the header {width}: "
                             f"'{cells[width].strip()}' would be left out", file=path, row=i, column=None,
                             fix="remove the extra cell(s) or the tab before them; notes can follow a # on a "
                                 "line")
    for i, row in enumerate(table.to_dict("records"), start=1):
        bad = first_schema_error(row, schema)
        if bad:
            key = (bad[0] or [None])[0]
            raise InputError(f"bad site row {row}: {bad[1]}", file=path, row=i, column=key,
                             fix="site names are letters, digits, - and _, beginning with a letter or digit "
                                 "(they become folder names)" if key == "site" else
                                 "source and format must not be empty")
        if row["site"][:4].lower() == "gpkg":
            raise InputError(f"site name '{row['site']}' begins with 'gpkg', which GeoPackage reserves for its "
                             "own tables: the site's clusters.gpkg layer (named after the site) could not be "
                             "written", file=path, row=i, column="site", fix="rename the site")
        source = parse_source(row["source"], row["site"], str(path))
        _check_truth_cell(row.get("truth", ""), source, row["site"], path, i)
    if table.empty:
        raise InputError("the site table has a header but no site row", file=path,
                         fix="add a row per site: name<TAB>source<TAB>format (see README.md, 'Your own sites')")
    repeated = table["site"].duplicated()
    if repeated.any():
        raise InputError(f"site names must be unique, repeated: {sorted(table.loc[repeated, 'site'])}",
                         file=path, fix="rename or remove the repeated rows")
    # results/Valley and results/valley are one folder on a case-insensitive file system (macOS,
    # Windows), and one layer in a GeoPackage: the second site would overwrite the first's files
    folded = table["site"].str.casefold()
    same = folded.duplicated(keep=False)
    if same.any():
        names = sorted(table.loc[same, "site"])
        raise InputError(f"site names {names} differ only in upper/lower case: on macOS and Windows their "
                         "results folders are one folder", file=path, row=int(np.flatnonzero(same)[1]) + 1,
                         column="site", fix="give the sites names that differ in more than case")
    return table.set_index("site", drop=False)


def _check_truth_cell(truth: str, source: "SiteSource", site: str, path, row: int) -> None:
    """A ``truth`` cell names an existing file, and not for a demo site (whose generator
    writes the true regimes itself)."""
    if not truth:
        return
    if source.is_demo:
        raise InputError(f"site '{site}' is a demo site, whose true regimes are generated with it; the truth "
                         f"column names '{truth}'", file=path, row=row, column="truth",
                         fix="leave the truth cell of a demo site empty")
    if not Path(truth).expanduser().is_file():   # a ~ is expanded, as in the source column
        raise InputError(f"site '{site}': the truth table '{truth}' does not exist (relative to the working "
                         f"directory {Path.cwd()})", file=path, row=row, column="truth",
                         fix="name a CSV with columns pid,regime (one row per known point), or leave the cell "
                             "empty")


def truth_path(sites: pd.DataFrame, site: str) -> str | None:
    """The site's own truth table (the site table's optional ``truth`` column), or None."""
    value = sites.loc[site].get("truth", "") if "truth" in sites.columns else ""
    return os.path.expanduser(str(value)) if value else None


def read_formats(path, schema: Mapping) -> dict:
    """formats.yaml as a dict; its structure (schema) and every value (regexes, units,
    encodings: :meth:`Format.check`) checked, naming the format and key."""
    check_unique_keys(path, top="format")
    with open(path) as fh:
        formats = yaml.safe_load(fh) or {}
    err = first_violation(formats, schema)
    if err is not None:
        where, message = [str(p) for p in err.absolute_path], err.message
        fix = "see the comments at the top of formats.yaml for the keys"
        if err.validator == "oneOf" and len(where) == 1:
            # "{...} is not valid under any of the given schemas": the position columns
            given = [k for k in ("lat", "lon", "x", "y", "crs") if k in err.instance]
            message = (f"the position is given by {', '.join(given) or 'no column'}: a format needs lat and "
                       "lon (WGS84 degrees), or x, y and crs (projected), not both")
            fix = "give lat: and lon:, or x:, y: and crs: (e.g. crs: EPSG:3035)"
        elif where[1:] == ["delimiter"] and err.instance == "\\t":
            fix = 'write a tab as "\\t" in double quotes (in single quotes it is two characters)'
        name = f"format '{where[0]}'" if where else "formats.yaml"
        key = f", key '{'.'.join(where[1:])}'" if len(where) > 1 else ""
        raise InputError(f"{name}{key}: {message}", file=path, fix=fix)
    for name, spec in formats.items():
        Format.from_dict(name, spec, source=str(path))
    return formats


def check_site_formats(sites: pd.DataFrame, formats: Mapping, sites_path, formats_path) -> None:
    for site, fmt in sites["format"].items():
        if fmt not in formats:
            raise InputError(f"site '{site}' uses unknown format '{fmt}'; known formats in {formats_path}: "
                             f"{', '.join(sorted(formats))}", file=sites_path,
                             fix="fix the format column or add the format to formats.yaml")


def glob_files(site: str, pattern: str, sites_path, what: str = "source") -> list[str]:
    """The files of a source glob; an error naming the site when none matches."""
    files = sorted(glob.glob(os.path.expanduser(pattern)))
    if not files:
        raise InputError(f"site '{site}': no file matches the {what} '{pattern}'", file=sites_path,
                         column="source", fix="fix the path or glob (relative to the working directory)")
    return files


def track_files(site: str, source: "SiteSource", track: str, sites_path) -> list[str]:
    """Input CSV files of one track (asc, desc) of a pair site (generated ones for a demo pair)."""
    if source.is_demo:
        return [f"resources/demo/{site}.{track}.csv.gz"]
    return glob_files(site, source.tracks[track], sites_path, f"{track} source")


def source_files(site: str, source: "SiteSource", sites_path) -> list[str]:
    """The CSV files of a site (a demo site's generated CSV; both tracks of a pair)."""
    if source.kind == "pair":
        return track_files(site, source, "asc", sites_path) + track_files(site, source, "desc", sites_path)
    if source.kind == "demo":
        return [f"resources/demo/{site}.csv.gz"]
    return glob_files(site, source.text, sites_path)


def check_built_sites(sites: pd.DataFrame, config: Mapping, results="results") -> None:
    """A ``shards.h5`` that is up to date must still be big enough for the current config
    (raising ``kmeans.k`` on a small site stops here, before any job), and must hold no
    displacement beyond a lowered ``shards.max_abs_mm`` (the bound is not a param of the
    shards stage, so lowering it reruns nothing; the largest reading is stored instead)."""
    import h5py

    needs = site_needs(config)
    for site, text in sites["source"].items():
        path = Path(results) / site / "shards.h5"
        if not path.exists():
            continue
        source = parse_source(text, site)
        demo_pair = source.is_demo and source.kind == "pair"
        try:
            files = [] if source.is_demo else [f for pattern in (source.tracks.values() or [text])
                                               for f in glob.glob(os.path.expanduser(pattern))]
            if any(os.path.getmtime(f) > path.stat().st_mtime for f in files):
                continue  # it will be rebuilt from newer input
            with h5py.File(path, "r") as f:
                dates = f["series/dates"][:]
                counts = (int(f.attrs["n_points"]), len(dates), len(f["series/grid_dates"]))
                step = int(f.attrs.get("grid_step_days", 0)) or None
                read_max = f.attrs.get("max_abs_mm_read")   # absent in files of older versions
                tracks = [f.attrs.get(f"n_points_{t}") for t in ("ascending", "descending")]
        except (OSError, KeyError):
            continue  # unreadable: its stage reruns and reports
        bound = (config.get("shards") or {}).get("max_abs_mm", 10000)
        if demo_pair:
            # regenerated when its settings change, and its size checked by the decompose stage
            # then; the bound (no param) only here, while both tracks have the demo's size
            size = config.get("demo", {}).get("n_points")
            if size is not None and all(t is not None and int(t) == int(size) for t in tracks):
                _check_built_bound(site, path, read_max, bound)
            continue
        if source.is_demo:
            # a demo of another size is regenerated, and checked by shards then; so is one of other
            # dates (demo.start/years): its dates are judged only while they are the demo's
            demo = config.get("demo", {})
            if counts[0] != int(demo.get("n_points", counts[0])):
                continue
            if not _same_demo_dates(dates, source.preset, demo):
                counts, step = (counts[0], None, None), None
        configured_step = (config.get("shards") or {}).get("grid_step_days")
        if step is not None and configured_step is not None and int(configured_step) != step:
            # another grid step reruns the shards stage, which checks the new grid: the old
            # grid's epoch count says nothing about it
            counts, step = (counts[0], counts[1], None), None
        _check_built_bound(site, path, read_max, bound)
        check_site(site, needs, *counts, file=str(path), grid_step_days=step,
                   also=f"if the site's input has changed, delete {path} to rebuild it")


def _same_demo_dates(dates, preset: str, demo: Mapping) -> bool:
    """Whether ``dates`` (a built ``/series/dates``) are those the demo settings generate."""
    from .demo import PRESETS, acquisition_dates

    try:
        want = acquisition_dates(str(demo.get("start", "2018-06-01")), float(demo.get("years", 4.5)),
                                 PRESETS[preset])
    except (KeyError, TypeError, ValueError):
        return False
    return np.array_equal(np.asarray(dates, dtype=np.int64), want.astype(np.int64))


def _check_built_bound(site: str, path: Path, read_max, max_abs_mm) -> None:
    """Stop when a built site was read from displacements beyond the current bound."""
    from .block_checks import displacement_bound

    if read_max is None or max_abs_mm is None:
        return
    bound = displacement_bound(max_abs_mm)
    if np.float32(read_max) > bound:
        raise InputError(f"site '{site}' was built from displacements up to {float(read_max):.6g} mm, beyond "
                         f"shards.max_abs_mm = {float(bound):g} mm (lowered since it was built)", file=str(path),
                         fix=f"delete {path} so that the shards stage reads the input again and names the row "
                             f"and column of each such value; or raise shards.max_abs_mm to at least "
                             f"{float(read_max):.6g} if such motion is real")


# --------------------------------------------------------------------------- #
# the source column


TRACKS = ("asc", "desc")
_PAIR = re.compile(r"^\s*(asc|desc)\s*=")


@dataclass(frozen=True)
class SiteSource:
    """A parsed ``source``: ``kind`` is ``files``, ``demo`` or ``pair``.

    ``tracks`` (pairs): ``{"asc": source, "desc": source}``, each a path/glob
    or ``demo:<preset>``; ``preset``: the demo preset (demo sites and demo pairs).
    """

    text: str
    kind: str
    tracks: dict = field(default_factory=dict)
    preset: str | None = None

    @property
    def is_demo(self) -> bool:
        return self.preset is not None


def parse_source(text: str, site: str = "", table: str = "config/sites.tsv") -> SiteSource:
    """Parse one ``source`` cell; InputError (naming the site) for a malformed pair."""
    text = str(text).strip()
    if not _PAIR.match(text):
        if text.startswith("demo:"):
            return SiteSource(text, "demo", preset=_demo_preset(text, site, table))
        return SiteSource(text, "files")
    where = f"site '{site}': " if site else ""
    fix = ("write the pair as asc=<path or glob>;desc=<path or glob> (one ascending and one descending "
           "download of the same area), or asc=demo:<preset>;desc=demo:<preset>")
    tracks = {}
    for part in (p for p in text.split(";") if p.strip()):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in TRACKS or not value:
            raise InputError(f"{where}cannot read '{part.strip()}' of the pair source '{text}'",
                             file=table, column="source", fix=fix)
        if key in tracks:
            raise InputError(f"{where}the pair source '{text}' names '{key}' twice", file=table,
                             column="source", fix=fix)
        tracks[key] = value
    missing = [t for t in TRACKS if t not in tracks]
    if missing:
        raise InputError(f"{where}the pair source '{text}' has no {' and no '.join(missing)} geometry: a "
                         "vertical/east-west decomposition needs one ascending and one descending track",
                         file=table, column="source", fix=fix)
    demo = [tracks[t].startswith("demo:") for t in TRACKS]
    preset = None
    if any(demo):
        presets = {tracks[t].split(":", 1)[1] for t in TRACKS if tracks[t].startswith("demo:")}
        if not all(demo) or len(presets) != 1:
            raise InputError(f"{where}a demo pair needs the same demo:<preset> on both sides, got '{text}'",
                             file=table, column="source", fix="e.g. asc=demo:mainland;desc=demo:mainland")
        preset = _demo_preset(tracks["asc"], site, table)
    return SiteSource(text, "pair", tracks, preset)


def _demo_preset(text: str, site: str, table: str) -> str:
    """The preset of ``demo:<preset>``; InputError (naming the site) for an unknown one."""
    from .demo import PRESETS

    preset = text.split(":", 1)[1].strip()
    if preset not in PRESETS:
        raise InputError(f"{f'site {site!r}: ' if site else ''}unknown demo preset '{preset}' in '{text}'",
                         file=table, column="source",
                         fix=f"use one of {', '.join(f'demo:{p}' for p in sorted(PRESETS))}")
    return preset
