"""decompose stage: ascending + descending LOS tracks -> vertical and east-west series on cells."""
import re

import numpy as np
import pytest

from insarclust import coords, h5io
from insarclust.decompose import DecomposeConfig, covered, decompose, interpolation_matrix, solve_up_east
from insarclust.errors import InputError

LAT0, LON0 = 69.60, 20.20
D0 = 17700          # 2018-06-18, days since 1970-01-01
SIZE_M = 2000.0


def truth(lat, lon, days):
    """Known ground motion (mm), referenced to D0: (up, east) (n, T) at the points."""
    x = (lon - LON0) * 111320 * np.cos(np.deg2rad(LAT0))
    t = (np.asarray(days) - D0) / 365.25
    v_up = -10.0 + 6.0 * x / SIZE_M                     # -10 .. -4 mm/yr from west to east
    up = v_up[:, None] * t + 4.0 * np.sin(2 * np.pi * t)[None, :]
    east = np.full_like(x, 5.0)[:, None] * t + 0.0 * x[:, None]
    return up, east


def write_track(path, *, heading, first_day, n=3000, years=2.0, step=12, seed=0, noise_mm=1.0,
                angles=False, drop_los=False, lat0=LAT0, los_sign=1.0, bad_incidence=None,
                with_track_angle=False, los_columns=None, scale=1.0, second_orbit=0):
    """A LOS shards.h5 of ``n`` points over a 2 x 2 km square, motion from :func:`truth`.

    ``los_sign`` -1: LOS columns in the satellite-to-ground convention; ``bad_incidence``:
    this incidence angle for every 7th point (with ``angles``); ``with_track_angle``: a
    track_angle column beside the LOS columns (as EGMS has); ``los_columns``: a function
    of the (n, 3) east, north, up columns giving the ones written; ``scale``: the series
    multiplied by it (0.1: centimetres written as mm); ``second_orbit`` (days): every other point
    is of a second relative orbit of the same direction, acquired that many days after the first
    (one track's files cover two orbits, as a glob over an EGMS L2b download does)."""
    rng = np.random.default_rng(seed)
    lat = lat0 + rng.uniform(0, SIZE_M, n) / 111320
    lon = LON0 + rng.uniform(0, SIZE_M, n) / (111320 * np.cos(np.deg2rad(LAT0)))
    dates = (first_day + step * np.arange(int(years * 365.25 / step))).astype(np.int32)
    if second_orbit:
        own = dates
        dates = np.union1d(own, own + second_orbit).astype(np.int32)
    incidence = rng.uniform(32, 44, n)
    e, nn, u = coords.los_vector(incidence, heading + rng.normal(0, 0.2, n))
    up, east = truth(lat, lon, dates)
    north = rng.normal(0, 1, n)[:, None] * (dates - D0)[None, :] / 365.25   # neglected by the solve
    los = e[:, None] * east + nn[:, None] * north + u[:, None] * up
    los = los - los[:, :1] + rng.normal(0, noise_mm, los.shape)            # referenced to the first epoch
    los = los * scale
    observed = los.copy()
    if second_orbit:   # each point observed at its own orbit's dates only
        other = ~np.isin(dates, own)
        observed[0::2, other] = np.nan
        observed[1::2, ~other] = np.nan
    if drop_los:
        names, static = ["height"], rng.uniform(10, 50, (n, 1))
    elif angles:
        names, static = ["height", "incidence_angle", "track_angle"], np.stack(
            [rng.uniform(10, 50, n), incidence, np.full(n, heading)], axis=1)
    else:
        names, static = ["height", "los_east", "los_north", "los_up"], np.stack(
            [rng.uniform(10, 50, n), e, nn, u], axis=1)
        if los_columns is not None:
            static[:, 1:] = los_columns(static[:, 1:].copy())
        if with_track_angle:
            names, static = names + ["track_angle"], np.c_[static, np.full(n, heading)]
    if angles and bad_incidence is not None:
        static[::7, 1] = bad_incidence
    if not angles and not drop_los:
        static[:, 1:4] *= los_sign
    pid = np.array([f"T{seed}-{i}" for i in range(n)], dtype=object)
    with h5io.ShardsWriter(path, n, dates, dates, names, {"site": "t", "format": "egms"}) as w:
        for a in range(0, n, 1000):
            b = min(n, a + 1000)
            w.write(pid[a:b], lat[a:b], lon[a:b], static[a:b].astype(np.float32),
                    observed[a:b].astype(np.float32), los[a:b].astype(np.float32))
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    asc = write_track(root / "asc.h5", heading=-12.0, first_day=D0, seed=1)
    desc = write_track(root / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2)
    out = root / "shards.h5"
    summary = decompose(asc, desc, out, "pair", DecomposeConfig(grid_step_days=6, shard_size=100))
    return root, out, summary


