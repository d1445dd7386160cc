import threading
import time

import pytest
import torch

from conftest import torch_threads
from insarclust.threads import side_by_side, single_thread


@pytest.fixture(autouse=True)
def two_torch_threads():
    with torch_threads(2):
        yield


def test_results_come_in_order_with_few_items_taken_ahead():
    """Later items that finish first wait for the earlier ones; the pool takes at most
    2 * workers + 1 items that are not yet yielded (memory stays bounded)."""
    taken, yielded = [], []

    def items():
        for i in range(30):
            taken.append(i)
            yield i

    def work(i):
        time.sleep(0.02 if i % 4 == 1 else 0.001)
        return i * i, threading.current_thread().name, torch.get_num_threads()

    for square, name, threads in side_by_side(work, items(), workers=3, name="probe"):
        yielded.append(square)
        assert len(taken) - len(yielded) <= 2 * 3 + 1
        assert threads == 1 and torch.get_num_threads() == 1
    assert yielded == [i * i for i in range(30)]
    assert torch.get_num_threads() == 2


def test_an_error_reaches_the_caller_and_threads_are_restored():
    def work(i):
        if i == 5:
            raise ValueError("item 5")
        return i

    with pytest.raises(ValueError, match="item 5"):
        list(side_by_side(work, range(20), workers=2))
    assert torch.get_num_threads() == 2


def test_stopping_early_restores_threads():
    out = side_by_side(lambda i: i, range(100), workers=2)
    assert [next(out) for _ in range(3)] == [0, 1, 2]
    out.close()
    assert torch.get_num_threads() == 2


def test_one_worker_runs_in_turn_on_the_callers_threads():
    got = list(side_by_side(lambda i: (i, threading.current_thread().name, torch.get_num_threads()),
                            range(3), workers=1))
    assert got == [(i, threading.current_thread().name, 2) for i in range(3)]


def test_single_thread_restores_after_an_error():
    with pytest.raises(RuntimeError):
        with single_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError
    assert torch.get_num_threads() == 2


def test_an_error_or_closing_early_leaves_the_queued_items_unrun():
    """Items taken ahead and not yet started are dropped when an item fails or the caller stops:
    the error (or the close) waits only for the items already running, not for the queue."""
    started = []

    def work(i):
        started.append(i)
        if i > 0:
            time.sleep(0.1 if i % 10 == 1 else 0.5)   # the caller takes items 2..5 meanwhile
        if i == 1:
            raise ValueError("item 1")
        return i

    with pytest.raises(ValueError, match="item 1"):
        list(side_by_side(work, range(20), workers=2))
    time.sleep(0.7)
    assert 4 not in started and 5 not in started     # 1..5 were taken, 2 and 3 ran

    started.clear()
    out = side_by_side(lambda i: work(i + 10), range(20), workers=2)
    assert [next(out) for _ in range(2)] == [10, 11]
    out.close()                                        # 12 and 13 run, 14 and 15 were taken
    time.sleep(0.7)
    assert not {14, 15} & set(started)
    assert torch.get_num_threads() == 2
