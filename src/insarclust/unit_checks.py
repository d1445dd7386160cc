"""The unit and sign of a file's displacements, checked against the file itself and, for a
multi-file site, against the site's other files.

A file in metres or centimetres read as millimetres, or with the other sign convention than its
own ``mean_velocity``, passes every range check and gives every rate and regime read from it
wrong; these checks run per file in the shards stage (:func:`insarclust.shards.build_shards`)
on a sample of each block's rows. :class:`NoiseCheck` compares the files of a site by their
typical change between acquisitions (:func:`step_noise`, which the pair check of
:mod:`insarclust.decompose` shares).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from .dates import DAYS_PER_YEAR
from .errors import InputError
from .formats import UNIT_TO_MM, Format

log = logging.getLogger("insarclust.shards")

# The static column whose unit (mm/yr) the displacement series are checked against.
VELOCITY_COLUMN = "mean_velocity"
UNIT_CHECK_ROWS = 2048        # rows of each block whose trend is fitted
UNIT_CHECK_MAX = 50_000       # points per file kept for the check
UNIT_CHECK_MIN_POINTS = 25    # fastest points needed to judge a file
UNIT_CHECK_OFF = 5.0          # a median trend/velocity ratio beyond x5 (or below /5) is another unit
UNIT_CHECK_AGREE = 0.7        # ... when this share of the points agree within a factor 2
UNIT_CHECK_MATCH = 1.25       # ... and the ratio is a unit's factor within this (units are exact factors)
MIXED_SIGN_MATCH = 1.5        # a trend within this factor of +-velocity runs with (against) it
MIXED_SIGN_SHARE = 0.2        # both shares of the fastest points at least this: two sign conventions


def _trend_per_year(disp: np.ndarray, days) -> np.ndarray:
    """Least-squares trend (units per year) of each row of ``disp (n, T)`` over its finite
    values; NaN where a row has fewer than 3 values."""
    t = (np.asarray(days, dtype=np.float64) - days[0]) / DAYS_PER_YEAR
    d = np.asarray(disp, dtype=np.float64)
    obs = np.isfinite(d)
    cnt = obs.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tc = np.where(obs, t - (np.where(obs, t, 0.0).sum(1) / cnt)[:, None], 0.0)
        dc = np.where(obs, d - (np.where(obs, d, 0.0).sum(1) / cnt)[:, None], 0.0)
        trend = (tc * dc).sum(1) / (tc ** 2).sum(1)
    trend[cnt < 3] = np.nan
    return trend


SPREAD_CHECK_ROWS = 512        # rows of each block whose spread is measured
NOISE_CHECK_ROWS = 128         # ... and whose change between acquisitions (a median: ~1.2 ms a block)


def _sample_rows(block, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` evenly spread rows of a block (its key order) and their rows in the file."""
    n = len(block.pid)
    idx = np.unique(np.linspace(0, n - 1, min(n, k)).astype(np.int64))
    return idx, block.first_row + (idx if block.order is None else block.order[idx])


@dataclass
class SpreadCheck:
    """A file of displacements in metres read as millimetres, without a ``mean_velocity`` column
    for :class:`UnitCheck` (the Svalbard layout, a processor's own export), passes every other
    check with every motion 1000 times too small. Measured InSAR series are never that still:
    noise alone moves each by a few mm over its dates, so a file whose typical series spans less
    than ``shards.min_spread_mm`` (largest minus smallest value, median over its points) is not in
    the unit it is read in."""

    spreads: dict = field(default_factory=dict)   # label -> list of (spread, pid, row) arrays

    def add(self, block, label: str) -> None:
        if not len(block.pid):
            return
        idx, rows = _sample_rows(block, SPREAD_CHECK_ROWS)
        d = block.displacement[idx]
        enough = np.count_nonzero(np.isfinite(d), axis=1) >= 3
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # rows without values have no max
            spread = np.nanmax(d, axis=1) - np.nanmin(d, axis=1)
        self.spreads.setdefault(label, []).append((spread[enough], block.pid[idx][enough], rows[enough]))

    def check(self, label: str, fmt: Format, min_spread_mm: float | None) -> None:
        kept = self.spreads.pop(label, [])
        if min_spread_mm is None or not kept:
            return
        spread, pid, rows = (np.concatenate(a) for a in zip(*kept))
        if len(spread) < UNIT_CHECK_MIN_POINTS:
            return
        med = float(np.median(spread))
        if not 0 < med < min_spread_mm:   # 0: constant series (a model), nothing to judge by
            return
        i = int(np.argmin(np.abs(spread - med)))
        as_m = med / fmt.to_mm * UNIT_TO_MM["m"]   # the spread if the numbers were metres
        raise InputError(
            f"the displacement series barely move: over their dates the typical point spans {med:.3g} mm "
            f"(largest minus smallest value, median over {len(spread)} points; point '{pid[i]}', row "
            f"{int(rows[i])}), where noise alone moves a measured InSAR series by a few mm. Read as metres "
            f"they would span {as_m:.3g} mm: the numbers look like metres (or centimetres), not "
            f"{fmt.displacement_unit}", file=label,
            fix=f"set displacement_unit: m (or cm) in the '{fmt.name}' block of config/formats.yaml; if the "
                f"file really holds series this still in {fmt.displacement_unit} (a model rather than "
                "measurements), lower shards.min_spread_mm in config/config.yaml or set it to null")


