"""Per-point label export for GIS users: ``clusters.csv`` and a GeoJSON layer.

Both files carry the same columns, ``pid, lat, lon, <method>...`` (one integer
label column per clustering method), one row per point in the shard order of
``shards.h5``. They are written shard by shard, so the text never has to be
held in memory; only the final (N,) label arrays are (4 bytes per point and
method). Coordinates are written with Python's shortest round-trip float
format, so the exported degrees equal the float64 values in ``shards.h5``.

The GeoJSON is an RFC 7946 FeatureCollection of Point features (WGS84
longitude, latitude) written without a GIS library (the standard library's
JSON string escaping, rows built with numpy string ops at ~10^5 points/s):
QGIS and GDAL open it directly (layer name = site). One feature per line
keeps it greppable.
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring
import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np
from numpy.dtypes import StringDType

from insarclust import h5io
from insarclust.logs import Progress

log = logging.getLogger("insarclust.export")


def load_method_labels(label_paths: Mapping[str, str | os.PathLike], n_points: int) -> dict[str, np.ndarray]:
    """``{method: labels (N,) int32}`` from ``clusters/{method}.h5``, checked against N."""
    labels = {}
    for method, path in label_paths.items():
        values = h5io.read_datasets(path, ["labels"])["labels"]
        if values.shape != (n_points,):
            raise ValueError(
                f"{path}: /labels has shape {values.shape}, but shards.h5 has {n_points} points; "
                f"the clustering of '{method}' is stale: delete {path} and rerun the workflow.")
        labels[method] = np.asarray(values)
    return labels


def _check_method_names(methods) -> None:
    reserved = {"pid", "lat", "lon"}
    for method in methods:
        if method in reserved or not method or any(c in method for c in ',"\n'):
            raise ValueError(f"method name {method!r} cannot be a CSV column "
                             f"(reserved: {sorted(reserved)}; no commas, quotes or newlines)")


_TEXT = StringDType()


def _text(values: np.ndarray) -> np.ndarray:
    """Numbers as text, vectorised; floats in the shortest round-trip form (as ``repr``)."""
    return np.asarray(values).astype(_TEXT)


def _cat(*parts) -> np.ndarray:
    """Element-wise concatenation of string arrays and scalars."""
    out = parts[0]
    for part in parts[1:]:
        out = np.strings.add(out, part)
    return out


def _csv_field(pid: np.ndarray) -> np.ndarray:
    text = np.asarray(pid).astype(_TEXT)
    special = np.zeros(len(text), dtype=bool)
    for ch in ',"\n\r':
        special |= np.strings.find(text, ch) >= 0
    if special.any():
        text[special] = _cat('"', np.strings.replace(text[special], '"', '""'), '"')
    return text


def _csv_lines(pid, lat_t, lon_t, label_t) -> str:
    parts = [_csv_field(pid), ",", lat_t, ",", lon_t]
    for column in label_t:
        parts += [",", column]
    return "\n".join(_cat(*parts).tolist()) + "\n"


def _geojson_lines(pid, lat_t, lon_t, methods, label_t, first: bool) -> str:
    pid_t = np.array([encode_basestring(p) for p in pid.tolist()], dtype=_TEXT)
    parts = ['{"type": "Feature", "geometry": {"type": "Point", "coordinates": [', lon_t, ", ", lat_t,
             ']}, "properties": {"pid": ', pid_t, ', "lat": ', lat_t, ', "lon": ', lon_t]
    for method, column in zip(methods, label_t):
        parts += [f", {encode_basestring(method)}: ", column]
    parts.append("}}")
    text = ",\n".join(_cat(*parts).tolist())
    return text if first else ",\n" + text


def export_labels(shards_path, label_paths: Mapping[str, str | os.PathLike], csv_path,
                  geojson_path=None, layer_name: str | None = None) -> int:
    """Write ``clusters.csv`` (and the GeoJSON layer when ``geojson_path`` is given).

    ``label_paths``: ``{method: clusters/{method}.h5}``, in column order.
    Returns the number of points written. Both files appear atomically: on
    any error neither is left behind.
    """
    shards = h5io.Shards(shards_path)
    methods = list(label_paths)
    _check_method_names(methods)
    labels = load_method_labels(label_paths, shards.n_points)
    layer_name = layer_name or shards.attrs.get("site") or Path(csv_path).parent.name
    progress = Progress(log, shards.n_points, "points exported")
    with h5io.atomic_path(csv_path) as csv_tmp, _maybe_atomic(geojson_path) as geo_tmp:
        with open(csv_tmp, "w", encoding="utf-8", newline="") as csv_fh, \
                _maybe_open(geo_tmp) as geo_fh:
            csv_fh.write(",".join(["pid", "lat", "lon", *methods]) + "\n")
            if geo_fh:
                geo_fh.write('{"type": "FeatureCollection", "name": ' + json.dumps(layer_name)
                             + ', "features": [\n')
            for start, stop in shards.shard_bounds():
                pid = shards.read("points/pid", start, stop)
                lat = shards.read("points/lat", start, stop)
                lon = shards.read("points/lon", start, stop)
                lat_t, lon_t = _text(lat), _text(lon)
                label_t = [_text(labels[m][start:stop]) for m in methods]
                csv_fh.write(_csv_lines(pid, lat_t, lon_t, label_t))
                if geo_fh:
                    geo_fh.write(_geojson_lines(pid, lat_t, lon_t, methods, label_t, first=start == 0))
                progress.update(stop - start)
            if geo_fh:
                geo_fh.write("\n]}\n")
    log.info("wrote %d points x %d methods to %s%s", shards.n_points, len(methods), csv_path,
             f" and {geojson_path}" if geojson_path else "")
    return shards.n_points


class _Nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _maybe_atomic(path):
    return h5io.atomic_path(path) if path is not None else _Nothing()


def _maybe_open(path):
    return open(path, "w", encoding="utf-8") if path is not None else _Nothing()
