"""Positions on a spherical Earth: unit vectors, metres, great-circle distances.

One sphere for the whole project (graph distances, DSC patch grids), so that a
distance means the same in every stage.
"""
from __future__ import annotations

import numpy as np

# IUGG mean Earth radius: the haversine convention used by most GIS tools.
EARTH_RADIUS_M = 6_371_008.8


def unit_vectors(lat_deg, lon_deg) -> np.ndarray:
    """(N,) latitudes/longitudes in degrees -> (N, 3) float64 unit vectors (ECEF on the unit sphere)."""
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    xyz = np.empty((len(lat), 3), dtype=np.float64)
    cos_lat = np.cos(lat)
    np.sin(lat, out=xyz[:, 2])
    np.cos(lon, out=xyz[:, 0])
    np.sin(lon, out=xyz[:, 1])
    xyz[:, 0] *= cos_lat
    xyz[:, 1] *= cos_lat
    return xyz


def ecef_m(lat_deg, lon_deg) -> np.ndarray:
    """(N, 3) Earth-centred positions in metres on the sphere of radius EARTH_RADIUS_M."""
    return EARTH_RADIUS_M * unit_vectors(lat_deg, lon_deg)


def chord_to_distance_m(chord, out: np.ndarray | None = None) -> np.ndarray:
    """Unit-sphere chord length -> great-circle distance in metres, float32.

    Equal to the haversine distance (the haversine of the angle is
    (chord/2)^2). float32 keeps a relative error near 1e-7 at every scale,
    i.e. well under a millimetre at k-NN distances. ``out``: a float32 array of
    the same shape to fill (no temporaries). Infinite chords (misses of a
    bounded query) give the half circumference.
    """
    chord = np.asarray(chord)
    half = np.empty(chord.shape, dtype=np.float32) if out is None else out
    half = half.reshape(-1) if half.ndim == 0 else half
    np.multiply(chord.reshape(half.shape), 0.5, out=half, casting="same_kind")
    np.clip(half, 0.0, 1.0, out=half)
    np.arcsin(half, out=half)
    half *= np.float32(2.0 * EARTH_RADIUS_M)
    return half.reshape(chord.shape)


def haversine_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in metres between points given in degrees (broadcasts)."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
