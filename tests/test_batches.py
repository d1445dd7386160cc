"""Row sources and the shard-aligned, seeded batch stream."""
from __future__ import annotations

import numpy as np
import pytest

from insarclust import h5io
from insarclust.batches import (ArraySource, H5FeatureSource, MapSource, ShardsSource, as_source,
                                block_bounds, iter_batches, iter_blocks, n_batches)


def _stream(source, rows=None, **kw):
    parts = list(iter_batches(source, rows, **kw))
    idx = np.concatenate([p[0] for p in parts])
    X = np.concatenate([p[1] for p in parts])
    return parts, idx, X


@pytest.fixture
def feature_file(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 7)).astype(np.float32)
    path = tmp_path / "features" / "dyn.h5"
    h5io.write_features(path, X, [f"f{j}" for j in range(7)])
    offsets = np.array([0, 1500, 1501, 3300, 5000])  # uneven shards, one of a single row
    return path, X, offsets


def test_block_bounds_never_cross_shards():
    offsets = np.array([0, 10, 11, 40])
    b = block_bounds(40, offsets, block_rows=8)
    assert b.tolist() == [[0, 8], [8, 10], [10, 11], [11, 19], [19, 27], [27, 35], [35, 40]]
    assert block_bounds(5, None, 2).tolist() == [[0, 2], [2, 4], [4, 5]]


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_row_once_with_right_values(feature_file, shuffle):
    path, X, offsets = feature_file
    source = H5FeatureSource(path, shard_offsets=offsets)
    assert (source.n_rows, source.n_features, source.names[0]) == (5000, 7, "f0")
    rows = np.flatnonzero(np.random.default_rng(0).random(5000) < 0.8)
    parts, idx, Xs = _stream(source, rows, batch_size=256, shuffle=shuffle, seed=5,
                             block_rows=300, buffer_rows=1000)
    assert np.array_equal(np.sort(idx), rows)  # each selected row exactly once
    assert np.array_equal(Xs, X[idx])  # rows carry their own features
    sizes = [len(p[0]) for p in parts]
    assert sizes[:-1] == [256] * (len(sizes) - 1) and 0 < sizes[-1] <= 256
    assert len(parts) == n_batches(len(rows), 256)
    if not shuffle:
        assert np.array_equal(idx, rows)
    else:
        assert not np.array_equal(idx, rows)


