"""The site table (config/sites.tsv) and the input formats (config/formats.yaml), checked
before any job runs, with messages that name the file, row and key."""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Mapping

import pandas as pd
import yaml

from .config import first_schema_error
from .errors import InputError
from .formats import Format
from .requirements import check_site, site_needs

COLUMNS = ("site", "source", "format")


def read_site_table(path, schema: Mapping) -> pd.DataFrame:
    """The site table, indexed by site name; every row checked against ``schema``."""
    table = pd.read_csv(path, sep="\t", dtype=str, comment="#").fillna("")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"the site table lacks column(s) {missing} (it has {list(table.columns)})",
                         file=path, row=0, fix="the first line must be: site<TAB>source<TAB>format (tab-separated)")
    for i, row in enumerate(table.to_dict("records"), start=1):
        bad = first_schema_error(row, schema)
        if bad:
            raise InputError(f"bad site row {row}: {bad[1]}", file=path, row=i, column=(bad[0] or [None])[0],
                             fix="site names are letters, digits, - and _ (they become folder names); "
                                 "source and format must not be empty")
    repeated = table["site"].duplicated()
    if repeated.any():
        raise InputError(f"site names must be unique, repeated: {sorted(table.loc[repeated, 'site'])}",
                         file=path, fix="rename or remove the repeated rows")
    return table.set_index("site", drop=False)


def read_formats(path, schema: Mapping) -> dict:
    """formats.yaml as a dict; its structure (schema) and every value (regexes, units,
    encodings: :meth:`Format.check`) checked, naming the format and key."""
    with open(path) as fh:
        formats = yaml.safe_load(fh) or {}
    bad = first_schema_error(formats, schema)
    if bad:
        where, message = bad
        name = f"format '{where[0]}'" if where else "formats.yaml"
        key = f", key '{'.'.join(where[1:])}'" if len(where) > 1 else ""
        raise InputError(f"{name}{key}: {message}", file=path,
                         fix="see the comments at the top of formats.yaml for the keys")
    for name, spec in formats.items():
        Format.from_dict(name, spec, source=str(path))
    return formats


def check_site_formats(sites: pd.DataFrame, formats: Mapping, sites_path, formats_path) -> None:
    for site, fmt in sites["format"].items():
        if fmt not in formats:
            raise InputError(f"site '{site}' uses unknown format '{fmt}'; known formats in {formats_path}: "
                             f"{', '.join(sorted(formats))}", file=sites_path,
                             fix="fix the format column or add the format to formats.yaml")


def is_demo(source: str) -> bool:
    return source.startswith("demo:")


def source_files(site: str, source: str, sites_path) -> list[str]:
    """The CSV files of a site's source glob (a demo site's: its generated CSV)."""
    if is_demo(source):
        return [f"resources/demo/{site}.csv.gz"]
    files = sorted(glob.glob(os.path.expanduser(source)))
    if not files:
        raise InputError(f"site '{site}': no file matches source '{source}'", file=sites_path,
                         fix="fix the path or glob (relative to the working directory)")
    return files


def check_built_sites(sites: pd.DataFrame, config: Mapping, results="results") -> None:
    """A ``shards.h5`` that is up to date must still be big enough for the current config
    (raising ``kmeans.k`` on a small site stops here, before any job)."""
    import h5py

    needs = site_needs(config)
    for site, source in sites["source"].items():
        path = Path(results) / site / "shards.h5"
        if not path.exists():
            continue
        try:
            files = [] if is_demo(source) else glob.glob(os.path.expanduser(source))
            if any(os.path.getmtime(f) > path.stat().st_mtime for f in files):
                continue  # it will be rebuilt from newer input
            with h5py.File(path, "r") as f:
                counts = (int(f.attrs["n_points"]), len(f["series/dates"]), len(f["series/grid_dates"]))
                step = int(f.attrs.get("grid_step_days", 0)) or None
        except (OSError, KeyError):
            continue  # unreadable: its stage reruns and reports
        check_site(site, needs, *counts, file=str(path), grid_step_days=step)
