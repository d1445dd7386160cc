"""The clustering methods a run can produce, in one list for the library, the workflow and tests.

A method's name is its file name under ``results/{site}/clusters/``:
``kmeans-{variant}`` for the seed method's k-means variants, the peer
baselines by name, and ``dsc``.
"""
from __future__ import annotations

import re
from typing import Mapping

KMEANS_VARIANTS = ("dyn", "dyn+static", "dyn_smoothed", "dyn+static_smoothed")
PEERS = ("pca-kmeans", "raw-kmeans", "raw-kmeans_smoothed", "descriptors-kmeans")
DSC = "dsc"


def methods(config: Mapping) -> list[str]:
    """The methods the configuration switches on, in report order."""
    out = [f"kmeans-{v}" for v in config["kmeans"]["variants"]]
    out += [m for m in PEERS if config.get("baselines", {}).get(m, True)]
    if config["dsc"]["enabled"]:
        out.append(DSC)
    return out


def pattern(names) -> str:
    """A wildcard regex matching exactly ``names``."""
    return "|".join(re.escape(n) for n in names)


ALL = tuple(f"kmeans-{v}" for v in KMEANS_VARIANTS) + PEERS + (DSC,)
