import numpy as np
import pytest
import torch

from insarclust.layers import SpatialFeatureClustering


def test_shapes_and_probabilities():
    torch.manual_seed(0)
    layer = SpatialFeatureClustering(num_clusters=5)
    distances = torch.rand(32, 100) * 100
    out = layer(distances)
    assert out.shape == (32, 100, 5)
    assert torch.all(out >= 0)
    torch.testing.assert_close(out.sum(-1), torch.ones(32, 100))


@pytest.mark.parametrize("bad, error", [(0, ValueError), (1, ValueError), (-3, ValueError),
                                        (2.5, TypeError), (True, TypeError), ("3", TypeError)])
def test_rejects_bad_num_clusters(bad, error):
    with pytest.raises(error, match="num_clusters"):
        SpatialFeatureClustering(num_clusters=bad)


def test_accepts_numpy_integer():
    assert SpatialFeatureClustering(np.int64(3)).num_clusters == 3


def test_row_normalisation_makes_units_irrelevant():
    layer = SpatialFeatureClustering(4)
    d_m = torch.rand(8, 20) * 500
    torch.testing.assert_close(layer(d_m), layer(d_m / 1000.0))  # metres or kilometres


def test_fixed_scale_orders_bands_by_distance():
    layer = SpatialFeatureClustering(3, distance_scale=100.0)
    out = layer(torch.tensor([[0.0, 100.0, 10000.0]]))[0]
    # the nearest item belongs mostly to the first band, the farthest to the last
    assert out[0].argmax() == 0
    assert out[2].argmax() == 2
    # and the scale is fixed: doubling every distance changes memberships
    assert not torch.allclose(layer(torch.tensor([[0.0, 200.0, 20000.0]]))[0], out)


def test_mask_excludes_items_from_row_scale():
    layer = SpatialFeatureClustering(3)
    d = torch.tensor([[10.0, 20.0, 30.0, 1e6]])
    mask = torch.tensor([[True, True, True, False]])
    masked = layer(d, mask)[0, :3]
    plain = layer(d[:, :3])[0]
    torch.testing.assert_close(masked, plain)


def test_bands_are_learnable():
    layer = SpatialFeatureClustering(4)
    out = layer(torch.rand(4, 10) * 50)
    (out[..., 0] * torch.arange(10.0)).sum().backward()
    assert layer.centres.grad is not None and torch.any(layer.centres.grad != 0)
    assert layer.raw_widths.grad is not None and torch.any(layer.raw_widths.grad != 0)


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="batch, items"):
        SpatialFeatureClustering(3)(torch.rand(2, 3, 4))
