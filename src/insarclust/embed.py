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

import hashlib
import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import h5io
from .config import build_stage, unnamed_static_weight
from .dates import DAYS_PER_YEAR
from .device import resolve_device
from .batches import require_finite, sample_rows
from .logs import Progress, timed
from .reservoir import ReservoirEmbedder
from .threads import side_by_side

log = logging.getLogger("insarclust.embed")


def embedder_from_config(cfg: Mapping, seed: int, device: str = "auto", step_years: float = 1.0
                         ) -> ReservoirEmbedder:
    """A ReservoirEmbedder from the ``embed:`` config section (keys of other rules ignored)."""
    return build_stage("embed", cfg, step=step_years, device=device, seed=int(seed))


def grid_step_years(grid_dates: np.ndarray, path=None) -> float:
    """Step of the regular grid in years (trend features in mm/yr need it)."""
    steps = np.unique(np.diff(np.asarray(grid_dates, dtype=np.int64)))
    if len(steps) != 1 or steps[0] <= 0:
        raise ValueError(f"{path}: /series/grid_dates is not a regular increasing grid "
                         f"(steps {steps[:5].tolist()} days); rebuild shards.h5")
    return float(steps[0]) / DAYS_PER_YEAR


def feature_names(model: ReservoirEmbedder, components: Sequence[str] | None = None) -> list[str]:
    """Output column names with units: ``emb_000``..., ``log_std_mm``, ``trend_mm_yr``; with several
    components (e.g. up, east) one pair per component: ``log_std_mm_up``, ``trend_mm_yr_east``."""
    import re

    units = {"log_std": "log_std_mm", "trend": "trend_mm_yr"}
    out = []
    for name in model.get_feature_names_out():
        m = re.fullmatch(r"(log_std|trend)(?:_(\d+))?", name)
        if not m:
            out.append(name)
        elif m.group(2) is None:
            out.append(units[m.group(1)])
        else:
            v = int(m.group(2))
            tag = components[v] if components and v < len(components) else str(v)
            out.append(f"{units[m.group(1)]}_{tag}")
    return out


def series_blocks(shards: h5io.Shards, start: int, stop: int, block_rows: int):
    """``(a, b, X)`` blocks of the regular series the embedding reads: ``(n, G)``, or ``(n, G, V)``
    for a site with several components (vertical and east-west of a decomposed pair)."""
    for a, b, block in shards.iter_blocks("series/regular", start, stop, block_rows=block_rows):
        if len(shards.components) > 1:
            block = np.stack([block] + [shards.read(shards.component_dataset(c), a, b)
                                        for c in shards.components[1:]], axis=-1)
        yield a, b, block


def fit_site(shards_path, cfg: Mapping, seed: int, device: str = "auto") -> ReservoirEmbedder:
    """Fit the embedder on a seeded sample of ``/series/regular`` (memory: the sample)."""
    shards = h5io.Shards(shards_path)
    step_years = grid_step_years(shards.grid_dates, shards_path)
    model = embedder_from_config(cfg, seed, device, step_years)
    rows = sample_rows(shards.n_points, model.fit_sample, [int(seed), 5])
    with timed(log, f"reading {len(rows)} sample series"):
        X = shards.read_components(rows=rows)   # (n, G), or (n, G, V) with several components
    with timed(log, f"fitting {model.representation} embedder on {len(rows)} series"):
        model.fit(X, rows=rows)
    log.info("embedding: %d features (%s representation, %d numbers before projection)",
             model.n_features_out_, model.representation, model.repr_dim_)
    kept = None if model.proj_components_ is None else model.proj_components_.shape[0]
    if kept is not None and model.out_dim is not None and kept < int(model.out_dim):
        log.warning("embed.out_dim %d reduced to %d: the %s representation has %d numbers and the fit "
                    "sample %d series", int(model.out_dim), kept, model.representation, model.repr_dim_,
                    len(rows))
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

    import pickle

    from .errors import InputError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as err:
        # torch names neither the file nor the rule that writes it
        raise InputError(f"cannot be read as an embedding model ({str(err).splitlines()[0]}): the file is "
                         "damaged or incomplete, e.g. cut short by an interrupted copy", file=str(path),
                         fix=f"delete {path} and rerun the workflow, whose embed_fit rule rebuilds it") from err
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


