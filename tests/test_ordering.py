"""Hilbert keys: known answers and the bit-by-bit rotate-and-flip recursion."""
import numpy as np
import pytest

from insarclust.ordering import hilbert_index, spatial_keys


def hilbert_bit_by_bit(x, y, bits):
    """The textbook recursion, one bit level per pass (reference)."""
    x, y = np.asarray(x, np.int64).copy(), np.asarray(y, np.int64).copy()
    d = np.zeros_like(x)
    top = (np.int64(1) << bits) - 1
    s = np.int64(1) << (bits - 1)
    while s > 0:
        rx, ry = (x & s) > 0, (y & s) > 0
        d += s * s * ((3 * rx.astype(np.int64)) ^ ry.astype(np.int64))
        flip = ~ry & rx
        x, y = np.where(flip, top - x, x), np.where(flip, top - y, y)
        x, y = np.where(~ry, y, x), np.where(~ry, x, y)
        s >>= 1
    return d


def test_known_curve_of_order_two():
    # the 4 x 4 Hilbert curve, cells listed in curve order as (x, y)
    path = [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (0, 3), (1, 3), (1, 2),
            (2, 2), (2, 3), (3, 3), (3, 2), (3, 1), (2, 1), (2, 0), (3, 0)]
    x, y = np.array(path).T
    assert hilbert_index(x, y, 2).tolist() == list(range(16))


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8, 13, 16, 31])
def test_table_steps_equal_the_bit_by_bit_recursion(bits):
    rng = np.random.default_rng(bits)
    x, y = rng.integers(0, 1 << bits, 20_000), rng.integers(0, 1 << bits, 20_000)
    np.testing.assert_array_equal(hilbert_index(x, y, bits), hilbert_bit_by_bit(x, y, bits))


def test_curve_is_a_bijection_with_unit_steps():
    bits = 5
    x, y = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    d = hilbert_index(x.ravel(), y.ravel(), bits)
    assert sorted(d.tolist()) == list(range(1024))
    order = np.argsort(d)
    steps = np.abs(np.diff(x.ravel()[order])) + np.abs(np.diff(y.ravel()[order]))
    assert (steps == 1).all()      # consecutive keys are neighbouring cells


def test_spatial_keys_put_near_points_close():
    lat = np.array([69.0, 69.00001, 10.0])
    lon = np.array([19.0, 19.00001, -70.0])
    k = spatial_keys(lat, lon)
    assert k.dtype == np.int64 and abs(int(k[0]) - int(k[1])) < abs(int(k[0]) - int(k[2]))


def test_spatial_keys_use_the_global_sinusoidal_frame():
    """The key of a point is the Hilbert index of its cell in one fixed global frame: x = lon *
    cos(lat) (sinusoidal, so cells stay square on the ground in the Arctic) and y = lat, both
    from -180 to 180 degrees over 2**bits cells. With 2 bits (cells 0..3, 120 degrees each):
    (0 N, 0 E) is cell (2, 2), index 8 on the 4 x 4 curve; (60 N, 120 W) has x = -60, cell
    (1, 2), index 7 (plain longitude would give cell (0, 2), index 4). Another frame or axis
    order would reorder the rows of every shards.h5 built from the same catalogue."""
    keys = spatial_keys(np.array([0.0, 60.0]), np.array([0.0, -120.0]), bits=2)
    assert keys.tolist() == [8, 7]
    # at 78 N a degree of longitude spans cos(78) of a degree of latitude in cells
    bits = 20
    lat, lon = np.array([78.0, 78.0]), np.array([15.0, 16.0])
    cells = (1 << bits) - 1
    x = np.round((lon * np.cos(np.deg2rad(78.0)) + 180.0) * cells / 360.0).astype(np.int64)
    y = np.round((lat + 180.0) * cells / 360.0).astype(np.int64)
    assert spatial_keys(lat, lon, bits=bits).tolist() == hilbert_index(x, y, bits).tolist()
