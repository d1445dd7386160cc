"""Checks of one parsed block of a CSV file before it is stored: positions (range, degrees
in a projected format, 0/0, the format's area and swapped columns), ids (empty, NUL, byte-order
marks, UTF-8 read as a single-byte encoding), rows of delimiters only, and values (not finite,
beyond ``shards.max_abs_mm``, no-data codes). Each stops with the file, row and column of the
earliest offending row and the fix; none changes a value that passes."""

from __future__ import annotations

import codecs
import warnings
from typing import TYPE_CHECKING

import numpy as np

from .coords import outside_area_of_use
from .errors import InputError
from .formats import Format
from .readers import CsvInput

if TYPE_CHECKING:
    from .shards import ShardsConfig


# No-data codes that exports write instead of an empty cell. As numbers they pass every
# other check (-9999 mm is inside the +-10 m bound) and would be read as a 10 m motion, or
# a height, velocity or coherence of -9999. Exact values only; +9999 is no code in the
# static columns, where radar line/pixel numbers can reach it.
NODATA_DISPLACEMENT = (-9999.0, 9999.0)
# -32768 / -32767: the no-data values of 16-bit integer rasters (a height sampled from a DEM);
# -99999 that of many tables; no static column of a catalogue (heights, velocities, coherences,
# angles, non-negative radar coordinates) takes them.
NODATA_STATIC = (-9999.0, -99999.0, -32768.0, -32767.0)
# -999 is the commonest code of all, but a real value could be it (a velocity, or a displacement
# of a fast landslide, in mm). It is a code where it stands alone: in a static column no other
# value of the column in the block reaches half of it (no height lies 500 m below sea level;
# coherences, RMSEs, standard deviations and radar coordinates are never negative); among the
# displacements no other of the block does (a landslide that reached -999 mm passed -500 on its
# way and stays near). A -999 among a fast landslide's other large values is kept.
NODATA_ALONE = -999.0
# Beyond this a static value is a no-data fill, not a height, velocity or coherence (Surfer's
# 1.70141e+38, 1e30 fills of other tools, the float32 extreme below)
NODATA_STATIC_HUGE = 1e30
# The float32 extreme -3.4028235e+38 is the default no-data value of float rasters in GDAL, QGIS
# and ArcGIS (a height or velocity sampled from a raster where it has no data). It is finite and
# passes the float32 range check; in a static column it was kept as a height of -3.4e38, and
# standardising it flattened that column of every other point to 0. Written with any number of
# digits it reads as at least this much.
NODATA_FLOAT32 = 3.4e38


def displacement_bound(max_abs_mm: float | None) -> np.float32:
    """``shards.max_abs_mm`` as the float32 the displacements are compared with (None: finite only).

    Never above the float32 range: a bound that rounds to inf would let inf through.
    """
    f32max = float(np.finfo(np.float32).max)
    return np.float32(min(float(max_abs_mm), f32max) if max_abs_mm is not None else f32max)


