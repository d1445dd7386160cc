"""Shared fixtures: small but real files of the file contract."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from insarclust import h5io

ROOT = Path(__file__).resolve().parents[1]
# what a runnable copy of the workflow needs (the tests run Snakemake in such copies)
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "scripts", "envs", "src")


def copy_workflow(dest: Path, names=WORKFLOW_FILES) -> Path:
    """Copy the workflow's files (not caches, not results) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def make_shards_file(path, n: int = 2000, n_grid: int = 120, shard_size: int = 512,
                     seed: int = 0, step_days: int = 6, hole: tuple | None = None,
                     hole_regime: int | None = None):
    """Write a valid shards.h5 with four spatially coherent regimes.

    Returns ``(path, truth)`` with truth (n,) in {0: stable, 1: subsiding,
    2: seasonal, 3: uplift}. Points lie in a 0.1 x 0.1 degree square at 69 N;
    the regime is the quadrant, rows are ordered by quadrant then latitude
    (a crude spatial order, enough for stages downstream of shards).
    ``hole`` ``(every, first, last)``: every ``every``-th row misses grid epochs first..last
    (NaN in /series/displacement), linearly interpolated across in /series/regular as the
    shards stage does; with ``hole_regime``, only rows of that regime.
    """
    rng = np.random.default_rng(seed)
    lat = 69.0 + rng.uniform(0, 0.1, n)
    lon = 20.0 + rng.uniform(0, 0.1, n)
    truth = (lat > 69.05).astype(int) * 2 + (lon > 20.05).astype(int)
    order = np.lexsort((lat, truth))
    lat, lon, truth = lat[order], lon[order], truth[order]
    grid = (17500 + step_days * np.arange(n_grid)).astype(np.int32)
    t_yr = (grid - grid[0]) / 365.25
    base = np.stack([
        np.zeros_like(t_yr),
        -8.0 * t_yr,
        6.0 * np.sin(2 * np.pi * t_yr),
        5.0 * t_yr,
    ])
    regular = (base[truth] + rng.normal(0, 1.5, (n, n_grid))).astype(np.float32)
    displacement = regular.copy()
    displacement[rng.random(displacement.shape) < 0.05] = np.nan
    if hole is not None:
        every, a, b = hole
        rows = np.arange(0, n, every)
        if hole_regime is not None:
            rows = rows[truth[rows] == hole_regime]
        displacement[rows, a - 1], displacement[rows, b + 1] = regular[rows, a - 1], regular[rows, b + 1]
        displacement[rows, a:b + 1] = np.nan
        frac = (np.arange(a, b + 1) - (a - 1)) / (b + 2 - a)
        regular[rows, a:b + 1] = (regular[rows, a - 1, None] * (1 - frac)
                                  + regular[rows, b + 1, None] * frac).astype(np.float32)
    static_names = ["height", "mean_velocity", "temporal_coherence"]
    static = np.stack([
        rng.normal(300, 50, n),
        np.array([0.0, -8.0, 0.0, 5.0])[truth] + rng.normal(0, 1, n),
        rng.uniform(0.6, 1.0, n),
    ], axis=1).astype(np.float32)
    pid = np.array([f"P{i:06d}" for i in range(n)], dtype=object)
    attrs = {"site": "synthetic", "format": "ngu", "source_sha256": "0" * 64,
             "insarclust_version": "test", "regularization": "linear"}
    offsets = list(range(0, n, shard_size)) + [n]
    with h5io.ShardsWriter(path, n, grid, grid, static_names, attrs) as w:
        for a, b in zip(offsets[:-1], offsets[1:]):
            w.write(pid[a:b], lat[a:b], lon[a:b], static[a:b], displacement[a:b], regular[a:b])
    return Path(path), truth


def town_and_hillside(seed=0):
    """3,000 points on 1 km^2 beside 1,000 on 36 km^2 (69.6 N) -> lat, lon (degrees): the
    site's median spacing (and median graph link) is the town's."""
    rng = np.random.default_rng(seed)
    m_lat, m_lon = 1 / 111_320.0, 1 / (111_320.0 * np.cos(np.radians(69.6)))
    town = rng.uniform(0, 1000, (3000, 2))
    hill = rng.uniform(0, 6000, (1000, 2)) + [2000.0, 0.0]
    xy = np.vstack([town, hill])
    return 69.6 + xy[:, 1] * m_lat, 20.2 + xy[:, 0] * m_lon


@pytest.fixture
def shards_file(tmp_path):
    """A 2,000-point shards.h5 with known regimes: ``(path, truth)``."""
    return make_shards_file(tmp_path / "shards.h5")


@contextlib.contextmanager
def torch_threads(n: int):
    """Torch with ``n`` intra-op threads within the block, restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Tiny matrices: one torch thread is faster, and immune to other jobs on the cores."""
    with torch_threads(1):
        yield


def assert_same_tree(got, want, rel: float = 1e-12, path: str = ""):
    """Nested dicts/lists equal, floats to ``rel``: two code paths that must give the same answer
    can round differently in the last bits (BLAS kernels differ by CPU)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (path, got, want)
        for key in want:
            assert_same_tree(got[key], want[key], rel, f"{path}/{key}")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), (path, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_tree(g, w, rel, f"{path}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, rel=rel, abs=0, nan_ok=True), path
    else:
        assert got == want, (path, got, want)


def at_once(fn, n: int) -> list:
    """Results of ``fn()`` called by ``n`` threads released together (a barrier), in finishing order."""
    import threading

    start = threading.Barrier(n)
    results = []

    def worker():
        start.wait()
        results.append(fn())

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
