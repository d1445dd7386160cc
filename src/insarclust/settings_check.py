"""Checks of the configuration that a JSON schema cannot express, run before any job.

The schema checks types and ranges of each key alone. What it lets through
would otherwise be clamped, ignored or fail deep inside a job: NaN (every
comparison with it is false, so ``minimum`` passes it), keys that depend on
each other, and names that must exist elsewhere (a site, a static column).
Each error names the key and the fix.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

from .config import CONFIG_SOURCES, unnamed_static_weight
from .errors import InputError


def _bad(key: str, problem: str, fix: str) -> InputError:
    """The value may come from config/config.yaml, a --configfile or a --config override: the
    message names the key and where it can come from, not one file that may hold another value."""
    return InputError(f"configuration ({CONFIG_SOURCES}), key '{key}': {problem}", fix=fix)


# keys where inf means "no bound"
INF_ALLOWED = ("shards.max_abs_mm",)


def _non_finite(value, path: str = ""):
    """``(key, value)`` of the first NaN, or inf outside :data:`INF_ALLOWED`, in a nested config."""
    if isinstance(value, float) and (math.isnan(value) or (math.isinf(value) and path not in INF_ALLOWED)):
        return path, value
    if isinstance(value, Mapping):
        for key, item in value.items():
            hit = _non_finite(item, f"{path}.{key}" if path else str(key))
            if hit:
                return hit
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            hit = _non_finite(item, f"{path}[{i}]")
            if hit:
                return hit
    return None


def site_static_columns(spec: Mapping, pair: bool = False) -> set[str]:
    """The static columns a site of format ``spec`` (a formats.yaml block) can have: its static,
    optional static and geometry columns; a decomposed pair has its own (height and the
    tracks' velocities decomposed)."""
    from .decompose import PAIR_STATIC

    if pair:
        return {"height", *PAIR_STATIC}
    return {col for key in ("static", "optional_static", "geometry") for col in spec.get(key) or ()}


def site_static_weight(weight, spec: Mapping, pair: bool = False):
    """``embed.static_weight`` as far as a site of format ``spec`` can read it (the rule param of
    its ``static_features`` job): a number as it is; a mapping keeps the columns the site can have
    (:func:`site_static_columns`) whose weight differs from the one they get unnamed (1; 0 for a
    geometry column, :func:`insarclust.embed.static_weights`), so an entry at that weight or a
    column of another format reruns nothing; a mapping left empty weighs like the default 1.0."""
    if not isinstance(weight, Mapping):
        return weight
    columns = site_static_columns(spec, pair=pair)
    geometry = set() if pair else set(spec.get("geometry") or ())
    named = {k: v for k, v in weight.items()
             if k in columns and float(v) != unnamed_static_weight(k, geometry)}
    return named or 1.0


def known_static_columns(formats: Mapping) -> set[str]:
    """Every static column a site can have: the static, optional static and geometry columns of
    the formats (formats.yaml as a dict), and a decomposed pair's own."""
    return set().union(*(site_static_columns(spec) for spec in formats.values()),
                       site_static_columns({}, pair=True))


# Points per cluster the silhouette sample needs when it chooses k.
MIN_SILHOUETTE_PER_CLUSTER = 10


def check_decompose_crs(config: Mapping) -> None:
    """decompose.crs, when a pair site will read it: an unknown or geographic CRS stopped the
    decompose job, after both tracks had been read, not the planning."""
    from .coords import is_projected, normalize_crs

    crs = config["decompose"]["crs"]
    try:
        text = normalize_crs(crs)
    except InputError as err:
        raise _bad("decompose.crs", err.message, err.fix) from None
    if not is_projected(text):
        raise _bad("decompose.crs", f"{text} is not a projected CRS (cells are squares in metres)",
                   "use a projected CRS such as EPSG:3035 (the EGMS grid's)")


def check_settings(config: Mapping, sites: Iterable[str], static_columns: Iterable[str]) -> None:
    """Raise InputError for the first setting that would not do what it says.

    ``sites``: the site names of the site table; ``static_columns``:
    :func:`known_static_columns`.
    """
    hit = _non_finite(config)
    if hit is not None:
        raise _bad(hit[0], f"{hit[1]} is not a finite number", "give a number")

    kmeans = config["kmeans"]
    lo, hi = kmeans["k_range"]
    if lo > hi:
        raise _bad("kmeans.k_range", f"[{lo}, {hi}] is reversed: no k to try", f"write it as [{hi}, {lo}]")

    # k-means++ seeds the warm start with k centres, and DSC's clustering layer its training
    # sample: fewer points than clusters stops the job, after every stage before it
    peer_k = config["baselines"]["k"]
    ks = [k for k in (kmeans["k"], peer_k) if k not in (None, "auto")]
    if "auto" in (kmeans["k"], peer_k) or kmeans["k_sweep"]:
        ks.append(hi)
    if int(kmeans["warm_start_size"]) < max(ks):
        raise _bad("kmeans.warm_start_size", f"{kmeans['warm_start_size']} points for up to {max(ks)} clusters "
                                             "(kmeans.k, k_range, baselines.k)", f"use at least {max(ks)}")
    # k: auto (and the k sweep) pick k by the silhouette of a sample: with a few points per
    # cluster it is NaN or noise, and the choice would fall to the k that still has a value
    if ("auto" in (kmeans["k"], peer_k) or kmeans["k_sweep"]) and \
            int(kmeans["silhouette_sample"]) < MIN_SILHOUETTE_PER_CLUSTER * hi:
        raise _bad("kmeans.silhouette_sample", f"{kmeans['silhouette_sample']} points to choose k up to {hi} "
                                               "(k: auto or the k sweep) by the silhouette",
                   f"use at least {MIN_SILHOUETTE_PER_CLUSTER * hi} ({MIN_SILHOUETTE_PER_CLUSTER} per cluster)")
    dsc = config["dsc"]
    if dsc["enabled"] and int(dsc["train_sample"]) < int(dsc["k"]):
        raise _bad("dsc.train_sample", f"{dsc['train_sample']} points for dsc.k = {dsc['k']} clusters",
                   f"use at least {dsc['k']}")

    embed = config["embed"]
    if embed["mode"] == "reference" and embed["leak_form"] != "unscaled":
        raise _bad("embed.leak_form", f"'{embed['leak_form']}' with embed.mode 'reference', which always uses "
                                      "the reference's unscaled leak", "set leak_form: unscaled, or mode: default")
    state_dims = (2 if embed["bidirectional"] else 1) * int(embed["n_units"])
    if embed["n_pca"] is not None and int(embed["n_pca"]) > state_dims:
        raise _bad("embed.n_pca", f"{embed['n_pca']} is more than the {state_dims} state dimensions "
                                  f"(n_units {embed['n_units']} x {'2 directions' if embed['bidirectional'] else '1'})",
                   f"use at most {state_dims}, or more units")
    site_names = set(sites)
    ref = embed.get("reference_site")
    if ref is not None and ref not in site_names:
        raise _bad("embed.reference_site", f"'{ref}' is not a site of the site table "
                                           f"({', '.join(sorted(site_names)) or 'none'})",
                   f"name a site of {config.get('sites') or 'config/sites.tsv'}, or null for a model per site")
    weights = embed.get("static_weight")
    if isinstance(weights, Mapping):
        known = set(static_columns)
        unknown = sorted(set(weights) - known)
        if unknown:
            raise _bad("embed.static_weight", f"{', '.join(repr(c) for c in unknown)} is no static column of any "
                                              "format", f"use static column names of config/formats.yaml: "
                                                        f"{', '.join(sorted(known))}")

    smooth = config["smooth"]
    if smooth["mode"] == "fanout" and len(smooth["fanout"]) not in (1, int(smooth["H"])):
        raise _bad("smooth.fanout", f"{len(smooth['fanout'])} entries for smooth.H = {smooth['H']} hops",
                   "give one neighbour count per hop, or one for every hop")