def test_shuffle_is_seeded(feature_file):
    path, _, offsets = feature_file
    source = H5FeatureSource(path, shard_offsets=offsets)
    a = _stream(source, batch_size=100, seed=1, block_rows=128)[1]
    b = _stream(source, batch_size=100, seed=1, block_rows=128)[1]
    c = _stream(source, batch_size=100, seed=2, block_rows=128)[1]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_stream_prefix_spans_the_site():
    # 40 shards of 1000 rows (spatial tiles): the first 2,000 streamed rows
    # must come from many tiles, not one or two.
    X = np.repeat(np.arange(40, dtype=np.float32), 1000)[:, None]
    source = ArraySource(X, shard_offsets=np.arange(0, 40001, 1000))
    idx = _stream(source, batch_size=256, seed=0, block_rows=250, buffer_rows=8000)[1][:2000]
    assert len(np.unique(idx // 1000)) >= 20


def test_memory_is_one_buffer(feature_file):
    path, _, offsets = feature_file

    class Counting(H5FeatureSource):
        max_rows = 0

        def read_blocks(self, bounds):
            Counting.max_rows = max(Counting.max_rows, sum(b - a for a, b in bounds))
            return super().read_blocks(bounds)

    _stream(Counting(path, shard_offsets=offsets), batch_size=64, block_rows=200, buffer_rows=1000)
    assert 0 < Counting.max_rows <= 1000


def test_sources_agree(shards_file, tmp_path):
    path, _ = shards_file
    shards = ShardsSource(path)
    regular = h5io.Shards(path).read("series/regular")
    assert shards.n_features == regular.shape[1] and shards.names[0].startswith("day_")
    assert np.array_equal(shards.shard_offsets, h5io.Shards(path).offsets)
    rows = np.array([1999, 3, 700, 3])
    assert np.array_equal(shards.read_rows(rows), regular[rows])
    static = ShardsSource(path, "points/static")
    assert static.names == ["height", "mean_velocity", "temporal_coherence"]

    scaled = MapSource(shards, lambda b: (b - b.mean(axis=1, keepdims=True))[:, ::2])
    assert scaled.n_features == (regular.shape[1] + 1) // 2
    expected = (regular - regular.mean(axis=1, keepdims=True))[:, ::2]
    _, idx, Xs = _stream(scaled, batch_size=300, seed=4, block_rows=100)
    np.testing.assert_allclose(Xs, expected[idx], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(scaled.read(10, 20), expected[10:20], rtol=1e-6, atol=1e-5)

    arr = as_source(regular)
    assert isinstance(arr, ArraySource) and arr.n_rows == 2000
    blocks = list(iter_blocks(shards, block_rows=300))
    assert all(b - a <= 300 for a, b, _ in blocks)
    assert np.array_equal(np.concatenate([x for _, _, x in blocks]), regular)


def test_bad_rows_and_offsets(feature_file):
    path, _, offsets = feature_file
    with pytest.raises(ValueError, match="different runs"):
        H5FeatureSource(path, shard_offsets=np.array([0, 10]))
    with pytest.raises(IndexError):
        list(iter_batches(H5FeatureSource(path), np.array([5000])))


def test_sorted_unique():
    from insarclust.batches import sorted_unique

    assert sorted_unique([5, 1, 5, 3, 1]).tolist() == [1, 3, 5]
    rows = np.arange(10, dtype=np.int64)
    assert np.shares_memory(sorted_unique(rows), rows)
    assert sorted_unique([]).tolist() == []


def test_sample_rows_draws_distinct_rows():
    """A sample (the silhouette's, the k-means warm start's, the embedding's fit sample) holds
    each row at most once, sorted: a row drawn twice would weigh double in every fit on it."""
    from insarclust.batches import sample_rows

    rows = sample_rows(1000, 900, 7)
    assert len(rows) == 900 and len(np.unique(rows)) == 900 and np.all(np.diff(rows) > 0)
    assert sample_rows(50, 100, 7).tolist() == list(range(50))     # more asked than there are: all
    assert np.array_equal(sample_rows(1000, 900, 7), rows)
    assert not np.array_equal(sample_rows(1000, 900, [7, 5]), rows)


def test_a_non_finite_value_is_named_by_its_row_in_the_file():
    """In a block starting at row 100 a NaN in its third row, fourth column, is row 102 of the
    file: the row the message sends the user to."""
    from insarclust.batches import require_finite

    X = np.zeros((5, 6), dtype=np.float32)
    X[2, 3] = np.nan
    source = ArraySource(np.zeros((200, 6)), names=[f"f{j}" for j in range(6)])
    with pytest.raises(ValueError, match=r"feature row 102 \(0-based\), column 'f3' is nan"):
        require_finite(X, 100, source)
    with pytest.raises(ValueError, match=r"feature row 57 \(0-based\)"):
        require_finite(X, np.array([10, 20, 57, 60, 61]), source)


def test_a_non_finite_value_of_a_file_is_an_input_error(tmp_path):
    """The rule's log shows an input error's message alone: a ValueError's was buried under
    its traceback."""
    from insarclust.batches import H5FeatureSource, require_finite
    from insarclust.errors import InputError

    path = tmp_path / "dyn.h5"
    X = np.zeros((5, 2), dtype=np.float32)
    X[4, 1] = np.inf
    h5io.write_features(path, X, ["a", "b"])
    with pytest.raises(InputError, match=rf"file {path}: feature row 4 \(0-based\), column 'b' is inf.*\n  fix: "
                                         rf"delete {path}"):
        require_finite(X, 0, H5FeatureSource(path))
