"""Per-series deformation descriptors: trend, acceleration, annual cycle, step, noise.

Every regular series y (mm on the grid of ``/series/regular``) is fitted by
ordinary least squares with one model shared by all series of a block::

    y(t) = offset + trend * t + acceleration * t**2 / 2
           + A * cos(2 pi (d - peak) / 365.25)
           + step * [d >= step_date] + noise

with d the date in days since 1970-01-01 and t = (d - reference_date) / 365.25
years, the reference date being the middle of the grid. ``trend`` is then the
velocity at mid-period, which for a quadratic equals the mean velocity over the
period, and ``acceleration`` is the second derivative (mm/yr^2).

Because the design matrix is the same for every series, a whole shard is fitted
with a few matrix products and no per-series loop:

* the base model (offset, trend, acceleration, annual cos/sin) is one
  pseudo-inverse ``B+`` (5, G) applied to the block;
* the step is a change-point scan over every admissible grid epoch k. By the
  Frisch-Waugh-Lovell theorem, adding the step column h_k to the base model
  reduces the residual sum of squares by (u_k . y)^2 / |u_k|^2, where u_k is
  h_k with the base model projected out. All candidates are therefore scored
  by one (n, G) x (G, K) product, the best k is the largest reduction (the
  least-squares single change point), and the base coefficients are corrected
  for the chosen step without refitting: c = B+ (y - step * h_k).

Winter gaps: northern sites have no acquisitions for months each year, and the
``shards`` stage fills the regular grid across them (linear interpolation by
default). Those grid epochs carry no information and would bias the annual
amplitude (an interpolated straight line replaces the winter half of the
cycle), so when the site's acquisition dates are given, only the grid epochs
backed by an acquisition are fitted (:func:`observed_grid_mask`); never those
inside an acquisition gap longer than ``max_gap_days``. A step that happened
during a gap is detected across it; its date is reported as the middle of the
gap.

A point's own gaps: a point observed over part of the period is fitted on its
span (:meth:`DescriptorModel.transform`), and one that misses more than
``max_gap_days`` of the site's observed time inside its span (masked for a
summer or a year while the site is observed: :func:`insarclust.spans.observed_holes`)
is fitted without the grid epochs of that hole, as without a winter; the
interpolated line across a year fitted as data gave 8.9 instead of 10 mm/yr,
4.0 instead of 5 mm amplitude and a false step in 87 % of series. Series are
fitted per (span, holes) pattern, each pattern with its own design (~0.4 ms to
build and check: a site where a tenth of the points each miss another stretch
pays ~5 s per 100,000 points). Epochs left between holes that no longer determine a
term (a few weeks at each end of the period) fit fewer terms, as a short span
does (:data:`MAX_HOLE_INFLATION`; then no step search). Shorter gaps (a
missing acquisition, one next to a winter) stay interpolated and fitted, and
a series without a hole is fitted exactly as without this rule.

The step is searched only where at least ``min_segment_days`` of supported
epochs lie on each side: a "step" of the last few epochs is indistinguishable
from noise and the curvature terms. And a step is reported only when it is
significant: its least-squares estimate divided by its standard error (the
residual RMS over |u_k|) must reach ``step_z_min``; otherwise ``step_mm`` is 0
and the other terms are the base fit. The maximum of ~100 correlated |z|
values of pure white noise is below 3.9 in 99 % and below 4.4 in 99.9 % of
series on a 4.5-year grid with winter gaps, so the default 4.5 keeps false
steps to about one series in a thousand, while steps of about twice the noise
are still found.
``step_date`` is the date of the best candidate even when the step is not
significant (then it has no meaning); it is NaN where no step is searched (a
span too short for the annual cycle, holes that leave a term undetermined).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from .dates import DAYS_PER_YEAR
from .spans import first_last, half_step, observed_holes, span_mask

# Fit settings shared by the per-point descriptors and the cluster means (the
# ``interpret:`` config section carries them), so both are fitted alike.
FIT_DEFAULTS = {"max_gap_days": 36.0, "min_segment_days": 90.0, "step_z_min": 4.5}


DESCRIPTOR_NAMES = [
    "trend_mm_yr",          # velocity at mid-period = mean velocity (mm/yr)
    "acceleration_mm_yr2",  # second derivative of the quadratic trend (mm/yr^2)
    "annual_amplitude_mm",  # amplitude of the annual harmonic (mm, half peak-to-peak)
    "annual_peak_doy",      # day of year of the harmonic's maximum (1 = 1 January)
    "step_mm",              # size of the largest step, signed (mm)
    "step_date",            # date of that step, days since 1970-01-01
    "residual_rms_mm",      # RMS of the residual of the full model (mm, dof-corrected)
    "offset_mm",            # model value at the reference date before any step (mm)
]
N_DESCRIPTORS = len(DESCRIPTOR_NAMES)
_BASE_TERMS = 5  # offset, trend, acceleration, annual cos, annual sin
# A series observed over part of the grid only is fitted on its own span: with the acceleration
# term from this many years on, with offset + trend + annual cycle from this many, a line from
# "line" years (over under ~1.5 years trend and annual cycle cannot be told apart); shorter
# spans keep the shared fit without its step search.
SPAN_YEARS = {"acceleration": 3.0, "annual": 1.5, "line": 1.0}
# The terms of those fits, from all to a line.
_TERM_TIERS = ((0, 1, 2, 3, 4), (0, 1, 3, 4), (0, 1))
# The same for a whole site's archive (the shared fit): the acceleration term from this many years
# of fitted epochs on, the annual cycle from this many. A 1-year archive (19 acquisitions, one
# winter) fitted with all terms gave every point an acceleration near 60 mm/yr^2 and each cluster
# the label accelerating (-71 mm/yr^2); from 1.5 years on the cluster means' acceleration was
# right again (-4.3 mm/yr^2 for an accelerating region, 1.2 for a stable one). Over one
# snow-free season (~0.6 years) trend and annual cycle take any value (30 mm amplitudes on
# stable ground): a line.
SITE_SPAN_YEARS = {"acceleration": 1.25, "annual": 0.9}
# A series' own holes (DescriptorModel.transform) may leave epochs that do not determine every
# term (a few weeks at each end of the period: the acceleration and annual cycle take any
# value): a term is fitted only while its noise gain is at most this many times what the same
# number of epochs spread as without the holes would give; otherwise the next, smaller fit.
MAX_HOLE_INFLATION = 3.0


def observed_grid_mask(grid_dates: np.ndarray, observed_dates: np.ndarray | None,
                       max_gap_days: float = FIT_DEFAULTS["max_gap_days"]) -> np.ndarray:
    """Grid epochs backed by acquisitions: (G,) bool.

    An epoch is backed when it is the grid epoch nearest to an acquisition
    (within half a grid step): the other epochs only repeat their neighbours
    by interpolation, and counting them as data shrinks the residual and
    inflates every significance (after 2021-12-23 Sentinel-1 revisits every
    12 days, so half of a 6-day grid is interpolated; counted as data, pure
    noise gave a "significant" step in ~4 % of the series of a real calendar).
    Epochs inside a gap longer than ``max_gap_days`` between two acquisitions
    (the winters), or outside the acquisition span, are never backed.
    """
    grid = np.asarray(grid_dates, dtype=np.float64)
    if observed_dates is None or len(observed_dates) == 0:
        return np.ones(len(grid), dtype=bool)
    obs = np.unique(np.asarray(observed_dates, dtype=np.float64))
    nxt = np.searchsorted(obs, grid, side="left")       # first acquisition >= grid date
    on_date = (nxt < len(obs)) & (obs[np.minimum(nxt, len(obs) - 1)] == grid)
    inside = (nxt > 0) & (nxt < len(obs))
    gap = np.where(inside, obs[np.minimum(nxt, len(obs) - 1)] - obs[np.maximum(nxt - 1, 0)], np.inf)
    supported = on_date | (inside & (gap <= max_gap_days))
    if len(grid) < 2:
        return supported
    half = half_step(grid)
    nearest = np.clip(np.searchsorted(grid, obs), 1, len(grid) - 1)
    nearest = np.where(np.abs(grid[nearest - 1] - obs) <= np.abs(grid[nearest] - obs), nearest - 1, nearest)
    backed = np.zeros(len(grid), dtype=bool)
    backed[nearest[np.abs(grid[nearest] - obs) <= half]] = True
    return supported & backed


@dataclass(frozen=True)
class _Design:
    """Everything about the fit that depends only on the grid (shared by all rows)."""

    columns: np.ndarray        # (Gs,) indices of the supported grid epochs
    base_pinv: np.ndarray      # (P, Gs) float32 pseudo-inverse of the base design (P terms)
    base: np.ndarray           # (Gs, P) float32 base design
    step_dirs: np.ndarray      # (Gs, K) float32 step columns, base projected out, unit norm
    step_norm: np.ndarray      # (K,) float64 norm of the projected step columns
    step_on_base: np.ndarray   # (P, K) float64 base coefficients of each raw step column
    step_dates: np.ndarray     # (K,) float64 step dates (middle between the two epochs)
    step_first: np.ndarray     # (K,) int first supported column index after the step
    dof: int                   # residual degrees of freedom of the full model
    reference_date: float
    terms: tuple = (0, 1, 2, 3, 4)   # the base columns fitted (of offset, trend, acceleration, cos, sin)


def _base_design(dates: np.ndarray, reference_date: float) -> np.ndarray:
    """(len(dates), 5) float64: 1, t, t^2/2, cos, sin (t in years from the reference)."""
    dates = np.asarray(dates, dtype=np.float64)
    t_yr = (dates - reference_date) / DAYS_PER_YEAR
    phase = 2 * np.pi * dates / DAYS_PER_YEAR
    return np.stack([np.ones_like(t_yr), t_yr, 0.5 * t_yr ** 2, np.cos(phase), np.sin(phase)], axis=1)


def reference_date_of(grid_dates: np.ndarray) -> float:
    """Middle of the grid (days since 1970-01-01): the time origin of ``trend``."""
    return 0.5 * (float(grid_dates[0]) + float(grid_dates[-1]))


def _design(grid_dates: np.ndarray, mask: np.ndarray, min_segment_days: float,
            terms: tuple = (0, 1, 2, 3, 4), reference_date: float | None = None,
            steps: bool = True) -> _Design:
    """The shared fit; ``terms`` picks base columns (offset, trend, acceleration, cos, sin);
    ``reference_date`` the time origin (default: the middle of the grid); ``steps``
    False: no step search."""
    grid = np.asarray(grid_dates, dtype=np.float64)
    columns = np.flatnonzero(mask)
    if len(columns) < _BASE_TERMS + 3:  # too few supported epochs: use the whole grid
        columns = np.arange(len(grid))
    dates = grid[columns]
    ref = reference_date_of(grid) if reference_date is None else float(reference_date)
    B = _base_design(dates, ref)[:, list(terms)]
    B_pinv = np.linalg.pinv(B)
    # step candidates: first supported epoch after the step at position k
    k = np.arange(1, len(dates))
    enough = (dates[k - 1] - dates[0] >= min_segment_days) & (dates[-1] - dates[k] >= min_segment_days)
    k = k[enough]
    if len(k) == 0:  # very short series: allow every interior position
        k = np.arange(1, len(dates))
    if not steps:
        k = k[:0]
    H = (np.arange(len(dates))[:, None] >= k[None, :]).astype(np.float64)
    M = B_pinv @ H
    U = H - B @ M
    norm = np.sqrt((U ** 2).sum(axis=0))
    usable = norm > 1e-9 * np.sqrt(len(dates))
    k, M, U, norm = k[usable], M[:, usable], U[:, usable], norm[usable]
    return _Design(
        columns=columns,
        base_pinv=B_pinv.astype(np.float32),
        base=B.astype(np.float32),
        step_dirs=(U / np.maximum(norm, 1e-300)).astype(np.float32),
        step_norm=norm,
        step_on_base=M,
        step_dates=0.5 * (dates[k - 1] + dates[k]),
        step_first=k,
        dof=max(len(dates) - len(terms) - (1 if len(k) else 0), 1),
        reference_date=ref,
        terms=tuple(terms),
    )


def site_tier(grid_dates: np.ndarray, mask: np.ndarray) -> int:
    """Index in :data:`_TERM_TIERS` of the terms a site's archive determines
    (:data:`SITE_SPAN_YEARS`), from the span of its fitted epochs ``mask`` (the whole grid where
    fewer than the full fit needs are backed, as :func:`_design` takes it)."""
    grid = np.asarray(grid_dates, dtype=np.float64)
    cols = np.flatnonzero(mask)
    if len(cols) < _BASE_TERMS + 3:
        cols = np.arange(len(grid))
    years = (grid[cols[-1]] - grid[cols[0]]) / DAYS_PER_YEAR if len(cols) else 0.0
    return 0 if years >= SITE_SPAN_YEARS["acceleration"] else 1 if years >= SITE_SPAN_YEARS["annual"] else 2


def _one_blas_thread(func):
    """Run ``func`` on one BLAS thread, so its rows do not depend on the cores a job is given.

    OpenBLAS splits a product differently over one and two threads and rounds
    some rows otherwise: ``snakemake --cores 1`` (which lowers a rule's threads)
    changed 8 of the demo's 20,000 descriptor rows and the cluster descriptors
    in the last bits against ``--cores 2``. The fits are small products; one
    thread is as fast here.
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)
    return wrapper


