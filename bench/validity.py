"""Validity of the clustering methods against known regimes, and the embedding's worth.

Six sub-commands (results as JSON lines, one record per score; ``report``
turns them into the tables of docs/validity.md):

    python bench/validity.py sites  [--seeds 0 1 2] [--sites ...] [--methods ...] [--k config true auto]
    python bench/validity.py embed  [--candidates shipped reference ...] [--seeds 0 1] [--max-points 4000]
    python bench/validity.py public [--candidates shipped reference ...] [--seeds 0 1 2]
    python bench/validity.py speed  [--candidates ...] [--threads 2] [--T 272]
    python bench/validity.py report [--out bench/validity-results]
    python bench/validity.py compare --tag=-20261130 --against=-20261130-heldout

``sites`` runs what the workflow runs with the shipped ``config/config.yaml``
(``--set embed.mode=reference`` etc. overrides keys), stage by stage through
the library (demo CSV -> shards -> graph -> descriptors -> embed -> static
columns -> smooth -> k-means / peers / DSC), on the demo sites of
``config/sites.tsv`` and on generated variants (:data:`GENERATED`): stronger
atmosphere, many missing epochs, a short and a long archive, a site whose
classes differ mainly in seasonality and one mainly in acceleration. The seed
is the workflow's ``seed``: it draws the synthetic site *and* every random
choice of the methods, so the spread over seeds is the spread over sites and
runs. ARI/NMI are against the finest truth (``class`` where the generator
writes one, else ``regime``), label_match against the regime vocabulary.
k: ``config`` (``kmeans.k``), ``true`` (the number of classes), ``auto``
(``kmeans.k_range`` by silhouette). DSC has its own ``dsc.k`` and no auto.

``embed`` scores the embedding alone for candidate dynamics
(:data:`CANDIDATES`) on the same sites: batched k-means (the workflow's) on
``dyn`` at the true k, against the same k-means on the raw series (both
z-scorings). ``public`` scores candidates on UCR/UEA sets shipped in the
``aeon`` wheel (``pip install --no-deps aeon==1.6.0``; only data files are
read) with scikit-learn k-means at k = classes; the InSAR time step
(``time_stride``) is left out there (those series have no 6-day grid).
``speed``: series/s of ``transform`` on synthetic 4.5-year series, best of
``--repeats`` rounds with the candidates interleaved (shared machines).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
DEFAULT_OUT = ROOT / "bench" / "validity-results"

from insarclust.demo import CLASSES, Variant  # noqa: E402


@dataclass(frozen=True)
class SiteSpec:
    """A generated site: demo preset, input format and what departs from the demo."""

    preset: str
    fmt: str
    n_points: int
    years: float = 4.5
    variant: Variant = field(default_factory=Variant)

    @property
    def n_classes(self) -> int:
        return len(CLASSES[self.variant.mix])


# Different sizes, formats, noise and archive lengths; names are site names (they seed the generator).
GENERATED = {
    "gen-atmosphere": SiteSpec("mainland", "egms", 8000, variant=Variant(noise_mm=3.0, atmo_mm=6.0)),
    "gen-gaps": SiteSpec("arctic", "svalbard", 6000, variant=Variant(missing=(0.2, 0.4))),
    "gen-short": SiteSpec("mainland", "ngu", 5000, years=2.5),
    "gen-long": SiteSpec("mainland", "egms", 10000, years=7.0),
    "gen-seasonality": SiteSpec("mainland", "ngu", 6000, variant=Variant(mix="seasonality")),
    "gen-acceleration": SiteSpec("arctic", "ngu", 6000, variant=Variant(mix="acceleration")),
    # added 2026-12-01 (records before hold the eight sites above and the demo's)
    "gen-density": SiteSpec("mainland", "ngu", 6000, variant=Variant(sparse=0.3)),
}

# Candidate embeddings: overrides of the embed: section of config/config.yaml ("shipped").
# "previous" is the default shipped before this comparison; "reference" the same
# with the reference package's dynamics (mode: reference); "reference-5700" the
# package's own set-up (no final projection, no scale columns).
PREVIOUS = {"mode": "default", "leak_form": "scaled", "n_units": 450, "n_pca": 75, "bidirectional": True,
            "time_stride": 1, "leak": 0.6, "spectral_radius": 0.59, "input_scaling": 0.1, "noise_level": 0.01,
            "out_dim": 64, "representation": "reservoir", "scaling": "series", "scale_features": True,
            "scale_weight": 1.0}
REFERENCE = {**PREVIOUS, "mode": "reference"}
CANDIDATES = {
    "shipped": {},
    "previous": PREVIOUS,
    "reference": REFERENCE,
    "reference-5700": {**REFERENCE, "out_dim": None, "scale_features": False},
}
# small, strided reservoirs with the reference's (unscaled) leak, one per representation ...
SMALL = {**PREVIOUS, "leak_form": "unscaled", "n_units": 100, "time_stride": 4, "input_scaling": 0.3}
for _rep in ("reservoir", "output", "mean", "last"):
    CANDIDATES[f"{_rep}-100"] = {**SMALL, "representation": _rep}
# ... and variants of the reservoir-model space one at a time
RES = CANDIDATES["reservoir-100"]
CANDIDATES.update({
    "reservoir-100-s2": {**RES, "time_stride": 2},
    "reservoir-200-s2": {**RES, "n_units": 200, "time_stride": 2},
    "reservoir-100-pca40": {**RES, "n_pca": 40},
    "reservoir-100-sr0.4": {**RES, "spectral_radius": 0.4},
    "reservoir-100-is0.1": {**RES, "input_scaling": 0.1},
    "reservoir-100-is0.1-s2": {**RES, "input_scaling": 0.1, "time_stride": 2},
    "reservoir-100-is0.1-pca40": {**RES, "input_scaling": 0.1, "n_pca": 40},  # shipped before out_dim 32
    "reservoir-200-is0.1": {**RES, "input_scaling": 0.1, "n_units": 200},
    "reservoir-300-is0.1": {**RES, "input_scaling": 0.1, "n_units": 300},
    "reservoir-100-is0.1-refmode": {**RES, "input_scaling": 0.1, "mode": "reference"},
    "reservoir-100-is0.1-pca40-is0.2": {**RES, "input_scaling": 0.2, "n_pca": 40},
    "reservoir-100-is0.1-pca40-od32": {**RES, "input_scaling": 0.1, "n_pca": 40, "out_dim": 32},  # = shipped
})
# one change each from the shipped setting (input scale, scale columns, noise)
SHIPPED = CANDIDATES["reservoir-100-is0.1-pca40-od32"]
CANDIDATES.update({
    "od32-scaling-global": {**SHIPPED, "scaling": "global"},   # one site-wide mean/std: keeps millimetres
    "od32-scaling-none": {**SHIPPED, "scaling": "none"},
    "od32-no-scale-features": {**SHIPPED, "scale_features": False},
    "od32-noise0": {**SHIPPED, "noise_level": 0.0},
})

PUBLIC_SETS = ["ArrowHead", "OSULeaf", "BasicMotions", "JapaneseVowels_eq", "GunPoint", "ItalyPowerDemand",
               "PickupGestureWiimoteZ_eq"]
METHODS = ["kmeans-dyn", "kmeans-dyn+static", "kmeans-dyn_smoothed", "kmeans-dyn+static_smoothed",
           "pca-kmeans", "raw-kmeans", "raw-kmeans_smoothed", "descriptors-kmeans", "dsc"]


# --------------------------------------------------------------------------- #
# configuration


def load_config(overrides=()) -> dict:
    """config/config.yaml with ``key.sub=value`` overrides (values parsed as YAML)."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for item in overrides:
        key, value = item.split("=", 1)
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = yaml.safe_load(value)
    return cfg


