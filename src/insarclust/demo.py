"""Embedded synthetic sites (``demo:<preset>`` sources): realistic enough to
exercise every stage and to score clusterings against a known truth.

What is modelled, because it matters downstream:

* Sentinel-1 epochs: 6-day revisit until the loss of Sentinel-1B
  (2021-12-23), 12-day after; no acquisitions in the snow season (mainland:
  mid-November to mid-April; arctic: October to May); 3-8 % of the epochs of
  each point missing at random;
* points in patches like real persistent scatterers: settlements (blobs),
  roads (lines), rock outcrops (small dense blobs);
* spatially coherent regime regions (Voronoi cells of random seeds): stable,
  subsiding (linear), uplifting (linear), seasonal (thaw subsidence / frost
  heave: annual cycle), accelerating (creep whose rate grows), step (a
  sudden offset, e.g. a collapse or a slide event, at a date per region);
  parameters vary by +-25 % inside a region;
* noise: white measurement noise plus a spatially correlated atmospheric
  term per epoch (a few long-wavelength waves), series referenced to the
  first epoch, as delivered by the services;
* plausible static columns of the site's format (height from a synthetic
  DEM, mean velocity fitted to the series, coherence, angles, ...); the
  EGMS model columns (acceleration, seasonality, their errors, rmse) are
  fitted to the series too (:func:`fitted_columns`).

The true regime of each point goes to a side file (``pid,regime``).

:class:`Variant` changes what the validity harness (``bench/validity.py``)
needs to vary: noise and atmosphere, the share of missing epochs, and the
*mix* of regimes. ``regimes`` (default) is the six regimes above;
``seasonality`` holds four classes with one common trend that differ only in
their annual cycle (none, weak, thaw-timed, four months later);
``acceleration`` four classes with the same mean velocity over the archive
that differ in how it is reached (constant, accelerating, decelerating
consolidation, motion starting mid-archive). For those mixes the truth table
has a third column, ``class`` (the finer truth), beside the ``regime`` the
class would be labelled with.
"""
from __future__ import annotations

import datetime as dt
import gzip
import io
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .dates import DAYS_PER_YEAR, EPOCH
from .formats import Format

REGIMES = ("stable", "subsiding", "uplifting", "seasonal", "accelerating", "step")
S1B_LOSS = dt.date(2021, 12, 23)
# class -> regime of the interpretation vocabulary, per mix of regimes
CLASSES = {
    "regimes": {r: r for r in REGIMES},
    "seasonality": {"trend": "subsiding", "weak-cycle": "subsiding", "thaw-cycle": "seasonal",
                    "late-cycle": "seasonal"},
    "acceleration": {"linear": "subsiding", "accelerating": "accelerating",
                     "decelerating": "subsiding", "onset": "accelerating"},
}


@dataclass(frozen=True)
class Variant:
    """How a generated site departs from its preset (the default changes nothing).

    mix: ``regimes`` | ``seasonality`` | ``acceleration`` (see the module
    docstring); noise_mm / atmo_mm: white-noise std and atmospheric amplitude
    (None: the preset's); missing: each point misses a share of the epochs
    drawn uniformly from this range; sparse: this share of the points is
    scattered uniformly over the whole site (vegetated hillside, spacing of
    hundreds of metres) beside the patchy layout of the rest (towns, roads,
    outcrops), so density varies as on real sites (0: the patchy layout alone).
    """

    mix: str = "regimes"
    noise_mm: float | None = None
    atmo_mm: float | None = None
    missing: tuple[float, float] = (0.03, 0.08)
    sparse: float = 0.0


@dataclass(frozen=True)
class Preset:
    name: str
    center_lat: float
    center_lon: float
    extent_km: float
    winter_start: tuple[int, int]   # (month, day) first day without acquisitions
    winter_end: tuple[int, int]     # (month, day) first day with acquisitions again
    noise_mm: float
    atmo_mm: float
    track_angle: float


