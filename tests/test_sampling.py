"""PyG interop and CSR neighbourhood sampling."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv
from torch_geometric.utils import scatter

from insarclust import h5io
from insarclust.graph import GeodesicKNNGraph
from insarclust.sampling import NeighbourSampler, read_data, to_csr, to_data


@pytest.fixture(scope="module")
def graph():
    rng = np.random.default_rng(0)
    n = 800
    lat, lon = rng.uniform(69, 69.05, n), rng.uniform(20, 20.1, n)
    return GeodesicKNNGraph(k=6, symmetric=True).fit(lat, lon)


def test_to_data_aggregates_each_points_neighbours(graph):
    n = graph.n_points_
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    data = to_data(graph.indptr_, graph.indices_, graph.weight_, graph.distance_m_, x=x)
    assert isinstance(data, Data) and data.num_nodes == n
    assert data.edge_index.shape == (2, len(graph.indices_)) and data.edge_index.dtype == torch.long
    assert data.edge_attr.shape == (len(graph.indices_), 1)
    # PyG flow source_to_target: messages x[edge_index[0]] summed at edge_index[1] = CSR product.
    src, dst = data.edge_index
    msg = data.x[src] * data.edge_weight.double()[:, None]
    pyg = scatter(msg, dst, dim=0, dim_size=n, reduce="sum")
    expected = graph.to_csr() @ x.numpy()
    np.testing.assert_allclose(pyg.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_to_csr_inverts_to_data(graph):
    data = to_data(graph.indptr_, graph.indices_, graph.weight_)
    perm = torch.randperm(data.num_edges, generator=torch.Generator().manual_seed(1))
    indptr, indices, weight, _ = to_csr(data.edge_index[:, perm], data.num_nodes, data.edge_weight[perm])
    A = sp.csr_array((weight.numpy(), indices.numpy(), indptr.numpy()), shape=(data.num_nodes,) * 2)
    assert (abs(A - graph.to_csr()) > 1e-7).nnz == 0


def test_read_data_from_graph_file(graph, tmp_path):
    graph.write(tmp_path / "graph.h5")
    data = read_data(tmp_path / "graph.h5")
    np.testing.assert_array_equal(data.edge_index[0].numpy(), graph.indices_)
    np.testing.assert_array_equal(data.edge_weight.numpy(), graph.weight_)
    assert h5io.read_graph(tmp_path / "graph.h5")["attrs"]["symmetric"]


def test_sample_structure_and_fanout(graph):
    sampler = NeighbourSampler(graph.indptr_, graph.indices_, graph.weight_, fanout=[3, 2])
    seeds = torch.tensor([5, 100, 42, 700])
    data = sampler.sample(seeds, generator=torch.Generator().manual_seed(0))
    n_id, e_id = data.n_id, data.e_id
    assert data.batch_size == 4 and torch.equal(n_id[:4], seeds)
    assert len(torch.unique(n_id)) == len(n_id) == data.num_nodes == sum(data.num_sampled_nodes)
    assert data.num_sampled_nodes[0] == 4 and len(data.num_sampled_edges) == 2
    # Every sampled edge is a real graph edge: CSR position e_id holds (target -> neighbour).
    src, dst = data.edge_index
    rows = np.searchsorted(graph.indptr_, e_id.numpy(), side="right") - 1
    np.testing.assert_array_equal(n_id[dst].numpy(), rows)
    np.testing.assert_array_equal(n_id[src].numpy(), graph.indices_[e_id.numpy()])
    np.testing.assert_array_equal(data.edge_weight.numpy(), graph.weight_[e_id.numpy()])
    deg = np.diff(graph.indptr_)
    np.testing.assert_array_equal(data.degree.numpy(), deg[n_id.numpy()])
    # Seeds get min(3, degree) distinct neighbours; hop-1 nodes min(2, degree).
    counts = torch.bincount(dst, minlength=data.num_nodes)
    np.testing.assert_array_equal(counts[:4].numpy(), np.minimum(3, deg[seeds.numpy()]))
    hop1 = slice(4, 4 + data.num_sampled_nodes[1])
    np.testing.assert_array_equal(counts[hop1].numpy(), np.minimum(2, deg[n_id[hop1].numpy()]))
    assert counts[4 + data.num_sampled_nodes[1]:].sum() == 0          # last hop not expanded
    assert len(set(zip(src.tolist(), dst.tolist()))) == data.num_edges


def test_sampling_is_seeded_and_uniform(graph):
    sampler = NeighbourSampler(graph.indptr_, graph.indices_, fanout=[2])
    a = sampler.sample(torch.arange(50), generator=torch.Generator().manual_seed(3))
    b = sampler.sample(torch.arange(50), generator=torch.Generator().manual_seed(3))
    c = sampler.sample(torch.arange(50), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.e_id, b.e_id) and torch.equal(a.n_id, b.n_id)
    assert not torch.equal(a.e_id, c.e_id)
    # Each of a node's 6+ neighbours is picked with probability 2/degree.
    gen = torch.Generator().manual_seed(0)
    hits = np.zeros(len(graph.indices_))
    trials = 400
    for _ in range(trials):
        hits[sampler.sample(torch.tensor([0]), generator=gen).e_id.numpy()] += 1
    row = slice(graph.indptr_[0], graph.indptr_[1])
    np.testing.assert_allclose(hits[row] / trials, 2 / (graph.indptr_[1] - graph.indptr_[0]), atol=0.1)


def test_halo_is_the_exact_multi_hop_neighbourhood(graph):
    sampler = NeighbourSampler(graph.indptr_, graph.indices_, graph.weight_)
    data = sampler.halo(100, 160, hops=2)
    A = graph.to_csr() != 0
    core = np.zeros(graph.n_points_, dtype=bool)
    core[100:160] = True
    hop1 = (A @ core.astype(int)) > 0
    hop2 = (A @ (core | hop1).astype(int)) > 0
    expected = np.flatnonzero(core | hop1 | hop2)
    assert data.batch_size == 60 and torch.equal(data.n_id[:60], torch.arange(100, 160))
    np.testing.assert_array_equal(np.sort(data.n_id.numpy()), expected)
    # All in-edges of the core and of the first ring are there.
    counts = torch.bincount(data.edge_index[1], minlength=data.num_nodes).numpy()
    inner = 60 + data.num_sampled_nodes[1]
    np.testing.assert_array_equal(counts[:inner], np.diff(graph.indptr_)[data.n_id[:inner].numpy()])


def test_loader_covers_nodes_once_and_repeats(graph):
    sampler = NeighbourSampler(graph.indptr_, graph.indices_, fanout=[4, 4], random_state=9)
    batches = list(sampler.loader(batch_size=128, shuffle=True, epoch=0))
    seeds = torch.cat([b.n_id[:b.batch_size] for b in batches])
    assert torch.equal(torch.sort(seeds).values, torch.arange(graph.n_points_))
    again = list(sampler.loader(batch_size=128, shuffle=True, epoch=0))
    assert all(torch.equal(a.e_id, b.e_id) for a, b in zip(batches, again))
    other = next(sampler.loader(batch_size=128, shuffle=True, epoch=1))
    assert not torch.equal(other.n_id[:128], batches[0].n_id[:128])


def test_pyg_layer_runs_on_a_sampled_batch(graph):
    sampler = NeighbourSampler(graph.indptr_, graph.indices_, graph.weight_, fanout=[5, 5])
    data = sampler.sample(torch.arange(32), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    conv = GCNConv(3, 4)
    x = torch.randn(data.num_nodes, 3)
    out = conv(x, data.edge_index, data.edge_weight)
    assert out.shape == (data.num_nodes, 4) and torch.isfinite(out).all()


def test_duplicate_seeds_rejected(graph):
    with pytest.raises(ValueError, match="unique"):
        NeighbourSampler(graph.indptr_, graph.indices_).sample(torch.tensor([1, 1]))