def test_known_vertical_and_east_west_motion_is_recovered(pair):
    _, out, summary = pair
    s = h5io.Shards(out)
    assert s.components == ["up", "east"] and s.crs == "EPSG:3035"
    assert s.static_names == ["height", "mean_velocity_up", "mean_velocity_east"]
    assert s.n_points == summary["n_cells"] and s.n_shards == summary["n_shards"] > 1
    # the common period: from the later first date, every 6 days
    assert s.grid_dates[0] == D0 + 5 and np.all(np.diff(s.grid_dates) == 6)
    up = s.read("series/regular")
    east = s.read(s.component_dataset("east"))
    lat, lon = s.coords()
    true_up, true_east = truth(lat, lon, s.grid_dates)
    true_up -= true_up[:, :1]
    true_east -= true_east[:, :1]
    # ~7 points per track and cell, 1 mm noise each: a fraction of a mm after averaging
    err_up, err_east = up - true_up, east - true_east
    assert np.sqrt(np.mean(err_up ** 2)) < 0.8 and np.sqrt(np.mean(err_east ** 2)) < 0.8
    assert np.percentile(np.abs(err_up), 99) < 3.0 and np.percentile(np.abs(err_east), 99) < 3.0
    # the cell velocities follow the west-east gradient of the vertical motion
    v_up = s.read("points/static")[:, 1]
    x = (lon - LON0) * 111320 * np.cos(np.deg2rad(LAT0))
    assert np.corrcoef(v_up, x)[0, 1] > 0.95
    np.testing.assert_allclose(np.median(s.read("points/static")[:, 2]), 5.0, atol=0.3)
    # (N, T, 2) for the embedding, in the components' order
    both = s.read_components(0, 10)
    assert both.shape == (10, len(s.grid_dates), 2) and np.array_equal(both[..., 1], east[:10])


def test_cells_are_100m_cells_of_etrs89_laea_in_hilbert_order(pair):
    _, out, summary = pair
    s = h5io.Shards(out)
    x, y, crs = s.xy()
    assert np.allclose(np.mod(x, 100), 50) and np.allclose(np.mod(y, 100), 50)
    pid = s.pids()
    assert pid[0] == f"100mE{int(x[0] // 100)}N{int(y[0] // 100)}" and len(set(pid)) == len(pid)
    lat, lon = s.coords()
    xb, yb = coords.from_wgs84(lat, lon, crs)
    assert np.max(np.hypot(xb - x, yb - y)) < 0.01
    from insarclust.ordering import spatial_keys
    assert np.all(np.diff(spatial_keys(lat, lon)) >= 0)
    # 2 x 2 km: about 400 cells seen by both; a few at the edges by one track only
    assert 300 < summary["n_cells"] <= 441
    assert summary["n_cells_ascending_only"] + summary["n_cells_descending_only"] < 60
    assert s.attrs["n_cells_ascending_only"] == summary["n_cells_ascending_only"]


def test_observed_dates_skip_the_common_winter_gap(tmp_path):
    grid = np.arange(0, 200, 6)
    acq = np.r_[np.arange(0, 60, 12), np.arange(150, 200, 12)]   # a 90-day gap
    mask = covered(grid, acq, 36)
    assert mask[grid == 48].all() and not mask[(grid > 60) & (grid < 150)].any() and mask[grid == 150].all()
    W = interpolation_matrix(np.array([0, 10, 20]), np.array([0, 5, 20, 30]))
    np.testing.assert_allclose(np.array([[0.0, 1.0, 4.0]]) @ W, [[0.0, 0.5, 4.0, 4.0]])