def embedded_blocks(model: ReservoirEmbedder, blocks, workers: int = 1):
    """``(a, b, features)`` of each ``(a, b, X)`` block, in order.

    On CPU with ``workers`` > 1, that many threads embed whole blocks, torch
    single-threaded in each (:func:`insarclust.threads.side_by_side`: on 2
    cores ~20 % faster than two torch threads on one batch when quiet, 5-9
    times faster with one core busy, docs/perf/embed.md). A block gets the
    bits of a one-thread run, which are those of a two-thread run
    (tests/test_reservoir.py).
    """
    if resolve_device(model.device) != "cpu":
        workers = 1

    def embedded(block):
        a, b, X = block
        return a, b, model.transform(X, rows=np.arange(a, b))

    yield from side_by_side(embedded, blocks, workers, name="embed")


def embed_range(shards_path, model: ReservoirEmbedder, start: int, stop: int, out_path,
                attrs: Mapping | None = None, workers: int | None = None) -> None:
    """Embed rows ``[start, stop)`` into ``out_path`` (``/X`` of stop - start rows; attrs start/stop).

    Batches of ``model.batch_size`` rows begin at every shard start, so a row is
    always embedded in the same batch whatever range it is part of. ``workers``
    (default: torch's thread count) threads embed batches side by side on CPU.
    """
    import torch

    workers = torch.get_num_threads() if workers is None else int(workers)
    shards = h5io.Shards(shards_path)
    n_vars = max(len(shards.components), 1)
    if int(getattr(model, "n_features_in_", n_vars) or n_vars) != n_vars:
        raise ValueError(f"{shards_path} has {n_vars} displacement component(s) {shards.components}, the "
                         f"model {model.n_features_in_}: a model fitted on another kind of site (e.g. "
                         "embed.reference_site on a line-of-sight site for a decomposed pair) cannot "
                         "embed it; unset embed.reference_site")
    names = feature_names(model, shards.components)
    meta = {"start": int(start), "stop": int(stop), "n_points": shards.n_points, **(attrs or {})}
    progress = Progress(log, stop - start, "series embedded")
    with h5io.FeatureWriter(out_path, stop - start, names, attrs=meta) as writer:
        if stop > start:
            blocks = series_blocks(shards, start, stop, int(model.batch_size))
            for a, b, features in embedded_blocks(model, blocks, workers):
                writer.write(a - start, features)
                progress.update(b - a)


def embed_part(shards_path, model_path, part: int, n_parts: int, out_path,
               device: str | None = None, batch_size: int | None = None) -> tuple[int, int]:
    """Embed part ``part`` of ``n_parts`` of a site; returns its row range.

    ``device`` and ``batch_size`` override the model's: they change speed and
    memory, not the embedding (beyond float rounding).
    """
    shards = h5io.Shards(shards_path)
    model = load_model(model_path, device=device, batch_size=batch_size)
    step_years = grid_step_years(shards.grid_dates, shards_path)
    if not np.isclose(step_years, model.step, rtol=1e-9):
        raise ValueError(f"{shards_path}: grid step {step_years * DAYS_PER_YEAR:g} days differs from the "
                         f"{model.step * DAYS_PER_YEAR:g} days of the model {model_path}; embeddings would "
                         "not be comparable. Use the same shards.grid_step_days or unset embed.reference_site")
    start, stop = part_range(shards.offsets, part, n_parts)
    log.info("part %d of %d: rows %d:%d of %d", part, n_parts, start, stop, shards.n_points)
    embed_range(shards_path, model, start, stop, out_path,
                attrs={"part": int(part), "n_parts": int(n_parts), **part_origin(shards, model_path)})
    return start, stop


def part_origin(shards: h5io.Shards, model_path) -> dict:
    """What a part was made from (model file digest, the shards' input digest and resampling):
    parts gathered from different models or builds of a site would mix embeddings unseen."""
    return {"model_sha256": hashlib.sha256(Path(model_path).read_bytes()).hexdigest(),
            "shards_source_sha256": str(shards.attrs.get("source_sha256", "")),
            "shards_regularization": str(shards.attrs.get("regularization", ""))}


ORIGIN_KEYS = ("model_sha256", "shards_source_sha256", "shards_regularization")