def demo_sites(cfg: dict) -> dict[str, SiteSpec]:
    """The demo rows of the site table, as the workflow generates them."""
    table = pd.read_csv(ROOT / cfg["sites"], sep="\t", dtype=str, comment="#")
    demo = cfg.get("demo", {})
    return {row.site: SiteSpec(row.source.split(":", 1)[1], row.format, int(demo.get("n_points", 20000)),
                               float(demo.get("years", 4.5)))
            for row in table.itertuples() if row.source.startswith("demo:")}


def all_sites(cfg: dict, scale: float = 1.0) -> dict[str, SiteSpec]:
    """Demo and generated sites; ``scale`` shrinks every site (quick checks)."""
    sites = {**demo_sites(cfg), **GENERATED}
    if scale != 1.0:
        from dataclasses import replace

        sites = {k: replace(v, n_points=max(200, int(v.n_points * scale))) for k, v in sites.items()}
    return sites


def candidate_overrides(candidate: str) -> dict:
    """A candidate's overrides of the shipped ``embed:`` settings (also for bench/embed.py and
    bench/embed_quality.py)."""
    if candidate not in CANDIDATES:
        raise SystemExit(f"unknown candidate {candidate!r}; known: {', '.join(CANDIDATES)}")
    return dict(CANDIDATES[candidate])


def embed_params(candidate: str, cfg: dict) -> dict:
    """The embed: section of a candidate (the shipped one plus the candidate's overrides)."""
    return {**cfg["embed"], **candidate_overrides(candidate)}


# --------------------------------------------------------------------------- #
# one site through the stages


STAGE_CODE = ("demo", "readers", "formats", "shards", "regularize", "ordering", "coords", "spans",
              "descriptors", "h5io")
GRAPH_CODE = ("graph", "geodesy", "h5io")
# the code behind features/dyn.h5 and dyn+static.h5 (embedding, static columns), and behind the
# smoothed files (graph smoothing)
EMBED_CODE = ("embed", "reservoir", "batches", "threads")
SMOOTH_CODE = ("smooth", "sampling", "threads")


