"""EGMS L3 tile names: ``EGMS_L3_E47N51_100km_U_2018_2022_1.csv`` is the 100 km tile whose
lower-left corner is easting 4,700,000 m, northing 5,100,000 m of EPSG:3035 (ETRS89-LAEA), and
``U`` its component (``U`` vertical, ``E`` east-west), which the file's columns do not say.

Easting and northing swapped in a file's columns (or in a format's ``x``/``y``) land the points
elsewhere in Europe, inside the CRS's and the format's area, so no other check sees it; the tile
the file is named after does."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np

from .errors import InputError

TILE_M = 100_000.0
_NAME = re.compile(r"(?<![A-Za-z0-9])E(\d{2,3})N(\d{2,3})_100km", re.IGNORECASE)
MIN_POINTS = 25
OUTSIDE_SHARE = 0.5    # fewer of the points than this in their tile ...
SWAPPED_SHARE = 0.9    # ... and at least this share of them in it with x and y swapped: swapped


def _name_match(pattern: re.Pattern, label: str) -> re.Match | None:
    """``pattern`` in the file name of a label: a zip member's (``a.zip!member.csv``) first, the
    zip's where the member's name says nothing. The member follows the last ``!`` (a folder's
    name may hold one)."""
    head, bang, tail = str(label).replace(":", "/").rpartition("!")
    path, member = (head, tail) if bang else (tail, "")
    names = [PurePath(member).name, PurePath(path).name] if member else [PurePath(path).name]
    return next((m for m in map(pattern.search, names) if m), None)


def tile_of(label: str) -> tuple[float, float] | None:
    """(x0, y0) in metres of the EGMS L3 tile a file is named after, or None."""
    match = _name_match(_NAME, label)
    if match is None:
        return None
    return float(match.group(1)) * TILE_M, float(match.group(2)) * TILE_M


# the component after the tile: _100km_U_ (vertical) or _100km_E_ (east-west)
_COMPONENT = re.compile(r"(?<![A-Za-z0-9])E\d{2,3}N\d{2,3}_100km_([UE])(?![A-Za-z0-9])", re.IGNORECASE)
COMPONENTS = {"U": "up", "E": "east"}
_SAID = {"up": "vertical (U)", "east": "east-west (E)"}


def component_of(label: str) -> str | None:
    """``"up"`` or ``"east"``: the component an EGMS L3 file is named after, or None."""
    match = _name_match(_COMPONENT, label)
    return COMPONENTS[match.group(1).upper()] if match else None


def site_component(labels) -> str | None:
    """The component every one of a site's files is named after, else None (a file named
    otherwise leaves it unknown). A site of files named after both stops: its vertical and
    east-west series would be clustered as one kind of motion, a westward point beside a
    subsiding one."""
    named = {label: component_of(label) for label in labels}
    found = {c for c in named.values() if c}
    if len(found) > 1:
        example = {c: next(label for label, n in named.items() if n == c) for c in sorted(found)}
        raise InputError(
            "the site mixes EGMS L3 components: " + " and ".join(
                f"{sum(n == c for n in named.values())} file(s) named after the {_SAID[c]} one "
                f"(e.g. {example[c]})" for c in sorted(found)),
            file=", ".join(example.values()),
            fix="give the vertical and the east-west files as two sites in config/sites.tsv, e.g. "
                "data/x/*_100km_U_*.csv and data/x/*_100km_E_*.csv")
    if len(found) == 1 and all(named.values()):
        return found.pop()
    return None


def _inside(x, y, x0, y0) -> np.ndarray:
    return (x >= x0) & (x < x0 + TILE_M) & (y >= y0) & (y < y0 + TILE_M)


@dataclass
class TileCheck:
    """Counts, per file named after a tile, of its points inside the tile as read and with x and
    y swapped; :meth:`check` stops when the swapped reading fits and the other does not."""

    counts: dict = field(default_factory=dict)   # label -> [n, inside, inside swapped, example]

    def add(self, label: str, x: np.ndarray, y: np.ndarray, pid) -> None:
        tile = tile_of(label)
        if tile is None or not len(x):
            return
        c = self.counts.setdefault(label, [0, 0, 0, None])
        inside, swapped = _inside(x, y, *tile), _inside(y, x, *tile)
        c[0] += len(x)
        c[1] += int(inside.sum())
        c[2] += int(swapped.sum())
        if c[3] is None and (swapped & ~inside).any():
            i = int(np.argmax(swapped & ~inside))
            c[3] = (pid[i], float(x[i]), float(y[i]))

    def check(self, label: str, x_column: str, y_column: str, log) -> None:
        c = self.counts.pop(label, None)
        if c is None or c[0] < MIN_POINTS:
            return
        n, inside, swapped, example = c
        if inside >= OUTSIDE_SHARE * n:
            return
        x0, y0 = tile_of(label)
        tile = f"E{int(x0 // TILE_M)}N{int(y0 // TILE_M)}"
        bounds = f"{x_column} {x0:.0f}-{x0 + TILE_M:.0f} m, {y_column} {y0:.0f}-{y0 + TILE_M:.0f} m"
        if swapped >= SWAPPED_SHARE * n and example is not None:
            pid, x, y = example
            raise InputError(
                f"the file is named after EGMS tile {tile} ({bounds}), but {n - inside} of its {n} points lie "
                f"outside it as read and {swapped} inside it with {x_column} and {y_column} swapped (e.g. point "
                f"'{pid}': {x_column} {x:.0f}, {y_column} {y:.0f}): the two columns look swapped", file=label,
                column=f"{x_column}, {y_column}",
                fix=f"check the file's position columns; if they are swapped, set x: {y_column} and y: {x_column} "
                    "in a copy of the format's block of config/formats.yaml")
        log.warning("%s: %d of its %d points lie outside EGMS tile %s, which the file name gives (%s)",
                    label, n - inside, n, tile, bounds)
