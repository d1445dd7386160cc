"""Stage ``embed``: reservoir embeddings of every regular series of a site.

The model (:class:`insarclust.reservoir.ReservoirEmbedder`) is fitted once on
a seeded sample of the site's ``/series/regular`` and saved to
``results/{site}/embed/model.pt``; parts of the site (contiguous, shard-aligned
row ranges) are embedded by separate jobs and gathered into
``features/dyn.h5``. Batches never cross a shard boundary and start at fixed
offsets inside a shard, and the state noise is keyed by the global row, so
``dyn.h5`` is the same for any number of parts. ``dyn+static.h5`` appends the
standardised static columns of ``/points/static``.
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np

from . import h5io
from .logs import Progress, timed
from .reservoir import ReservoirEmbedder

log = logging.getLogger("insarclust.embed")

DAYS_PER_YEAR = 365.25

# config key (embed: section) -> ReservoirEmbedder parameter
_PARAM_KEYS = {
    "representation": "representation", "n_units": "n_units",
    "spectral_radius": "spectral_radius", "leak": "leak", "connectivity": "connectivity",
    "input_scaling": "input_scaling", "noise_level": "noise_level", "washout": "washout",
    "bidirectional": "bidirectional", "n_pca": "n_pca", "ridge": "ridge", "out_dim": "out_dim",
    "scaling": "scaling", "scale_features": "scale_features", "scale_weight": "scale_weight",
    "fit_sample": "fit_sample", "pca_sample": "pca_sample", "batch_size": "batch_size",
    "mode": "mode", "matrix": "matrix", "leak_form": "leak_form", "time_stride": "time_stride",
}


def embedder_from_config(cfg: Mapping, seed: int, device: str = "auto", step_years: float = 1.0
                         ) -> ReservoirEmbedder:
    """A ReservoirEmbedder from the ``embed:`` config section (unknown keys ignored)."""
    params = {p: cfg[k] for k, p in _PARAM_KEYS.items() if k in cfg}
    return ReservoirEmbedder(**params, step=step_years, device=device, seed=int(seed))


def grid_step_years(grid_dates: np.ndarray, path=None) -> float:
    """Step of the regular grid in years (trend features in mm/yr need it)."""
    steps = np.unique(np.diff(np.asarray(grid_dates, dtype=np.int64)))
    if len(steps) != 1 or steps[0] <= 0:
        raise ValueError(f"{path}: /series/grid_dates is not a regular increasing grid "
                         f"(steps {steps[:5].tolist()} days); rebuild shards.h5")
    return float(steps[0]) / DAYS_PER_YEAR


def sample_rows(n_points: int, size: int, seed: int) -> np.ndarray:
    """Seeded uniform sample (sorted) of ``size`` rows out of ``n_points``."""
    size = min(int(size), int(n_points))
    rng = np.random.default_rng([int(seed), 5])
    return np.sort(rng.choice(int(n_points), size, replace=False))


def feature_names(model: ReservoirEmbedder) -> list[str]:
    """Output column names with units: ``emb_000``..., ``log_std_mm``, ``trend_mm_yr``."""
    rename = {"log_std": "log_std_mm", "trend": "trend_mm_yr"}
    return [rename.get(n, n) for n in model.get_feature_names_out()]


def fit_site(shards_path, cfg: Mapping, seed: int, device: str = "auto") -> ReservoirEmbedder:
    """Fit the embedder on a seeded sample of ``/series/regular`` (memory: the sample)."""
    shards = h5io.Shards(shards_path)
    step_years = grid_step_years(shards.grid_dates, shards_path)
    model = embedder_from_config(cfg, seed, device, step_years)
    rows = sample_rows(shards.n_points, model.fit_sample, seed)
    with timed(log, f"reading {len(rows)} sample series"):
        X = shards.read_rows("series/regular", rows)
    with timed(log, f"fitting {model.representation} embedder on {len(rows)} series"):
        model.fit(X, rows=rows)
    log.info("embedding: %d features (%s representation, %d numbers before projection)",
             model.n_features_out_, model.representation, model.repr_dim_)
    if model.proj_components_ is not None:
        log.info("final projection keeps %.1f %% of the representation variance on the sample",
                 100 * float(model.proj_explained_variance_ratio_.sum()))
    return model


def save_model(model: ReservoirEmbedder, path, meta: Mapping | None = None) -> None:
    """Save the fitted model (reservoir, scalers, PCA, projection) atomically to ``path``."""
    import torch

    state = model.to_state()
    state["meta"] = dict(meta or {})
    state["feature_names"] = feature_names(model)
    with h5io.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_model(path, device: str | None = None, batch_size: int | None = None) -> ReservoirEmbedder:
    """Load a model saved by :func:`save_model`; optionally change device and batch size."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    overrides = {}
    if device is not None:
        overrides["device"] = device
    if batch_size is not None:
        overrides["batch_size"] = int(batch_size)
    return ReservoirEmbedder.from_state(state, **overrides)


