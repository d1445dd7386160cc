"""Torch's intra-op threads, set for a block of work and restored after it."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def single_thread():
    """Run torch single-threaded within the block (restored after it, also on error).

    For work whose result must not depend on the job's thread count (MKL splits the
    summed dimension of a long, thin product across threads, which moves last bits), and
    for batches too small for intra-op threads to pay off."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