PRESETS = {
    # Lyngen, Troms: valley slopes, rockslides, coastal settlements
    "mainland": Preset("mainland", 69.58, 20.22, 16.0, (11, 15), (4, 15), 2.0, 2.5, -12.5),
    # Longyearbyen, Svalbard: permafrost, short snow-free season
    "arctic": Preset("arctic", 78.22, 15.60, 12.0, (10, 1), (6, 1), 2.5, 3.0, 192.3),
}


def acquisition_dates(start: str, years: float, preset: Preset) -> np.ndarray:
    """Sentinel-1 epochs (days since 1970-01-01) without the snow season."""
    d0 = dt.date.fromisoformat(start)
    end = d0 + dt.timedelta(days=int(years * DAYS_PER_YEAR))
    out, d = [], d0
    while d <= end:
        md = (d.month, d.day)
        in_winter = (md >= preset.winter_start or md < preset.winter_end) if preset.winter_start > preset.winter_end \
            else (preset.winter_start <= md < preset.winter_end)
        if not in_winter:
            out.append((d - EPOCH).days)
        d += dt.timedelta(days=6 if d < S1B_LOSS else 12)
    return np.asarray(out, dtype=np.int32)


def _points(rng, n: int, extent_m: float):
    """Patchy point layout in local metres: settlements, roads, outcrops."""
    xs, ys = [], []
    n_set, n_road = int(0.45 * n), int(0.30 * n)
    n_out = n - n_set - n_road
    centers = rng.uniform(0.1, 0.9, (12, 2)) * extent_m
    sizes = rng.uniform(200, 900, 12)
    which = rng.integers(0, 12, n_set)
    xs.append(centers[which, 0] + rng.normal(0, 1, n_set) * sizes[which])
    ys.append(centers[which, 1] + rng.normal(0, 1, n_set) * sizes[which])
    for i, m in enumerate(np.diff(np.linspace(0, n_road, 7).astype(int))):
        a, b = rng.uniform(0, 1, 2) * extent_m, rng.uniform(0, 1, 2) * extent_m
        t = rng.uniform(0, 1, m)
        xs.append(a[0] + t * (b[0] - a[0]) + rng.normal(0, 25, m))
        ys.append(a[1] + t * (b[1] - a[1]) + rng.normal(0, 25, m))
    oc = rng.uniform(0.05, 0.95, (30, 2)) * extent_m
    which = rng.integers(0, 30, n_out)
    xs.append(oc[which, 0] + rng.normal(0, 80, n_out))
    ys.append(oc[which, 1] + rng.normal(0, 80, n_out))
    x = np.clip(np.concatenate(xs), 0, extent_m)
    y = np.clip(np.concatenate(ys), 0, extent_m)
    return x, y


def _regions(rng, x, y, extent_m: float, n_classes: int = len(REGIMES), p=None):
    """Class of each point: Voronoi cells of random seeds, each with a class (every class appears)."""
    n_seeds = 24
    seeds = rng.uniform(0, extent_m, (n_seeds, 2))
    if p is None:  # the six regimes: stable is the most common, as on real sites
        p = [0.35, 0.15, 0.1, 0.15, 0.1, 0.15]
    regime_of_seed = np.concatenate([np.arange(n_classes),
                                     rng.choice(n_classes, n_seeds - n_classes, p=p)])
    d2 = (x[:, None] - seeds[None, :, 0]) ** 2 + (y[:, None] - seeds[None, :, 1]) ** 2
    cell = np.argmin(d2, axis=1)
    return cell, regime_of_seed[cell], n_seeds


def _region_params(rng, n_cells: int, t_end_yr: float) -> dict:
    """Motion parameters of each region (Voronoi cell)."""
    return {"rate": rng.uniform(-15, -5, n_cells), "up": rng.uniform(3, 8, n_cells),
            "amp": rng.uniform(6, 14, n_cells), "acc": rng.uniform(-4, -2, n_cells),
            "step_size": rng.uniform(-30, -15, n_cells),
            "step_t": rng.uniform(0.3, 0.7, n_cells) * t_end_yr}


