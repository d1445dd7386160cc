"""Checks of the two tracks of an ascending/descending pair before they are decomposed: each
point's line-of-sight geometry, the side each track sees the ground from, and the tracks'
noise levels against each other. Each catches input that the solve would turn into vertical
and east-west motion of the wrong size or sign without any other sign of trouble."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import numpy as np

from . import coords, h5io
from .descriptors import sample_series
from .errors import InputError
from .unit_checks import step_noise

if TYPE_CHECKING:
    from .decompose import Track

# the decompose stage's log, where these checks' lines belong
log = logging.getLogger("insarclust.decompose")

# where los_unit_vectors took the vectors from, when it derived them from the viewing angles
ANGLES = "incidence_angle/track_angle"

# Incidence angles a SAR ground-motion product can have (Sentinel-1 IW: 29-46 degrees):
# 0 and 90 are no side-looking geometry (0 is often a missing-value code), below 5 is
# most likely radians.
INCIDENCE_RANGE_DEG = (5.0, 80.0)
# |length - 1| of a LOS vector from the columns beyond this: not a unit vector
UNIT_TOLERANCE = 0.05


def check_geometry(shards, start: int, static, names, los, source: str, track: str, path) -> None:
    """Stop on line-of-sight geometry that would decompose into wrong numbers without a sign
    of trouble: incidence angles no SAR has, and unit vectors pointing down (the satellite
    is above the ground, so a ground-to-satellite vector has up > 0)."""
    def stop(i, problem, column, fix):
        pid = shards.read("points/pid", start + i, start + i + 1)[0]
        raise InputError(f"{track} track, point '{pid}': {problem}", file=path, column=column, fix=fix)

    if source == ANGLES:
        inc = np.asarray(static[:, names.index("incidence_angle")], dtype=np.float64)
        lo, hi = INCIDENCE_RANGE_DEG
        bad = np.flatnonzero(np.isfinite(inc) & ((inc < lo) | (inc > hi)))
        if len(bad):
            stop(int(bad[0]), f"incidence angle {inc[bad[0]]:g} is outside {lo:g}-{hi:g} degrees "
                              f"({len(bad)} such point(s) in this block)", "incidence_angle",
                 "give incidence angles in degrees from the vertical; leave the cell empty (not 0) "
                 "where it is unknown")
    up = los[:, 2]
    down = np.flatnonzero(np.isfinite(up) & (up <= 0))
    if len(down):
        stop(int(down[0]), f"the line-of-sight vector points down (up = {up[down[0]]:.3g}; "
                           f"{len(down)} such point(s) in this block)", "los_up",
             "LOS vectors must point from the ground to the satellite (up > 0, as EGMS gives them): "
             "if the file uses the satellite-to-ground convention, flip the sign of los_east, "
             "los_north and los_up")
    if source == ANGLES:
        return
    # a vector of finite components that is no unit vector (scaled, one component from
    # another column): a missing component (NaN) only makes the point unusable
    norm = np.sqrt(np.sum(los ** 2, axis=1))
    off = np.flatnonzero(np.isfinite(norm) & (np.abs(norm - 1.0) >= UNIT_TOLERANCE))
    if len(off):
        i = int(off[0])
        stop(i, f"the line-of-sight vector ({los[i, 0]:.3g}, {los[i, 1]:.3g}, {los[i, 2]:.3g}) has length "
                f"{norm[i]:.3g}, not 1 ({len(off)} such point(s) in this block)", "los_east, los_north, los_up",
             "los_east, los_north and los_up must be the components of a unit vector (from the ground to "
             "the satellite); leave all three empty where it is unknown")
    if "track_angle" not in names:
        # without a heading to compare with: every radar of a ground-motion product flies a
        # near-polar orbit (heading within ~15 degrees of north or south), so the horizontal part
        # of its line of sight points mostly east or west (|north| < 0.2 < |east|); a vector
        # pointing mostly north or south has its los_east and los_north swapped
        northward = np.flatnonzero((np.hypot(los[:, 0], los[:, 1]) > 0.1) & (np.abs(los[:, 1]) > np.abs(los[:, 0])))
        if len(northward):
            i = int(northward[0])
            stop(i, f"the horizontal part of the line-of-sight vector (los_east {los[i, 0]:.3g}, los_north "
                    f"{los[i, 1]:.3g}) points mostly north or south, where the near-polar orbit of every "
                    f"ground-motion radar looks mostly east or west ({len(northward)} such point(s) in this "
                    "block): los_east and los_north look swapped", "los_east, los_north",
                 "check the file's los_east and los_north columns (or the format's static names for them): "
                 "los_east is the eastward, los_north the northward component of the unit vector from the "
                 "ground to the satellite")
        return
    # the horizontal part of the vector points 90 degrees left of the satellite's heading (seen from
    # the ground, a right-looking satellite sits there): los_east in another sign convention, or
    # los_east and los_north swapped, point elsewhere and would give east-west motion of the wrong
    # sign or size without any other sign of trouble
    heading = np.asarray(static[:, names.index("track_angle")], dtype=np.float64)
    want_e, want_n, _ = coords.los_vector(np.full(len(heading), 45.0), heading)
    horizontal = np.hypot(los[:, 0], los[:, 1])
    cos_angle = (los[:, 0] * want_e + los[:, 1] * want_n) / (np.maximum(horizontal, 1e-12) * np.hypot(want_e, want_n))
    wrong = np.flatnonzero(np.isfinite(cos_angle) & (horizontal > 0.1) & (cos_angle < np.cos(np.radians(45.0))))
    if len(wrong):
        i = int(wrong[0])
        stop(i, f"the horizontal part of the line-of-sight vector (los_east {los[i, 0]:.3g}, los_north "
                f"{los[i, 1]:.3g}) points {np.degrees(np.arccos(np.clip(cos_angle[i], -1, 1))):.0f} degrees "
                f"away from where a satellite of track_angle {heading[i]:g} looks from (east "
                f"{want_e[i] / np.hypot(want_e[i], want_n[i]):.2f}, north {want_n[i] / np.hypot(want_e[i], want_n[i]):.2f}; "
                f"{len(wrong)} such point(s) in this block)", "los_east, los_north",
             "give los_east (positive eastwards) and los_north (positive northwards) of the unit vector from "
             "the ground to the satellite, and track_angle as the satellite's heading clockwise from north "
             "(about -10 deg ascending, 190 deg descending), as EGMS does: check for swapped columns or a "
             "column of another sign convention")



def check_sides(asc: "Track", desc: "Track") -> None:
    """Stop when the ascending track sees the ground from the east and the descending one from the
    west: sources swapped in the site table, or LOS vectors (track angles) of another convention
    (los_east positive westwards, a heading 180 degrees off), which give the east-west motion the
    wrong sign. The solve itself is symmetric, so nothing else shows it."""
    east = {t.name: float(np.median(t.los[t.key >= 0, 0])) for t in (asc, desc)}
    if not (east["ascending"] > 0 > east["descending"]):
        return
    column = "track_angle" if asc.los_source == ANGLES else "los_east"
    raise InputError(
        f"the ascending track sees the ground from the east and the descending one from the west (median "
        f"los_east {east['ascending']:+.2f} and {east['descending']:+.2f}, from {asc.los_source}), the other "
        "way round from ascending and descending orbits: either the asc and desc sources are swapped, or "
        "the tracks' line-of-sight geometry follows another convention, which would give the east-west "
        "motion the wrong sign", file=f"{asc.path} + {desc.path}", column=column,
        fix="if the asc= files are really the descending track, swap asc= and desc= in the site's source in "
            "config/sites.tsv; otherwise convert the geometry to the EGMS convention: los_east/north/up the unit "
            "vector from the ground to the satellite (los_east < 0 ascending, > 0 descending), track_angle the "
            "satellite's heading clockwise from north (about -10 deg ascending, 190 deg descending)")


def step_noise_mm(shards: h5io.Shards) -> float:
    """A track's typical change between consecutive acquisitions (mm): :func:`step_noise` of
    its observed series (between each point's consecutive observed values: a track of two
    relative orbits interleaves their dates), median over the points of :func:`sample_series`
    (those :func:`site_acquisition_dates` reads)."""
    series = sample_series(shards)
    if series is None:
        return float("nan")
    per_point = step_noise(series)
    per_point = per_point[np.isfinite(per_point)]
    return float(np.median(per_point)) if len(per_point) else float("nan")


def _source_names(track: "Track") -> str:
    """The input files a track was read from (recorded by the shards stage), else its file."""
    files = [r["path"] for r in json.loads(track.shards.attrs.get("source_files") or "[]")]
    if not files:
        return str(track.path)
    return ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")


def check_noise(asc: "Track", desc: "Track", max_ratio: float | None) -> None:
    """Stop when one track's series move ten times more or less than the other's from one
    acquisition to the next: one track in centimetres (or metres) read as mm, with its
    velocity column in the same unit, which no check of a single file sees, and which would
    mix a tenth of one track's motion into the vertical and east-west series."""
    noise = {t.name: step_noise_mm(t.shards) for t in (asc, desc)}
    log.info("typical change between acquisitions: %.3g mm ascending, %.3g mm descending",
             noise["ascending"], noise["descending"])
    if max_ratio is None or not all(v > 0 for v in noise.values()):
        return
    big, small = sorted(noise, key=noise.get, reverse=True)
    ratio = noise[big] / noise[small]
    if ratio <= max_ratio:
        return
    path = {t.name: _source_names(t) for t in (asc, desc)}
    raise InputError(
        f"the {small} track's series change {ratio:.2g} times less from one acquisition to the next than "
        f"the {big} track's (median {noise[small]:.3g} mm against {noise[big]:.3g} mm; two tracks of one "
        f"area share their noise, within a factor of 2 or so): the {small} track looks like centimetres "
        f"or metres read as mm, or the {big} one like mm scaled up", file=path[small],
        column="displacement", fix=f"give both tracks in mm (displacement_unit of the {small} track's format, "
        "or convert the file); if both really are in mm (one track's series temporally filtered, the other "
        "not), raise decompose.max_noise_ratio in config/config.yaml or set it to null")