def _short_hash(obj, n: int = 8) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def features_dir(site_dir: Path, embed_cfg: dict) -> Path:
    """The folder of a site's cached embedding for an ``embed:`` section and today's embedding code."""
    return Path(site_dir) / f"features-{_short_hash({'embed': embed_cfg, 'code': code_digest(EMBED_CODE)}, 12)}"


def code_digest(modules) -> str:
    """sha1 of the library modules ``modules`` (names under src/insarclust)."""
    return hashlib.sha1(b"".join((ROOT / "src" / "insarclust" / f"{m}.py").read_bytes() for m in modules)).hexdigest()


def prepare_site(name: str, spec: SiteSpec, seed: int, cfg: dict, workdir: Path) -> dict:
    """Demo CSV, truth, shards.h5, graph.h5, descriptors.h5 of one site and seed (cached in workdir)."""
    from insarclust.demo import write_demo
    from insarclust.descriptors import write_descriptors
    from insarclust.formats import Format
    from insarclust.graph import build_graph_file
    from insarclust.interpret import fit_settings
    from insarclust.config import build_stage
    from insarclust.shards import build_shards

    formats = yaml.safe_load((ROOT / cfg["formats"]).read_text())
    fmt = Format.from_dict(spec.fmt, formats[spec.fmt])
    # cached per site, size, seed, what the site's spec generates (preset, archive length, variant),
    # the settings of the stages before embed, the input format (which columns are static or
    # geometry) and the code of those stages; the graph apart (its settings and code), so that
    # a graph study reuses the site and its embedding
    key = {**{k: cfg.get(k) for k in ("demo", "shards", "interpret")},
           "spec": dataclasses.asdict(spec), "format": formats[spec.fmt], "code": code_digest(STAGE_CODE)}
    d = workdir / f"{name}.n{spec.n_points}.seed{seed}.{_short_hash(key)}"
    d.mkdir(parents=True, exist_ok=True)
    graph_key = {"graph": cfg["graph"], "code": code_digest(GRAPH_CODE)}
    paths = {"dir": d, "csv": d / "site.csv.gz", "truth": d / "truth.csv", "shards": d / "shards.h5",
             "graph": d / f"graph-{_short_hash(graph_key)}.h5", "descriptors": d / "descriptors.h5"}
    demo = cfg.get("demo", {})
    if not paths["truth"].exists():
        write_demo(paths["csv"], paths["truth"], name, spec.preset, fmt, n_points=spec.n_points,
                   start=demo.get("start", "2018-06-01"), years=spec.years, seed=seed, variant=spec.variant)
    if not paths["shards"].exists():
        build_shards([paths["csv"]], fmt, paths["shards"], name, build_stage("shards", cfg["shards"], seed=seed))
    if not paths["graph"].exists():
        build_graph_file(paths["shards"], paths["graph"], cfg["graph"], workers=2)
    if not paths["descriptors"].exists():
        write_descriptors(paths["shards"], paths["descriptors"], **fit_settings(cfg.get("interpret", {})))
    return paths


def truth_of(paths: dict) -> tuple[np.ndarray, np.ndarray]:
    """(class, regime) of every point in shards.h5 row order."""
    from insarclust import h5io

    truth = pd.read_csv(paths["truth"], dtype=str).set_index("pid")
    truth = truth.loc[h5io.Shards(paths["shards"]).pids()]
    cls = truth["class"] if "class" in truth else truth["regime"]
    return cls.to_numpy(), truth["regime"].to_numpy()


def embed_site(paths: dict, embed_cfg: dict, cfg: dict, seed: int, threads: int) -> dict:
    """features/dyn.h5, dyn+static.h5 and both smoothed files, as the workflow writes them."""
    import torch

    from insarclust import embed, h5io
    from insarclust.smooth import smooth_feature_file

    torch.set_num_threads(threads)
    feats = features_dir(paths["dir"], embed_cfg)
    feats.mkdir(exist_ok=True)
    # the smoothed files per graph (its file name holds its key) and smoothing settings
    smoothed = _short_hash({"smooth": cfg["smooth"], "graph": paths["graph"].name, "code": code_digest(SMOOTH_CODE)})
    out = {"dyn": feats / "dyn.h5", "dyn+static": feats / "dyn+static.h5",
           "dyn_smoothed": feats / f"dyn_smoothed-{smoothed}.h5",
           "dyn+static_smoothed": feats / f"dyn+static_smoothed-{smoothed}.h5"}
    timing = feats / "timing.json"
    if not timing.exists():
        t0 = time.perf_counter()
        model = embed.fit_site(paths["shards"], embed_cfg, seed=seed, device="cpu")
        t1 = time.perf_counter()
        n = h5io.Shards(paths["shards"]).n_points
        embed.embed_range(paths["shards"], model, 0, n, out["dyn"])
        t2 = time.perf_counter()
        embed.write_dyn_static(out["dyn"], paths["shards"], out["dyn+static"],
                               static_weight=embed_cfg.get("static_weight", 1.0))
        timing.write_text(json.dumps({"fit_s": t1 - t0, "embed_s": t2 - t1, "n_points": n}))
    for base in ("dyn", "dyn+static"):
        if not out[f"{base}_smoothed"].exists():   # written atomically
            smooth_feature_file(out[base], paths["graph"], out[f"{base}_smoothed"], cfg["smooth"], seed=seed,
                                n_threads=threads)
    return {**out, "timing": json.loads(timing.read_text())}


