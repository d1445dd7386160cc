"""Coordinates in any CRS: projected x/y <-> WGS84 latitude/longitude, and grid cells.

Every transformation goes through pyproj (PROJ): no projection formulas are
written here. Transformers are cached per CRS pair, since building one costs
milliseconds and readers convert block by block.

Conventions: ``crs`` is anything pyproj accepts (``"EPSG:3035"``, an integer
EPSG code, WKT); x is the first (easting) axis and y the second (northing)
whatever the CRS's declared axis order, and latitude/longitude are degrees on
WGS84 (EPSG:4326).
"""
from __future__ import annotations

import functools

import numpy as np

from .errors import InputError

WGS84 = "EPSG:4326"


def normalize_crs(crs) -> str:
    """``"EPSG:3035"`` for 3035, "3035", "epsg:3035"; other definitions as given (stripped).

    Raises InputError when pyproj does not know the CRS.
    """
    text = str(crs).strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    elif text.lower().startswith("epsg:"):
        text = "EPSG:" + text[5:].strip()
    _crs(text)  # fails early with a clear message
    return text


@functools.lru_cache(maxsize=16)
def _crs(text: str):
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input(text)
    except CRSError as err:
        raise InputError(f"unknown coordinate reference system '{text}' ({err})",
                         fix="set crs to an EPSG code such as EPSG:3035 (ETRS89-LAEA, used by EGMS)") from None


@functools.lru_cache(maxsize=16)
def _transformer(src: str, dst: str):
    from pyproj import Transformer

    return Transformer.from_crs(_crs(src), _crs(dst), always_xy=True)


def to_wgs84(x, y, crs) -> tuple[np.ndarray, np.ndarray]:
    """Projected ``x, y`` (N,) in ``crs`` -> ``(lat, lon)`` (N,) float64 degrees.

    Points that cannot be transformed come back as inf/NaN (callers validate
    the ranges and name the offending row).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    lon, lat = _transformer(normalize_crs(crs), WGS84).transform(x, y, errcheck=False)
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)


def from_wgs84(lat, lon, crs) -> tuple[np.ndarray, np.ndarray]:
    """``(lat, lon)`` degrees -> ``(x, y)`` (N,) float64 in ``crs``."""
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    x, y = _transformer(WGS84, normalize_crs(crs)).transform(lon, lat, errcheck=False)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def crs_wkt(crs) -> str:
    """The CRS as WKT (what GIS files store)."""
    return _crs(normalize_crs(crs)).to_wkt()


def is_projected(crs) -> bool:
    return bool(_crs(normalize_crs(crs)).is_projected)


# How far (degrees) a point may lie outside its CRS's area of use: national data
# often overreach a UTM zone (Norway in zone 33 reaches 31 E, 13 degrees past the
# zone), while a wrong CRS or degrees read as metres land tens of degrees away.
AREA_MARGIN_DEG = (10.0, 20.0)   # latitude, longitude


def outside_area_of_use(lat, lon, crs) -> tuple[np.ndarray, tuple | None]:
    """Mask of points beyond ``crs``'s area of use plus :data:`AREA_MARGIN_DEG`, and the
    area ``(west, south, east, north)`` (None and no point flagged when the CRS has none)."""
    aou = _crs(normalize_crs(crs)).area_of_use
    lat = np.asarray(lat, dtype=np.float64)
    if aou is None:
        return np.zeros(lat.shape, dtype=bool), None
    west, south, east, north = aou.bounds
    dlat, dlon = AREA_MARGIN_DEG
    lon = np.asarray(lon, dtype=np.float64)
    # longitudes compared on the circle: an area may cross the antimeridian (east < west)
    span = (east - west if east >= west else east - west + 360.0) + 2 * dlon
    in_lon = ((lon - (west - dlon)) % 360.0 <= span) if span < 360.0 else np.ones(lon.shape, dtype=bool)
    inside = (lat >= south - dlat) & (lat <= north + dlat) & in_lon
    return ~inside, (west, south, east, north)


# --------------------------------------------------------------------------- #
# square grid cells (the EGMS Ortho product uses 100 m cells of EPSG:3035)


def cell_index(x, y, cell_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Column and row ``(i, j)`` (N,) int64 of the cell holding each projected point.

    Cells are ``[i * size, (i + 1) * size)`` along x (and alike along y), so a
    point on an edge belongs to the cell east/north of it.
    """
    size = float(cell_size_m)
    if not size > 0:
        raise ValueError(f"cell size must be > 0 m, got {cell_size_m}")
    return (np.floor(np.asarray(x, dtype=np.float64) / size).astype(np.int64),
            np.floor(np.asarray(y, dtype=np.float64) / size).astype(np.int64))


def cell_key(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """One int64 per cell (i, j), ordered by j then i; |i|, |j| < 2^31."""
    return (np.asarray(j, dtype=np.int64) << 32) + (np.asarray(i, dtype=np.int64) + (1 << 31))


def cell_of_key(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`cell_key`."""
    key = np.asarray(key, dtype=np.int64)
    j = key >> 32
    i = (key - (j << 32)) - (1 << 31)
    return i, j


def cell_centre(i, j, cell_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Projected centre ``(x, y)`` of cells ``(i, j)``."""
    size = float(cell_size_m)
    return (np.asarray(i, dtype=np.float64) + 0.5) * size, (np.asarray(j, dtype=np.float64) + 0.5) * size


def cell_names(i, j, cell_size_m: float) -> np.ndarray:
    """Readable cell ids: ``"100mE41234N30567"`` (cell size, then column and row numbers).

    Like the INSPIRE/EEA grid codes, the numbers are the cell's lower-left
    corner divided by the cell size, so an id names one cell of one grid.
    """
    size = float(cell_size_m)
    tag = f"{size:g}m"
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    return np.array([f"{tag}E{a}N{b}" for a, b in zip(i.tolist(), j.tolist())], dtype=object)


# --------------------------------------------------------------------------- #
# radar line of sight


def los_vector(incidence_deg, heading_deg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vector ``(east, north, up)`` from the ground to a right-looking satellite.

    ``incidence_deg``: angle between the vertical and the line of sight;
    ``heading_deg``: the satellite's flight direction, clockwise from north
    (the ``track_angle`` of EGMS and InSAR Norway: about -10 deg ascending,
    190 deg descending). The satellite looks 90 deg right of its heading, so
    it sits 90 deg left of it as seen from the ground: an ascending pass sees
    the ground from the west (east < 0), a descending one from the east.
    A displacement vector ``(dE, dN, dU)`` appears in the line of sight as
    ``east * dE + north * dN + up * dU`` (positive = towards the satellite,
    the sign convention of EGMS).
    """
    inc = np.deg2rad(np.asarray(incidence_deg, dtype=np.float64))
    azimuth = np.deg2rad(np.asarray(heading_deg, dtype=np.float64) - 90.0)
    return np.sin(inc) * np.sin(azimuth), np.sin(inc) * np.cos(azimuth), np.cos(inc)
