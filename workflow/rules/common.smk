"""Configuration, site table, wildcard constraints, input functions, rule params and resources."""

import os
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

# the workflow's own folder, also when it is used as a module of another workflow
ROOT = Path(workflow.current_basedir).parents[1]
# Rules import the library from the working tree: no install needed inside a
# conda env or on a compute node, and jobs always run the checked-out code.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")] if p
    )
)
sys.path.insert(0, str(ROOT / "src"))

from insarclust import code_digest as _code_digest  # noqa: E402
from insarclust import methods as _methods  # noqa: E402
from insarclust import resources as _resources  # noqa: E402
from insarclust import sites as _sites  # noqa: E402
from insarclust import settings_check as _settings_check  # noqa: E402
from insarclust.config import (
    check_config,
    check_unique_keys,
    coerce_to_schema,
    embed_result_params,
    result_params,
    same_embed_settings,
    with_defaults,
)  # noqa: E402
from insarclust.descriptors import FIT_DEFAULTS  # noqa: E402
from insarclust.interpret import DEFAULT_THRESHOLDS  # noqa: E402


def _schema(name):
    with open(ROOT / "workflow" / "schemas" / f"{name}.schema.yaml") as fh:
        return yaml.safe_load(fh)


# Defaults live in the schema; nested --config values arrive as strings
# ('kmeans={"k": 6}' gives "6") and are turned into the schema's types first.
_CONFIG_SCHEMA = _schema("config")
# a key set twice in a config file: YAML keeps the last value without a word
for _path in workflow.configfiles:
    check_unique_keys(_path)
config.update(with_defaults(coerce_to_schema(config, _CONFIG_SCHEMA), _CONFIG_SCHEMA))
# a short message naming the key (and the closest known one), not the schema dump of validate
check_config(config, _CONFIG_SCHEMA)
validate(
    config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True
)

_sites.check_table_paths(config)
SITES = _sites.read_site_table(config["sites"], _schema("sites"))
FORMATS = _sites.read_formats(config["formats"], _schema("formats"))
_sites.check_site_formats(SITES, FORMATS, config["sites"], config["formats"])
_settings_check.check_settings(
    config, SITES.index, _settings_check.known_static_columns(FORMATS)
)
_sites.check_built_sites(SITES, config)
# sources: files, demo:<preset>, or an asc=...;desc=... pair
SOURCES = {
    s: _sites.parse_source(src, s, config["sites"])
    for s, src in SITES["source"].items()
}
PAIRS = [s for s, src in SOURCES.items() if src.kind == "pair"]
if PAIRS:
    _settings_check.check_decompose_crs(config)
METHODS = _methods.methods(config)
GEOJSON = config["report"]["geojson"]


wildcard_constraints:
    site=_methods.pattern(SITES.index) if len(SITES) else "[^/]+",
    variant=_methods.pattern(_methods.KMEANS_VARIANTS),
    base="dyn|dyn\\+static",
    baseline=_methods.pattern(_methods.PEERS),
    method=_methods.pattern(_methods.ALL),
    part="[0-9]+",
    n="[0-9]+",


# --------------------------------------------------------------------------- #
# sites and inputs


def is_demo(site):
    return SOURCES[site].is_demo


def demo_preset(site):
    return SOURCES[site].preset


def format_name(wildcards):
    return SITES.loc[wildcards.site, "format"]


def site_format(site):
    """The site's format block; its description and area are not params (a text changes
    nothing; an area only stops a build, and a build it lets through is the same file).
    """
    spec = FORMATS[SITES.loc[site, "format"]]
    return {k: v for k, v in spec.items() if k not in ("description", "area")}


def source_files(wildcards):
    """Input CSV files of a site (the generated CSV for demo sites; both tracks of a pair)."""
    site = wildcards.site
    return _sites.source_files(site, SOURCES[site], config["sites"])


def pair_constraint():
    """Regex of the pair sites (one that matches nothing when there are none)."""
    return "|".join(PAIRS) if PAIRS else "(?!)"


def track_files(site, track):
    """Input CSV files of one track (asc, desc) of a pair site."""
    return _sites.track_files(site, SOURCES[site], track, config["sites"])


def truth_file(wildcards):
    """True regimes: a demo site's (of the cells for a demo pair), or the table named by the
    site's truth column in the site table; an empty list for other sites."""
    site = wildcards.site
    if not is_demo(site):
        own = _sites.truth_path(SITES, site)
        return [own] if own else []
    if site in PAIRS:
        return [f"resources/demo/{site}.cells.truth.csv"]
    return [f"resources/demo/{site}.truth.csv"]