def kmeans_cfg_for(cfg: dict, k_setting: str, n_classes: int) -> dict:
    kcfg = dict(cfg["kmeans"])
    kcfg["seed_stability"] = False  # a second fit per method; not a validity figure
    if k_setting == "true":
        kcfg["k"] = int(n_classes)
    elif k_setting == "auto":
        kcfg["k"] = "auto"
    return kcfg


def run_method(method: str, paths: dict, features: dict | None, cfg: dict, kcfg: dict, seed: int,
               threads: int) -> tuple[np.ndarray, dict]:
    """Labels (N,) and the evaluation record of one method, through the library calls of its rules
    (the method's fit, then ``evaluate``)."""
    from insarclust import kmeans
    from insarclust.baselines import fit_baseline
    from insarclust.evaluate import evaluate_labelling

    if method.startswith("kmeans-"):
        fit = kmeans.fit_stage(features[method[len("kmeans-"):]], paths["shards"], cfg=kcfg, seed=seed)
    elif method == "dsc":
        import torch

        from insarclust.dsc.stage import fit_stage

        torch.set_num_threads(threads)
        fit, _ = fit_stage(paths["shards"], features["dyn"], cfg=cfg["dsc"], seed=seed, device="cpu",
                           silhouette_sample=int(kcfg.get("silhouette_sample", 10000)))
    else:
        fit = fit_baseline(method, paths["shards"], paths["descriptors"], kmeans_cfg=kcfg,
                           baselines_cfg=cfg.get("baselines", {}), seed=seed, graph_path=paths["graph"],
                           smooth_cfg=cfg["smooth"])
    result = evaluate_labelling(fit, graph_path=paths["graph"], shards_path=paths["shards"],
                                descriptors_path=paths["descriptors"], truth_path=paths["truth"],
                                thresholds=cfg.get("interpret", {}))
    return fit.labels, result


def scores(labels: np.ndarray, cls: np.ndarray, result: dict) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    m = result["metrics"]
    return {"k": int(result["k"]), "ari": float(adjusted_rand_score(cls, labels)),
            "nmi": float(normalized_mutual_info_score(cls, labels)), "label_match": float(m["label_match"]),
            "ari_regime": float(m["ari"]), "spatial_coherence": float(m["spatial_coherence"])}


def cmd_sites(args) -> None:
    cfg = load_config(args.set)
    sites = all_sites(cfg, args.scale)
    chosen = args.sites or list(sites)
    out = Path(args.out) / f"sites{args.tag}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(args.workdir)
    for seed in args.seeds:
        cfg_seed = {**cfg, "seed": seed}
        for name in chosen:
            spec = sites[name]
            t0 = time.perf_counter()
            paths = prepare_site(name, spec, seed, cfg_seed, work)
            cls, _ = truth_of(paths)
            features = None
            if any(m.startswith("kmeans-") or m == "dsc" for m in args.methods):
                features = embed_site(paths, cfg["embed"], cfg_seed, seed, args.threads)
                timing = features["timing"]
                print(f"{name} seed {seed}: {timing['n_points']} points embedded at "
                      f"{timing['n_points'] / timing['embed_s']:.0f} series/s", flush=True)
            for method in args.methods:
                for k_setting in args.k:
                    if method == "dsc" and k_setting != "config":
                        continue
                    kcfg = kmeans_cfg_for(cfg_seed, k_setting, spec.n_classes)
                    t1 = time.perf_counter()
                    labels, result = run_method(method, paths, features, cfg_seed, kcfg, seed, args.threads)
                    rec = {"site": name, "seed": seed, "method": method, "k_setting": k_setting,
                           "n_classes": spec.n_classes, "n_points": int(len(labels)),
                           **scores(labels, cls, result), "seconds": round(time.perf_counter() - t1, 2)}
                    if "k_selection" in result:  # the curve auto chose from (other criteria offline)
                        sel = result["k_selection"]
                        rec["k_selection"] = {"k": sel["k"], "silhouette": sel["silhouette"],
                                              "inertia_train": sel["inertia_train"]}
                    if features is not None:
                        rec["embed_series_per_s"] = features["timing"]["n_points"] / features["timing"]["embed_s"]
                    with out.open("a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    print(f"  {method:28s} k={k_setting:6s} ({rec['k']}) ARI {rec['ari']:.3f} NMI {rec['nmi']:.3f} "
                          f"label_match {rec['label_match']:.3f}  {rec['seconds']:.0f} s", flush=True)
            print(f"{name} seed {seed} done in {time.perf_counter() - t0:.0f} s", flush=True)