def gather_parts(part_paths: Sequence, out_path, block_rows: int = 65536, attrs: Mapping | None = None) -> None:
    """Concatenate part files (any order given) into one feature file; checks they tile 0..N.

    ``attrs`` are stored with ``n_parts`` (the workflow records the embedding settings there).
    """
    # by (start, stop): an empty part shares its start with the next one
    parts = sorted((h5io.Features(p) for p in part_paths),
                   key=lambda f: (int(f.attrs["start"]), int(f.attrs["stop"])))
    if not parts:
        raise ValueError("no embedding parts to gather")
    n_points = int(parts[0].attrs["n_points"])
    names = parts[0].names
    expected = 0
    origin = {k: parts[0].attrs.get(k) for k in ORIGIN_KEYS}
    for f in parts:
        if f.names != names:
            raise ValueError(f"{f.path}: feature names differ from {parts[0].path}; "
                             "parts come from different models, re-run the embed jobs")
        differs = [k for k in ORIGIN_KEYS if f.attrs.get(k) != origin[k]]
        if differs:
            raise ValueError(f"{f.path}: {differs[0]} differs from {parts[0].path}; the parts were embedded "
                             "with different models or from different builds of shards.h5, re-run the "
                             "embed jobs (snakemake --forcerun embed_part)")
        if int(f.attrs["start"]) != expected or int(f.attrs["n_points"]) != n_points:
            raise ValueError(f"{f.path}: rows {f.attrs['start']}:{f.attrs['stop']} do not follow "
                             f"row {expected} of {n_points}; parts are missing or from another run")
        expected = int(f.attrs["stop"])
    if expected != n_points:
        raise ValueError(f"parts end at row {expected}, the site has {n_points}; a part is missing")
    progress = Progress(log, n_points, "rows gathered")
    with h5io.FeatureWriter(out_path, n_points, names, attrs={**(attrs or {}), "n_parts": len(parts)}) as writer:
        for f in parts:
            offset = int(f.attrs["start"])
            for a, b, X in f.iter_blocks(block_rows):
                writer.write(offset + a, X)
                progress.update(b - a)


def static_weights(names: Sequence[str], static_weight, geometry: Sequence[str] = ()) -> np.ndarray:
    """Weight per static column: one number for all, or a mapping name -> weight (default 1).

    ``geometry`` columns (the LOS vector) weigh 0 unless the mapping names them: they
    describe the acquisition, not the ground. Names a site lacks are ignored (one
    config serves sites of several formats), with a log line.
    """
    if isinstance(static_weight, Mapping):
        absent = sorted(set(static_weight) - set(names))
        if absent:
            log.info("embed.static_weight: no static column %s on this site (it has %s)", absent, list(names))
        return np.array([float(static_weight.get(n, unnamed_static_weight(n, geometry))) for n in names])
    return np.array([0.0 if n in geometry else float(static_weight) for n in names])


def write_dyn_static(dyn_path, shards_path, out_path, static_weight=1.0,
                     block_rows: int = 65536) -> None:
    """``dyn`` + standardised static columns (times their weights) -> ``out_path``.

    Three streamed passes over ``/points/static``: mean, then std (float64,
    NaN skipped), then write. Missing static values become 0 (the column
    mean); constant and all-missing columns become 0 (logged).
    """
    dyn = h5io.Features(dyn_path)
    shards = h5io.Shards(shards_path)
    if dyn.n_rows != shards.n_points:
        raise ValueError(f"{dyn_path} has {dyn.n_rows} rows, {shards_path} {shards.n_points}; "
                         "re-run the embed stage for this site")
    names = list(shards.static_names)
    geometry = list(shards.attrs.get("geometry_columns") or [])
    weights = static_weights(names, static_weight, geometry)
    # geometry columns at weight 0 are left out rather than written as zeros
    keep = np.array([not (n in geometry and w == 0) for n, w in zip(names, weights)], dtype=bool)
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
    for name, n_ok, s in zip(names, count, std):
        if n_ok == 0:
            log.warning("static column '%s' has no value at any point of %s: it enters dyn+static as zeros",
                        name, shards_path)
        elif s == 0:
            log.info("static column '%s' is constant: it enters dyn+static as zeros", name)
    scale = np.where(std > 0, weights / np.where(std > 0, std, 1.0), 0.0)
    out_names = list(dyn.names) + [f"static_{n}" for n, k in zip(names, keep) if k]
    attrs = {"static_weight": weights[keep].tolist(), "static_mean": mean[keep].tolist(),
             "static_std": std[keep].tolist()}
    progress = Progress(log, dyn.n_rows, "rows with static columns")
    with h5io.FeatureWriter(out_path, dyn.n_rows, out_names, attrs=attrs) as writer:
        for a, b, X in dyn.iter_blocks(block_rows):
            st = shards.read("points/static", a, b).astype(np.float64).reshape(b - a, S)
            st = np.where(np.isfinite(st), (st - mean) * scale, 0.0)[:, keep]
            # a NaN passed on was reported later as a fault of dyn+static.h5, whose rerun cannot mend it
            writer.write(a, np.concatenate([require_finite(X, a, dyn), st.astype(np.float32)], axis=1))
            progress.update(b - a)