def site_row(wildcards):
    """The site's row of the site table; an empty truth cell left out, so that adding the
    column for one site reruns no other site's provenance."""
    row = SITES.loc[wildcards.site].to_dict()
    return {k: v for k, v in row.items() if k != "truth" or v}


def embed_model(wildcards):
    ref = config["embed"]["reference_site"] or wildcards.site
    return f"results/{ref}/embed/model.pt"


def embed_parts(wildcards):
    """The part files of features/dyn.h5. The split (embed.n_jobs) changes how the work is
    cut into jobs, not the result: a dyn.h5 that is up to date (newer than its inputs, made
    with the current embedding settings) keeps the split it was made with, so changing
    n_jobs alone reruns nothing; any rebuild uses the new split."""
    import json

    n = config["embed"]["n_jobs"]
    dyn = Path(f"results/{wildcards.site}/features/dyn.h5")
    inputs = [Path(f"results/{wildcards.site}/shards.h5"), Path(embed_model(wildcards))]
    if dyn.exists() and all(
        p.exists() and p.stat().st_mtime <= dyn.stat().st_mtime for p in inputs
    ):
        try:
            import h5py

            with h5py.File(dyn, "r") as f:
                made_with = json.loads(f.attrs.get("embed_settings", "null"))
                if same_embed_settings(made_with, config):
                    n = int(f.attrs.get("n_parts", n))
        except (OSError, ValueError):
            pass
    return [
        f"results/{wildcards.site}/embed/parts/{i}-of-{n}.h5" for i in range(1, n + 1)
    ]


def site_outputs(site):
    out = [
        f"results/{site}/clusters/{m}.{ext}" for m in METHODS for ext in ("h5", "json")
    ]
    out += [
        f"results/{site}/figures/{m}_{kind}.png"
        for m in METHODS
        for kind in ("map", "clusters")
    ]
    out += [
        f"results/{site}/clusters.csv",
        f"results/{site}/clusters.gpkg",
        f"results/{site}/provenance.json",
    ]
    if GEOJSON:
        out.append(f"results/{site}/clusters.geojson")
    if config["dsc"]["enabled"]:
        out += [f"results/{site}/figures/dsc_loss.png"]
    if config["kmeans"]["k_sweep"]:
        out += [
            f"results/{site}/figures/kmeans-{v}_k.png"
            for v in config["kmeans"]["variants"]
        ]
    return out


def all_outputs():
    out = [f for site in SITES.index for f in site_outputs(site)]
    out.append("results/summary.tsv")
    return out


def site_products(wildcards):
    """Everything a site's run leaves behind but its provenance (so provenance runs last)."""
    own = f"results/{wildcards.site}/provenance.json"
    return [
        f for f in site_outputs(wildcards.site) if f != own and not f.endswith(".json")
    ]


def rule_file_patterns(_wildcards=None):
    """Benchmark and log patterns of every rule, whether it picks a torch device, and its
    script's name (provenance.py records the script's code digest, read when it runs: as a
    param, a code change of one rule would rerun every site's provenance).

    provenance.py recovers each job of a site (and its wildcards) from these
    file names; the dict only changes when a rule's log/benchmark path does.
    """
    import re

    def plain(pattern):
        # drop wildcard constraints ({site,a|b} -> {site}): the site list must
        # not enter the params, or adding a site would rerun every provenance
        return re.sub(r"\{(\w+),(?:[^{}]|\{[^{}]*\})*\}", r"{\1}", str(pattern))

    out = {}
    for r in sorted(workflow.rules, key=lambda r: r.name):
        logs = [plain(f) for f in r.log]
        out[r.name] = {
            "benchmark": plain(r.benchmark) if r.benchmark else None,
            "log": logs[0] if logs else None,
            # (as a module of another workflow, rule names carry its prefix)
            "device": any(r.name == t or r.name.endswith(f"_{t}") for t in TORCH_RULES),
            "script": Path(r.script).stem if r.script else None,
        }
    return out


# --------------------------------------------------------------------------- #
# params: exactly the settings that can change a rule's result. Memory,
# parallelism and device settings (batch_size of the embedding, n_jobs,
# read_block_mb, predict_block_rows, device, ...) are read by the scripts from
# the run's config instead, so changing them never reruns a job
# (config/README.md lists them).

TORCH_RULES = {"embed_fit", "embed_part", "dsc"}


def shards_params():
    ransac = config["shards"]["method"] == "ransac"
    out = result_params(config, "shards", drop=() if ransac else ("ransac",))
    return {**out, "seed": config["seed"]} if ransac else out