def _signals(rng, t_yr, doy, regime, cell, n_cells):
    """Deformation signal (n, T) mm of each point from its regime and cell."""
    jitter = rng.uniform(0.75, 1.25, len(regime))
    return _signal_of(_region_params(rng, n_cells, t_yr[-1]), t_yr, doy, regime, cell, jitter)


def _signal_of(params: dict, t_yr, doy, regime, cell, jitter):
    """Signal (n, T) mm from region parameters; t_yr (T,) years since the reference epoch."""
    rate, up, amp, acc = params["rate"], params["up"], params["amp"], params["acc"]
    step_size, step_t = params["step_size"], params["step_t"]
    n = len(regime)
    sig = np.zeros((n, len(t_yr)))
    r = regime
    m = r == REGIMES.index("subsiding")
    sig[m] = (rate[cell[m]] * jitter[m])[:, None] * t_yr
    m = r == REGIMES.index("uplifting")
    sig[m] = (up[cell[m]] * jitter[m])[:, None] * t_yr
    m = r == REGIMES.index("seasonal")
    # thaw settlement through the snow-free season, recovered (heave) over winter
    phase = 2 * np.pi * (doy - 200) / DAYS_PER_YEAR
    sig[m] = -(amp[cell[m]] * jitter[m])[:, None] * 0.5 * (1 - np.cos(phase))[None, :]
    m = r == REGIMES.index("accelerating")
    sig[m] = (-2.0 * t_yr)[None, :] + (acc[cell[m]] * jitter[m])[:, None] * t_yr ** 2
    m = r == REGIMES.index("step")
    sig[m] = np.where(t_yr[None, :] >= step_t[cell[m]][:, None],
                      (step_size[cell[m]] * jitter[m])[:, None], 0.0)
    return sig


def _mix_signals(mix, rng, t_yr, doy, cls, cell, n_cells):
    """Signal (n, T) mm of the ``seasonality`` and ``acceleration`` mixes (class ids ``cls``)."""
    n = len(cls)
    jitter = rng.uniform(0.75, 1.25, n)
    names = list(CLASSES[mix])
    sig = np.zeros((n, len(t_yr)))
    span = float(t_yr[-1])
    if mix == "seasonality":
        trend = rng.uniform(-5.0, -3.0)  # one trend for the whole site
        # peak-to-peak mm: the weak cycle stays below the 4 mm (half peak-to-peak)
        # label threshold of interpret:, the others above it
        amp = {"trend": np.zeros(n_cells), "weak-cycle": rng.uniform(3, 6, n_cells),
               "thaw-cycle": rng.uniform(10, 16, n_cells), "late-cycle": rng.uniform(10, 16, n_cells)}
        start_doy = {"trend": 200, "weak-cycle": 200, "thaw-cycle": 200, "late-cycle": 320}
        for c, name in enumerate(names):
            m = cls == c
            phase = 2 * np.pi * (doy - start_doy[name]) / DAYS_PER_YEAR
            cycle = -0.5 * (1 - np.cos(phase))
            sig[m] = trend * jitter[m, None] * t_yr + (amp[name][cell[m]] * jitter[m])[:, None] * cycle
        return sig
    # acceleration: every class ends near velocity x span; they differ in how
    rate = rng.uniform(-10, -6, n_cells)      # mean velocity over the archive, mm/yr
    acc = rng.uniform(-3, -2, n_cells)        # mm/yr^2
    tau = rng.uniform(0.8, 1.5, n_cells)      # consolidation time constant, yr
    onset = rng.uniform(0.3, 0.6, n_cells) * span
    for c, name in enumerate(names):
        m = cls == c
        v, j = rate[cell[m]][:, None], jitter[m][:, None]
        if name == "linear":
            sig[m] = v * j * t_yr
        elif name == "accelerating":
            a = acc[cell[m]][:, None]
            sig[m] = j * ((v - a * span / 2) * t_yr + 0.5 * a * t_yr ** 2)
        elif name == "decelerating":
            tc = tau[cell[m]][:, None]
            sig[m] = j * v * span / (1 - np.exp(-span / tc)) * (1 - np.exp(-t_yr / tc))
        else:
            t0 = onset[cell[m]][:, None]
            sig[m] = j * v * span / (span - t0) * np.maximum(t_yr - t0, 0.0)
    return sig