def check_values(block, src: CsvInput, fmt: Format, plan, cfg: ShardsConfig) -> float:
    """Displacements must be finite and within +-max_abs_mm, static values finite (NaN = missing
    is fine), and neither may hold a no-data code. Returns the block's largest |displacement|
    (mm; 0 for an all-empty block), stored in shards.h5 so that a lowered bound is checked
    against a site already built (``sites.check_built_sites``).

    A 1e30 or an inf would pass every later stage and silently wreck the
    clusters (or fail much later, naming no point), so it stops here.
    """
    static_inf = np.isinf(block.static)
    if static_inf.any():
        i, row = block.first(static_inf.any(axis=1))
        j = int(np.argmax(static_inf[i]))
        raise InputError(f"value {float(block.static[i, j]):g} of point '{block.pid[i]}' is not a finite number "
                         "(or beyond the float32 range)", file=src.label, row=row, column=fmt.static[j],
                         fix="correct the value, or leave the cell empty if it is unknown")
    _check_nodata(block.static, NODATA_STATIC, 1.0, block, src, fmt, fmt.static, "value", huge=NODATA_STATIC_HUGE)
    _check_lone_code(block.static, 1.0, block, src, fmt, fmt.static, "value", per_column=True)
    disp = block.displacement
    bound = displacement_bound(cfg.max_abs_mm)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN block has no max
        hi, lo = np.nanmax(disp, initial=-np.inf), np.nanmin(disp, initial=np.inf)
    codes = [c * fmt.to_mm for c in NODATA_DISPLACEMENT]
    if lo <= min(codes) or hi >= max(codes):   # only then can a block hold a code: search it
        _check_nodata(disp, codes, fmt.to_mm, block, src, fmt, plan.date_columns, "displacement")
    if lo <= NODATA_ALONE * fmt.to_mm:
        _check_lone_code(disp, fmt.to_mm, block, src, fmt, plan.date_columns, "displacement", per_column=False)
    if not (hi > bound or lo < -bound):
        return max(float(hi), -float(lo), 0.0)
    with np.errstate(invalid="ignore"):
        bad = np.abs(disp) > bound
    i, row = block.first(bad.any(axis=1))
    j = int(np.argmax(bad[i]))
    value = float(disp[i, j])
    if np.isfinite(value):
        problem = (f"displacement {value:.6g} mm of point '{block.pid[i]}' is beyond the plausibility "
                   f"bound of +-{float(bound):g} mm (shards.max_abs_mm)")
        fix = ("correct or blank the value (an empty cell is a missing epoch); check the format's "
               "displacement_unit; or raise shards.max_abs_mm in config/config.yaml if such motion is real")
    else:
        problem = (f"displacement of point '{block.pid[i]}' is {value:g}: not a finite number "
                   "(or beyond the float32 range)")
        fix = "correct the value, or leave the cell empty if the epoch is missing"
    raise InputError(problem, file=src.label, row=row, column=plan.date_columns[j], fix=fix)


def _check_nodata(values, codes, scale: float, block, src: CsvInput, fmt: Format, columns, what: str,
                  huge: float = NODATA_FLOAT32) -> None:
    """Stop on the first cell of ``values`` (n, len(columns)) that holds one of the no-data ``codes``
    or is at least ``huge`` in size (``values`` are the file's numbers times ``scale``, the unit
    conversion)."""
    hit = np.isin(values, np.asarray(codes, dtype=values.dtype))
    extreme = huge * scale
    if extreme <= float(np.finfo(values.dtype).max):   # in cm or m the extreme read as mm is inf (checked as such)
        with np.errstate(invalid="ignore"):
            hit |= np.isfinite(values) & (np.abs(values) >= values.dtype.type(extreme))
    if not hit.any():
        return
    i, row = block.first(hit.any(axis=1))
    j = int(np.argmax(hit[i]))
    written = float(values[i, j]) / scale
    spelt = (f"e.g. '{written:g}' or '{written:.1f}'" if abs(written) < NODATA_FLOAT32 else
             f"e.g. '{written:.7e}' or '{written:.11e}': the float32 extreme that GIS tools write for "
             "no data, spelt with as many digits as the file has")
    raise InputError(f"{what} {written:g} of point '{block.pid[i]}' is a no-data code, not a measurement",
                     file=src.label, row=row, column=columns[j], fix=_nodata_fix(fmt, spelt))


def _nodata_fix(fmt: Format, spelt: str) -> str:
    """The fix of a no-data code read as a number (``spelt``: how the file may write it)."""
    return (f"add it, quoted, to na_values of format '{fmt.name}' in config/formats.yaml, spelt as in the "
            f"file ({spelt}), or blank such cells")