def smooth_params():
    exact = config["smooth"]["mode"] == "exact"
    out = result_params(
        config, "smooth", drop=("fanout", "batch_size") if exact else ()
    )
    return out if exact else {**out, "seed": config["seed"]}


def graph_params():
    """Binary weights are 1 on every edge: bandwidth_m is read by the other weightings only."""
    drop = ("bandwidth_m",) if config["graph"]["weighting"] == "binary" else ()
    return result_params(config, "graph", drop=drop)


def kmeans_params(sweep=False):
    """The kmeans (or kmeans_sweep) rule's settings. The diagnostics are measured by the
    evaluate job (kmeans_evaluate_params): seed_stability always, silhouette_sample unless it
    chooses k (k: auto, the sweep)."""
    auto = sweep or config["kmeans"]["k"] == "auto"
    if sweep:
        drop = ("seed_stability", "k")
    else:
        drop = ("seed_stability",) + (() if auto else ("k_range", "silhouette_sample"))
    return result_params(config, "kmeans", drop=drop)


def kmeans_evaluate_params():
    """What the evaluate job of a kmeans-{variant} method measures with: silhouette_sample,
    seed_stability and the model settings of its refit with seed + 1 (k from the fit).
    """
    return result_params(config, "kmeans", drop=("k", "k_range"))


def embed_params():
    """The embedding's result settings but ridge, which the pooled representations (last, mean)
    never read (it is the ridge of the output and reservoir representations)."""
    return embed_result_params(config)


def dsc_params():
    """DSC's result settings but those its choices leave unread: spatial_bands without the
    spatial branch; pre-training and the reconstruction weight (centre_weight) without a
    decoder (encoder-only); the CNN widths (channels) without a CNN (lstm).
    silhouette_sample is read by DSC's evaluate job."""
    dsc = config["dsc"]
    drop = ["silhouette_sample"]
    if not dsc["spatial_branch"]:
        drop.append("spatial_bands")
    if dsc["variant"] == "encoder-only":
        drop += ["pretrain_epochs", "centre_weight"]
    if dsc["variant"] == "lstm":
        drop.append("channels")
    return result_params(config, "dsc", drop=drop)


# which keys of the baselines: section each peer reads
PEER_KEYS = {
    "raw-kmeans": ("zscore",),
    "raw-kmeans_smoothed": ("zscore",),
    "pca-kmeans": ("zscore", "pca_max_components"),
    "descriptors-kmeans": (
        "descriptor_features",
        "descriptor_scaling",
        "descriptor_scale",
    ),
}
THRESHOLDS = tuple(DEFAULT_THRESHOLDS)  # the label thresholds of interpret:
FIT_SETTINGS = tuple(FIT_DEFAULTS)  # the descriptor fit settings of interpret:


def baseline_params(wildcards):
    method = wildcards.baseline
    peers = config["baselines"]
    k = config["kmeans"]["k"] if peers["k"] is None else peers["k"]
    kmeans = result_params(config, "kmeans", drop=("seed_stability", "k", "k_range"))
    if k == "auto":
        kmeans["k_range"] = config["kmeans"]["k_range"]
    keys = PEER_KEYS[method]
    if peers["descriptor_scaling"] != "threshold":
        # z-scored descriptors: each is divided by its std, never by its descriptor_scale
        keys = tuple(key for key in keys if key != "descriptor_scale")
    out = {
        "kmeans": {"k": k, **kmeans},
        "baselines": {key: peers[key] for key in keys},
    }
    if method == "raw-kmeans_smoothed":
        # smoothed like the seed method's features (its own params: it reruns with them)
        out["smooth"] = {
            k: v
            for k, v in smooth_params().items()
            if k not in ("standardize", "moran_features", "seed")
        }
    return out


def static_weight_params(wildcards):
    """embed.static_weight as far as the site can read it (settings_check.site_static_weight):
    a mapping keeps the columns the site's format (or a decomposed pair) can have, at a weight
    other than the one they get unnamed, so weighting another format's column, or naming a
    column at its default weight, reruns nothing here.
    """
    site = wildcards.site
    return _settings_check.site_static_weight(
        config["embed"]["static_weight"],
        site_format(site),
        pair=SOURCES[site].kind == "pair",
    )


def report_params():
    return {k: config["report"][k] for k in ("max_map_points", "dpi")}


# --------------------------------------------------------------------------- #
# resources: each rule's memory and run time from the cost model of
# insarclust.resources (fitted to bench/site.py measurements, times a safety
# factor) and the site's size (from shards.h5 once built, else its input files).

