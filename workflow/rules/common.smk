"""Site table, validation, wildcard constraints, input functions and resources."""
import glob
import os
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import validate

ROOT = Path(workflow.basedir)
# Rules import the library from the working tree: no install needed inside a
# conda env or on a compute node, and jobs always run the checked-out code.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")] if p
)

validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))

SITES = pd.read_csv(config["sites"], sep="\t", dtype=str, comment="#").fillna("")
for _row in SITES.to_dict("records"):
    validate(_row, str(ROOT / "workflow/schemas/sites.schema.yaml"))
if SITES["site"].duplicated().any():
    raise ValueError(f"{config['sites']}: site names must be unique, repeated: "
                     f"{sorted(SITES.loc[SITES['site'].duplicated(), 'site'])}")
SITES = SITES.set_index("site", drop=False)

with open(config["formats"]) as _fh:
    FORMATS = yaml.safe_load(_fh)
validate(FORMATS, str(ROOT / "workflow/schemas/formats.schema.yaml"))
for _site, _fmt in SITES["format"].items():
    if _fmt not in FORMATS:
        raise ValueError(
            f"{config['sites']}: site '{_site}' uses unknown format '{_fmt}'; "
            f"known formats in {config['formats']}: {', '.join(sorted(FORMATS))}. "
            "Fix the format column or add the format to formats.yaml.")

VARIANTS = ["dyn", "dyn+static", "dyn_smoothed", "dyn+static_smoothed"]
BASELINES = [m for m in ["pca-kmeans", "raw-kmeans", "raw-kmeans_smoothed", "descriptors-kmeans"]
             if config.get("baselines", {}).get(m, True)]


wildcard_constraints:
    site="|".join(SITES.index) if len(SITES) else "[^/]+",
    variant="dyn|dyn\\+static|dyn_smoothed|dyn\\+static_smoothed",
    base="dyn|dyn\\+static",
    baseline="pca-kmeans|raw-kmeans_smoothed|raw-kmeans|descriptors-kmeans",
    method="kmeans-(dyn|dyn\\+static|dyn_smoothed|dyn\\+static_smoothed)|dsc|pca-kmeans|raw-kmeans_smoothed|raw-kmeans|descriptors-kmeans",
    part="[0-9]+",
    n="[0-9]+",


def is_demo(site):
    return SITES.loc[site, "source"].startswith("demo:")


def demo_preset(site):
    return SITES.loc[site, "source"].split(":", 1)[1]


def source_files(wildcards):
    """Input CSV files of a site (the generated CSV for demo sites)."""
    site = wildcards.site
    if is_demo(site):
        return [f"resources/demo/{site}.csv.gz"]
    files = sorted(glob.glob(os.path.expanduser(SITES.loc[site, "source"])))
    if not files:
        raise ValueError(f"{config['sites']}: site '{site}': no file matches source "
                         f"'{SITES.loc[site, 'source']}'. Fix the path or glob.")
    return files


def truth_file(wildcards):
    """True regimes of demo sites (empty list for real sites)."""
    return [f"resources/demo/{wildcards.site}.truth.csv"] if is_demo(wildcards.site) else []


def methods(site=None):
    out = [f"kmeans-{v}" for v in config["kmeans"]["variants"]]
    out += BASELINES
    if config["dsc"]["enabled"]:
        out.append("dsc")
    return out


def embed_model(wildcards):
    ref = config["embed"].get("reference_site") or wildcards.site
    return f"results/{ref}/embed/model.pt"


def embed_parts(wildcards):
    n = config["embed"]["n_jobs"]
    return [f"results/{wildcards.site}/embed/parts/{i}-of-{n}.h5" for i in range(1, n + 1)]


def site_outputs(site):
    out = [f"results/{site}/clusters/{m}.{ext}" for m in methods() for ext in ("h5", "json")]
    out += [f"results/{site}/figures/{m}_{kind}.png" for m in methods() for kind in ("map", "clusters")]
    out += [f"results/{site}/clusters.csv", f"results/{site}/clusters.geojson",
            f"results/{site}/provenance.json"]
    if config["dsc"]["enabled"]:
        out += [f"results/{site}/figures/dsc_loss.png"]
    if config["kmeans"].get("k_sweep"):
        out += [f"results/{site}/figures/kmeans-{v}_k.png" for v in config["kmeans"]["variants"]]
    return out


def all_outputs():
    out = [f for site in SITES.index for f in site_outputs(site)]
    out.append("results/summary.tsv")
    return out


# --------------------------------------------------------------------------- #
# resources: sized from the site's point count so a national catalogue asks
# for more than a demo site. Before shards.h5 exists the count is estimated
# from the input size (about 2 kB of CSV per point of a 200-epoch export).


def site_points(wildcards):
    site = wildcards.site
    shards = Path(f"results/{site}/shards.h5")
    if shards.exists():
        try:
            import h5py

            with h5py.File(shards, "r") as f:
                return int(f.attrs["n_points"])
        except Exception:
            pass
    if is_demo(site):
        return int(config.get("demo", {}).get("n_points", 20000))
    try:
        return max(1, sum(os.path.getsize(f) for f in source_files(wildcards)) // 2000)
    except Exception:
        return 100000


def mem_mb(base_mb, mb_per_million):
    """Memory request: base + per-million-points term (O(N) label/coordinate arrays)."""

    def _mem(wildcards, attempt=1):
        n = site_points(wildcards)
        return int((base_mb + mb_per_million * n / 1e6) * attempt)

    return _mem


def runtime_min(base_min, min_per_million):
    def _rt(wildcards, attempt=1):
        n = site_points(wildcards)
        return int((base_min + min_per_million * n / 1e6) * attempt)

    return _rt


def log_path(stage, name="{site}"):
    return f"logs/{stage}/{name}.log"


def bench_path(stage, name="{site}"):
    return f"benchmarks/{stage}/{name}.tsv"