# --------------------------------------------------------------------------- #
# the embedding alone: candidates on the generated and demo sites


def subsample(n: int, max_points: int | None, seed: int) -> np.ndarray:
    if not max_points or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 17]).choice(n, max_points, replace=False))


def batched_kmeans_ari(F: np.ndarray, cls: np.ndarray, k: int, cfg: dict, seed: int) -> float:
    from sklearn.metrics import adjusted_rand_score

    from insarclust import kmeans
    from insarclust.batches import ArraySource

    kcfg = {**cfg["kmeans"], "k": int(k)}
    model, _ = kmeans.fit_from_config(ArraySource(F), kcfg, seed)
    return float(adjusted_rand_score(cls, model.labels_))


def cmd_embed(args) -> None:
    import torch

    from insarclust import embed, h5io
    from insarclust.baselines import zscore_series

    torch.set_num_threads(args.threads)
    cfg = load_config(args.set)
    sites = all_sites(cfg)
    chosen = args.sites or list(sites)
    out = Path(args.out) / f"embed{args.tag}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(args.workdir)
    for seed in args.seeds:
        cfg_seed = {**cfg, "seed": seed}
        for name in chosen:
            spec = sites[name]
            paths = prepare_site(name, spec, seed, cfg_seed, work)
            cls, _ = truth_of(paths)
            shards = h5io.Shards(paths["shards"])
            rows = subsample(shards.n_points, args.max_points, seed)
            X = shards.read_rows("series/regular", rows).astype(np.float64)
            y = cls[rows]
            k = spec.n_classes
            step_years = embed.grid_step_years(shards.grid_dates)
            recs = []
            if args.raw:
                Xe = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
                recs.append(("raw-epoch", batched_kmeans_ari(Xe.astype(np.float32), y, k, cfg, seed), None))
                recs.append(("raw-series", batched_kmeans_ari(zscore_series(X), y, k, cfg, seed), None))
            for cand in args.candidates:
                params = embed_params(cand, cfg)
                model = embed.embedder_from_config(params, seed, "cpu", step_years)
                t0 = time.perf_counter()
                F = model.fit(X, rows=rows).transform(X, rows=rows)
                recs.append((cand, batched_kmeans_ari(F, y, k, cfg, seed), time.perf_counter() - t0))
            for cand, ari, seconds in recs:
                rec = {"site": name, "seed": seed, "candidate": cand, "n_points": int(len(rows)), "k": k,
                       "ari": ari, "seconds": seconds}
                with out.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            print(f"{name} seed {seed}: " + ", ".join(f"{c} {a:.3f}" for c, a, _ in recs), flush=True)


# --------------------------------------------------------------------------- #
# public labelled sets


def cmd_public(args) -> None:
    import torch
    from embed_quality import aeon_data_dir, load_dataset, znorm
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from insarclust import embed

    torch.set_num_threads(args.threads)
    if aeon_data_dir() is None:
        raise SystemExit("aeon is not installed: pip install --no-deps aeon==1.6.0")
    cfg = load_config(args.set)
    out = Path(args.out) / f"public{args.tag}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        X, y = load_dataset(name)
        k = len(np.unique(y))
        line = []
        for seed in args.seeds:
            for cand in (["raw"] if args.raw else []) + list(args.candidates):
                t0 = time.perf_counter()
                if cand == "raw":
                    F = znorm(X).reshape(len(X), -1)
                else:
                    params = {**embed_params(cand, cfg), "time_stride": 1}
                    F = embed.embedder_from_config(params, seed, "cpu", 1.0).fit(X).transform(X)
                labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(F)
                rec = {"dataset": name, "seed": seed, "candidate": cand, "n": int(len(X)), "T": int(X.shape[1]),
                       "V": int(X.shape[2]), "k": k, "ari": float(adjusted_rand_score(y, labels)),
                       "nmi": float(normalized_mutual_info_score(y, labels)),
                       "seconds": round(time.perf_counter() - t0, 2)}
                with out.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                line.append(f"{cand}/{seed} {rec['ari']:.3f}")
        print(f"{name}: " + ", ".join(line), flush=True)


# --------------------------------------------------------------------------- #
# speed