class DescriptorModel(TransformerMixin, BaseEstimator):
    """Fits the descriptor model to blocks of series on one regular grid.

    grid_dates (G,) int days since 1970-01-01; observed_dates (T,) the site's
    acquisition dates (``/series/dates``) or None to use every grid epoch.
    ``fit()`` builds the design shared by all series (it depends on the grid
    only: ``mask_`` (G,) of the fitted epochs, ``design_``, ``n_features_in_`` = G);
    ``transform(regular (n, G)) -> (n, D) float32`` with columns
    :data:`DESCRIPTOR_NAMES`. Rows are independent of how a site is cut into
    blocks (to float32 rounding) and of the threads (exactly).
    """

    def __init__(self, grid_dates=None, observed_dates=None, max_gap_days: float = FIT_DEFAULTS["max_gap_days"],
                 min_segment_days: float = FIT_DEFAULTS["min_segment_days"], step_z_min: float = FIT_DEFAULTS["step_z_min"]):
        self.grid_dates = grid_dates
        self.observed_dates = observed_dates
        self.max_gap_days = max_gap_days
        self.min_segment_days = min_segment_days
        self.step_z_min = step_z_min

    def fit(self, X=None, y=None):
        """Build the shared design from the grid (``X`` is not needed; given, it must be (n, G)
        on that grid). Returns self."""
        if self.grid_dates is None:
            raise ValueError("DescriptorModel needs grid_dates")
        grid = np.asarray(self.grid_dates)
        if X is not None and (np.ndim(X) != 2 or np.shape(X)[1] != len(grid)):
            raise ValueError(f"regular series of shape {np.shape(X)}, expected (n, {len(grid)}) on grid_dates")
        self.n_features_in_ = len(grid)
        self.__dict__.pop("_span_cache", None)
        self.mask_ = observed_grid_mask(grid, self.observed_dates, self.max_gap_days)
        self.tier_ = site_tier(grid, self.mask_)
        self.design_ = _design(grid, self.mask_, self.min_segment_days, _TERM_TIERS[self.tier_])
        return self

    @property
    def reference_date(self) -> float:
        check_is_fitted(self, "design_")
        return self.design_.reference_date

    @_one_blas_thread
    def transform(self, regular: np.ndarray, spans: np.ndarray | None = None,
                  holes: tuple | None = None) -> np.ndarray:
        """(n, G) mm -> (n, D) float32 descriptors; memory ~ n x (G + K) floats.

        ``spans`` (n, 2): the first and last grid index each series was observed
        at (:func:`insarclust.spans.observed_spans`). A series observed over part of the grid only
        has its first/last value held beyond (``shards``); fitted as data, that
        flat stretch shrank its trend and showed a false acceleration and step.
        It is fitted on its own span (:data:`SPAN_YEARS`: the acceleration term
        from 3 years on, offset + trend + annual cycle from 1.5 years; shorter
        spans, where the annual cycle and the trend cannot be told apart, get a
        line from 1 year on, below that the shared fit; neither searches a
        step, ``step_date`` NaN), with the trend's time origin in the middle of
        the span, so ``trend_mm_yr`` is its mean velocity over the span.

        ``holes`` ``(rows, lo, hi)``: each series' own gaps inside its span
        (:func:`insarclust.spans.observed_holes`, grid indices ``lo..hi``). The
        grid is interpolated across them; fitted as data, a point missing all of
        2020 got 8.9 instead of 10 mm/yr, 4.0 instead of 5 mm amplitude and a
        false step in 87 % of series. Their fitted epochs are left out as a
        winter's are (a step inside one is found across it, dated in its
        middle); rows are fitted per (span, holes) pattern. Holes that hold no
        epoch the site fits change nothing.
        """
        check_is_fitted(self, "design_")
        Y = np.asarray(regular, dtype=np.float32)
        if Y.ndim != 2 or Y.shape[1] != len(self.mask_):
            raise ValueError(f"regular series of shape {Y.shape}, expected (n, {len(self.mask_)})")
        patterns = self._hole_patterns(holes, len(Y)) if holes is not None else {}
        if spans is None and not patterns:
            return self._apply(Y, self.design_)
        if spans is None:
            spans = np.tile([0, len(self.mask_) - 1], (len(Y), 1))
        spans = np.asarray(spans, dtype=np.int64).reshape(len(Y), 2)
        holed = np.zeros(len(Y), dtype=bool)
        holed[list(patterns)] = True
        full = ~self.partial(spans)
        plain = full & ~holed
        if plain.all():
            return self._apply(Y, self.design_)
        out = np.empty((len(Y), N_DESCRIPTORS), dtype=np.float32)
        if plain.any():
            out[plain] = self._apply(Y[plain], self.design_)
        partial = np.flatnonzero(~full & ~holed)
        if len(partial):
            keys, inverse = np.unique(spans[partial], axis=0, return_inverse=True)
            order = np.argsort(inverse.ravel(), kind="stable")
            groups = np.split(partial[order], np.cumsum(np.bincount(inverse.ravel()))[:-1])
            for (a, b), rows in zip(keys, groups):
                out[rows] = self._apply(Y[rows], self._span_design(int(a), int(b)))
        by_pattern: dict = {}
        for row, pattern in patterns.items():
            by_pattern.setdefault((int(spans[row, 0]), int(spans[row, 1]), pattern), []).append(row)
        for (a, b, pattern), rows in by_pattern.items():
            out[rows] = self._apply(Y[rows], self._span_design(a, b, pattern))
        return out

    def fit_transform(self, X, y=None, spans: np.ndarray | None = None, holes: tuple | None = None) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` with ``spans`` and ``holes`` (scikit-learn's
        ``fit_transform`` passed them to ``fit``, a TypeError)."""
        return self.fit(X).transform(X, spans, holes)

    def holed(self, holes: tuple, n: int) -> np.ndarray:
        """(n,) bool: the series with a hole (:meth:`transform`) that holds a fitted epoch."""
        out = np.zeros(n, dtype=bool)
        out[self._fitted_holes(holes)[0]] = True
        return out

    def _fitted_holes(self, holes: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``holes`` (rows, lo, hi) without those that hold no epoch of the site's mask (a winter
        all series miss), each cut to the first and last such epoch: holes that leave out the
        same epochs are one pattern."""
        rows, lo, hi = (np.asarray(h, dtype=np.int64).ravel() for h in holes)
        cols = np.flatnonzero(self.mask_)
        a = np.searchsorted(cols, lo, side="left")
        b = np.searchsorted(cols, hi, side="right") - 1
        keep = b >= a
        a, b = a[keep], b[keep]
        return rows[keep], cols[a], cols[b]

    def _hole_patterns(self, holes: tuple, n: int) -> dict:
        """``{row: ((lo, hi), ...)}`` of the rows with a hole that holds a fitted epoch; one
        Python step per such hole, none for the others."""
        rows, lo, hi = self._fitted_holes(holes)
        if len(rows) == 0:
            return {}
        if (rows < 0).any() or (rows >= n).any():
            raise ValueError(f"hole rows outside 0..{n - 1}")
        order = np.lexsort((lo, rows))
        rows, lo, hi = rows[order], lo[order], hi[order]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        ends = np.r_[starts[1:], len(rows)]
        pairs = list(zip(lo.tolist(), hi.tolist()))
        return {int(rows[s]): tuple(pairs[s:e]) for s, e in zip(starts, ends)}

    def partial(self, spans: np.ndarray) -> np.ndarray:
        """(n,) bool: the series whose observed ``spans`` miss a fitted epoch at an end."""
        cols = self.design_.columns
        spans = np.asarray(spans).reshape(-1, 2)
        return (spans[:, 0] > cols[0]) | (spans[:, 1] < cols[-1])

    def step_window(self, step_dates) -> np.ndarray:
        """(n, 2) days: the acquisitions straddling each ``step_date`` (the last before it and the
        first after; the fitted grid epochs without ``observed_dates``), NaN where there is none.
        The data place a step anywhere in between: in a winter gap that is months, though
        ``step_date`` is one day (the middle)."""
        check_is_fitted(self, "design_")
        if self.observed_dates is not None and len(self.observed_dates):
            fitted = np.unique(np.asarray(self.observed_dates, dtype=np.float64))
        else:
            fitted = np.asarray(self.grid_dates, dtype=np.float64)[self.design_.columns]
        when = np.atleast_1d(np.asarray(step_dates, dtype=np.float64))
        after = np.searchsorted(fitted, when, side="right")
        ok = np.isfinite(when) & (after > 0) & (after < len(fitted))
        out = np.full((len(when), 2), np.nan)
        out[ok, 0] = fitted[after[ok] - 1]
        out[ok, 1] = fitted[after[ok]]
        return out

    def span_reference(self, first: int, last: int) -> float:
        """Time origin (days since 1970-01-01) of the trend :meth:`transform` fits to a series
        observed on grid epochs ``first..last`` (pass it to :func:`model_curve`)."""
        return float(self._span_design(int(first), int(last)).reference_date)

    def holes_keep_terms(self, first: int, last: int, holes: tuple) -> bool:
        """Whether a series observed on grid epochs first..last, less the epochs lo..hi of each of
        its ``holes``, is fitted with the terms and on every epoch the span alone gives it (not
        fewer terms by the noise-gain rule, not the shared fallback)."""
        plain, holed = self._span_design(first, last), self._span_design(first, last, holes)
        kept = span_mask(np.array([[first, last]]), len(self.mask_))[0] & self.mask_
        for lo, hi in holes:
            kept[lo:hi + 1] = False
        return holed.terms == plain.terms and np.array_equal(holed.columns, np.flatnonzero(kept))

    def _span_design(self, first: int, last: int, holes: tuple = ()) -> _Design:
        """The design of series observed on grid epochs first..last only, without the epochs
        lo..hi of each of their ``holes`` (a small cache: one design is ~0.5 ms to build and up
        to ~0.7 MB). A series that spans the fitted epochs keeps the shared fit's terms and time
        origin, less its holes."""
        cache = self.__dict__.setdefault("_span_cache", {})
        key = (first, last, holes) if holes else (first, last)
        if key not in cache:
            grid = np.asarray(self.grid_dates, dtype=np.float64)
            span = span_mask(np.array([[first, last]]), len(grid))[0]
            within = span.copy()
            for lo, hi in holes:
                within[lo:hi + 1] = False
            mask = self.mask_ & within
            if mask.sum() < _BASE_TERMS + 3:      # too few backed epochs: every epoch of the span
                mask = within
            cols = np.flatnonzero(mask)
            years = (grid[cols[-1]] - grid[cols[0]]) / DAYS_PER_YEAR if len(cols) else 0.0
            spanning = not self.partial(np.array([first, last]))[0]
            site_terms = getattr(self, "tier_", 0)   # no more terms than the site's archive holds
            middle, tier, supported = None, site_terms, None
            if len(cols) >= _BASE_TERMS + 3 and (years >= SPAN_YEARS["line"] or spanning):
                if not spanning:
                    middle = 0.5 * (grid[cols[0]] + grid[cols[-1]])
                    tier = 0 if years >= SPAN_YEARS["acceleration"] else 1 if years >= SPAN_YEARS["annual"] else 2
                    tier = max(tier, site_terms)
                # the terms the epochs left between the holes still determine; when they miss
                # one, a step across the holes is no better determined: no step search
                supported = self._supported_tier(grid, mask, span, tier, middle) if holes else tier
            if supported is None:
                # too little to fit alone (a line over months of noise is any slope): the shared
                # fit, whose trend the held values pull towards 0, without the step search
                # (the edge of the held stretch looks like a step); one design for all of them
                if "short" not in cache:
                    cache["short"] = _design(grid, self.mask_, self.min_segment_days,
                                             _TERM_TIERS[site_terms], steps=False)
                design = cache["short"]
            else:   # a line (trend and annual cycle cannot be told apart): no step search
                design = _design(grid, mask, self.min_segment_days, _TERM_TIERS[supported], middle,
                                 steps=supported == tier and tier < 2)
            if len(cache) >= 256:
                cache.pop(next(k for k in cache if k != "short"))
            cache[key] = design
        return cache[key]

    def _supported_tier(self, grid: np.ndarray, mask: np.ndarray, span: np.ndarray, tier: int,
                        middle: float | None) -> int | None:
        """The first of :data:`_TERM_TIERS` from ``tier`` on whose terms the epochs of ``mask`` (a
        series' fitted epochs less its holes) determine about as well as the same series without
        its holes would: no term's noise gain more than :data:`MAX_HOLE_INFLATION` times the
        gain there, beyond the sqrt(n_without / n_with) of fewer epochs. None: not even a line
        (the shared fit, as a short span). Two clumps of a few weeks at both ends of the period
        otherwise gave amplitudes of 100 mm and accelerations of +-600 mm/yr^2 from a 5 mm
        cycle and a straight 10 mm/yr."""
        ref_mask = self.mask_ & span        # the epochs the series would have without its holes
        if ref_mask.sum() < _BASE_TERMS + 3:
            ref_mask = span
        kept, ref = grid[mask], grid[ref_mask]
        origin = reference_date_of(grid) if middle is None else middle
        for t in range(tier, len(_TERM_TIERS)):
            terms = list(_TERM_TIERS[t])
            gain = np.sqrt((np.linalg.pinv(_base_design(kept, origin)[:, terms]) ** 2).sum(axis=1))
            gain_ref = np.sqrt((np.linalg.pinv(_base_design(ref, origin)[:, terms]) ** 2).sum(axis=1))
            if np.all(gain <= MAX_HOLE_INFLATION * gain_ref * np.sqrt(len(ref) / len(kept))):
                return t
        return None

    def _apply(self, Y: np.ndarray, d: _Design) -> np.ndarray:
        if len(d.columns) != Y.shape[1]:
            Y = Y[:, d.columns]
        n = len(Y)
        coef = Y @ d.base_pinv.T                              # (n, P)
        resid = Y - coef @ d.base.T                           # (n, Gs)
        rss_base = np.einsum("ij,ij->i", resid, resid, dtype=np.float64)
        if len(d.step_first):
            # projection of the residual on each unit step direction (base already projected out)
            proj = resid @ d.step_dirs                        # (n, K)
            best = np.abs(proj).argmax(axis=1)
            best_proj = np.take_along_axis(proj, best[:, None], axis=1)[:, 0].astype(np.float64)
            rss_step = np.maximum(rss_base - best_proj ** 2, 0.0)
            z = np.abs(best_proj) / np.sqrt(np.maximum(rss_step / d.dof, 1e-30))
            significant = z >= self.step_z_min
            step = np.where(significant, best_proj / d.step_norm[best], 0.0)
            coef = coef.astype(np.float64) - step[:, None] * d.step_on_base[:, best].T
            rss = np.where(significant, rss_step, rss_base)
            step_date = d.step_dates[best]
        else:
            coef = coef.astype(np.float64)
            step = np.zeros(n)
            step_date = np.full(n, np.nan)
            rss = rss_base
        if len(d.terms) != _BASE_TERMS:                       # terms left out are 0
            full_coef = np.zeros((n, _BASE_TERMS))
            full_coef[:, list(d.terms)] = coef
            coef = full_coef
        out = np.empty((n, N_DESCRIPTORS), dtype=np.float32)
        out[:, 0] = coef[:, 1]
        out[:, 1] = coef[:, 2]
        out[:, 2], out[:, 3] = _annual(coef[:, 3], coef[:, 4])
        out[:, 4] = step
        out[:, 5] = step_date
        # d.dof counts the step term when the design searches one: a step searched but not
        # kept frees it again; a design without a step search has no such term to free
        dof = np.where(step != 0, d.dof, d.dof + 1) if len(d.step_first) else np.full(n, d.dof)
        out[:, 6] = np.sqrt(rss / dof)
        out[:, 7] = coef[:, 0]
        return out


def compute_descriptors(regular: np.ndarray, grid_dates: np.ndarray, *,
                        observed_dates: np.ndarray | None = None, max_gap_days: float = FIT_DEFAULTS["max_gap_days"],
                        min_segment_days: float = FIT_DEFAULTS["min_segment_days"], step_z_min: float = FIT_DEFAULTS["step_z_min"],
                        spans: np.ndarray | None = None, holes: tuple | None = None) -> np.ndarray:
    """Descriptors (n, D) float32 of regular series (n, G) mm on ``grid_dates`` (G,) days.

    Columns are :data:`DESCRIPTOR_NAMES`. ``observed_dates`` (the site's
    acquisition dates) enables the winter-gap weighting described in the
    module docstring; ``spans`` and ``holes`` as :meth:`DescriptorModel.transform`. For
    many blocks on one grid, build a :class:`DescriptorModel` once and call
    ``transform`` per block.
    """
    model = DescriptorModel(grid_dates, observed_dates, max_gap_days, min_segment_days, step_z_min)
    return model.fit().transform(regular, spans, holes)


def as_dict(row) -> dict:
    """A descriptor row (D,) or mapping -> ``{name: float}``."""
    if isinstance(row, Mapping):
        return {k: float(row[k]) for k in DESCRIPTOR_NAMES if k in row}
    row = np.asarray(row, dtype=np.float64).ravel()
    if len(row) != N_DESCRIPTORS:
        raise ValueError(f"descriptor row of length {len(row)}, expected {N_DESCRIPTORS}")
    return dict(zip(DESCRIPTOR_NAMES, row.tolist()))


def model_curve(descriptors, grid_dates: np.ndarray, reference_date: float | None = None) -> np.ndarray:
    """The fitted trend + annual harmonic + step curve (G,) mm on ``grid_dates``.

    ``descriptors``: a row (D,) of :func:`compute_descriptors` or a dict with
    the names of :data:`DESCRIPTOR_NAMES`; ``reference_date`` defaults to the
    middle of ``grid_dates``, as in the fit (pass the fit's value when drawing
    on another grid).
    """
    d = as_dict(descriptors)
    dates = np.asarray(grid_dates, dtype=np.float64)
    ref = reference_date_of(dates) if reference_date is None else float(reference_date)
    t_yr = (dates - ref) / DAYS_PER_YEAR
    peak_day = d.get("annual_peak_doy", 1.0) - 1.0
    curve = (d.get("offset_mm", 0.0) + d.get("trend_mm_yr", 0.0) * t_yr
             + 0.5 * d.get("acceleration_mm_yr2", 0.0) * t_yr ** 2
             + d.get("annual_amplitude_mm", 0.0) * np.cos(2 * np.pi * (dates - peak_day) / DAYS_PER_YEAR))
    step_date = d.get("step_date", np.nan)
    if np.isfinite(step_date):
        curve = curve + d.get("step_mm", 0.0) * (dates >= step_date)
    return curve


def acquisition_dates(dates: np.ndarray, displacement_sample: np.ndarray | None = None,
                      min_coverage: float = 0.5) -> np.ndarray:
    """The site's real acquisition dates (T',) from ``/series/dates``.

    An export may carry date columns that are (almost) empty, e.g. winter
    epochs kept as NaN columns; with a sample of rows of ``/series/displacement``
    (n, T), a date is kept when at least ``min_coverage`` of the sampled rows
    whose own observed span (first to last value) contains it have a value
    there. So winter columns are recognised as gaps, while the dates of a file
    that covers another period than the rest of the site (a multi-file site)
    count for the points that file holds.
    """
    dates = np.asarray(dates)
    if displacement_sample is None or len(displacement_sample) == 0:
        return dates
    valid = ~np.isnan(displacement_sample)
    has, first, last = first_last(valid)
    cols = np.arange(valid.shape[1])
    spans = has[:, None] & (cols >= first[:, None]) & (cols <= last[:, None])
    spanning = spans.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = valid.sum(axis=0) / spanning
    return dates[(spanning > 0) & (coverage >= min_coverage)]


SAMPLE_ROWS = 4096


def sample_series(shards, sample_rows: int = SAMPLE_ROWS) -> np.ndarray | None:
    """``/series/displacement`` of a sample of rows spread over every shard: the first rows of
    each shard, ``sample_rows`` in all (one shard's tile could hold only some of a multi-file
    site's files); None without shards."""
    bounds = list(shards.shard_bounds()) if shards.n_shards else []
    if not bounds:
        return None
    per_shard = max(1, sample_rows // len(bounds))
    return np.concatenate([shards.read("series/displacement", a, min(b, a + per_shard)) for a, b in bounds])


def site_acquisition_dates(shards, sample_rows: int = SAMPLE_ROWS) -> np.ndarray:
    """:func:`acquisition_dates` of a ``shards.h5`` from :func:`sample_series` (what the
    descriptors, the cluster interpretation and the decomposition all fit on)."""
    return acquisition_dates(shards.dates, sample_series(shards, sample_rows))


def _annual(cos_coef: np.ndarray, sin_coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude (mm) and peak day of year (1 = 1 January) of c cos(w d) + s sin(w d)."""
    # A cos(w d - phi) peaks at d = phi / w (mod one year); 1970-01-01 is day 1
    phi = np.arctan2(sin_coef, cos_coef)
    return np.hypot(cos_coef, sin_coef), np.mod(phi / (2 * np.pi) * DAYS_PER_YEAR, DAYS_PER_YEAR) + 1.0


@_one_blas_thread
def step_or_trend(series: np.ndarray, grid_dates: np.ndarray, *,
                  observed_dates: np.ndarray | None = None, max_gap_days: float = FIT_DEFAULTS["max_gap_days"],
                  min_segment_days: float = FIT_DEFAULTS["min_segment_days"]) -> dict:
    """Is a series better explained by one step or by a trend? Both with the annual cycle.

    Fits two models of equal size to each row of ``series`` (K, G) mm:
    *trend* (offset, trend, acceleration, annual cos/sin) and *step*
    (offset, annual cos/sin, one step at the best change point). A series
    that drops once is explained by the joint fit of
    :class:`DescriptorModel` as part trend, part step; the mean series of a
    cluster of steps at different dates even looks like a ramp. Comparing the
    residuals of the two models tells which explanation the data prefer.

    Returns arrays (K,): ``step_mm`` and ``step_date`` of the step model,
    ``rss_step`` and ``rss_trend`` (mm^2, over the supported epochs), and
    ``descriptors_step`` (K, D): the step model as a descriptor row (trend
    and acceleration 0), which :func:`model_curve` can draw.
    """
    Y = np.atleast_2d(np.asarray(series, dtype=np.float64))
    grid = np.asarray(grid_dates)
    mask = observed_grid_mask(grid, observed_dates, max_gap_days)
    out = {}
    for name, terms in (("trend", (0, 1, 2, 3, 4)), ("step", (0, 3, 4))):
        d = _design(grid, mask, min_segment_days, terms)
        Ys = Y[:, d.columns]
        coef = Ys @ d.base_pinv.T.astype(np.float64)
        resid = Ys - coef @ d.base.T.astype(np.float64)
        rss = np.einsum("ij,ij->i", resid, resid)
        if name == "trend":
            out["rss_trend"] = rss
            continue
        if len(d.step_first):
            proj = resid @ d.step_dirs.astype(np.float64)
            best = np.abs(proj).argmax(axis=1)
            best_proj = np.take_along_axis(proj, best[:, None], axis=1)[:, 0]
            step = best_proj / d.step_norm[best]
            coef = coef - step[:, None] * d.step_on_base[:, best].T
            rss = np.maximum(rss - best_proj ** 2, 0.0)
            step_date = d.step_dates[best]
        else:
            step, step_date = np.zeros(len(Y)), np.full(len(Y), np.nan)
        amplitude, peak = _annual(coef[:, 1], coef[:, 2])
        row = np.zeros((len(Y), N_DESCRIPTORS))
        col = {n: i for i, n in enumerate(DESCRIPTOR_NAMES)}
        row[:, col["annual_amplitude_mm"]] = amplitude
        row[:, col["annual_peak_doy"]] = peak
        row[:, col["step_mm"]] = step
        row[:, col["step_date"]] = step_date
        row[:, col["residual_rms_mm"]] = np.sqrt(rss / d.dof)
        row[:, col["offset_mm"]] = coef[:, 0]
        out.update(rss_step=rss, step_mm=step, step_date=step_date, descriptors_step=row)
    return out


def infer_acquisition_dates(series: np.ndarray, grid_dates: np.ndarray, rtol: float = 1e-5
                            ) -> np.ndarray:
    """Grid dates that are not inside a linearly interpolated stretch of ``series`` (K, G).

    For callers that have regular series but not the acquisition dates (e.g.
    cluster means): linear interpolation leaves every series exactly
    straight across a gap, so an interior grid epoch where the second
    difference of *all* rows vanishes (to float32 rounding, ``rtol`` x the
    largest value) is taken as interpolated. Pass the result as
    ``observed_dates``; runs shorter than ``max_gap_days`` are kept anyway.
    Gaps filled by pchip/makima/ransac are not straight and go unnoticed, as
    does everything in a noise-free straight series (then no epoch is left
    out).
    """
    series = np.atleast_2d(np.asarray(series, dtype=np.float64))
    grid_dates = np.asarray(grid_dates)
    if series.shape[1] < 3:
        return grid_dates
    tol = rtol * max(float(np.nanmax(np.abs(series))), 1.0)
    straight = np.all(np.abs(np.diff(series, 2, axis=1)) <= tol, axis=0)
    interpolated = np.concatenate([[False], straight, [False]])
    return grid_dates[~interpolated]


def write_descriptors(shards_path, out_path, *, max_gap_days: float = FIT_DEFAULTS["max_gap_days"],
                      min_segment_days: float = FIT_DEFAULTS["min_segment_days"], step_z_min: float = FIT_DEFAULTS["step_z_min"],
                      block_rows: int = 65536, log=None) -> DescriptorModel:
    """Stream ``shards.h5`` (``/series/regular``) into ``features/descriptors.h5``.

    Each point is fitted on its span (``/series/span``) without its own gaps longer than
    ``max_gap_days`` (from ``/series/displacement``: :func:`insarclust.spans.observed_holes`).
    Memory: one block of ``block_rows`` series (never more than one shard).
    The file's ``/X`` has columns :data:`DESCRIPTOR_NAMES`; attrs record the
    reference date of the trend and the fit settings.
    """
    import logging

    from insarclust import h5io
    from insarclust.logs import Progress

    log = log or logging.getLogger("insarclust.descriptors")
    shards = h5io.Shards(shards_path)
    observed = site_acquisition_dates(shards)
    model = DescriptorModel(shards.grid_dates, observed, max_gap_days, min_segment_days, step_z_min).fit()
    log.info("descriptor fit on %d of %d grid epochs (%d acquisition dates, gaps > %g days left out), "
             "%d step candidates", len(model.design_.columns), len(shards.grid_dates), len(observed),
             max_gap_days, len(model.design_.step_first))
    if model.tier_:
        log.warning("the site's acquisitions span under %g years: its points and clusters are fitted %s "
                    "(SITE_SPAN_YEARS), so none is labelled accelerating%s", SITE_SPAN_YEARS[
                        "acceleration" if model.tier_ == 1 else "annual"],
                    "without the acceleration term" if model.tier_ == 1 else "with a line",
                    "" if model.tier_ == 1 else " or seasonal")
    attrs = {"reference_date": model.reference_date, "max_gap_days": max_gap_days,
             "min_segment_days": min_segment_days, "step_z_min": step_z_min,
             "grid_epochs_used": len(model.design_.columns)}
    progress = Progress(log, shards.n_points, "descriptors (series)")
    with h5io.FeatureWriter(out_path, shards.n_points, DESCRIPTOR_NAMES, attrs) as writer:
        partial = holed = 0
        for start, stop, regular in shards.iter_blocks("series/regular", block_rows=block_rows):
            spans = shards.spans(start, stop)
            holes = observed_holes(shards.read("series/displacement", start, stop), shards.dates,
                                   shards.grid_dates, max_gap_days, observed)
            partial += int(np.count_nonzero(model.partial(spans)))
            holed += int(np.count_nonzero(model.holed(holes, stop - start)))
            writer.write(start, model.transform(regular, spans, holes))
            progress.update(stop - start)
        if partial:
            log.info("descriptors: %d of %d points observed over part of the period only, each fitted "
                     "on its own span", partial, shards.n_points)
        if holed:
            log.info("descriptors: %d of %d points miss more than %g days inside their span while the "
                     "site is observed; those epochs are left out of their fit", holed, shards.n_points,
                     max_gap_days)
    return model