def _check_lone_code(values, scale: float, block, src: CsvInput, fmt: Format, columns, what: str,
                     per_column: bool) -> None:
    """Stop on a -999 (``NODATA_ALONE``, in the file's unit; ``values`` are the file's numbers
    times ``scale``) that no other value of its column (``per_column``) or of the block's
    displacements comes within half of."""
    code = values.dtype.type(NODATA_ALONE * scale)
    hit = values == code
    if not hit.any():
        return
    with np.errstate(invalid="ignore"):
        near = (values <= code / 2) & ~hit
    alone = hit & ~(near.any(axis=0) if per_column else near.any())
    if not alone.any():
        return
    i, row = block.first(alone.any(axis=1))
    j = int(np.argmax(alone[i]))
    others = ("value of the column" if per_column else
              f"displacement of the {len(block.pid):,} rows read with it")
    raise InputError(f"{what} -999 of point '{block.pid[i]}' is a no-data code, not a measurement: no other "
                     f"{others} comes within half of it",
                     file=src.label, row=row, column=columns[j], fix=_nodata_fix(fmt, "e.g. '-999' or '-999.0'"))


def _check_projected(block, src: CsvInput, fmt: Format) -> None:
    """Projected positions must be metres of the format's CRS: the inverse projection gives a
    finite latitude/longitude for almost any x, y, so degrees or another CRS's metres would
    otherwise land silently on another continent."""
    degrees = (np.abs(block.x) <= 180) & (np.abs(block.y) <= 90)
    far, area = outside_area_of_use(block.lat, block.lon, fmt.crs)
    bad = degrees | far
    if not bad.any():
        return
    i, row = block.first(bad)
    where = (f"x={block.x[i]:g}, y={block.y[i]:g} look like degrees, not metres of {fmt.crs}" if degrees[i] else
             f"x={block.x[i]:.0f}, y={block.y[i]:.0f} in {fmt.crs} is at {block.lat[i]:.2f} N, "
             f"{block.lon[i]:.2f} E, far outside the CRS's area of use (longitude {area[0]:g} to {area[2]:g}, "
             f"latitude {area[1]:g} to {area[3]:g})")
    raise InputError(where, file=src.label, row=row, column=f"{fmt.x}, {fmt.y}",
                     fix=f"set crs of format '{fmt.name}' in config/formats.yaml to the CRS the file's "
                         "coordinates are in, and check that its x/y columns are projected metres")


def _inside(lat, lon, area) -> np.ndarray:
    west, south, east, north = area
    return (lat >= south) & (lat <= north) & (lon >= west) & (lon <= east)


def _check_area(block, src: CsvInput, fmt: Format) -> None:
    """Positions inside the format's ``area`` (the provider's coverage). Latitude and longitude
    swapped are still valid degrees (Norway's 69 N, 20 E read as 20 N, 69 E) and would build a
    site elsewhere, with distorted distances, that only its map would show."""
    out = ~_inside(block.lat, block.lon, fmt.area)
    if not out.any():
        return
    i, row = block.first(out)
    if fmt.projected:
        from .coords import to_wgs84

        swapped_lat, swapped_lon = to_wgs84(block.y[out], block.x[out], fmt.crs)
        columns, names = f"{fmt.x}, {fmt.y}", ("x", "y")
    else:
        swapped_lat, swapped_lon = block.lon[out], block.lat[out]
        columns, names = f"{fmt.lat}, {fmt.lon}", ("lat", "lon")
    west, south, east, north = fmt.area
    what = (f"point '{block.pid[i]}' at latitude {block.lat[i]:.4f}, longitude {block.lon[i]:.4f} is outside the "
            f"area of format '{fmt.name}' (longitude {west:g} to {east:g}, latitude {south:g} to {north:g}; "
            f"{int(out.sum())} such rows in this block)")
    a, b = (getattr(fmt, n) for n in names)
    back = _inside(swapped_lat, swapped_lon, fmt.area)
    # the columns are swapped when most of the block is outside and lies inside swapped back; a
    # few such rows among good ones are rows written the wrong way round, not the format's columns
    if np.mean(out) > 0.5 and np.mean(back) > 0.5:
        raise InputError(f"{what}: with {a} and {b} swapped they lie inside, so the two columns look swapped",
                         file=src.label, row=row, column=columns,
                         fix=f"check the file's position columns; if they are swapped, set {names[0]}: {b} and "
                             f"{names[1]}: {a} in a copy of the '{fmt.name}' block of config/formats.yaml")
    if back[int(np.searchsorted(np.flatnonzero(out), i))]:
        raise InputError(f"{what}: with its {a} and {b} swapped it lies inside, among "
                         f"{len(out) - int(out.sum())} rows of the block that lie inside as written",
                         file=src.label, row=row, column=columns,
                         fix=f"correct the row's position (its {a} and {b} look swapped), or remove the row; "
                             f"the format's columns fit the other rows")
    raise InputError(what, file=src.label, row=row, column=columns,
                     fix=f"check the position columns; for another area's export in this layout, copy the "
                         f"'{fmt.name}' block of config/formats.yaml under a new name with that area's "
                         "area: [west, south, east, north] (or without area)")


