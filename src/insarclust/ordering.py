"""Space-filling-curve keys that put nearby points in nearby rows.

The key is computed in a fixed global frame (no site bounding box), so it can
be computed block by block while the CSV streams past, before the extent of
the site is known. Coordinates are first mapped with the sinusoidal
(equal-area) projection, x = lon * cos(lat), so that curve cells are roughly
square on the ground even at 70-80 degrees north, where a degree of
longitude is a third of a degree of latitude or less.
"""
from __future__ import annotations

import functools

import numpy as np

ORDER_BITS = 31  # 2 x 31 bits -> keys fit in int64; cell ~ 2 cm on the ground


def hilbert_index(x: np.ndarray, y: np.ndarray, bits: int = ORDER_BITS) -> np.ndarray:
    """Hilbert-curve index of integer cell coordinates, vectorised.

    x, y: (N,) integers in [0, 2**bits). Returns (N,) int64 in [0, 4**bits).
    The classic rotate-and-flip recursion, four bit levels per step: the
    orientation of the sub-curve so far is one of four states (coordinates
    swapped or not, complemented or not), and a table gives, for a state and
    4 bits of x and y, the 8 bits of the index and the next state
    (:func:`_hilbert_tables`). Eight table steps replace 31 bit-level passes
    (~10x faster, same keys).
    """
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    widths = ([bits % 4] if bits % 4 else []) + [4] * (bits // 4)
    d = np.zeros(x.shape, dtype=np.int64)
    state = np.zeros(x.shape, dtype=np.int64)
    shift = bits
    for w in widths:
        shift -= w
        mask = (1 << w) - 1
        idx = (state << (2 * w)) | (((x >> shift) & mask) << w) | ((y >> shift) & mask)
        digits, next_state = _hilbert_tables(w)
        d = (d << (2 * w)) | digits[idx]
        state = next_state[idx]
    return d


@functools.lru_cache(maxsize=None)
def _hilbert_tables(w: int) -> tuple[np.ndarray, np.ndarray]:
    """Index digits and next state for ``w`` bit levels, indexed by
    ``state << 2w | x_bits << w | y_bits``; state = 2 * swapped + complemented.

    One bit level: with the cell's bits (rx, ry) seen through the current
    orientation, the index digit is ``3 rx ^ ry``; when ry = 0 the sub-curve is
    mirrored (coordinates swapped) and, when also rx = 1, complemented.
    """
    size = 1 << (2 * w)
    digits = np.zeros((4, size), dtype=np.int64)
    next_state = np.zeros((4, size), dtype=np.int64)
    for state in range(4):
        for xb in range(1 << w):
            for yb in range(1 << w):
                swap, comp, dd = state >> 1, state & 1, 0
                for level in range(w - 1, -1, -1):
                    rx, ry = (xb >> level) & 1, (yb >> level) & 1
                    if comp:
                        rx, ry = 1 - rx, 1 - ry
                    if swap:
                        rx, ry = ry, rx
                    dd = (dd << 2) | ((3 * rx) ^ ry)
                    if ry == 0:
                        swap ^= 1
                        comp ^= rx
                digits[state, (xb << w) | yb] = dd
                next_state[state, (xb << w) | yb] = (swap << 1) | comp
    return digits.reshape(-1), next_state.reshape(-1)


def spatial_keys(lat: np.ndarray, lon: np.ndarray, bits: int = ORDER_BITS) -> np.ndarray:
    """Hilbert key (N,) int64 of WGS84 coordinates in degrees, in a global frame."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    x = lon * np.cos(np.deg2rad(lat))           # sinusoidal projection, [-180, 180]
    scale = float((1 << bits) - 1) / 360.0
    xi = np.clip(np.round((x + 180.0) * scale), 0, (1 << bits) - 1).astype(np.int64)
    yi = np.clip(np.round((lat + 180.0) * scale), 0, (1 << bits) - 1).astype(np.int64)
    return hilbert_index(xi, yi, bits)