def part_range(offsets: Sequence[int], part: int, n_parts: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of part ``part`` (1-based) of ``n_parts``: whole shards, contiguous.

    Part boundaries are the shard offsets closest to equal row counts; with
    more parts than shards some parts are empty.
    """
    if not 1 <= part <= n_parts:
        raise ValueError(f"part {part} out of 1..{n_parts}")
    offsets = np.asarray(offsets, dtype=np.int64)
    n = int(offsets[-1])
    targets = n * np.arange(n_parts + 1) / n_parts
    cuts = [int(offsets[np.argmin(np.abs(offsets - x))]) for x in targets]
    cuts = np.maximum.accumulate(cuts)
    cuts[0], cuts[-1] = 0, n
    return int(cuts[part - 1]), int(cuts[part])


def embed_range(shards_path, model: ReservoirEmbedder, start: int, stop: int, out_path,
                attrs: Mapping | None = None) -> None:
    """Embed rows ``[start, stop)`` into ``out_path`` (``/X`` of stop - start rows; attrs start/stop).

    Batches of ``model.batch_size`` rows begin at every shard start, so a row is
    always embedded in the same batch whatever range it is part of.
    """
    shards = h5io.Shards(shards_path)
    names = feature_names(model)
    meta = {"start": int(start), "stop": int(stop), "n_points": shards.n_points, **(attrs or {})}
    progress = Progress(log, stop - start, "series embedded")
    with h5io.FeatureWriter(out_path, stop - start, names, attrs=meta) as writer:
        if stop > start:
            for a, b, block in shards.iter_blocks("series/regular", start, stop,
                                                  block_rows=int(model.batch_size)):
                writer.write(a - start, model.transform(block, rows=np.arange(a, b)))
                progress.update(b - a)


def embed_part(shards_path, model_path, part: int, n_parts: int, out_path,
               device: str | None = None) -> tuple[int, int]:
    """Embed part ``part`` of ``n_parts`` of a site; returns its row range."""
    shards = h5io.Shards(shards_path)
    model = load_model(model_path, device=device)
    step_years = grid_step_years(shards.grid_dates, shards_path)
    if not np.isclose(step_years, model.step, rtol=1e-9):
        raise ValueError(f"{shards_path}: grid step {step_years * DAYS_PER_YEAR:g} days differs from the "
                         f"{model.step * DAYS_PER_YEAR:g} days of the model {model_path}; embeddings would "
                         "not be comparable. Use the same shards.grid_step_days or unset embed.reference_site")
    start, stop = part_range(shards.offsets, part, n_parts)
    log.info("part %d of %d: rows %d:%d of %d", part, n_parts, start, stop, shards.n_points)
    embed_range(shards_path, model, start, stop, out_path,
                attrs={"part": int(part), "n_parts": int(n_parts)})
    return start, stop


def gather_parts(part_paths: Sequence, out_path, block_rows: int = 65536) -> None:
    """Concatenate part files (any order given) into one feature file; checks they tile 0..N."""
    parts = sorted((h5io.Features(p) for p in part_paths), key=lambda f: f.attrs["start"])
    if not parts:
        raise ValueError("no embedding parts to gather")
    n_points = int(parts[0].attrs["n_points"])
    names = parts[0].names
    expected = 0
    for f in parts:
        if f.names != names:
            raise ValueError(f"{f.path}: feature names differ from {parts[0].path}; "
                             "parts come from different models, re-run the embed jobs")
        if int(f.attrs["start"]) != expected or int(f.attrs["n_points"]) != n_points:
            raise ValueError(f"{f.path}: rows {f.attrs['start']}:{f.attrs['stop']} do not follow "
                             f"row {expected} of {n_points}; parts are missing or from another run")
        expected = int(f.attrs["stop"])
    if expected != n_points:
        raise ValueError(f"parts end at row {expected}, the site has {n_points}; a part is missing")
    progress = Progress(log, n_points, "rows gathered")
    with h5io.FeatureWriter(out_path, n_points, names) as writer:
        for f in parts:
            offset = int(f.attrs["start"])
            for a, b, X in f.iter_blocks(block_rows):
                writer.write(offset + a, X)
                progress.update(b - a)


def static_weights(names: Sequence[str], static_weight) -> np.ndarray:
    """Weight per static column: one number for all, or a mapping name -> weight (default 1)."""
    if isinstance(static_weight, Mapping):
        unknown = set(static_weight) - set(names)
        if unknown:
            raise ValueError(f"embed.static_weight names unknown static columns {sorted(unknown)}; "
                             f"this site has {list(names)}")
        return np.array([float(static_weight.get(n, 1.0)) for n in names])
    return np.full(len(names), float(static_weight))


def write_dyn_static(dyn_path, shards_path, out_path, static_weight=1.0,
                     block_rows: int = 65536) -> None:
    """``dyn`` + standardised static columns (times their weights) -> ``out_path``.

    Two streamed passes over ``/points/static``: mean/std (float64, NaN
    skipped), then write. Missing static values become 0 (the column mean);
    constant columns become 0.
    """
    dyn = h5io.Features(dyn_path)
    shards = h5io.Shards(shards_path)
    if dyn.n_rows != shards.n_points:
        raise ValueError(f"{dyn_path} has {dyn.n_rows} rows, {shards_path} {shards.n_points}; "
                         "re-run the embed stage for this site")
    names = list(shards.static_names)
    weights = static_weights(names, static_weight)
    S = len(names)
    count = np.zeros(S)
    total = np.zeros(S)
    total_sq = np.zeros(S)
    for _, _, block in shards.iter_blocks("points/static", block_rows=block_rows):
        block = block.astype(np.float64).reshape(len(block), S)
        ok = np.isfinite(block)
        count += ok.sum(0)
        total += np.where(ok, block, 0).sum(0)
    mean = np.divide(total, count, out=np.zeros(S), where=count > 0)
    for _, _, block in shards.iter_blocks("points/static", block_rows=block_rows):
        block = block.astype(np.float64).reshape(len(block), S)
        ok = np.isfinite(block)
        total_sq += np.where(ok, (block - mean) ** 2, 0).sum(0)
    std = np.sqrt(np.divide(total_sq, count, out=np.zeros(S), where=count > 0))
    scale = np.where(std > 0, weights / np.where(std > 0, std, 1.0), 0.0)
    out_names = list(dyn.names) + [f"static_{n}" for n in names]
    attrs = {"static_weight": weights.tolist(), "static_mean": mean.tolist(), "static_std": std.tolist()}
    progress = Progress(log, dyn.n_rows, "rows with static columns")
    with h5io.FeatureWriter(out_path, dyn.n_rows, out_names, attrs=attrs) as writer:
        for a, b, X in dyn.iter_blocks(block_rows):
            st = shards.read("points/static", a, b).astype(np.float64).reshape(b - a, S)
            st = np.where(np.isfinite(st), (st - mean) * scale, 0.0)
            writer.write(a, np.concatenate([X, st.astype(np.float32)], axis=1))
            progress.update(b - a)