_SIZES = {}


def site_size(wildcards):
    """The site's size; a pair's track (los_shards) is sized from its own files."""
    site = wildcards.site
    track = wildcards.track if "track" in wildcards.keys() else None
    built = Path(f"results/{site}/shards.h5")
    key = (site, track, built.stat().st_mtime if built.exists() else None)
    if key not in _SIZES:
        _SIZES[key] = _resources.site_size(
            site,
            SOURCES[site],
            FORMATS[SITES.loc[site, "format"]],
            config,
            config["sites"],
            track=track,
        )
    return _SIZES[key]


def request(name, what):
    """A resource function (``mem_mb`` or ``runtime``) of rule ``name`` for Snakemake."""

    def _request(wildcards, attempt=1):
        size = site_size(wildcards)
        n_parts = int(wildcards.n) if "n" in wildcards.keys() else 1
        return _resources.request(
            name, size.n_points, size.n_epochs, size.n_dates, config, attempt, n_parts
        )[what]

    return _request


def requests(name):
    return {"mem_mb": request(name, "mem_mb"), "runtime": request(name, "runtime")}


def threads_of(name):
    """The cores each job of ``name`` asks for (two where its own threads pay in the
    measurements, else one; ``insarclust.resources.threads``)."""
    return _resources.threads(name)


def _measures_kmeans(wildcards):
    return wildcards.method.startswith("kmeans-")


def evaluate_mem_mb(wildcards, attempt=1):
    """evaluate's request, plus the silhouette of the fit measured there (a silhouette_sample^2
    float64 distance block): dsc's in the dyn space (dsc does not read dyn); a kmeans variant's,
    beside its seed-stability refit (priced as a kmeans job).
    """
    mem = request("evaluate", "mem_mb")(wildcards, attempt)
    if wildcards.method == "dsc":
        sample = int(config["dsc"]["silhouette_sample"])
    elif _measures_kmeans(wildcards):
        mem = max(mem, request("kmeans", "mem_mb")(wildcards, attempt))
        sample = int(config["kmeans"]["silhouette_sample"])
    else:
        return mem
    return mem + int(attempt * (8 * sample * sample / 2**20 + 100))


def evaluate_runtime(wildcards, attempt=1):
    """evaluate's request; a kmeans variant's adds a kmeans job's (its diagnostics: the
    seed-stability refit and the silhouette; the records average evaluate over all its jobs).
    """
    minutes = request("evaluate", "runtime")(wildcards, attempt)
    if _measures_kmeans(wildcards):
        minutes += request("kmeans", "runtime")(wildcards, attempt)
    return minutes


def evaluate_features(wildcards):
    """The feature file the evaluate job measures the fit in: dyn for dsc, the variant for kmeans."""
    if wildcards.method == "dsc":
        return [f"results/{wildcards.site}/features/dyn.h5"]
    if _measures_kmeans(wildcards):
        return [
            f"results/{wildcards.site}/features/{wildcards.method[len('kmeans-'):]}.h5"
        ]
    return []


def evaluate_fit_params(wildcards):
    """What the evaluate job measures the fit with (dsc, kmeans variants; the peers' fits come
    measured)."""
    if wildcards.method == "dsc":
        return {
            "seed": config["seed"],
            "silhouette_sample": config["dsc"]["silhouette_sample"],
        }
    if _measures_kmeans(wildcards):
        return {"seed": config["seed"], "kmeans_cfg": kmeans_evaluate_params()}
    return {}


def code_digest(name):
    """Digest of ``scripts/{name}.py`` and the library modules it imports
    (:mod:`insarclust.code_digest`): a param of every rule with a script, so an upgrade of
    insarclust reruns the stages whose code changed. Snakemake itself follows only the
    script's modification time, which it cannot compare once a temporary output
    (embed_part, los_shards) is removed; a changed param is read from the job's record.
    Computed once for every script, and kept in .snakemake/ while no source file changes.
    """
    global _CODE_DIGESTS
    if _CODE_DIGESTS is None:
        scripts = {p.stem: p for p in sorted((ROOT / "scripts").glob("*.py"))}
        _CODE_DIGESTS = _code_digest.code_digests(
            scripts,
            ROOT / "src" / "insarclust",
            Path(".snakemake") / "insarclust-code-digests.json",
        )
    return _CODE_DIGESTS[name]


_CODE_DIGESTS = None


def log_path(stage, name="{site}"):
    return f"logs/{stage}/{name}.log"


def bench_path(stage, name="{site}"):
    return f"benchmarks/{stage}/{name}.tsv"