@pytest.mark.parametrize("offset", [3, 6])
def test_observed_dates_are_one_per_pair_of_acquisitions(tmp_path, offset):
    # 12-day revisit on the 6-day grid: every other grid date only interpolates its neighbours;
    # fitted as data it made "significant" steps of noise in ~20 % of the cells
    from insarclust.descriptors import DESCRIPTOR_NAMES, DescriptorModel, site_acquisition_dates

    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, step=12)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + offset, seed=2, step=12)
    decompose(asc, desc, tmp_path / "s.h5", "p", DecomposeConfig(grid_step_days=6))
    s = h5io.Shards(tmp_path / "s.h5")
    assert np.all(np.diff(s.grid_dates) == 6) and np.all(np.diff(s.dates) == 12)
    lead = h5io.Shards(desc).dates   # the later track: its dates are on the grid
    np.testing.assert_array_equal(s.dates, lead[lead <= s.grid_dates[-1]])
    model = DescriptorModel(s.grid_dates, site_acquisition_dates(s)).fit()
    assert len(model.design_.columns) == len(s.dates)
    steps = model.transform(s.read("series/regular"))[:, DESCRIPTOR_NAMES.index("step_mm")]
    assert np.mean(steps != 0) < 0.02


def test_cell_height_is_the_mean_of_the_points_that_have_one(tmp_path):
    import h5py

    paths = {"asc": write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, n=1000),
             "desc": write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, n=1000)}
    with h5py.File(paths["asc"], "r+") as f:   # a static column may hold NaN
        static = f["points/static"][...]
        static[::10, 0] = np.nan
        f["points/static"][...] = static
    decompose(paths["asc"], paths["desc"], tmp_path / "s.h5", "p", DecomposeConfig(grid_step_days=6))
    s = h5io.Shards(tmp_path / "s.h5")
    expected = []
    for track in ("asc", "desc"):
        t = h5io.Shards(paths[track])
        i, j = coords.cell_index(*coords.from_wgs84(*t.coords(), "EPSG:3035"), 100.0)
        names = coords.cell_names(i, j, 100.0)
        h = t.read("points/static")[:, 0].astype(np.float64)
        h = [h[(names == pid) & np.isfinite(h)] for pid in s.pids()]
        expected.append([np.mean(v) if len(v) else np.nan for v in h])
    assert np.isfinite(expected).all(axis=0).sum() < len(s.pids()) - 10   # cells without an ascending height
    np.testing.assert_allclose(s.read("points/static")[:, 0], np.nanmean(expected, axis=0), rtol=1e-5)


def observe_only(path, points, observed):
    """Leave the series of ``points`` (N,) bool of a track observed at ``observed(dates)`` only, as
    the shards stage writes such points: NaN displacements, first/last value held on the grid."""
    import h5py

    from insarclust.spans import observed_spans

    with h5py.File(path, "r+") as f:
        dates, grid = f["series/dates"][...], f["series/grid_dates"][...]
        disp, reg = f["series/displacement"][...], f["series/regular"][...]
        disp[np.ix_(points, ~observed(dates))] = np.nan
        for i in np.flatnonzero(points):
            ok = ~np.isnan(disp[i])
            reg[i] = np.interp(grid, dates[ok], disp[i, ok])
        f["series/displacement"][...], f["series/regular"][...] = disp, reg
        f["series/span"][...] = observed_spans(disp, dates, grid)


