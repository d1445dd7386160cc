"""PyTorch Geometric interop and seeded multi-hop neighbourhood sampling.

The graph of ``graph.h5`` is CSR by *target*: row ``i`` lists the neighbours
``j`` whose features point ``i`` aggregates. In PyG's default message flow
(``source_to_target``) messages travel ``edge_index[0] -> edge_index[1]``, so
here ``edge_index[0]`` holds the neighbour ``j`` and ``edge_index[1]`` the
point ``i``: a ``MessagePassing`` layer then aggregates exactly each point's
k-NN neighbourhood, whether or not the graph was symmetrised.

PyG's own neighbour loaders need the compiled ``pyg-lib``/``torch-sparse``;
:class:`NeighbourSampler` samples from the CSR arrays with plain torch
instead and returns the same kind of mini-batch ``Data`` as PyG's
``NeighborLoader`` (``n_id``, ``e_id``, ``batch_size``, ``num_sampled_nodes``,
``num_sampled_edges``; seed nodes first).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from . import h5io


def _as_long(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.int64) if not torch.is_tensor(a) else a, dtype=torch.long)


def _as_float(a) -> torch.Tensor | None:
    if a is None:
        return None
    return torch.as_tensor(np.asarray(a, dtype=np.float32) if not torch.is_tensor(a) else a, dtype=torch.float32)


def to_data(indptr, indices, weight=None, distance_m=None, x=None, pos=None) -> Data:
    """A whole graph as ``Data``: ``edge_index (2, nnz)`` [neighbour; point], ``edge_weight (nnz,)``.

    ``distance_m`` becomes ``edge_attr (nnz, 1)``; ``x (N, D)`` and ``pos (N, 2)``
    (e.g. lat/lon degrees) are attached when given. Edge order = CSR order.
    """
    indptr = _as_long(indptr)
    indices = _as_long(indices)
    n = len(indptr) - 1
    targets = torch.repeat_interleave(torch.arange(n), indptr.diff())
    data = Data(edge_index=torch.stack([indices, targets]), num_nodes=n)
    if weight is not None:
        data.edge_weight = _as_float(weight)
    if distance_m is not None:
        data.edge_attr = _as_float(distance_m).unsqueeze(1)
    if x is not None:
        data.x = _as_float(x)
    if pos is not None:
        data.pos = torch.as_tensor(np.asarray(pos), dtype=torch.float64)
    return data


def read_data(graph_path, x=None, pos=None) -> Data:
    """``graph.h5`` as ``Data`` (see :func:`to_data`); memory O(nnz)."""
    g = h5io.read_graph(graph_path)
    return to_data(g["indptr"], g["indices"], g["weight"], g["distance_m"], x=x, pos=pos)


def to_csr(edge_index, num_nodes: int, edge_weight=None):
    """Inverse of :func:`to_data`: ``(indptr, indices, weight, order)`` with rows = targets.

    ``order`` maps CSR positions back to the edges of ``edge_index`` (stable,
    so rows keep the edge order they had).
    """
    edge_index = _as_long(edge_index)
    order = torch.sort(edge_index[1], stable=True).indices
    counts = torch.bincount(edge_index[1], minlength=num_nodes)
    indptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=indptr[1:])
    weight = None if edge_weight is None else _as_float(edge_weight)[order]
    return indptr, edge_index[0][order], weight, order


def _segment_positions(starts: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated ranges ``starts[s] + 0..counts[s]-1`` and their segment ids."""
    seg = torch.repeat_interleave(torch.arange(len(counts)), counts)
    offsets = torch.cumsum(counts, 0) - counts
    pos = torch.arange(int(counts.sum())) - offsets[seg] + starts[seg]
    return pos, seg