def step_noise(series: np.ndarray) -> np.ndarray:
    """Per row of ``series (n, T)``, in date order, the median |change| between consecutive
    observed values (NaN with fewer than two). On most ground this is the measurement noise
    (atmosphere, a few mm per acquisition), shared by the files and tracks of one area.
    Consecutive *observed* values, not adjacent dates: files of two relative orbits of one
    direction interleave their dates, and a point holds values at its own orbit's only."""
    series = np.asarray(series, dtype=np.float64)
    observed = np.isfinite(series)
    # each date's previous observed date of the same row (-1: none)
    last = np.maximum.accumulate(np.where(observed, np.arange(series.shape[1]), -1), axis=1)[:, :-1]
    step = series[:, 1:] - np.take_along_axis(series, np.maximum(last, 0), axis=1)
    step[~observed[:, 1:] | (last < 0)] = np.nan
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a row observed once: no change
        return np.nanmedian(np.abs(step), axis=1)


@dataclass
class NoiseCheck:
    """A file of a multi-file site in centimetres (or metres) read as millimetres, with its
    ``mean_velocity`` in the same unit so that :class:`UnitCheck` sees nothing, moves ten times
    less from one acquisition to the next than the site's other files: the files of one area
    share their noise. Each file's typical change (:func:`step_noise`, median over a sample of
    its points) is compared with the median of the other files'."""

    samples: dict = field(default_factory=dict)   # label -> list of per-point noise arrays
    files: dict = field(default_factory=dict)     # label -> median noise (mm)

    def add(self, block, label: str) -> None:
        if len(block.pid):
            idx, _ = _sample_rows(block, NOISE_CHECK_ROWS)
            noise = step_noise(block.displacement[idx])
            self.samples.setdefault(label, []).append(noise[np.isfinite(noise)])

    def end_file(self, label: str) -> None:
        noise = np.concatenate(self.samples.pop(label, [np.empty(0)]))
        if len(noise) >= UNIT_CHECK_MIN_POINTS and np.median(noise) > 0:   # 0: constant series
            self.files[label] = float(np.median(noise))

    def check(self, fmt: Format, max_ratio: float | None) -> None:
        if max_ratio is None or len(self.files) < 2:
            return
        labels = list(self.files)
        level = np.array([self.files[label] for label in labels])
        others = np.array([np.median(np.delete(level, i)) for i in range(len(level))])
        ratio = others / level          # > 1: the file moves less than the others
        # the file furthest from the others; of two files (each as far from the other, up to
        # rounding) the quieter one: centimetres read as mm, as the pair check names its track
        far = np.abs(np.log(ratio))
        tied = np.flatnonzero(far >= far.max() * (1 - 1e-9))
        i = int(next((j for j in tied if ratio[j] > 1), tied[0]))
        if max(ratio[i], 1 / ratio[i]) <= max_ratio:
            return
        less = ratio[i] > 1
        times = ratio[i] if less else 1 / ratio[i]
        n_others = len(labels) - 1
        raise InputError(
            f"the file's series change {times:.2g} times {'less' if less else 'more'} from one acquisition to the "
            f"next than the site's other {'file' if n_others == 1 else f'{n_others} files'} (median "
            f"{level[i]:.3g} mm against {others[i]:.3g} mm; the files of one area share their noise, within a "
            "factor of 2 or so): " + ("it looks like centimetres or metres read as mm" if less else
                                      "the other files look like centimetres or metres read as mm, or this "
                                      "one like mm scaled up"), file=labels[i], column="displacement",
            fix=f"give every file of the site in {fmt.displacement_unit} (convert the file, or make it its own site "
                "with a format of its unit); if they really are in one unit (one file's series temporally "
                "filtered, the others not), raise shards.max_noise_ratio in config/config.yaml or set it to null")