def test_cells_are_observed_where_every_point_of_both_tracks_is(tmp_path):
    # the ascending points of the eastern half come from a file that starts a year later
    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, years=3.0)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, years=3.0)
    lat, lon = h5io.Shards(asc).coords()
    observe_only(asc, lon > LON0 + 0.01 + 1000 / (111320 * np.cos(np.deg2rad(LAT0))), lambda d: d >= D0 + 365)
    # a last acquisition missing is bridged like a gap between acquisitions
    observe_only(asc, np.arange(len(lat)) % 3 == 0, lambda d: d < d.max())   # asc ends the common grid
    decompose(asc, desc, tmp_path / "s.h5", "p", DecomposeConfig(grid_step_days=6))
    s = h5io.Shards(tmp_path / "s.h5")
    lat, lon = s.coords()
    x = (lon - LON0) * 111320 * np.cos(np.deg2rad(LAT0))
    late = x > 1000 + 0.01 * 111320 * np.cos(np.deg2rad(LAT0)) + 100
    early = x < 900
    assert late.sum() > 50 and early.sum() > 150
    first = s.grid_dates[s.spans()[:, 0]]
    assert (first[early] == s.grid_dates[0]).all() and (first[late] >= D0 + 365).all()
    assert (s.grid_dates[s.spans()[:, 1]] == s.dates[-1]).all()
    assert np.isnan(s.read("series/displacement")[late][:, s.dates < D0 + 365]).all()
    # the held year is not fitted: no false steps, the trends of the truth
    from insarclust.descriptors import DESCRIPTOR_NAMES, DescriptorModel, site_acquisition_dates

    model = DescriptorModel(s.grid_dates, site_acquisition_dates(s)).fit()
    X = model.transform(s.read("series/regular"), s.spans())
    assert np.mean(X[late, DESCRIPTOR_NAMES.index("step_mm")] != 0) < 0.05
    v_up = -10.0 + 6.0 * x / SIZE_M
    assert np.median(np.abs(X[late, 0] - v_up[late])) < 0.3


def test_cells_whose_tracks_are_never_observed_together_are_dropped(tmp_path):
    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, n=1000)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, n=1000)
    for path, observed in ((asc, lambda d: d >= D0 + 400), (desc, lambda d: d < D0 + 300)):
        lat, lon = h5io.Shards(path).coords()
        observe_only(path, lat > LAT0 + 1000 / 111320, observed)
    summary = decompose(asc, desc, tmp_path / "s.h5", "p", DecomposeConfig(grid_step_days=6))
    s = h5io.Shards(tmp_path / "s.h5")
    lat, _ = s.coords()
    north = lat > LAT0 + 1100 / 111320      # cells on the line may hold points of one half only
    assert not north.any() and (s.spans()[lat < LAT0 + 900 / 111320, 0] == 0).all()
    assert summary["n_cells_not_observed_together"] == s.attrs["n_cells_not_observed_together"] > 30


def test_cells_with_too_few_points_are_not_counted_as_seen_by_one_track(tmp_path):
    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, n=1500)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, n=1500)
    one = decompose(asc, desc, tmp_path / "1.h5", "p", DecomposeConfig(grid_step_days=6))
    three = decompose(asc, desc, tmp_path / "3.h5", "p", DecomposeConfig(grid_step_days=6, min_points=3))
    assert one["n_cells_too_few_points"] == 0 and 100 < three["n_cells_too_few_points"] < one["n_cells"]
    assert three["n_cells"] + three["n_cells_too_few_points"] == one["n_cells"]
    for track in ("ascending", "descending"):
        assert three[f"n_cells_{track}_only"] == one[f"n_cells_{track}_only"] < 40
    with pytest.raises(InputError, match=r"(?s)no 100 m cell holds 50 points of each track \(decompose.min_points; "
                                         r"\d+ cells hold fewer\).*fix: lower decompose.min_points"):
        decompose(asc, desc, tmp_path / "50.h5", "p", DecomposeConfig(grid_step_days=6, min_points=50))


def test_los_from_incidence_and_heading_gives_the_same_result(pair, tmp_path):
    root, out, _ = pair
    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, angles=True)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, angles=True)
    decompose(asc, desc, tmp_path / "s.h5", "pair", DecomposeConfig(grid_step_days=6))
    a, b = h5io.Shards(out), h5io.Shards(tmp_path / "s.h5")
    assert b.attrs["los_source_ascending"] == "incidence_angle/track_angle"
    assert np.array_equal(a.pids(), b.pids())
    # the per-point headings differ by their 0.2 deg jitter only
    np.testing.assert_allclose(b.read("series/regular"), a.read("series/regular"), atol=0.3)


def test_solve_is_exact_without_noise():
    los_a = np.array([[-0.6, -0.12, 0.79]])
    los_b = np.array([[0.62, -0.12, 0.78]])
    up, east = np.array([[0.0, -3.0, 7.5]]), np.array([[0.0, 2.0, -1.0]])
    d_a = los_a[:, :1] * east + los_a[:, 2:] * up
    d_b = los_b[:, :1] * east + los_b[:, 2:] * up
    u, e = solve_up_east(los_a, los_b, d_a, d_b)
    np.testing.assert_allclose(u, up, atol=1e-12)
    np.testing.assert_allclose(e, east, atol=1e-12)


