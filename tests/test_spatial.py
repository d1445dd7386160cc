"""Spatial statistics: Moran's I known answers, label coherence."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from insarclust.graph import GeodesicKNNGraph
from insarclust.spatial import label_coherence, morans_i


def grid_rook(nx, ny):
    """CSR of the 4-neighbour (rook) adjacency of an nx x ny grid, row-major cells."""
    idx = np.arange(nx * ny).reshape(ny, nx)
    pairs = [(idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])]
    src = np.concatenate([np.r_[a.ravel(), b.ravel()] for a, b in pairs])
    dst = np.concatenate([np.r_[b.ravel(), a.ravel()] for a, b in pairs])
    A = sp.csr_array((np.ones(len(src)), (src, dst)), shape=(nx * ny, nx * ny))
    A.sort_indices()
    return A.indptr, A.indices, idx


def test_checkerboard_is_minus_one():
    indptr, indices, idx = grid_rook(8, 8)
    yy, xx = np.divmod(np.arange(64), 8)
    field = ((xx + yy) % 2).astype(float)
    assert morans_i(indptr, indices, field) == pytest.approx(-1.0)


def test_perfectly_clustered_field_is_one():
    # Two groups, edges only within a group, field = group indicator.
    n = 40
    group = np.arange(n) // 20
    dense = (group[:, None] == group[None, :]) & ~np.eye(n, dtype=bool)
    A = sp.csr_array(dense.astype(float))
    assert morans_i(A.indptr, A.indices, group * 3.0 + 1.0) == pytest.approx(1.0)


def test_random_field_near_zero_and_smooth_field_near_one():
    rng = np.random.default_rng(0)
    n = 4000
    lat, lon = rng.uniform(69, 69.1, n), rng.uniform(20, 20.2, n)
    g = GeodesicKNNGraph(k=8).fit(lat, lon)
    X = np.stack([rng.normal(size=n), np.sin(lat * 60) + np.cos(lon * 30), 5 * lat], axis=1)
    mi = morans_i(g.indptr_, g.indices_, X, g.weight_)
    assert mi.shape == (3,)
    assert abs(mi[0]) < 0.05                      # expectation -1/(N-1)
    assert mi[1] > 0.9 and mi[2] > 0.9
    # Invariant under affine changes of a column.
    assert morans_i(g.indptr_, g.indices_, 7 * X[:, 1] - 3, g.weight_) == pytest.approx(mi[1])


def test_matches_dense_formula_with_raw_weights():
    rng = np.random.default_rng(1)
    n = 60
    W = rng.random((n, n)) * (rng.random((n, n)) < 0.2)
    np.fill_diagonal(W, 0)
    A = sp.csr_array(W)
    x = rng.normal(size=n)
    z = x - x.mean()
    expected = n / W.sum() * (z @ W @ z) / (z @ z)
    assert morans_i(A.indptr, A.indices, x, A.data, row_standardise=False) == pytest.approx(expected)
    Wr = W / np.where(W.sum(1, keepdims=True) > 0, W.sum(1, keepdims=True), 1)
    expected_r = n / Wr.sum() * (z @ Wr @ z) / (z @ z)
    assert morans_i(A.indptr, A.indices, x, A.data) == pytest.approx(expected_r)


def test_constant_column_and_no_edges_give_nan():
    indptr, indices, _ = grid_rook(4, 4)
    assert np.isnan(morans_i(indptr, indices, np.ones(16)))
    assert np.isnan(morans_i(np.zeros(5, dtype=np.int64), np.zeros(0, dtype=np.int64), np.arange(4.0)))


def test_label_coherence():
    indptr, indices, _ = grid_rook(4, 4)
    halves = np.repeat([0, 1], 8)                 # top two rows vs bottom two rows
    # 24 edges per direction: 4 of them cross the middle.
    assert label_coherence(indptr, indices, halves) == pytest.approx(20 / 24)
    assert label_coherence(indptr, indices, np.zeros(16)) == 1.0


def test_points_without_edges_and_caller_arrays_untouched():
    # Last two points have no edges (also at the end of the CSR); they add nothing.
    indptr = np.array([0, 1, 2, 2, 2])
    indices = np.array([1, 0])
    before = indices.copy()
    x = np.array([1.0, 1.0, -1.0, -1.0])
    # z = x (mean 0); sum_ij w_ij z_i z_j = 2 over S0 = 2 edges; sum z^2 = 4; N counts the
    # 2 linked points only (spdep's adjust.n) -> I = 2/2 * 2/4 = 0.5.
    assert morans_i(indptr, indices, x) == pytest.approx(0.5)
    unsorted = np.array([0, 2, 4, 4]), np.array([2, 1, 2, 0])
    idx = unsorted[1].copy()
    morans_i(unsorted[0], idx, np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(idx, unsorted[1])
    np.testing.assert_array_equal(indices, before)


def test_islands_do_not_inflate_moran():
    # Two 4 x 4 rook grids, each constant (I = 1 on them alone), beside 32 points without
    # links: counting the islands in N would double I to 2.
    indptr, indices, _ = grid_rook(4, 4)
    A = sp.csr_array((np.ones(len(indices)), indices, indptr), shape=(16, 16))
    G = sp.block_diag([A, A, sp.csr_array((32, 32))], format="csr")
    x = np.concatenate([np.full(16, 1.0), np.full(16, -1.0), np.zeros(32)])
    W = G.toarray()
    Wr = W / np.where(W.sum(1, keepdims=True) > 0, W.sum(1, keepdims=True), 1)
    z = x - x.mean()
    expected = 32 / Wr.sum() * (z @ Wr @ z) / (z @ z)
    value = morans_i(G.indptr, G.indices, x)
    assert value == pytest.approx(expected)
    assert value == pytest.approx(1.0)        # the islands are at the mean: they add nothing