@dataclass
class UnitCheck:
    """The displacement unit checked against the file's own ``mean_velocity`` (mm/yr): the
    series' trend must be that velocity, not 1/10 or 1/1000 of it. A file in metres or
    centimetres read as millimetres (a wrong displacement_unit) passes every other check,
    with motions 1000 times too small, and every rate and cluster read from it is wrong."""

    pairs: dict = field(default_factory=dict)   # label -> list of (trend, velocity, pid, row) arrays

    def add(self, block, label: str, fmt: Format, days) -> None:
        if VELOCITY_COLUMN not in fmt.static:
            return
        kept = self.pairs.setdefault(label, [])
        if sum(len(k[0]) for k in kept) >= UNIT_CHECK_MAX or not len(block.pid):
            return
        idx, rows = _sample_rows(block, UNIT_CHECK_ROWS)
        trend = _trend_per_year(block.displacement[idx], days)
        velocity = block.static[idx, fmt.static.index(VELOCITY_COLUMN)].astype(np.float64)
        kept.append((trend, velocity, block.pid[idx], rows))

    def check(self, label: str, fmt: Format) -> None:
        kept = self.pairs.pop(label, [])
        if not kept:
            return
        trend, velocity, pid, rows = (np.concatenate(a) for a in zip(*kept))
        ok = np.isfinite(trend) & np.isfinite(velocity) & (velocity != 0)
        trend, velocity, pid, rows = trend[ok], velocity[ok], pid[ok], rows[ok]
        if len(velocity) < UNIT_CHECK_MIN_POINTS:
            return
        fast = np.abs(velocity) >= np.quantile(np.abs(velocity), 0.75)
        if np.count_nonzero(fast) < UNIT_CHECK_MIN_POINTS:
            return
        ratio = trend[fast] / velocity[fast]
        self._check_mixed_signs(ratio, label, fmt, int(np.count_nonzero(fast)))
        self._check_mixed_units(ratio, label, fmt, int(np.count_nonzero(fast)))
        med = float(np.median(ratio))
        # a negative median: the series run against the file's own velocity (one of them was negated,
        # e.g. subsidence written positive); that used to end the check, in any unit
        if not (np.isfinite(med) and med != 0) or 1 / UNIT_CHECK_OFF <= med <= UNIT_CHECK_OFF:
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.abs(np.log10(ratio / med))   # NaN where the trend has the other sign than the median's
        agree = off < np.log10(2)
        if np.mean(agree) < UNIT_CHECK_AGREE:
            return
        true_to_mm = fmt.to_mm / abs(med)   # what one unit of the file's numbers is, in mm
        unit = next((u for u, f in UNIT_TO_MM.items()
                     if 1 / UNIT_CHECK_MATCH <= true_to_mm / f <= UNIT_CHECK_MATCH), None)
        # the example is a point that reads as the median does (the fastest point can be an outlier)
        i = int(np.flatnonzero(fast)[np.argmin(np.where(np.isfinite(off), off, np.inf))])
        example = (f"e.g. point '{pid[i]}' (row {int(rows[i])}): trend {trend[i]:.3g} mm/yr of its series "
                   f"read as {fmt.displacement_unit}, {VELOCITY_COLUMN} {velocity[i]:.3g}")
        what = (f"the displacement columns' trend is {med:.3g} times the {VELOCITY_COLUMN} column (median over "
                f"the {int(np.count_nonzero(fast))} fastest points; {example})")
        if med < 0 and unit is not None:
            # by a unit's exact factor, opposite in sign: every rate and regime read from the series
            # (subsiding, uplifting) is the file's own velocity turned round
            in_unit = (f", and the displacements look like they are in {unit}, not {fmt.displacement_unit}"
                       if unit != "mm" else "")
            raise InputError(f"{what}: the displacements run opposite to {VELOCITY_COLUMN} (one of them has the "
                             f"other sign convention, e.g. subsidence written positive){in_unit}", file=label,
                             column=VELOCITY_COLUMN,
                             fix="negate the displacement columns or the mean_velocity column, whichever does not "
                                 "follow the product's convention (line of sight: positive towards the satellite; "
                                 "vertical: positive upwards)"
                                 + (f", and set displacement_unit: {unit} in the '{fmt.name}' block of "
                                    "config/formats.yaml" if in_unit else "")
                                 + f"; if {VELOCITY_COLUMN} covers another period than the file's dates, in which "
                                   "the motion reversed, remove it from the format's static columns")
        # A file in mm read as cm or m reads exactly as a file whose velocity column is in the
        # declared unit per year (a provider writing cm and cm/yr): the file agrees with its
        # format, so it is read as declared, with a warning, not stopped.
        if unit is not None and unit != "mm":
            raise InputError(f"{what}: the displacements look like they are in {unit}, not "
                             f"{fmt.displacement_unit} (displacement_unit of format '{fmt.name}')", file=label,
                             column=VELOCITY_COLUMN,
                             fix=f"set displacement_unit: {unit} in the '{fmt.name}' block of config/formats.yaml "
                                 "(or add a format for this export); if the displacements are right, convert "
                                 f"the {VELOCITY_COLUMN} column to mm/yr; if {VELOCITY_COLUMN} covers another "
                                 "period than the file's dates (a file cut to fewer dates of a product whose "
                                 "motion slowed), remove it from the format's static columns")
        # by no unit's factor (a velocity of another period than the file's dates: a file cut to
        # the later years of a slowing motion), or a velocity column in cm/yr or m/yr: a static
        # feature (standardised), the series are read as declared
        log.warning("%s: %s: the %s column does not match the displacements read as %s (not in mm/yr, or "
                    "over another period than the file's dates?); the displacements are kept as they are",
                    label, what, VELOCITY_COLUMN, fmt.displacement_unit)

    @staticmethod
    def _check_mixed_units(ratio: np.ndarray, label: str, fmt: Format, n_fast: int) -> None:
        """Stop when many of the fastest points' series match ``mean_velocity`` read in one unit and
        many read in another (exports in mm and in cm joined into one file): the median ratio of
        :meth:`check` then matches no unit, and the file was read as declared without a word,
        half of its motions ten times too small. A velocity of another period scatters; it does
        not gather at two units' exact factors."""
        with np.errstate(divide="ignore", invalid="ignore"):
            share = {unit: float(np.mean(np.abs(np.log10(ratio * (f / fmt.to_mm))) < np.log10(MIXED_SIGN_MATCH)))
                     for unit, f in UNIT_TO_MM.items()}
        common = [u for u, v in share.items() if v >= MIXED_SIGN_SHARE]
        if len(common) < 2 or sum(share[u] for u in common) < UNIT_CHECK_AGREE:
            return
        said = " and ".join(f"{share[u]:.0%} as {u}" for u in common)
        raise InputError(
            f"the displacement series of the {n_fast} fastest points match the {VELOCITY_COLUMN} column read in "
            f"different units ({said}): the file mixes units (e.g. exports of two tools joined, one "
            f"writing cm), and is read as {fmt.displacement_unit} throughout", file=label,
            column=VELOCITY_COLUMN,
            fix=f"export the file again from one source, or convert the rows in another unit to "
                f"{fmt.displacement_unit} (those whose series' trend is a tenth or a thousandth of their "
                f"{VELOCITY_COLUMN})")

    @staticmethod
    def _check_mixed_signs(ratio: np.ndarray, label: str, fmt: Format, n_fast: int) -> None:
        """Stop when many of the fastest points' series run with ``mean_velocity`` and many run against
        it at the same speed (by one unit's factor): two sign conventions in one file (exports of two
        tools joined), which the median ratio of :meth:`check` cannot see. A motion that reversed
        since the velocity's period does not run back at the very same speed."""
        for unit, f in UNIT_TO_MM.items():
            scaled = ratio * (f / fmt.to_mm)     # 1 where the series read in `unit` match the velocity
            with np.errstate(divide="ignore", invalid="ignore"):
                along = np.mean(np.abs(np.log10(scaled)) < np.log10(MIXED_SIGN_MATCH))
                against = np.mean(np.abs(np.log10(-scaled)) < np.log10(MIXED_SIGN_MATCH))
            # most points match their velocity in size (a velocity of these very series), and both
            # signs are common: a velocity of another period scatters, and matches neither way
            if min(along, against) >= MIXED_SIGN_SHARE and along + against >= UNIT_CHECK_AGREE:
                raise InputError(
                    f"the displacement series of {along:.0%} of the {n_fast} fastest points run with the "
                    f"{VELOCITY_COLUMN} column and of {against:.0%} against it, at the same speed: the file mixes "
                    "two sign conventions (e.g. exports of two tools joined, one writing subsidence positive)",
                    file=label, column=VELOCITY_COLUMN,
                    fix="export the file again from one source, or negate the displacement columns of the rows "
                        "whose series run against their mean_velocity")