def test_two_ascending_tracks_stop(tmp_path):
    a = write_track(tmp_path / "a.h5", heading=-12.0, first_day=D0, seed=1, n=500)
    b = write_track(tmp_path / "b.h5", heading=-14.0, first_day=D0 + 5, seed=2, n=500)
    with pytest.raises(InputError, match="same side.*one ascending and one descending"):
        decompose(a, b, tmp_path / "s.h5", "p")
    assert not (tmp_path / "s.h5").exists()


def test_tracks_without_common_period_stop(tmp_path):
    a = write_track(tmp_path / "a.h5", heading=-12.0, first_day=D0, seed=1, n=300, years=1.0)
    b = write_track(tmp_path / "b.h5", heading=192.0, first_day=D0 + 400, seed=2, n=300, years=1.0)
    with pytest.raises(InputError, match="do not overlap in time: ascending covers 2018-06-18 to"):
        decompose(a, b, tmp_path / "s.h5", "p")


def test_tracks_of_different_areas_stop(tmp_path):
    a = write_track(tmp_path / "a.h5", heading=-12.0, first_day=D0, seed=1, n=300)
    b = write_track(tmp_path / "b.h5", heading=192.0, first_day=D0, seed=2, n=300, lat0=LAT0 + 0.5)
    with pytest.raises(InputError, match="do not overlap in space"):
        decompose(a, b, tmp_path / "s.h5", "p")


def test_missing_los_vectors_stop(tmp_path):
    a = write_track(tmp_path / "a.h5", heading=-12.0, first_day=D0, seed=1, n=300, drop_los=True)
    b = write_track(tmp_path / "b.h5", heading=192.0, first_day=D0, seed=2, n=300)
    with pytest.raises(InputError, match=r"(?s)a\.h5: the line-of-sight vectors are missing and cannot be "
                                         r"derived.*fix: add los_east"):
        decompose(a, b, tmp_path / "s.h5", "p")


# --------------------------------------------------------------------------- #
# the site table's pair syntax



def test_los_vectors_pointing_down_stop(tmp_path):
    # satellite-to-ground vectors: the east signs still differ, so only the up sign tells
    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, n=300, los_sign=-1.0)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, n=300, los_sign=-1.0)
    with pytest.raises(InputError, match=r"(?s)ascending track, point 'T1-0'.*points down.*flip the sign"):
        decompose(asc, desc, tmp_path / "out.h5", "p", DecomposeConfig(grid_step_days=6))
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("incidence", [0.0, 90.0, 0.68])   # a missing-value code, no geometry, radians
def test_incidence_angles_no_sar_has_stop(tmp_path, incidence):
    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, n=300, angles=True,
                      bad_incidence=incidence)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, n=300, angles=True)
    with pytest.raises(InputError, match=rf"(?s)point 'T1-0': incidence angle {incidence:g} is outside 5-80"):
        decompose(asc, desc, tmp_path / "out.h5", "p", DecomposeConfig(grid_step_days=6))

@pytest.mark.parametrize("angles", [False, True])
def test_swapped_tracks_stop(tmp_path, angles):
    # the solve is symmetric in the two tracks: only the geometry's sides show a swap, or
    # LOS columns (track angles) of another convention, which flip the east-west motion
    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, n=300, angles=angles)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, n=300, angles=angles)
    column = "track_angle" if angles else "los_east"
    with pytest.raises(InputError, match=rf"(?s)column '{column}': the ascending track sees the ground from "
                                         r"the east.*swapped.*fix: if the asc= files are really the descending"):
        decompose(desc, asc, tmp_path / "out.h5", "p", DecomposeConfig(grid_step_days=6))
    assert not (tmp_path / "out.h5").exists()
    decompose(asc, desc, tmp_path / "out.h5", "p", DecomposeConfig(grid_step_days=6))