def validate_block(block, src: CsvInput, fmt: Format, cfg: ShardsConfig) -> np.ndarray:
    """Check coordinates and series; return the mask of rows to keep (in stored order).
    Errors name the earliest offending row of the file."""
    if block.blank_id.any():
        _check_empty_rows(block, src)
    for name, values, lo, hi in ((fmt.lat, block.lat, -90, 90), (fmt.lon, block.lon, -180, 180)):
        bad = ~((values >= lo) & (values <= hi))
        if bad.any():
            i, row = block.first(bad)
            if np.isnan(values[i]) and not fmt.projected:
                raise InputError(f"point '{block.pid[i]}' has no {name} (an empty cell, or a missing-value text "
                                 f"of the format's na_values such as NaN)", file=src.label, row=row,
                                 column=name,
                                 fix="every point needs a position (WGS84 degrees): fill in the cell or remove the row")
            if fmt.projected:
                raise InputError(f"x={block.x[i]}, y={block.y[i]} is not a valid position in {fmt.crs}",
                                 file=src.label, row=row, column=f"{fmt.x}, {fmt.y}",
                                 fix=f"check the coordinates, or the crs of format '{fmt.name}' in "
                                     "config/formats.yaml")
            if name == fmt.lon and 180 < values[i] <= 360 and np.nanmin(values) >= 0:
                # longitudes counted 0-360 east (Pacific and global products): valid degrees of
                # another convention, so the column is right and only needs converting
                raise InputError(f"value {values[i]} is outside [{lo}, {hi}] degrees: the file's longitudes "
                                 "look counted 0-360 east", file=src.label, row=row, column=name,
                                 fix=f"convert the column to -180..180 (subtract 360 from values above 180), "
                                     f"e.g. in pandas: df['{name}'] = (df['{name}'] + 180) % 360 - 180")
            raise InputError(f"value {values[i]} is outside [{lo}, {hi}] degrees", file=src.label,
                             row=row, column=name,
                             fix="coordinates must be WGS84 latitude/longitude in degrees; check the "
                                 "format's lat/lon columns (projected exports: give x, y and crs instead)")
    if fmt.projected:
        _check_projected(block, src, fmt)
    else:
        # 0, 0 (in the Gulf of Guinea, where no radar point lies) is what exports and GIS tools
        # write for a missing position; it passes the range check and would join the site as a
        # far-away point
        null = (block.lat == 0) & (block.lon == 0)
        if null.any():
            i, row = block.first(null)
            raise InputError(f"point '{block.pid[i]}' is at latitude 0, longitude 0: a missing position written "
                             f"as 0 ({int(null.sum())} such rows in this block)", file=src.label, row=row,
                             column=f"{fmt.lat}, {fmt.lon}",
                             fix="fill in the point's position or remove the row")
    if fmt.area is not None:
        _check_area(block, src, fmt)
    if block.blank_id.any():
        _, row = block.first(block.blank_id)
        raise InputError("empty point id", file=src.label, row=row, column=fmt.id,
                         fix="every point needs a unique id")
    odd = np.fromiter(("\x00" in p or "\ufeff" in p for p in block.pid), dtype=bool, count=len(block.pid))
    if odd.any():
        i, row = block.first(odd)
        if "\x00" in block.pid[i]:   # HDF5 and numpy strings end at a NUL: 'P1\x00' would be stored as 'P1'
            raise InputError(f"point id {block.pid[i]!r} holds a NUL character", file=src.label, row=row,
                             column=fmt.id, fix="remove the NUL bytes from the file, e.g. tr -d '\\000'")
        # a byte-order mark inside the data: a file that starts with one (Excel's 'CSV UTF-8') joined
        # below another without its header; the id would be stored with an invisible character that
        # no other table's id matches, and a repeat of the point would not be seen
        joined = (": a file that starts with one was joined into this one after its first line"
                  if block.pid[i].startswith("\ufeff") else "")
        raise InputError(f"point id {block.pid[i]!r} holds a byte-order mark (U+FEFF, invisible){joined}",
                         file=src.label, row=row, column=fmt.id,
                         fix="remove the byte-order marks from the data lines, e.g. "
                             "sed -i '2,$s/\\xEF\\xBB\\xBF//g' a.csv")
    _check_not_utf8_ids(block, src, fmt)
    no_obs = np.isnan(block.displacement).all(axis=1)
    if no_obs.any() and cfg.all_nan == "error":
        i, row = block.first(no_obs)
        raise InputError(f"point '{block.pid[i]}' has no displacement value in any date column "
                         f"({int(no_obs.sum())} such rows in this block)", file=src.label, row=row,
                         fix="remove such points, or set shards.all_nan: drop in config/config.yaml "
                             "to skip them")
    return ~no_obs


