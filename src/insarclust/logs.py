"""Logging set-up shared by the workflow scripts: one log file per rule.

:func:`start_rule` is the first line of every rule script: the log goes to the
rule's ``log:`` file and stderr, and a failure is written to that log too
(Snakemake points users at the log file, and on SLURM stderr lands in a job
file nobody opens), with a plain explanation when the disk is full.
"""
from __future__ import annotations

import errno
import logging
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError


def setup_logging(logfile=None, level=logging.INFO) -> logging.Logger:
    """Log to ``logfile`` (the rule's ``log:``) and stderr, with timestamps."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if logfile:
        handlers.append(logging.FileHandler(logfile, mode="w"))
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return logging.getLogger("insarclust")


def start_rule(smk) -> logging.Logger:
    """Set up a rule script from its ``snakemake`` object: logging, failures into the log,
    stale temporaries of its outputs (left by killed jobs) removed."""
    from .h5io import remove_stale_temporaries

    log = setup_logging(smk.log[0] if len(smk.log) else None)
    outputs = [str(p) for p in smk.output]
    log_failures(log, outputs)
    for out in outputs:
        for tmp in remove_stale_temporaries(out):
            log.info("removed %s, left by a killed job", tmp)
    return log


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# How numpy, h5py and torch word a write that could not complete (no errno attached).
_SHORT_WRITE = ("no space left on device", "disk quota exceeded", "requested and", "file write failed",
                "short write")


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024


def explain_disk_full(err: BaseException, outputs) -> InputError | None:
    """A plain message for a write that failed for lack of space, or None for other errors.

    h5py, numpy and torch each word a full disk differently ("40000 requested
    and 39904 written", "inline_container.cc ... file write failed", ENOSPC);
    the free space of the output's device is the deciding fact.
    """
    from .h5io import partial_bytes

    outputs = [Path(o) for o in outputs]
    texts = " ".join(str(e).lower() for e in _chain(err))
    by_errno = any(getattr(e, "errno", None) in _DISK_FULL_ERRNOS for e in _chain(err))
    if not outputs or not (by_errno or any(t in texts for t in _SHORT_WRITE)):
        return None
    folder = next((p.parent for p in outputs if p.parent.exists()), outputs[0].parent)
    usage = shutil.disk_usage(folder if folder.exists() else ".")
    # The partial files are gone by now: the disk was full if the space free again is
    # about what they had taken (plus a little slack), however large the disk.
    freed = sum(partial_bytes.values())
    if not by_errno and usage.free > freed + max(64 << 20, 0.001 * usage.total):
        return None   # the wording matched, but the disk has room: another failure
    written = [f"{o} had reached {_fmt_bytes(b)}" for o, b in partial_bytes.items() if b > 0]
    need = ("; when it failed " + ", ".join(written)) if written else ""
    return InputError(
        f"no space left on the device holding {folder} (size {_fmt_bytes(usage.total)}, "
        f"{_fmt_bytes(usage.free)} free once the partial files were removed): writing "
        f"{', '.join(str(o) for o in outputs)} failed{need}",
        fix="free space on that device (the output needs more than was written before the failure), "
            "or run the workflow where results/ lies on a larger disk (e.g. snakemake --directory)")


def log_failures(log: logging.Logger, outputs=()) -> None:
    """Write an uncaught error into the log (and stderr): the message of an input error,
    the message and traceback of anything else; a full disk is said so."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if not isinstance(exc, (InputError, KeyboardInterrupt)):
            plain = explain_disk_full(exc, outputs)
            if plain is not None:
                log.error("%s\n  (the error was %s: %s)", plain, exc_type.__name__, exc)
                return
        if isinstance(exc, InputError):
            # the message says what and where; a traceback would bury it
            log.error("%s", exc)
            return
        log.error("%s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb))
        if previous not in (sys.__excepthook__, hook):
            previous(exc_type, exc, tb)

    sys.excepthook = hook


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