@pytest.mark.parametrize("los_columns, degrees", [
    (lambda v: v * [-1, 1, 1], 155),          # los_east positive westwards
    (lambda v: v[:, [1, 0, 2]], 114),         # los_east and los_north swapped
])
def test_los_vectors_that_disagree_with_track_angle_stop(tmp_path, los_columns, degrees):
    # one track's east-west component off: the tracks still look from opposite sides and the
    # system solves, into east-west (and vertical) motion of the wrong sign or size
    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, n=300, with_track_angle=True)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, n=300,
                       with_track_angle=True, los_columns=los_columns)
    with pytest.raises(InputError, match=r"(?s)column 'los_east, los_north': descending track, point 'T2-0': "
                                         r"the horizontal part.*points (\d+) degrees away from where a "
                                         r"satellite of track_angle 192 looks from") as err:
        decompose(asc, desc, tmp_path / "out.h5", "p", DecomposeConfig(grid_step_days=6))
    assert abs(int(re.search(r"points (\d+) degrees", str(err.value)).group(1)) - degrees) <= 3
    assert not (tmp_path / "out.h5").exists()
    good = write_track(tmp_path / "good.h5", heading=192.0, first_day=D0 + 5, seed=2, n=300, with_track_angle=True)
    decompose(asc, good, tmp_path / "out.h5", "p", DecomposeConfig(grid_step_days=6))


def test_los_east_and_north_swapped_stop_without_a_track_angle(tmp_path):
    """Without track_angle to compare with, a line of sight pointing mostly north or south (no
    near-polar orbit looks that way) has its east and north components swapped: it would solve
    into east-west motion of the wrong size."""
    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, n=300)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, n=300,
                       los_columns=lambda v: v[:, [1, 0, 2]])
    with pytest.raises(InputError, match=r"(?s)column 'los_east, los_north': descending track, point 'T2-0': "
                                         r"the horizontal part .* points mostly north or south.*look swapped"):
        decompose(asc, desc, tmp_path / "out.h5", "p", DecomposeConfig(grid_step_days=6))
    assert not (tmp_path / "out.h5").exists()


def test_los_vectors_that_are_not_unit_vectors_stop(tmp_path):
    def scaled(v):
        v[3::5] *= 0.8
        v[1, 0] = np.nan   # a missing component: that point is skipped, as before
        return v

    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, n=300)
    desc = write_track(tmp_path / "desc.h5", heading=192.0, first_day=D0 + 5, seed=2, n=300, los_columns=scaled)
    with pytest.raises(InputError, match=r"(?s)descending track, point 'T2-3': the line-of-sight vector "
                                         r"\(.*\) has length 0.8, not 1 \(60 such point"):
        decompose(asc, desc, tmp_path / "out.h5", "p", DecomposeConfig(grid_step_days=6))
    assert not (tmp_path / "out.h5").exists()


def test_one_track_in_centimetres_stops(tmp_path, caplog):
    """A track exported in cm (its velocity column too, so no single-file check sees it) moves a
    tenth as much between acquisitions as the other: it stops, naming that track's file; a track
    twice as noisy as the other passes, and decompose.max_noise_ratio null turns the check off."""
    asc = write_track(tmp_path / "asc.h5", heading=-12.0, first_day=D0, seed=1, n=600)
    cm = write_track(tmp_path / "cm.h5", heading=192.0, first_day=D0 + 5, seed=2, n=600, scale=0.1)
    with pytest.raises(InputError, match=r"(?s)cm.h5, column 'displacement': the descending track's series "
                                         r"change (9\.\d|10|11) times less .* looks like centimetres.*fix: give both "
                                         r"tracks in mm.*decompose.max_noise_ratio"):
        decompose(asc, cm, tmp_path / "out.h5", "p", DecomposeConfig(grid_step_days=6))
    assert not (tmp_path / "out.h5").exists()

    noisy = write_track(tmp_path / "noisy.h5", heading=192.0, first_day=D0 + 5, seed=2, n=600, noise_mm=2.0)
    with caplog.at_level("INFO", logger="insarclust.decompose"):
        decompose(asc, noisy, tmp_path / "noisy_out.h5", "p", DecomposeConfig(grid_step_days=6))
    line = next(r.getMessage() for r in caplog.records if "typical change between acquisitions" in r.getMessage())
    asc_mm, desc_mm = (float(v) for v in re.findall(r"([\d.]+) mm", line))
    assert 0.8 < asc_mm < 1.4 and 1.6 < desc_mm / asc_mm < 2.4

    decompose(asc, cm, tmp_path / "off.h5", "p", DecomposeConfig(grid_step_days=6, max_noise_ratio=None))
    assert (tmp_path / "off.h5").exists()