def cmd_speed(args) -> None:
    import torch

    from insarclust import embed

    torch.set_num_threads(args.threads)
    cfg = load_config(args.set)
    rng = np.random.default_rng(0)
    t_yr = np.arange(args.T) * 6 / 365.25
    X = (rng.normal(0, 2, (args.n, args.T)) + rng.uniform(-10, 5, (args.n, 1)) * t_yr
         + rng.uniform(0, 8, (args.n, 1)) * np.sin(2 * np.pi * t_yr)).astype(np.float32)
    models = {}
    for cand in args.candidates:
        params = embed_params(cand, cfg)
        models[cand] = embed.embedder_from_config(params, 0, "cpu", 6 / 365.25).fit(X[: int(params.get("fit_sample", 4096))])
        models[cand].transform(X[:256])  # warm-up
    best = {c: np.inf for c in models}
    for _ in range(args.repeats):
        for cand, model in models.items():
            t0 = time.perf_counter()
            model.transform(X)
            best[cand] = min(best[cand], time.perf_counter() - t0)
    out = Path(args.out) / f"speed{args.tag}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    for cand, seconds in best.items():
        rec = {"candidate": cand, "threads": args.threads, "T": args.T, "n": args.n,
               "series_per_s": args.n / seconds, "features": int(models[cand].n_features_out_)}
        with out.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"{cand:28s} {rec['series_per_s']:8.0f} series/s  ({args.threads} threads, T = {args.T})", flush=True)


# --------------------------------------------------------------------------- #
# tables


def _read(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True) if path.exists() else pd.DataFrame()


def _mean_sd(values: pd.Series) -> str:
    values = values.dropna()
    if len(values) == 0:
        return ""
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def inertia_knee(ks, inertia) -> int:
    """k at the knee of a decreasing inertia curve (Kneedle: farthest below the chord, both axes
    scaled to [0, 1])."""
    ks, inertia = np.asarray(ks, dtype=float), np.asarray(inertia, dtype=float)
    if len(ks) < 3 or inertia[0] == inertia[-1]:
        return int(ks[0])
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    y = (inertia[0] - inertia) / (inertia[0] - inertia[-1])
    return int(ks[int(np.argmax(np.round(y - x, 12)))])


