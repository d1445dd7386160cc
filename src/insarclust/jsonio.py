"""JSON files of the project (metrics, fit records, provenance): plain types, atomic writes."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


def to_jsonable(obj):
    """Plain JSON types: numpy scalars/arrays unwrapped, NaN and inf -> null, paths -> str,
    sets/tuples -> lists, anything else -> its str."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in (sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj)]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, os.PathLike):
        return str(obj)
    return str(obj)


def dumps(obj) -> str:
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"


def write_json(obj, path) -> None:
    """Pretty JSON, written under a temporary name and renamed (never a truncated file)."""
    from .h5io import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(dumps(obj), encoding="utf-8")
