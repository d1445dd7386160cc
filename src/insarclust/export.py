"""Per-point label export for GIS users: ``clusters.csv``, ``clusters.gpkg`` and,
optionally, a GeoJSON layer.

The CSV and the GeoJSON carry the same columns, ``pid, lat, lon, <method>...``
(one integer label column per clustering method), one row per point in the
shard order of ``shards.h5``. They are written shard by shard, so the text never has to be
held in memory; only the final (N,) label arrays are (4 bytes per point and
method). Coordinates are written with Python's shortest round-trip float
format, so the exported degrees equal the float64 values in ``shards.h5``.

The GeoJSON is an RFC 7946 FeatureCollection of Point features (WGS84
longitude, latitude) written without a GIS library (the standard library's
JSON string escaping, rows built with numpy string ops at ~10^5 points/s):
QGIS and GDAL open it directly (layer name = site). One feature per line
keeps it greppable. It is text of ~200 bytes per point, slow to load above a
few hundred thousand points: the GeoPackage (:func:`write_geopackage`, written
through GDAL by pyogrio, with a spatial index) is the layer for large sites;
it also carries each method's suggested regime and the point's descriptors.
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


# --------------------------------------------------------------------------- #
# GeoPackage: one point layer with labels, suggested regimes and descriptors

GPKG_BLOCK_ROWS = 65536


def regime_names(metrics_path) -> dict[int, str | None]:
    """``{cluster id: suggested regime}`` from a method's ``clusters/{method}.json``
    (None for a cluster without one: a NULL in the layer, not an empty text)."""
    result = json.loads(Path(metrics_path).read_text())
    return {int(c["cluster"]): (str(c["label"]) if c.get("label") else None)
            for c in result.get("clusters") or []}


def float32_as_decimal(values) -> np.ndarray:
    """float32 values as the float64 of their shortest decimal (0.1f -> 0.1, not 0.10000000149).

    A GeoPackage stores reals as float64; widening a float32 keeps its binary
    value, which a GIS shows with eight spurious digits. Each value becomes the
    shortest decimal (1 to 9 significant digits) that reads back as the same
    float32, as numpy prints a float32; vectorised, with no text round trip for
    magnitudes 1e-13 to 1e22 (those need no power of ten beyond 1e22, which
    float64 holds exactly); the rare values outside go through numpy's text.
    Non-finite values and zeros pass unchanged.
    """
    x32 = np.asarray(values, dtype=np.float32)
    out = x32.astype(np.float64)
    idx = np.flatnonzero(np.isfinite(out) & (out != 0))
    if not idx.size:
        return out
    exponent = np.floor(np.log10(np.abs(out[idx]))).astype(np.int64)
    # |decimals| = |digits - 1 - exponent| <= 22 for 1..9 digits (one decade spare for log10's rounding)
    far = (exponent < -13) | (exponent > 21)
    for i in idx[far]:
        out[i] = float(np.format_float_scientific(x32[i], unique=True))
    idx, exponent = idx[~far], exponent[~far]
    for digits in range(1, 10):
        if not idx.size:
            break
        decimals = digits - 1 - exponent
        v = out[idx]
        scale = 10.0 ** np.abs(decimals)      # exact: |decimals| <= 22
        # m / 10^d and m * 10^d are correctly rounded, so each candidate is the float64 nearest its decimal
        candidate = np.where(decimals >= 0, np.round(v * scale) / scale, np.round(v / scale) * scale)
        with np.errstate(over="ignore"):      # a candidate beyond the float32 range is no match
            ok = candidate.astype(np.float32) == x32[idx]
        out[idx[ok]] = candidate[ok]
        idx, exponent = idx[~ok], exponent[~ok]
    return out


def _wkb_points(x: np.ndarray, y: np.ndarray):
    """Little-endian WKB points (21 bytes each) as a pyarrow binary array, built without a loop."""
    import pyarrow as pa

    n = len(x)
    rec = np.empty(n, dtype=np.dtype([("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")]))
    rec["order"], rec["kind"], rec["x"], rec["y"] = 1, 1, x, y
    offsets = np.arange(0, 21 * (n + 1), 21, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(rec.view(np.uint8))])


def _regime_column(labels: np.ndarray, names: dict[int, str]):
    """Regime text per point as a dictionary-encoded arrow column (a few distinct values);
    NULL for a negative label (a point a method leaves unassigned, as noise labels do)."""
    import pyarrow as pa

    labels = np.asarray(labels)
    k = int(max(names, default=-1)) + 1
    k = max(k, int(labels.max()) + 1 if len(labels) else 0)
    dictionary = pa.array([names.get(j) for j in range(k)], type=pa.string())
    indices = pa.array(np.maximum(labels, 0), type=pa.int32(), mask=labels < 0)
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


def write_geopackage(shards_path, label_paths: Mapping[str, str | os.PathLike], gpkg_path, *,
                     metrics_paths: Mapping[str, str | os.PathLike] | None = None,
                     descriptors_path=None, layer_name: str | None = None,
                     block_rows: int = GPKG_BLOCK_ROWS) -> int:
    """``clusters.gpkg``: one point layer, one feature per point in shard order.

    Fields: ``pid``, ``lat``, ``lon`` (WGS84 degrees), ``x``, ``y`` (projected
    sites), per method ``<method>`` (int label) and ``<method>_regime`` (the
    suggested regime of its cluster, from ``metrics_paths``), then the point's
    descriptors (``features/descriptors.h5``: trend mm/yr, ..., ``step_date``
    as a date). Geometry: the site's projected CRS when it has one (the
    coordinates as delivered), else WGS84 longitude/latitude.

    Streamed with pyogrio (GDAL) from an Arrow stream of ``block_rows`` blocks,
    so memory is one block plus the (N,) label arrays, whatever N. Written
    under a temporary name and renamed when complete. Returns the row count.
    """
    import pyarrow as pa
    import pyogrio

    from .coords import WGS84, crs_wkt

    shards = h5io.Shards(shards_path)
    methods = list(label_paths)
    labels = load_method_labels(label_paths, shards.n_points)
    regimes = {m: regime_names(p) for m, p in (metrics_paths or {}).items()}
    desc = h5io.Features(descriptors_path) if descriptors_path is not None else None
    if desc is not None and desc.n_rows != shards.n_points:
        raise ValueError(f"{descriptors_path} has {desc.n_rows} rows, {shards_path} {shards.n_points}; "
                         "rerun the descriptors stage for this site")
    projected = shards.crs is not None
    layer_name = layer_name or shards.attrs.get("site") or Path(gpkg_path).stem

    fields = [pa.field("pid", pa.string()), pa.field("lat", pa.float64()), pa.field("lon", pa.float64())]
    if projected:
        fields += [pa.field("x", pa.float64()), pa.field("y", pa.float64())]
    for m in methods:
        fields.append(pa.field(m, pa.int32()))
        if m in regimes:
            fields.append(pa.field(f"{m}_regime", pa.string()))
    desc_names = list(desc.names) if desc is not None else []
    for name in desc_names:
        fields.append(pa.field(name, pa.date32() if name == "step_date" else pa.float64()))
    fields.append(pa.field("geometry", pa.binary()))
    schema = pa.schema(fields)

    failure = []

    def batches():
        try:
            yield from blocks()
        except Exception as exc:       # GDAL reports it only as "Error while accessing batch from stream"
            failure.append(exc)
            raise

    def blocks():
        progress = Progress(log, shards.n_points, "points written to the GeoPackage")
        for start, stop in shards.block_bounds(block_rows=block_rows):
            lat = shards.read("points/lat", start, stop)
            lon = shards.read("points/lon", start, stop)
            cols = [pa.array(shards.read("points/pid", start, stop), type=pa.string()), lat, lon]
            if projected:
                x = shards.read("points/x", start, stop)
                y = shards.read("points/y", start, stop)
                cols += [x, y]
            else:
                x, y = lon, lat
            for m in methods:
                lab = labels[m][start:stop]
                cols.append(pa.array(lab, type=pa.int32()))
                if m in regimes:
                    cols.append(_regime_column(lab, regimes[m]))
            if desc is not None:
                D = desc.read(start, stop)
                for j, name in enumerate(desc_names):
                    values = D[:, j]
                    if name == "step_date":
                        # the descriptors keep the best candidate's date even where no step is
                        # significant (step_mm 0): in a GIS layer that is a date with no step
                        ok = np.isfinite(values)
                        if "step_mm" in desc_names:
                            ok &= D[:, desc_names.index("step_mm")] != 0
                        cols.append(pa.array(np.where(ok, np.round(values), 0).astype(np.int32),
                                             type=pa.date32(), mask=~ok))
                    else:
                        values = float32_as_decimal(values) if values.dtype == np.float32 else values.astype(np.float64)
                        cols.append(pa.array(values, mask=~np.isfinite(values)))
            cols.append(_wkb_points(x, y))
            yield pa.RecordBatch.from_arrays(cols, schema=schema)
            progress.update(stop - start)

    crs = shards.crs if projected else WGS84
    # GDAL picks the driver by the extension, so the temporary name keeps it
    with h5io.atomic_path(gpkg_path, keep_suffix=True) as tmp:
        reader = pa.RecordBatchReader.from_batches(schema, batches())
        try:
            # geometry_name: the stream's WKB column (GDAL names the layer's ``geom``, the GeoPackage convention)
            pyogrio.write_arrow(reader, str(tmp), layer=layer_name, driver="GPKG", geometry_name="geometry",
                                geometry_type="Point", crs=crs_wkt(crs))
        except Exception as exc:
            if failure:
                raise failure[0] from exc
            raise
    log.info("wrote %d points x %d methods to %s (layer %s, %s)", shards.n_points, len(methods),
             gpkg_path, layer_name, crs)
    return shards.n_points