def report_headline(df: pd.DataFrame) -> str:
    """One row per method: ARI on generated and demo sites (mean ± sd over seeds of the
    per-seed mean over sites) at each k setting, NMI and label_match at the true k,
    and how often auto found the true k."""
    settings = [k for k in ("config", "true", "auto") if k in set(df.k_setting)]
    head = ["method"]
    for k in settings:
        head += [f"ARI gen. (k {k})", f"ARI demo (k {k})"]
    head += ["NMI gen. (k true)", "label_match gen. (k true)", "auto: true k found"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    df = df.assign(gen=df.site.str.startswith("gen-"))
    for m in [m for m in METHODS if m in set(df.method)]:
        cells = [m]
        for k in settings:
            part = df[(df.method == m) & (df.k_setting == k)]
            cells += [_mean_sd(part[part.gen].groupby("seed").ari.mean()),
                      _mean_sd(part[~part.gen].groupby("seed").ari.mean())]
        true = df[(df.method == m) & (df.k_setting == "true") & df.gen]
        cells += [_mean_sd(true.groupby("seed").nmi.mean()), _mean_sd(true.groupby("seed").label_match.mean())]
        auto = df[(df.method == m) & (df.k_setting == "auto")]
        cells.append(f"{int((auto.k == auto.n_classes).sum())}/{len(auto)}" if len(auto) else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_sites(df: pd.DataFrame) -> str:
    lines = [report_headline(df)]
    for k_setting in ("config", "true", "auto"):
        part = df[df.k_setting == k_setting]
        if part.empty:
            continue
        sites = list(dict.fromkeys(part.site))
        methods = [m for m in METHODS if m in set(part.method)]
        lines += [f"\n#### ARI at k = {k_setting} (mean ± sd over seeds; columns: sites)\n",
                  "| method | " + " | ".join(sites) + " | mean generated | mean demo |",
                  "|---" * (len(sites) + 3) + "|"]
        for m in methods:
            rows = part[part.method == m]
            cells = [_mean_sd(rows[rows.site == s].ari) for s in sites]
            gen = rows[rows.site.str.startswith("gen-")].groupby("seed").ari.mean()
            demo = rows[~rows.site.str.startswith("gen-")].groupby("seed").ari.mean()
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {_mean_sd(gen)} | {_mean_sd(demo)} |")
        lines += ["", "| method | NMI (all sites) | label_match (all sites) | k chosen (median) |", "|---|---|---|---|"]
        for m in methods:
            rows = part[part.method == m]
            lines.append(f"| {m} | {rows.nmi.mean():.2f} | {rows.label_match.mean():.2f} | {rows.k.median():.0f} |")
        if k_setting == "auto":
            lines += ["", "How often a criterion picks the true k on the same fits (k_range; silhouette is "
                      "what `k: auto` does, the knee of the inertia curve is for comparison):", "",
                      "| method | silhouette (auto) | knee of inertia |", "|---|---|---|"]
            for m in methods:
                rows = part[part.method == m]
                knee = [inertia_knee(r["k"], r["inertia_train"]) for r in rows.k_selection if isinstance(r, dict)]
                hits = sum(int(kn == nc) for kn, nc in zip(knee, rows.n_classes))
                lines.append(f"| {m} | {int((rows.k == rows.n_classes).sum())}/{len(rows)} | {hits}/{len(knee)} |")
            hit = part.assign(hit=part.k == part.n_classes).groupby("method").hit.agg(["sum", "count"])
            lines += ["", "| method | true k found | k chosen per site (seed order) |", "|---|---|---|"]
            for m in methods:
                if m not in hit.index:
                    continue
                ks = "; ".join(f"{s}: {','.join(str(v) for v in part[(part.method == m) & (part.site == s)].k)}"
                               for s in sites)
                lines.append(f"| {m} | {hit.loc[m, 'sum']}/{hit.loc[m, 'count']} | {ks} |")
    return "\n".join(lines)


def _coverage_note(rows: pd.DataFrame, df: pd.DataFrame, unit: str) -> str:
    """' (seeds 0, 1)' when ``rows`` (one candidate) miss a seed or a site/data set of ``df``: its
    means are then over other samples than the other rows' and not comparable with them."""
    full = set(map(tuple, df[["seed", unit]].drop_duplicates().to_numpy()))
    have = set(map(tuple, rows[["seed", unit]].drop_duplicates().to_numpy()))
    if have >= full:
        return ""
    seeds = sorted(set(rows.seed))
    missing = len(set(df[unit])) - len(set(rows[unit]))
    note = "seeds " + ", ".join(str(s) for s in seeds)
    return f" ({note}{f'; {missing} {unit}s missing' if missing else ''})"


def report_embed(df: pd.DataFrame) -> str:
    sites = list(dict.fromkeys(df.site))
    cands = list(dict.fromkeys(df.candidate))
    lines = ["| candidate | " + " | ".join(sites) + " | mean generated | mean all |", "|---" * (len(sites) + 3) + "|"]
    for c in cands:
        rows = df[df.candidate == c]
        gen = rows[rows.site.str.startswith("gen-")].groupby("seed").ari.mean()
        lines.append(f"| {c}{_coverage_note(rows, df, 'site')} | "
                     + " | ".join(_mean_sd(rows[rows.site == s].ari) for s in sites)
                     + f" | {_mean_sd(gen)} | {_mean_sd(rows.groupby('seed').ari.mean())} |")
    return "\n".join(lines)


def report_public(df: pd.DataFrame) -> str:
    sets = list(dict.fromkeys(df.dataset))
    cands = list(dict.fromkeys(df.candidate))
    lines = ["| candidate | " + " | ".join(sets) + " | mean |", "|---" * (len(sets) + 2) + "|"]
    for c in cands:
        rows = df[df.candidate == c]
        lines.append(f"| {c}{_coverage_note(rows, df, 'dataset')} | "
                     + " | ".join(_mean_sd(rows[rows.dataset == s].ari) for s in sets)
                     + f" | {_mean_sd(rows.groupby('seed').ari.mean())} |")
    return "\n".join(lines)


def cmd_report(args) -> None:
    root = Path(args.out)
    for kind, fn in (("sites", report_sites), ("embed", report_embed), ("public", report_public)):
        df = _read(root / f"{kind}{args.tag}.jsonl")
        if not df.empty:
            print(f"\n### {kind}\n")
            print(fn(df))
    speed = _read(root / f"speed{args.tag}.jsonl")
    if not speed.empty:
        print("\n### speed\n\n| candidate | series/s | threads | T |\n|---|---|---|---|")
        for r in speed.groupby("candidate", sort=False).series_per_s.max().items():
            print(f"| {r[0]} | {r[1]:.0f} | {speed.threads.iloc[0]} | {speed['T'].iloc[0]} |")


# Paired comparisons of the held-out check (docs/validity.md): first minus second method.
PAIRS = [("kmeans-dyn", "raw-kmeans"), ("kmeans-dyn_smoothed", "raw-kmeans_smoothed"),
         ("descriptors-kmeans", "kmeans-dyn"), ("kmeans-dyn+static", "kmeans-dyn"),
         ("kmeans-dyn_smoothed", "kmeans-dyn"), ("kmeans-dyn+static_smoothed", "kmeans-dyn_smoothed"),
         ("kmeans-dyn", "pca-kmeans"),
         ("dsc", "kmeans-dyn_smoothed"), ("dsc", "raw-kmeans_smoothed"), ("dsc", "raw-kmeans")]


def report_compare(first: pd.DataFrame, second: pd.DataFrame, names=("in-sample", "held-out")) -> str:
    """Two ``sites`` runs side by side (e.g. the seeds that chose the defaults and held-out
    seeds): per method and k the mean over generated and demo sites (mean ± sd over seeds),
    and paired differences per site and seed with how often the first method wins."""
    runs = dict(zip(names, (first, second)))
    methods = list(dict.fromkeys(pd.concat([first.method, second.method])))
    lines = ["| method | k | " + " | ".join(f"{g} {n}" for g in ("gen.", "demo") for n in names) + " |",
             "|---" * 6 + "|"]
    for k in ("config", "true", "auto"):
        for m in methods:
            cells = []
            for generated in (True, False):
                for df in runs.values():
                    rows = df[(df.method == m) & (df.k_setting == k)]
                    rows = rows[rows.site.str.startswith("gen-") == generated]
                    cells.append(_mean_sd(rows.groupby("seed").ari.mean()))
            lines.append(f"| {m} | {k} | " + " | ".join(cells) + " |")
    lines += ["", "| comparison | k | " + " | ".join(f"{n}: mean diff (wins/pairs)" for n in names) + " |",
              "|---|---|---|---|"]
    for a, b in PAIRS:
        for k in ("config", "true"):
            cells = []
            for df in runs.values():
                x = df[df.k_setting == k].pivot_table(index=["site", "seed"], columns="method", values="ari")
                d = (x[a] - x[b]).dropna() if a in x and b in x else pd.Series(dtype=float)
                cells.append(f"{d.mean():+.3f} ({int((d > 0).sum())}/{len(d)})" if len(d) else "")
            lines.append(f"| {a} - {b} | {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _overlaid_runs(root: Path, tag: str) -> pd.DataFrame:
    """One tag's records; ``a+b``: the run ``a`` with the records of ``b`` in place of those of the
    same site, seed, k and method (a later run that re-scored some methods or sites of it)."""
    key = ["site", "seed", "k_setting", "method"]
    runs = None
    for part in tag.split("+"):
        path = root / f"sites{part}.jsonl"
        if not path.exists():
            sys.exit(f"no sites run tagged '{part}': {path} does not exist (tags: "
                     + ", ".join(sorted(p.stem[len("sites"):] or "''" for p in root.glob("sites*.jsonl"))) + ")")
        new = _read(path)
        if runs is not None:
            replaced = runs.set_index(key).index.isin(new.set_index(key).index)
            new = pd.concat([runs[~replaced], new], ignore_index=True)
        runs = new
    return runs


def read_tagged_runs(root: Path, tags: str) -> pd.DataFrame:
    """The ``sites`` runs of comma-separated tags as one table (e.g. the k-means methods' run and
    DSC's, run apart on the same seeds), so methods of both are paired per site and seed; a tag
    ``a+b`` is run ``a`` updated by run ``b`` (:func:`_overlaid_runs`)."""
    frames = []
    for tag in tags.split(","):
        frames.append(_overlaid_runs(root, tag).assign(_tag=tag))
    runs = pd.concat(frames, ignore_index=True)
    # one method of one site, seed and k in two tags would be averaged silently by the pairing
    key = ["site", "seed", "k_setting", "method"]
    shared = runs.groupby(key)._tag.nunique()
    if (shared > 1).any():
        (site, seed, k, method), = shared[shared > 1].index[:1]
        sys.exit(f"tags {tags} hold {method} of {site}, seed {seed}, k {k} more than once: "
                 "give each method of a seed one tag")
    return runs.drop(columns="_tag")


def cmd_compare(args) -> None:
    root = Path(args.out)
    print(report_compare(read_tagged_runs(root, args.tag), read_tagged_runs(root, args.against)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name, fn in (("sites", cmd_sites), ("embed", cmd_embed), ("public", cmd_public), ("speed", cmd_speed),
                     ("report", cmd_report), ("compare", cmd_compare)):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        p.add_argument("--out", default=str(DEFAULT_OUT), help="folder of the JSON-lines results")
        p.add_argument("--tag", default="", help="suffix of the result files (e.g. -previous)")
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. embed.mode=reference")
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "insarclust-validity"))
        p.add_argument("--candidates", nargs="+", default=["shipped", "previous", "reference"])
        p.add_argument("--raw", action=argparse.BooleanOptionalAction, default=True,
                       help="also score k-means on the raw series")
        if name == "sites":
            p.add_argument("--sites", nargs="+")
            p.add_argument("--methods", nargs="+", default=[m for m in METHODS if m != "dsc"])
            p.add_argument("--k", nargs="+", default=["config", "true", "auto"], choices=["config", "true", "auto"])
            p.add_argument("--scale", type=float, default=1.0, help="shrink every site by this factor (quick checks)")
        if name == "embed":
            p.add_argument("--sites", nargs="+")
            p.add_argument("--max-points", type=int, default=4000)
        if name == "public":
            p.add_argument("--datasets", nargs="+", default=PUBLIC_SETS)
        if name == "compare":
            p.add_argument("--against", required=True, help="tag of the second sites run (e.g. -20261130-heldout); "
                           "comma-separated tags are read as one run, as is --tag")
        if name == "speed":
            p.add_argument("--n", type=int, default=4096)
            p.add_argument("--T", type=int, default=272, help="epochs (272 = 4.5 years on the 6-day grid)")
            p.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