def test_a_track_of_two_relative_orbits_is_checked_for_centimetres(tmp_path):
    """A track whose files cover two relative orbits of one direction (a glob over an EGMS L2b
    download): each point is observed at its own orbit's dates, which interleave with the other's.
    Its typical change between acquisitions is that of one orbit (between a point's consecutive
    observed values, not adjacent dates of the site, which never both hold a value: the check
    went off without a word), so a centimetre track beside it still stops."""
    from insarclust.pair_checks import step_noise_mm

    one = write_track(tmp_path / "one.h5", heading=-12.0, first_day=D0, seed=1, n=600)
    two = write_track(tmp_path / "two.h5", heading=-12.0, first_day=D0, seed=1, n=600, second_orbit=5)
    single, both = step_noise_mm(h5io.Shards(one)), step_noise_mm(h5io.Shards(two))
    assert 0.8 < single < 1.4 and 0.8 < both < 1.4
    cm = write_track(tmp_path / "cm.h5", heading=192.0, first_day=D0 + 3, seed=2, n=600, scale=0.1)
    with pytest.raises(InputError, match=r"the descending track's series change (9\.\d|10|11) times less"):
        decompose(two, cm, tmp_path / "out.h5", "p", DecomposeConfig(grid_step_days=6))
    assert not (tmp_path / "out.h5").exists()


def test_site_sources():
    from insarclust.sites import parse_source

    assert parse_source("data/lyngen/*.csv").kind == "files"
    demo = parse_source("demo:arctic")
    assert demo.kind == "demo" and demo.preset == "arctic" and demo.is_demo
    pair = parse_source(" desc = data/d/*.zip ; asc=data/a/*.zip")
    assert pair.kind == "pair" and pair.tracks == {"asc": "data/a/*.zip", "desc": "data/d/*.zip"}
    assert not pair.is_demo
    demo_pair = parse_source("asc=demo:mainland;desc=demo:mainland")
    assert demo_pair.kind == "pair" and demo_pair.preset == "mainland"


@pytest.mark.parametrize("text, message", [
    ("asc=data/a/*.zip", "has no desc geometry: a vertical/east-west decomposition needs one ascending"),
    ("desc=data/d.csv;", "has no asc geometry"),
    ("asc=a.csv;desc=b.csv;asc=c.csv", "names 'asc' twice"),
    ("asc=a.csv;up=b.csv", "cannot read 'up=b.csv'"),
    ("asc=demo:mainland;desc=data/d.csv", "same demo:<preset> on both sides"),
])
def test_malformed_pairs_name_the_site(text, message):
    from insarclust.sites import parse_source

    with pytest.raises(InputError, match=f"(?s)config/sites.tsv, column 'source': site 'oslo': .*{message}.*fix:"):
        parse_source(text, "oslo")


def test_demo_pair_sees_one_motion_from_both_sides():
    from insarclust.demo import generate_pair
    from insarclust.formats import get_format, load_formats

    from conftest import ROOT

    fmt = get_format("egms", load_formats(ROOT / "config" / "formats.yaml"))
    tables, truth = generate_pair("p", "mainland", fmt, n_points=400, years=1.0, seed=1, cell_size_m=500)
    asc, desc = tables["asc"], tables["desc"]
    assert (asc.los_east < -0.4).all() and (desc.los_east > 0.4).all()
    assert np.allclose(asc.track_angle, -12.5, atol=0.1) and np.allclose(desc.track_angle, 192.5, atol=0.1)
    dates = [c for c in asc.columns if c.isdigit()]
    assert dates[0] == "20180601" and [c for c in desc.columns if c.isdigit()][0] == "20180604"
    assert not set(asc.pid) & set(desc.pid)
    assert truth.pid.str.startswith("500mE").all() and truth.pid.is_unique and len(truth) > 20
