"""Logging set-up shared by the workflow scripts: one log file per rule."""
from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager


def setup_logging(logfile=None, level=logging.INFO) -> logging.Logger:
    """Log to ``logfile`` (the rule's ``log:``) and stderr, with timestamps."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if logfile:
        handlers.append(logging.FileHandler(logfile, mode="w"))
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return logging.getLogger("insarclust")


class Progress:
    """Log-line progress for long loops: counts, rate and ETA every ``every_s`` seconds.

    tqdm-style bars are unreadable in Snakemake log files, so stages log lines.
    """

    def __init__(self, log: logging.Logger, total: int, what: str, every_s: float = 5.0):
        self.log, self.total, self.what, self.every_s = log, total, what, every_s
        self.done = 0
        self.t0 = self._last = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            self.log.info("%s: %d/%d (%.0f/s, eta %.0fs)", self.what, self.done, self.total, rate, eta)


@contextmanager
def timed(log: logging.Logger, what: str):
    t0 = time.perf_counter()
    yield
    log.info("%s took %.2fs", what, time.perf_counter() - t0)