def _atmosphere(rng, x, y, n_epochs, amp_mm):
    """Spatially correlated noise (n, T): three long-wavelength waves per epoch."""
    k = 3
    wavelength = rng.uniform(5000, 20000, (n_epochs, k))
    theta = rng.uniform(0, 2 * np.pi, (n_epochs, k))
    phase0 = rng.uniform(0, 2 * np.pi, (n_epochs, k))
    a = rng.normal(0, amp_mm / np.sqrt(k), (n_epochs, k))
    kx = 2 * np.pi / wavelength * np.cos(theta)
    ky = 2 * np.pi / wavelength * np.sin(theta)
    out = np.zeros((len(x), n_epochs))
    for j in range(k):
        out += a[:, j] * np.sin(np.outer(x, kx[:, j]) + np.outer(y, ky[:, j]) + phase0[:, j])
    return out


def generate(site: str, preset: str, fmt: Format, n_points: int = 20000, start: str = "2018-06-01",
             years: float = 4.5, seed: int = 42, variant: Variant | None = None
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic site as (CSV table in the format's columns, truth table pid/regime[/class])."""
    if preset not in PRESETS:
        raise ValueError(f"unknown demo preset '{preset}'; choose one of {sorted(PRESETS)}")
    variant = variant or Variant()
    if variant.mix not in CLASSES:
        raise ValueError(f"unknown mix '{variant.mix}'; choose one of {sorted(CLASSES)}")
    if not 0.0 <= variant.sparse <= 1.0:
        raise ValueError(f"sparse is a share of the points, in [0, 1]; got {variant.sparse}")
    p = PRESETS[preset]
    rng = np.random.default_rng([seed, zlib.crc32(site.encode())])
    extent_m = p.extent_km * 1000
    n_sparse = int(round(variant.sparse * n_points))
    x, y = _points(rng, n_points - n_sparse, extent_m)
    if n_sparse:   # drawn only then: the patchy sites stay as they were
        x, y = np.r_[x, rng.uniform(0, extent_m, n_sparse)], np.r_[y, rng.uniform(0, extent_m, n_sparse)]
    dates = acquisition_dates(start, years, p)
    t_yr = (dates - dates[0]) / DAYS_PER_YEAR
    doy = np.array([(EPOCH + dt.timedelta(days=int(d))).timetuple().tm_yday for d in dates])
    classes = list(CLASSES[variant.mix])
    if variant.mix == "regimes":
        cell, cls, n_cells = _regions(rng, x, y, extent_m)
        signal = _signals(rng, t_yr, doy, cls, cell, n_cells)
    else:
        cell, cls, n_cells = _regions(rng, x, y, extent_m, len(classes), np.full(len(classes), 1 / len(classes)))
        signal = _mix_signals(variant.mix, rng, t_yr, doy, cls, cell, n_cells)
    regime = np.array([CLASSES[variant.mix][c] for c in classes])[cls]
    disp = _observed(rng, p, x, y, signal, variant)
    table, pid = _table(site, fmt, rng, p, x, y, extent_m, disp, dates, t_yr, 33 + 10 * x / extent_m)
    # rows in arbitrary (provider) order: the shards stage must sort them
    perm = rng.permutation(n_points)
    table = table.iloc[perm].reset_index(drop=True)
    truth = pd.DataFrame({"pid": pid[perm], "regime": regime[perm]})
    if variant.mix != "regimes":
        truth["class"] = np.array(classes)[cls[perm]]
    return table, truth


def _observed(rng, p: Preset, x, y, signal: np.ndarray, variant: Variant | None = None) -> np.ndarray:
    """What a service delivers of a signal (n, T): plus atmosphere and noise (the preset's, or the
    variant's), referenced to the first epoch, a share of the epochs of each point missing
    (3-8 %, or the variant's range)."""
    variant = variant or Variant()
    noise_mm = p.noise_mm if variant.noise_mm is None else float(variant.noise_mm)
    atmo_mm = p.atmo_mm if variant.atmo_mm is None else float(variant.atmo_mm)
    n = len(signal)
    disp = signal + _atmosphere(rng, x, y, signal.shape[1], atmo_mm)
    disp += rng.normal(0, noise_mm, disp.shape)
    disp -= disp[:, :1]  # referenced to the first epoch
    lo, hi = variant.missing
    missing = rng.random(disp.shape) < rng.uniform(lo, hi, n)[:, None]
    missing[:, 0] = False
    disp[missing] = np.nan
    return disp


def _table(site, fmt, rng, p: Preset, x, y, extent_m, disp, dates, t_yr, incidence_deg,
           track_angle=None, pid_tag: str = "") -> tuple[pd.DataFrame, np.ndarray]:
    """The CSV table (format's columns, points in generation order) and the point ids."""
    n_points = len(x)
    lat = p.center_lat + (y - extent_m / 2) / 111_320.0
    lon = p.center_lon + (x - extent_m / 2) / (111_320.0 * np.cos(np.deg2rad(p.center_lat)))
    # synthetic DEM: valley floor near sea level, mountains around
    dem = 40 + 900 * (1 - np.exp(-(((x - extent_m / 2) / (0.35 * extent_m)) ** 2))) \
        + 150 * np.sin(y / 2500.0) + rng.normal(0, 5, n_points)
    dem = np.maximum(dem, 2.0)
    obs = ~np.isnan(disp)
    tt = np.where(obs, t_yr[None, :], 0.0)
    dd = np.where(obs, disp, 0.0)
    cnt = obs.sum(1)
    mt, md = tt.sum(1) / cnt, dd.sum(1) / cnt
    vel = ((tt - mt[:, None]) * (dd - md[:, None]) * obs).sum(1) / (((tt - mt[:, None]) ** 2) * obs).sum(1)
    coherence = np.clip(0.98 - 0.04 * np.abs(rng.normal(0, 2, n_points)) - 0.01 * np.nanstd(disp, axis=1) / 5, 0.3, 1)
    incidence = incidence_deg + rng.normal(0, 0.05, n_points)
    prefix = "".join(c for c in site.upper() if c.isalnum())[:6] + pid_tag
    pid = np.array([f"{prefix}{i:07d}" for i in range(n_points)])

    date_names = [(EPOCH + dt.timedelta(days=int(d))).strftime("%Y%m%d") for d in dates]
    # the format's date pattern decides the column names (svalbard: D20180605)
    date_cols = ["D" + d for d in date_names] if fmt.date_pattern.startswith("^D") else date_names
    dem_slope = np.hypot(900 * 2 * (x - extent_m / 2) / (0.35 * extent_m) ** 2
                         * np.exp(-(((x - extent_m / 2) / (0.35 * extent_m)) ** 2)),
                         150 / 2500.0 * np.cos(y / 2500.0))
    static = _static_columns(fmt, rng, dem, np.degrees(np.arctan(dem_slope)), vel, coherence,
                             incidence, x, y, disp, dates, p, track_angle=track_angle)
    cols = {fmt.id: pid, **_position_columns(fmt, lat, lon)}
    cols.update(static)
    table = pd.DataFrame(cols)
    table = pd.concat([table, pd.DataFrame(np.round(disp, 1).astype(np.float32), columns=date_cols)], axis=1)
    return table, pid


# The two passes of a demo pair: heading (deg from north), first acquisition after ``start``
# (days), incidence across the swath from west to east (deg). Ascending passes look east,
# descending ones west, so the incidence grows eastwards on one and westwards on the other.
PAIR_TRACKS = {"asc": (-12.5, 0, (30.0, 44.0)), "desc": (192.5, 3, (44.0, 30.0))}


def generate_pair(site: str, preset: str, fmt: Format, n_points: int = 20000, start: str = "2018-06-01",
                  years: float = 4.5, seed: int = 42, cell_size_m: float = 100.0, crs: str = "EPSG:3035",
                  ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """An ascending + descending pair over one synthetic site: ``({"asc": table, "desc": table}, truth)``.

    One ground motion (the regime regions of :func:`generate`, vertical, plus
    an east-west creep of up to 6 mm/yr in every region that is not stable) is
    seen by two tracks of ``n_points`` different scatterers each, on dates 3
    days apart, each in its line of sight (``los_east/north/up`` and
    incidence/track angles in the static columns the format has) with its own
    atmosphere and noise. ``truth``: the regime of each ``cell_size_m`` cell of
    ``crs`` that holds points of both tracks (majority of its points), with the
    cell ids of the decompose stage.
    """
    from .coords import cell_index, cell_key, cell_names, cell_of_key, from_wgs84, los_vector

    if preset not in PRESETS:
        raise ValueError(f"unknown demo preset '{preset}'; choose one of {sorted(PRESETS)}")
    p = PRESETS[preset]
    rng = np.random.default_rng([seed, zlib.crc32(site.encode()), 2])
    extent_m = p.extent_km * 1000
    n_seeds = 24
    seeds = rng.uniform(0, extent_m, (n_seeds, 2))
    regime_of_seed = np.concatenate([np.arange(len(REGIMES)),
                                     rng.choice(len(REGIMES), n_seeds - len(REGIMES),
                                                p=[0.35, 0.15, 0.1, 0.15, 0.1, 0.15])])
    params = _region_params(rng, n_seeds, years)
    east_rate = np.where(regime_of_seed == REGIMES.index("stable"), 0.0, rng.uniform(-6, 6, n_seeds))
    day0 = (dt.date.fromisoformat(start) - EPOCH).days
    tables, cells, regimes = {}, [], []
    for track, (heading, offset, (inc_west, inc_east)) in PAIR_TRACKS.items():
        x, y = _points(rng, n_points, extent_m)
        cell = np.argmin((x[:, None] - seeds[None, :, 0]) ** 2 + (y[:, None] - seeds[None, :, 1]) ** 2, axis=1)
        regime = regime_of_seed[cell]
        first = (EPOCH + dt.timedelta(days=day0 + offset)).isoformat()
        dates = acquisition_dates(first, years, p)
        t_yr = (dates - day0) / DAYS_PER_YEAR   # one clock for both tracks: the same motion
        doy = np.array([(EPOCH + dt.timedelta(days=int(d))).timetuple().tm_yday for d in dates])
        jitter = rng.uniform(0.75, 1.25, n_points)
        up = _signal_of(params, t_yr, doy, regime, cell, jitter)
        east = (east_rate[cell] * jitter)[:, None] * t_yr[None, :]
        incidence = inc_west + (inc_east - inc_west) * x / extent_m
        e, _, u = los_vector(incidence, heading)
        disp = _observed(rng, p, x, y, e[:, None] * east + u[:, None] * up)
        table, pid = _table(site, fmt, rng, p, x, y, extent_m, disp, dates, t_yr, incidence,
                            track_angle=heading, pid_tag=track[0].upper())
        tables[track] = table.iloc[rng.permutation(n_points)].reset_index(drop=True)
        lat = p.center_lat + (y - extent_m / 2) / 111_320.0
        lon = p.center_lon + (x - extent_m / 2) / (111_320.0 * np.cos(np.deg2rad(p.center_lat)))
        cells.append(np.stack(cell_index(*from_wgs84(lat, lon, crs), cell_size_m), axis=1))
        regimes.append(regime)
    # truth of the cells seen by both tracks: the most common regime of their points
    both = np.intersect1d(*[np.unique(cell_key(c[:, 0], c[:, 1])) for c in cells])
    ij = np.concatenate(cells)
    key = cell_key(ij[:, 0], ij[:, 1])
    keep = np.isin(key, both)
    votes = np.zeros((len(both), len(REGIMES)), dtype=np.int64)
    np.add.at(votes, (np.searchsorted(both, key[keep]), np.concatenate(regimes)[keep]), 1)
    i, j = cell_of_key(both)
    truth = pd.DataFrame({"pid": cell_names(i, j, cell_size_m), "regime": np.array(REGIMES)[votes.argmax(1)]})
    return tables, truth


def write_demo_pair(track_paths: dict, truth_path, site: str, preset: str, fmt: Format, **kwargs) -> None:
    """Write a demo pair (``{"asc": path, "desc": path}``, gzip CSV) and its cell truth atomically."""
    tables, truth = generate_pair(site, preset, fmt, **kwargs)
    for track, path in track_paths.items():
        _write_csv_gz(tables[track], path)
    from .h5io import atomic_path

    with atomic_path(truth_path) as tmp:
        truth.to_csv(tmp, index=False)


def _write_csv_gz(table: pd.DataFrame, path) -> None:
    from .h5io import atomic_path

    # gzip header without file name or time stamp: identical bytes on every run
    with atomic_path(path) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
        table.to_csv(text, index=False)


def _position_columns(fmt: Format, lat: np.ndarray, lon: np.ndarray) -> dict:
    """The format's position columns: lat/lon (1e-7 deg), or projected x/y (1 mm) like EGMS L3."""
    if not fmt.projected:
        return {fmt.lat: np.round(lat, 7), fmt.lon: np.round(lon, 7)}
    from .coords import from_wgs84

    x, y = from_wgs84(lat, lon, fmt.crs)
    return {fmt.x: np.round(x, 3), fmt.y: np.round(y, 3)}


FITTED_COLUMNS = ("rmse", "mean_velocity_std", "acceleration", "acceleration_std", "seasonality",
                  "seasonality_std")


def fitted_columns(disp: np.ndarray, t_yr: np.ndarray) -> dict:
    """The EGMS model columns of each series (n, T), NaN epochs skipped: a least-squares fit of
    offset + v t + a t^2 / 2 + annual cosine and sine (t in years from mid-archive), with
    ``acceleration`` a (mm/yr^2), ``seasonality`` the annual amplitude (mm), their standard
    errors and v's from the residuals, and ``rmse`` the residuals' root mean square (mm).

    Drawn as noise before, these columns were five uninformative features of every EGMS-format
    site; the products fit them to the same series, so here they carry what the series carry."""
    t = t_yr - (t_yr[0] + t_yr[-1]) / 2
    w = 2 * np.pi * t_yr
    design = np.c_[np.ones_like(t), t, t ** 2 / 2, np.cos(w), np.sin(w)]      # (T, 5)
    obs = np.isfinite(disp)
    d = np.where(obs, disp, 0.0)
    cnt = obs.sum(1)
    # a series of at most 5 observations (a short archive with gaps) has no residual to fit
    # against (its normal matrix may be singular, which stopped the whole generator): left
    # empty, as a product leaves a model it cannot fit; the others' matrices are untouched
    fits = cnt > design.shape[1]
    normal = np.einsum("nt,ti,tj->nij", obs.astype(float), design, design)     # (n, 5, 5)
    normal[~fits] = np.eye(design.shape[1])
    coef = np.linalg.solve(normal, (d @ design)[..., None])[..., 0]
    resid = np.where(obs, d - coef @ design.T, 0.0)
    rss = (resid ** 2).sum(1)
    cov = np.linalg.inv(normal) * (rss / np.maximum(cnt - design.shape[1], 1))[:, None, None]
    cos, sin = coef[:, 3], coef[:, 4]
    amp = np.hypot(cos, sin)
    # delta method for the amplitude's standard error
    var_amp = (cos ** 2 * cov[:, 3, 3] + sin ** 2 * cov[:, 4, 4] + 2 * cos * sin * cov[:, 3, 4]) \
        / np.maximum(amp ** 2, 1e-12)
    out = {"rmse": np.sqrt(rss / cnt), "mean_velocity_std": np.sqrt(cov[:, 1, 1]),
           "acceleration": coef[:, 2], "acceleration_std": np.sqrt(cov[:, 2, 2]),
           "seasonality": amp, "seasonality_std": np.sqrt(var_amp)}
    for values in out.values():
        values[~fits] = np.nan
    return out


def _static_columns(fmt, rng, dem, slope_deg, vel, coherence, incidence, x, y, disp, dates, p,
                    track_angle=None):
    n = len(dem)
    slope = np.clip(slope_deg + rng.normal(0, 2, n), 0, 60)
    values = {
        "height": dem, "ELEVATION": dem,
        "mean_velocity": vel,
        "rmse": rng.uniform(1.0, 3.0, n),
        "temporal_coherence": coherence, "COHERENCE": coherence,
        "amplitude_dispersion": rng.uniform(0.12, 0.4, n),
        "incidence_angle": incidence,
        "track_angle": (p.track_angle if track_angle is None else track_angle) + rng.normal(0, 0.01, n),
        "MAXDISP": np.nanmax(np.abs(disp), axis=1),
        "RANGE": (x / 20.0).round(),
        "AZIMUTH": (y / 14.0).round(),
        "DEMERR": rng.normal(0, 3, n),
        "SLOPE": slope,
        "DOYMAX": np.array([(EPOCH + dt.timedelta(days=int(d))).timetuple().tm_yday
                            for d in dates])[np.nanargmax(np.abs(np.nan_to_num(disp)), axis=1)],
    }
    # further columns of the EGMS products (L2a/L2b/L3), drawn only for formats that have them
    wanted = set(fmt.static + fmt.optional_static + fmt.geometry)
    if wanted & {"los_east", "los_north", "los_up"}:
        from .coords import los_vector

        values["los_east"], values["los_north"], values["los_up"] = los_vector(incidence, values["track_angle"])
    if "height_wgs84" in wanted:
        values["height_wgs84"] = dem + 38.0
    if wanted & set(FITTED_COLUMNS):
        # fitted to the series as in the EGMS products (rmse's draw above is kept so the other
        # formats' columns stay as they were)
        values.update(fitted_columns(disp, (dates - dates[0]) / DAYS_PER_YEAR))
    out = {}
    for name in fmt.static + fmt.optional_static + fmt.geometry:
        if name in values:
            out[name] = np.round(values[name], 3)
        else:  # a column the generator does not model: plausible noise
            out[name] = np.round(rng.normal(0, 1, n), 3)
    return out


def write_demo(csv_path, truth_path, site: str, preset: str, fmt: Format, **kwargs) -> None:
    """Write the demo CSV (gzip) and truth table atomically."""
    from .h5io import atomic_path

    table, truth = generate(site, preset, fmt, **kwargs)
    # gzip header without file name or time stamp: identical bytes on every run
    with atomic_path(csv_path) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
        table.to_csv(text, index=False)
    with atomic_path(truth_path) as tmp:
        truth.to_csv(tmp, index=False)
