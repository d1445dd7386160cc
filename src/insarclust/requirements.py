"""What a site must hold for the configured stages to mean something.

A site with one date column, or five points and ``graph.k: 10``, used to run
several stages and then fail far from the cause (or worse, finish with empty
clusters). The minimum number of points and dates follows from the
configuration alone, so it is computed once here and checked where the
counts are first known: in ``shards`` (before anything is written) and, for
a ``shards.h5`` that already exists, when the workflow starts (a config
change can raise the need after the fact).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .errors import InputError

# The descriptor model fits offset, trend, acceleration, annual cos/sin and a
# step (6 terms); two more dates leave a noise estimate.
DESCRIPTOR_TERMS = 6
# The ridge representations (reservoir, output) regress step t+1 on step t and
# need at least 3 states after the washout.
RIDGE_MIN_STEPS = 3
# k-means with fewer than two train points per cluster has empty or singleton
# clusters by construction.
TRAIN_POINTS_PER_CLUSTER = 2


@dataclass(frozen=True)
class SiteNeeds:
    """Minimum points, observed dates and regular-grid epochs, each with the settings behind it."""

    min_points: int = 1
    min_dates: int = 1
    min_grid: int = 1
    why_points: list = field(default_factory=list)
    why_dates: list = field(default_factory=list)
    why_grid: list = field(default_factory=list)


def _largest_k(config: Mapping) -> tuple[int, list[str]]:
    kmeans = config["kmeans"]
    lo_hi = kmeans["k_range"]
    ks = []
    k = kmeans["k"]
    if k == "auto" or kmeans["k_sweep"]:
        ks.append((int(lo_hi[1]), "kmeans.k_range"))
    if k != "auto":
        ks.append((int(k), "kmeans.k"))
    peer_k = config["baselines"]["k"]
    if peer_k not in (None, "auto"):
        ks.append((int(peer_k), "baselines.k"))
    dsc = config["dsc"]
    if dsc["enabled"]:
        ks.append((int(dsc["k"]), "dsc.k"))
    best = max(ks) if ks else (2, "kmeans.k")
    return best[0], [name for kk, name in ks if kk == best[0]]


def _points_for_train(k: int, test_fraction: float) -> int:
    """Smallest n whose train split (n - round(test_fraction n)) holds 2k points."""
    n = TRAIN_POINTS_PER_CLUSTER * k
    while n - int(round(test_fraction * n)) < TRAIN_POINTS_PER_CLUSTER * k:
        n += 1
    return n


def site_needs(config: Mapping) -> SiteNeeds:
    """The minimum site size the configuration needs (see the module docstring); ``config``
    with the schema's defaults filled in, as the workflow and its rules have it."""
    graph_k = int(config["graph"]["k"])
    test_fraction = float(config["kmeans"]["test_fraction"])
    k, k_keys = _largest_k(config)
    points = [(graph_k + 1, f"graph.k: {graph_k} needs {graph_k} neighbours per point"),
              (_points_for_train(k, test_fraction),
               f"{' / '.join(k_keys)} = {k} clusters need {TRAIN_POINTS_PER_CLUSTER} train points each "
               f"after kmeans.test_fraction: {test_fraction:g} is held out")]
    embed = config["embed"]
    washout = int(embed["washout"])
    stride = int(embed["time_stride"])
    ridge = embed["representation"] in ("reservoir", "output")
    steps = washout + (RIDGE_MIN_STEPS if ridge else 1)
    grid = [(steps * stride, f"the embedding drops embed.washout: {washout} steps and "
                             f"{'regresses over at least 3 more' if ridge else 'keeps at least 1 more'}"
                             + (f" (embed.time_stride: {stride} grid epochs per step)" if stride > 1 else ""))]
    dsc = config["dsc"]
    if dsc["enabled"]:
        ts = int(dsc["time_stride"])
        grid.append((2 * ts, f"DSC averages dsc.time_stride: {ts} epochs per step and needs 2 steps"))
    dates = [(DESCRIPTOR_TERMS + 2, f"the descriptors fit {DESCRIPTOR_TERMS} terms (offset, trend, "
                                    "acceleration, annual cycle, step) and need 2 more dates for the noise")]
    pick = lambda items: (max(n for n, _ in items), [w for n, w in items if n == max(m for m, _ in items)])
    (mp, wp), (md, wd), (mg, wg) = pick(points), pick(dates), pick(grid)
    return SiteNeeds(mp, md, mg, wp, wd, wg)


def check_site(site: str, needs: SiteNeeds, n_points: int | None = None, n_dates: int | None = None,
               n_grid: int | None = None, file=None, grid_step_days: int | None = None,
               also: str | None = None) -> None:
    """Raise one InputError saying what the site has, what the configuration needs and how to fix it.

    Counts left None are not checked (``shards`` knows the dates before it reads any row).
    """
    problems, fixes = [], []
    if n_points is not None and n_points < needs.min_points:
        problems.append(f"{n_points} point(s), the configuration needs at least {needs.min_points} "
                        f"({'; '.join(needs.why_points)})")
        fixes.append("add points (more files or a larger area) or lower graph.k / the cluster counts "
                     "(kmeans.k, baselines.k, dsc.k)")
    if n_dates is not None and n_dates < needs.min_dates:
        problems.append(f"{n_dates} acquisition date(s), at least {needs.min_dates} are needed "
                        f"({'; '.join(needs.why_dates)})")
        fixes.append("use an export with the whole time series (every date column)")
    if n_grid is not None and n_grid < needs.min_grid:
        step = f" of {grid_step_days} days" if grid_step_days else ""
        problems.append(f"{n_grid} regular epochs{step}, at least {needs.min_grid} are needed "
                        f"({'; '.join(needs.why_grid)})")
        fixes.append("use a longer archive, a smaller shards.grid_step_days or a smaller embed.washout")
    if problems:
        if also:
            fixes.append(also)
        raise InputError(f"site '{site}' is too small for this configuration: " + "; and ".join(problems),
                         file=file, fix="; or ".join(dict.fromkeys(fixes)))