class NeighbourSampler:
    """Seeded multi-hop neighbourhood sampling from a CSR graph (memory O(batch x fanout)).

    Parameters
    ----------
    indptr, indices : CSR of the graph (row = point, entries = its neighbours).
    weight : optional (nnz,) edge weights carried into ``edge_weight``.
    fanout : neighbours sampled per node at each hop (uniformly, without
        replacement); ``-1`` takes all of them.
    random_state : seed of :meth:`loader`'s shuffling and sampling.

    :meth:`sample` returns a ``Data`` whose first ``batch_size`` nodes are the
    seeds; each node is expanded once, at the first hop it appears in, so a
    ``len(fanout)``-layer message-passing model (or ``len(fanout)`` smoothing
    hops) computes the seeds' outputs from the sampled computation tree.
    With ``fanout = [-1] * H`` this is the exact H-hop neighbourhood (a shard
    with its halo, see :meth:`halo`).
    """

    def __init__(self, indptr, indices, weight=None, fanout: Sequence[int] = (10, 10, 10),
                 random_state: int = 0):
        self.indptr = indptr
        self.indices = indices
        self.weight = weight
        self.fanout = fanout
        self.random_state = random_state
        self._indptr = _as_long(indptr)
        self._indices = _as_long(indices)
        self._weight = _as_float(weight)
        self.num_nodes = len(self._indptr) - 1

    def sample(self, seeds, generator: torch.Generator | None = None, fanout: Sequence[int] | None = None) -> Data:
        """Sampled neighbourhood of ``seeds`` (unique global ids) as a local-id ``Data``.

        Attributes: ``edge_index (2, E)`` local [neighbour; point], ``edge_weight (E,)``
        (if the graph has weights), ``n_id (n,)`` global node ids, ``e_id (E,)``
        positions of the edges in the CSR arrays (to fetch ``distance_m``),
        ``batch_size``, ``num_sampled_nodes`` / ``num_sampled_edges`` per hop,
        ``degree (n,)`` full degree of each node in the graph.
        """
        fanout = list(self.fanout if fanout is None else fanout)
        seeds = _as_long(seeds).reshape(-1)
        if len(torch.unique(seeds)) != len(seeds):
            raise ValueError("seed nodes must be unique")
        indptr, indices = self._indptr, self._indices
        known_sorted, known_order = torch.sort(seeds)   # global ids seen so far -> local id
        n_id = [seeds]
        n_known = len(seeds)
        frontier_local = torch.arange(len(seeds))
        frontier = seeds
        e_ids, sources, targets = [], [], []
        num_nodes, num_edges = [len(seeds)], []
        for f in fanout:
            starts = indptr[frontier]
            counts = indptr[frontier + 1] - starts
            pos, seg = _segment_positions(starts, counts)
            if f >= 0 and bool((counts > f).any()):
                # Uniform choice of f per row without replacement: random keys,
                # rank them within each row, keep ranks < f.
                keys = torch.rand(len(pos), generator=generator)
                order = torch.argsort(keys)
                order = order[torch.sort(seg[order], stable=True).indices]
                offsets = torch.cumsum(counts, 0) - counts
                rank = torch.arange(len(pos)) - offsets[seg[order]]
                chosen = torch.sort(order[rank < f]).values
                pos, seg = pos[chosen], seg[chosen]
            src = indices[pos]
            # Map sources to local ids, adding unseen nodes (sorted) as this hop's new nodes.
            where = torch.searchsorted(known_sorted, src).clamp_max(max(len(known_sorted) - 1, 0))
            seen = known_sorted[where] == src if len(known_sorted) else torch.zeros_like(src, dtype=torch.bool)
            new_nodes = torch.unique(src[~seen])
            new_local = torch.arange(n_known, n_known + len(new_nodes))
            known_sorted, merge = torch.sort(torch.cat([known_sorted, new_nodes]))
            known_order = torch.cat([known_order, new_local])[merge]
            src_local = known_order[torch.searchsorted(known_sorted, src)]
            e_ids.append(pos)
            sources.append(src_local)
            targets.append(frontier_local[seg])
            n_id.append(new_nodes)
            n_known += len(new_nodes)
            num_nodes.append(len(new_nodes))
            num_edges.append(len(pos))
            frontier, frontier_local = new_nodes, new_local
        n_id = torch.cat(n_id)
        e_id = torch.cat(e_ids) if e_ids else torch.zeros(0, dtype=torch.long)
        edge_index = (torch.stack([torch.cat(sources), torch.cat(targets)]) if e_ids
                      else torch.zeros((2, 0), dtype=torch.long))
        data = Data(edge_index=edge_index, num_nodes=len(n_id))
        if self._weight is not None:
            data.edge_weight = self._weight[e_id]
        data.n_id = n_id
        data.e_id = e_id
        data.batch_size = len(seeds)
        data.num_sampled_nodes = num_nodes
        data.num_sampled_edges = num_edges
        data.degree = indptr[n_id + 1] - indptr[n_id]
        return data

    def halo(self, start: int, stop: int, hops: int) -> Data:
        """Rows ``start:stop`` (a shard) with their exact ``hops``-hop halo, as :meth:`sample` output."""
        return self.sample(torch.arange(start, stop), fanout=[-1] * hops)

    def loader(self, nodes=None, batch_size: int = 1024, shuffle: bool = True,
               epoch: int = 0) -> Iterator[Data]:
        """Mini-batches of sampled neighbourhoods over ``nodes`` (default: all), seeded.

        The order and the samples depend only on ``random_state`` and ``epoch``,
        so training runs repeat exactly on CPU.
        """
        nodes = torch.arange(self.num_nodes) if nodes is None else _as_long(nodes)
        generator = torch.Generator().manual_seed(batch_seed(self.random_state, epoch))
        if shuffle:
            nodes = nodes[torch.randperm(len(nodes), generator=generator)]
        for a in range(0, len(nodes), batch_size):
            yield self.sample(nodes[a:a + batch_size], generator=generator)


def batch_seed(random_state: int, *keys: int) -> int:
    """A 63-bit torch seed from a base seed and integer keys (batch, epoch), independent per key."""
    state = np.random.SeedSequence([int(random_state), *[int(k) for k in keys]]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)
