"""Facts about the machine a benchmark runs on, printed beside its figures."""
from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def simd() -> str:
    """The vector extensions that decide dense-product speed (figures differ with and without AVX-512)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    have = [f for f in ("avx512f", "avx2", "fma") if f" {f} " in f" {flags} "]
    return ", ".join(have) or "none of avx2/fma/avx512f"


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: Linux' VmHWM, which starts afresh at exec.
    ``ru_maxrss`` does not: a child started by fork (or vfork) and exec reports at least the
    parent's peak, whatever little it used itself."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
