"""Torch's intra-op threads: set for a block of work and restored after it, or one thread in
each of several threads that run whole items side by side."""
from __future__ import annotations

import collections
import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor


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


def side_by_side(fn, items, workers: int, name: str = "side-by-side"):
    """``fn(item)`` of each item, in order, ``workers`` items at a time on threads, torch
    single-threaded in each.

    Torch's own threads on one small batch meet at every one of its many small operations:
    on 2 cores that ran ~20 % slower than two items side by side when quiet, and 5-9 times
    slower with one core busy with other work, where each thread waits for the other's turn
    (docs/perf/embed.md). The first item runs alone on the calling thread, so every kernel
    (products, gathers, ``tanh``) makes its first call of the process on one thread, never on
    two at once (oneMKL picks some kernels lazily: ``insarclust.vml``). At most
    ``2 * workers + 1`` items are taken from ``items`` and not yet yielded; an error of ``fn``
    reaches the caller once the items already running end (those not started are dropped, as
    they are when the generator is closed early). Until the generator ends or is closed, torch
    is single-threaded on the calling thread too, also for the caller's own work between
    items. ``workers`` <= 1: plain ``fn(item)`` in turn, torch's threads as they are. ``name``
    prefixes the threads' names.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    items = iter(items)
    pending = collections.deque()
    with single_thread():
        for item in itertools.islice(items, 1):
            yield fn(item)
        pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                while len(pending) > 2 * workers or (pending and pending[0].done()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            # after an error or a close: wait for the items running, drop those not started
            pool.shutdown(wait=True, cancel_futures=True)
