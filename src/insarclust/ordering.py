"""Space-filling-curve keys that put nearby points in nearby rows.

The key is computed in a fixed global frame (no site bounding box), so it can
be computed block by block while the CSV streams past, before the extent of
the site is known. Coordinates are first mapped with the sinusoidal
(equal-area) projection, x = lon * cos(lat), so that curve cells are roughly
square on the ground even at 70-80 degrees north, where a degree of
longitude is a third of a degree of latitude or less.
"""
from __future__ import annotations

import numpy as np

ORDER_BITS = 31  # 2 x 31 bits -> keys fit in int64; cell ~ 2 cm on the ground


def hilbert_index(x: np.ndarray, y: np.ndarray, bits: int = ORDER_BITS) -> np.ndarray:
    """Hilbert-curve index of integer cell coordinates, vectorised.

    x, y: (N,) integers in [0, 2**bits). Returns (N,) int64 in [0, 4**bits).
    Classic rotate-and-flip formulation, one pass per bit level.
    """
    x = np.asarray(x, dtype=np.int64).copy()
    y = np.asarray(y, dtype=np.int64).copy()
    d = np.zeros_like(x)
    n_minus_1 = (np.int64(1) << bits) - 1
    s = np.int64(1) << (bits - 1)
    while s > 0:
        rx = (x & s) > 0
        ry = (y & s) > 0
        d += s * s * ((3 * rx.astype(np.int64)) ^ ry.astype(np.int64))
        # rotate the quadrant so that the sub-curve is in canonical orientation
        flip = ~ry & rx
        x = np.where(flip, n_minus_1 - x, x)
        y = np.where(flip, n_minus_1 - y, y)
        swap = ~ry
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        s >>= 1
    return d


def spatial_keys(lat: np.ndarray, lon: np.ndarray, bits: int = ORDER_BITS) -> np.ndarray:
    """Hilbert key (N,) int64 of WGS84 coordinates in degrees, in a global frame."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    x = lon * np.cos(np.deg2rad(lat))           # sinusoidal projection, [-180, 180]
    scale = float((1 << bits) - 1) / 360.0
    xi = np.clip(np.round((x + 180.0) * scale), 0, (1 << bits) - 1).astype(np.int64)
    yi = np.clip(np.round((lat + 180.0) * scale), 0, (1 << bits) - 1).astype(np.int64)
    return hilbert_index(xi, yi, bits)