# Non-ASCII ids of a block tried as UTF-8 (a handful tell: genuine latin-1 text is not UTF-8).
MOJIBAKE_CHECKS = 64


def _check_not_utf8_ids(block, src: CsvInput, fmt: Format) -> None:
    """Stop when ids read in a single-byte encoding (latin-1, cp1252) are UTF-8 text: 'Tromsø'
    would be stored as 'TromsÃ¸' without any error, and the labels would no longer join to
    the user's own table. Beyond ASCII, genuine latin-1 text is almost never valid UTF-8.
    Only ids read one byte per character count: UTF-8 with a byte-order mark, multi-byte
    encodings (GBK, Shift-JIS: a tenth of GBK's characters are valid UTF-8 byte pairs) and
    ISO-2022 or UTF-7 (non-ASCII text as ASCII bytes) read UTF-8 correctly or not at all."""
    if codecs.lookup(fmt.encoding).name in ("utf-8", "utf-8-sig"):
        return
    wide = np.flatnonzero(np.fromiter((not p.isascii() for p in block.pid), dtype=bool, count=len(block.pid)))
    garbled = np.zeros(len(block.pid), dtype=bool)
    for i in wide[:MOJIBAKE_CHECKS].tolist():
        try:
            raw = block.pid[i].encode(fmt.encoding)
            if len(raw) != len(block.pid[i]) or raw.isascii():
                continue
            raw.decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        garbled[i] = True
    if garbled.any():
        i, row = block.first(garbled)
        read = block.pid[i]
        raise InputError(f"point id {read!r} read as {fmt.encoding} is UTF-8 text "
                         f"({read.encode(fmt.encoding).decode('utf-8')!r}): the file is UTF-8, not {fmt.encoding}",
                         file=src.label, row=row, column=fmt.id,
                         fix=f"set encoding: utf-8 in the '{fmt.name}' block of config/formats.yaml (or add a "
                             "format for this export)")


def _check_empty_rows(block, src: CsvInput) -> None:
    """A row of delimiters only (spreadsheets write them below the data) stops as such, not
    as a missing latitude."""
    empty = block.blank_id & ~np.isfinite(block.lat) & np.isnan(block.displacement).all(axis=1)
    if empty.any():
        _, row = block.first(empty)
        raise InputError(f"the row is empty: no id, position or displacement ({int(empty.sum())} such rows in "
                         "this block)", file=src.label, row=row,
                         fix="delete the empty rows (a spreadsheet may write rows of delimiters below the data)")
