"""Per-cluster statistics of the series: the mean and spread curves drawn in every
cluster figure, ordering the clusters and naming their regimes.

Streamed over the shards of ``shards.h5`` (a site's series never sit in memory
at once). Two concerns drive the layout: moments merged block by block must not
lose precision (:class:`GroupedMoments`), and a point observed over part of the
grid only (a later release of a product, a file covering part of the period)
must count over its own span, without its held values beyond it and without its
own zero reference shifting the cluster's level (:func:`cluster_series_stats`).
"""
from __future__ import annotations

import numpy as np

from . import h5io, metrics
from .spans import first_last, observed_holes, span_mask


class GroupedMoments:
    """Per-cluster count, mean and M2 (sum of squared deviations) of each column, added block
    by block: exact two-pass moments within a block, merged across blocks with Chan's formula,
    so a block of large values does not lose precision."""

    def __init__(self, n_clusters: int, n_columns: int):
        self.rows = np.zeros(n_clusters, dtype=np.int64)
        self.n = np.zeros((n_clusters, n_columns))
        self.mean = np.zeros((n_clusters, n_columns))
        self.m2 = np.zeros((n_clusters, n_columns))

    def add(self, lab: np.ndarray, X: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Rows ``X (n, D)`` of clusters ``lab (n,)``; with ``mask (n, D)`` only its True entries count."""
        k = len(self.rows)
        X = np.asarray(X, dtype=np.float64)
        onehot = metrics.onehot(lab, k)
        per_cluster = np.bincount(lab, minlength=k)
        self.rows += per_cluster
        if mask is None:
            n_b = np.broadcast_to(per_cluster[:, None].astype(np.float64), self.mean.shape)
            total = onehot @ X
        else:
            mask = np.asarray(mask, dtype=np.float64)
            n_b = onehot @ mask
            total = onehot @ (X * mask)
        hit = n_b > 0
        mean_b = np.zeros_like(self.mean)
        mean_b[hit] = total[hit] / n_b[hit]
        dev = (X - mean_b[lab]) ** 2
        self.merge(n_b, mean_b, onehot @ (dev if mask is None else dev * mask))

    def merge(self, n_b: np.ndarray, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        """Chan's merge of another set of per-column moments (``rows`` is left to the caller)."""
        n_new = self.n + n_b
        delta = mean_b - self.mean
        frac = np.where(n_b > 0, n_b / np.maximum(n_new, 1), 0.0)
        self.mean = self.mean + delta * frac
        self.m2 = self.m2 + m2_b + delta ** 2 * (self.n * frac)
        self.n = n_new

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """``mean``, population ``std`` (K, D); NaN where no entry of the cluster counts."""
        empty = self.n == 0
        mean = np.where(empty, np.nan, self.mean)
        std = np.sqrt(self.m2 / np.maximum(self.n, 1))
        std[empty] = np.nan
        return mean, std


def grouped_mean_std(blocks, labels: np.ndarray, n_clusters: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster mean and (population) std of rows streamed as ``(start, stop, X)`` blocks.

    A block may carry a fourth item, a (n, D) bool ``mask``: only its True
    entries count (per cluster and column). Returns ``mean (K, D)``, ``std (K, D)``
    float64 (NaN where no entry of the cluster counts), ``counts (K,)`` rows
    per cluster (:class:`GroupedMoments`).
    """
    labels = np.asarray(labels, dtype=np.int64)
    moments = None
    for block in blocks:
        a, b, X = block[:3]
        if moments is None:
            moments = GroupedMoments(n_clusters, X.shape[1])
        moments.add(labels[a:b], X, block[3] if len(block) > 3 else None)
    if moments is None:
        raise ValueError("no rows to summarise")
    return (*moments.mean_std(), moments.rows)


def cluster_series_stats(shards_path, labels: np.ndarray, n_clusters: int | None = None,
                         dataset: str = "series/regular", max_gap_days: float | None = None,
                         site_dates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster ``mean (K, G)``, ``std (K, G)`` (mm) of the regular series and ``counts (K,)``.

    Each point counts at the grid epochs of its own observed span only
    (first to last acquisition, :mod:`insarclust.spans`):
    beyond it ``shards`` holds its first/last value, and those flat stretches
    flattened the mean (and shrank the std) of a cluster with late-starting
    or early-ending members. An epoch no member covers is NaN.

    Where the members of a cluster do not all share one span, the mean is
    built from the mean epoch-to-epoch change of the members observed at both
    epochs, from the mean of the members at the cluster's first epoch: a
    member entering late (a later release of a product, referenced to 0 at its
    own first date) or leaving early then changes no level, where a plain mean
    over the members present would jump by their offset. The std is the spread
    around that mean, each late member shifted to it at its first epoch. A
    cluster whose members share one span gets their plain mean and std.

    With ``max_gap_days`` each member's own holes inside its span (gaps longer than that of
    the site's observed time between two of its values, ``site_dates`` the site's
    acquisitions: :func:`insarclust.spans.observed_holes`, the holes the per-point fit
    leaves out) count as beyond its span: ``shards`` interpolated across them, and those
    lines pulled a seasonal cluster's mean towards a straight line and widened its std (a
    third of the members missing a year: amplitude 5.6 mm for 6, std 5.2 mm for 1.5 in that
    year). Their cluster's mean is
    then chained as above, so a member's absence changes no level; a hole keeps the member's
    reference (a late start does not), so its own change across the hole enters the chain
    there, spread along the others' changes, and wherever all members are observed the mean
    is their plain mean. Without it (the order of the labels, which must not follow an
    interpretation setting) holes count as data.

    Points observed over the whole grid (nearly all, in most catalogues) need
    no mask: their moments and changes come from their sums, and only the
    other points' rows are masked (and read a second time, when some cluster's
    members differ in span). K defaults to ``labels.max() + 1``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    shards = h5io.Shards(shards_path)
    acc = _SpanSums.of(shards, labels, k, dataset, max_gap_days, site_dates)
    counts = acc.full.rows + acc.part.rows
    plain = GroupedMoments(k, acc.n_grid)
    for m in (acc.full, acc.part):
        plain.merge(m.n, m.mean, m.m2)
    mean, std = plain.mean_std()
    mixed = (counts > 0) & (acc.spans_differ() | acc.holed)
    if not mixed.any():
        return mean, std, counts
    mean[mixed] = acc.chained_mean(mean[mixed], mixed)
    with np.errstate(invalid="ignore", divide="ignore"):
        std[mixed] = acc.spread(shards, dataset, labels, mean, mixed)[mixed]
    return mean, std, counts


class _SpanSums:
    """One pass over the shards: moments of the whole-grid points and of the others on their
    spans, the others' epoch-to-epoch changes, each cluster's range of first and last epochs,
    and which rows are partial (for the spread's second pass)."""

    def __init__(self, n_clusters: int, n_grid: int):
        k, G = self.n_clusters, self.n_grid = n_clusters, n_grid
        self.full = GroupedMoments(k, G)        # points observed over the whole grid
        self.part = GroupedMoments(k, G)        # the others, on their spans
        self.inc = np.zeros((k, G))             # partial points' changes from epoch g-1 to g, where observed at both
        self.n_inc = np.zeros((k, G))
        self.first = [np.full(k, G), np.full(k, -1)]   # min and max of the members' first epochs
        self.last = [np.full(k, G), np.full(k, -1)]
        self.partial_rows, self.partial_spans = [], []
        self.holed = np.zeros(k, dtype=bool)    # some member has a hole of its own
        self.holes = []                         # (rows, lo, hi) of those holes, rows site-wide
        self.bridges = []                       # (label, p, q, change) across each member's holes

    @classmethod
    def of(cls, shards: h5io.Shards, labels: np.ndarray, k: int, dataset: str,
           max_gap_days: float | None = None, site_dates: np.ndarray | None = None) -> _SpanSums:
        acc = cls(k, len(shards.grid_dates))
        displacement = dataset.rsplit("/", 1)[0] + "/displacement"
        for a, b, X in shards.iter_shards(dataset):
            holes = None
            if max_gap_days is not None:
                holes = observed_holes(shards.read(displacement, a, b), shards.dates, shards.grid_dates,
                                       max_gap_days, site_dates)
            acc.add(a, labels[a:b], X, shards.spans(a, b, dataset), holes)
        return acc

    def add(self, a: int, lab: np.ndarray, X: np.ndarray, spans: np.ndarray,
            holes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        G = self.n_grid
        for (lo, hi), col in ((self.first, spans[:, 0]), (self.last, spans[:, 1])):
            np.minimum.at(lo, lab, col)
            np.maximum.at(hi, lab, col)
        whole = (spans[:, 0] == 0) & (spans[:, 1] == G - 1)
        mine = None     # this block's holes: hole_mask need not look through the others'
        if holes is not None and len(holes[0]):
            whole[holes[0]] = False
            self.holed[lab[holes[0]]] = True
            mine = (a + holes[0], holes[1], holes[2])
            self.holes.append(mine)
        if whole.all():
            self.full.add(lab, X)
            return
        self.full.add(lab[whole], X[whole])
        rows = np.flatnonzero(~whole)
        lab_p, spans_p = lab[rows], spans[rows]
        X_p = np.asarray(X[rows], dtype=np.float64)
        inside = span_mask(spans_p, G)
        if mine is not None:
            inside &= ~self.hole_mask(a + rows, mine)
        self.part.add(lab_p, X_p, inside)
        both = inside[:, 1:] & inside[:, :-1]
        onehot = metrics.onehot(lab_p, self.n_clusters)
        self.inc[:, 1:] += onehot @ np.where(both, np.diff(X_p, axis=1), 0.0)
        self.n_inc[:, 1:] += onehot @ both.astype(np.float64)
        # a member's hole keeps its reference: its change across the hole (last epoch before
        # to first after, p -> q) is data, carried into the chain by :meth:`chained_mean`
        last_in = np.maximum.accumulate(np.where(inside, np.arange(G), -1), axis=1)
        r, q = np.nonzero(inside[:, 1:] & ~inside[:, :-1] & (last_in[:, :-1] >= 0))
        if len(r):
            q = q + 1
            p = last_in[r, q - 1]
            self.bridges.append((lab_p[r], p, q, X_p[r, q] - X_p[r, p]))
        self.partial_rows.append(a + rows)
        self.partial_spans.append(spans_p)

    def hole_mask(self, rows: np.ndarray, holes: tuple) -> np.ndarray:
        """(n, G) bool: grid epochs inside a hole of each of the (sorted, site-wide) ``rows``, from
        ``holes`` ``(rows, lo, hi)`` sorted by row: only those between the first and last of
        ``rows`` are looked at (looking through every shard's made a pass over the shards
        quadratic in their number)."""
        hole_rows, lo, hi = holes
        mask = np.zeros((len(rows), self.n_grid + 1))
        if len(rows) and len(hole_rows):
            i = np.searchsorted(hole_rows, rows[0], side="left")
            j = np.searchsorted(hole_rows, rows[-1], side="right")
            hole_rows, lo, hi = hole_rows[i:j], lo[i:j], hi[i:j]
            take = np.isin(hole_rows, rows)
            if take.any():
                at = np.searchsorted(rows, hole_rows[take])
                np.add.at(mask, (at, lo[take]), 1.0)
                np.add.at(mask, (at, hi[take] + 1), -1.0)
        return np.cumsum(mask, axis=1)[:, :self.n_grid] > 0

    def spans_differ(self) -> np.ndarray:
        """(K,) bool: the cluster's members do not all share one span."""
        return (self.first[0] != self.first[1]) | (self.last[0] != self.last[1])

    def chained_mean(self, plain_mean: np.ndarray, mixed: np.ndarray) -> np.ndarray:
        """The ``mixed`` clusters' mean from their mean changes, chained from the plain mean
        (the level wherever no member carries on). Adds the whole-grid members' changes
        (those of their mean) to ``inc`` once, for :meth:`spread` too."""
        n_full = self.full.n[:, :1]
        self.inc[:, 1:] += n_full * np.diff(self.full.mean, axis=1)
        self.n_inc[:, 1:] += n_full
        self._add_bridges()
        level = plain_mean.copy()
        inc_m, n_inc_m = self.inc[mixed], self.n_inc[mixed]
        for g in range(1, self.n_grid):
            carried = n_inc_m[:, g] > 0
            level[carried, g] = level[carried, g - 1] + inc_m[carried, g] / n_inc_m[carried, g]
        level[np.isnan(plain_mean)] = np.nan   # no member observed there: carried through, not drawn
        return level

    def _add_bridges(self) -> None:
        """Each member across each of its holes (p -> q), in ``inc``: the others' mean change at
        every epoch of the hole, plus the member's own change over it less theirs, spread evenly
        (the member interpolated along the others' curve, none: a straight line). A member
        leaving for a hole and returning then changes no level, and the mean wherever all are
        observed is their plain mean: only a late start resets a member's reference, a hole
        does not (chaining without the holed members' own change across the hole left the mean
        off by their difference from the others for the rest of the series)."""
        if not self.bridges:
            return
        k, G = self.n_clusters, self.n_grid
        lab, p, q, change = (np.concatenate(a) for a in zip(*self.bridges))
        with np.errstate(invalid="ignore", divide="ignore"):
            others = np.where(self.n_inc > 0, self.inc / self.n_inc, 0.0)
        cum = np.cumsum(others, axis=1)
        share = (change - (cum[lab, q] - cum[lab, p])) / (q - p)
        count, spread = np.zeros((k, G + 1)), np.zeros((k, G + 1))
        for arr, v in ((count, 1.0), (spread, share)):
            np.add.at(arr, (lab, p + 1), v)
            np.add.at(arr, (lab, q + 1), -v)
        count, spread = np.cumsum(count, axis=1)[:, :G], np.cumsum(spread, axis=1)[:, :G]
        self.inc += count * others + spread
        self.n_inc += count

    def spread(self, shards: h5io.Shards, dataset: str, labels: np.ndarray, mean: np.ndarray,
               mixed: np.ndarray) -> np.ndarray:
        """(K, G) std around ``mean``: whole-grid members from their moments; each partial
        member of a ``mixed`` cluster, read again, shifted onto the mean at its first epoch
        where others carry on."""
        k, G = self.n_clusters, self.n_grid
        centre = np.where(np.isnan(mean), 0.0, mean)
        sq = self.full.m2 + self.full.n * (self.full.mean - centre) ** 2
        n_sq = self.full.n.copy()
        rows = np.concatenate(self.partial_rows) if self.partial_rows else np.zeros(0, dtype=np.int64)
        spans_all = np.concatenate(self.partial_spans) if self.partial_spans else np.zeros((0, 2), dtype=np.int64)
        keep = mixed[labels[rows]]
        rows, spans_all = rows[keep], spans_all[keep]
        empty = np.zeros(0, dtype=np.int64)
        holes = tuple(np.concatenate(h) for h in zip(*self.holes)) if self.holes else (empty, empty, empty)
        for a, b in shards.shard_bounds():
            lo, hi = np.searchsorted(rows, [a, b])
            if lo == hi:
                continue
            X = np.asarray(shards.read(dataset, a, b)[rows[lo:hi] - a], dtype=np.float64)
            lab = labels[rows[lo:hi]]
            spans = spans_all[lo:hi].astype(np.int64)
            inside = span_mask(spans, G) & ~self.hole_mask(rows[lo:hi], holes)
            # where the member enters the mean: its span's first epoch, or after a hole of its own
            # that opens the span (acquisitions off the grid), as the mean's chain takes it
            start = np.argmax(inside, axis=1)
            shift = np.where(self.n_inc[lab, start] > 0, mean[lab, start] - X[np.arange(len(X)), start], 0.0)
            dev = np.where(inside, X + shift[:, None] - mean[lab], 0.0)
            onehot = metrics.onehot(lab, k)
            sq += onehot @ dev ** 2
            n_sq += onehot @ inside.astype(np.float64)
        return np.sqrt(sq / n_sq)


def cluster_acquisition_dates(shards_path, labels: np.ndarray, n_clusters: int, site_dates: np.ndarray,
                              min_share: float = 0.5, max_gap_days: float = 36.0,
                              block_rows: int | None = None) -> list[np.ndarray]:
    """Each cluster's own acquisition dates: ``site_dates`` less those inside the cluster's span
    at which fewer than ``min_share`` of the members observed around the date (from their first
    to their last acquisition) are observed there: not inside a hole of their own, a gap of
    more than ``max_gap_days`` of the site's observed time between two of their values
    (:func:`insarclust.spans.observed_holes`, the holes the per-point fit leaves out).

    The mean counts its members' held and interpolated values too: a season most members of a
    cluster miss (high ground keeping its snow into June while the valley is observed) is an
    interpolated line in the mean, which the fit of the mean would take as data, as the
    per-point fit did before it left each point's holes out. With these dates the cluster's
    fit leaves such a season out as a winter. A member's single missing acquisitions are
    bridged over a revisit or two, as in the per-point fit, and do not count: members that each
    miss most dates at random (a coherence-masked export) still give a mean that is data at
    every date. Dates no member covers (beyond the cluster's span) stay: the span has its own
    handling. Reads ``/series/displacement`` once.
    """
    shards = h5io.Shards(shards_path)
    labels = np.asarray(labels, dtype=np.int64)
    dates = np.asarray(shards.dates)
    T = len(dates)
    in_hole = np.zeros((n_clusters, T + 1))      # +1 at a hole's first date, -1 after its last
    covering = np.zeros((n_clusters, T))
    for a, b, X in shards.iter_blocks("series/displacement", block_rows=block_rows):
        has, first, last = first_last(~np.isnan(X))
        covered = has[:, None] & span_mask(np.stack([first, last], axis=1), T)
        lab = labels[a:b]
        covering += metrics.onehot(lab, n_clusters) @ covered.astype(np.float64)
        rows, lo, hi = observed_holes(X, dates, dates, max_gap_days, site_dates)
        np.add.at(in_hole, (lab[rows], lo), 1.0)
        np.add.at(in_hole, (lab[rows], hi + 1), -1.0)
    observed = covering - np.cumsum(in_hole, axis=1)[:, :T]
    site = np.isin(dates, np.asarray(site_dates))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = observed / covering
    keep = site[None, :] & ((covering == 0) | (share >= min_share))
    return [dates[keep[j]] for j in range(n_clusters)]
