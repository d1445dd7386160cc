"""Settle oneMKL's kernel choice for torch's float unary ops before two threads call one at once.

On CPU, ATen hands contiguous float ``tanh``, ``exp``, ``log``, ``sqrt``, ... to
MKL's vector math library (VML), one call per intra-op thread on its chunk.
oneMKL 2024.2, the build inside the pinned torch wheels, picks each VML
function's kernel on that function's first call; when the first call runs on
two threads at once, one thread can run a low-accuracy kernel on its whole
chunk of that one call (pytorch/pytorch#188792; later calls are right).
Here that was the first ``tanh`` of an embedding process: in 11 of 50
fresh fits (bench/vml_race.py), half of the first batch's first reservoir
step came out with other bits, which moved the fitted state PCA and so
every embedding of the site by up to 2e-4 (docs/embedding.md): the same
input and config did not give the same features. Calling each such
function once on one element (too small to be split across threads)
settles the choice; torch's own fix is the same warm-up, not yet in the
pinned release.
"""
from __future__ import annotations

import functools
import threading

#: the functions ATen routes to MKL VML (aten/src/ATen/cpu/vml.h, IMPLEMENT_VML_MKL)
VML_FUNCTIONS = ("acos", "asin", "atan", "cos", "erf", "erfc", "erfinv", "exp", "log", "log10", "log2",
                 "sin", "sqrt", "tan", "tanh", "trunc")


#: one warm-up at a time: functools.cache runs the function in every thread that misses before
#: the first call returns, and the worker threads of threads.side_by_side (the embedding, DSC's
#: labelling) all start with it: unlocked, their first calls of each function ran at once, the
#: very race guarded
_LOCK = threading.Lock()


@functools.cache
def warm_up() -> tuple[str, ...]:
    """Call every VML-routed function once on one float32 and one float64 element (once per
    process; later calls return at once; a thread that calls it while another warms up returns
    after that one). Returns the functions called."""
    import torch

    with _LOCK:
        called = []
        for dtype in (torch.float32, torch.float64):
            x = torch.full((1,), 0.5, dtype=dtype)
            for name in VML_FUNCTIONS:
                getattr(torch, name)(x)
                called.append(f"{name}:{str(dtype).removeprefix('torch.')}")
        return tuple(called)
