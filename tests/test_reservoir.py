"""ReservoirEmbedder: known answers against reservoir_computing, ridge algebra, determinism."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from conftest import at_once
from insarclust.reservoir import NOISE_BANK_ROWS, ReservoirEmbedder, noise_rows, ridge_weights

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


# every epoch a step (time_stride 1), as the reference package
TINY = dict(n_units=20, spectral_radius=0.59, leak=0.6, connectivity=0.3, input_scaling=0.1,
            washout=3, n_pca=5, ridge=10.0, time_stride=1)


def walks(n=30, T=40, V=1, seed=3):
    return np.random.default_rng(seed).normal(size=(n, T, V)).cumsum(1)


def reference_repr(model: ReservoirEmbedder, X, representation, bidirectional):
    """The package's representation with our reservoir matrices injected.

    The package draws its reservoir from numpy's global RandomState; it is
    saved and restored so the test leaves no trace on other tests.
    """
    pytest.importorskip("reservoir_computing")
    from reservoir_computing.modules import RC_model
    from reservoir_computing.reservoir import Reservoir

    state = np.random.get_state()
    try:
        np.random.seed(0)
        res = Reservoir(n_internal_units=TINY["n_units"], spectral_radius=TINY["spectral_radius"],
                        leak=TINY["leak"], connectivity=TINY["connectivity"],
                        input_scaling=TINY["input_scaling"], noise_level=0.0)
        res._internal_weights = model.recurrent_weights_.copy()
        res._input_weights = model.input_weights_.copy()
        rc = RC_model(reservoir=res, n_drop=TINY["washout"], bidir=bidirectional,
                      dimred_method="tenpca", n_dim=TINY["n_pca"], mts_rep=representation,
                      w_ridge_embedding=TINY["ridge"], readout_type=None)
        rc.fit(X, verbose=False)
    finally:
        np.random.set_state(state)
    return rc.input_repr, np.real(rc._dim_red.first_eigs)


@pytest.mark.parametrize("representation", ["last", "mean", "output", "reservoir"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_matches_reservoir_computing(representation, bidirectional):
    X = walks()
    model = ReservoirEmbedder(representation=representation, bidirectional=bidirectional,
                              noise_level=0.0, out_dim=None, scaling="none", scale_features=False,
                              mode="reference", dtype="float64", seed=1, **TINY).fit(X)
    expected, eigvecs = reference_repr(model, X, representation, bidirectional)
    # our streamed tensor PCA finds the package's components (up to sign)
    signs = np.sign((eigvecs * model.pca_components_).sum(0))
    np.testing.assert_allclose(model.pca_components_ * signs, eigvecs, atol=1e-10)
    # same components (signs included) -> the same representation
    model.pca_components_ = eigvecs.copy()
    model._cache = None
    ours = model.transform(X)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_float32_close_to_reference():
    X = walks()
    model = ReservoirEmbedder(representation="reservoir", noise_level=0.0, out_dim=None,
                              scaling="none", scale_features=False, mode="reference", seed=1,
                              **TINY).fit(X)
    expected, eigvecs = reference_repr(model, X, "reservoir", True)
    model.pca_components_ = eigvecs.copy()
    model._cache = None
    np.testing.assert_allclose(model.transform(X), expected, atol=2e-4 * np.abs(expected).max())


def _states(model, U):
    """Kept states (T', B, D n) of scaled inputs U (B, T, V)."""
    out = []
    model._run_states(U, np.arange(len(U)), lambda k, h: out.append(h.clone()))
    return torch.stack(out).numpy()


def test_default_mode_differs_where_documented():
    X = walks()
    kw = dict(representation="mean", noise_level=0.0, out_dim=None, scaling="none",
              scale_features=False, dtype="float64", seed=1, **TINY)
    ref = ReservoirEmbedder(mode="reference", **kw).fit(X)
    default = ReservoirEmbedder(mode="default", leak_form="unscaled", **kw).fit(X)
    scaled = ReservoirEmbedder(mode="default", leak_form="scaled", **kw).fit(X)
    np.testing.assert_array_equal(ref.recurrent_weights_, default.recurrent_weights_)
    # the unscaled leaky update is the reference's: the same states without noise
    np.testing.assert_allclose(_states(default, X), _states(ref, X), rtol=1e-12)
    # leaky update scaled by leak keeps states in [-1, 1]; the unscaled one reaches up to 1/leak
    loud = X * 200
    assert np.abs(_states(scaled, loud)).max() <= 1.0
    assert np.abs(_states(default, loud)).max() > 1.0
    # default centres the PCA transform on the mean state
    assert np.abs(default.pca_mean_).max() > 0 and np.abs(ref.pca_mean_).max() == 0


def test_leaky_update_by_hand():
    X = walks(n=3, T=6)
    kw = dict(n_units=5, connectivity=1.0, washout=0, n_pca=None, noise_level=0.0, scaling="none", time_stride=1,
              scale_features=False, out_dim=None, representation="last", dtype="float64", seed=0)
    for form in ("unscaled", "scaled"):
        model = ReservoirEmbedder(bidirectional=False, leak=0.3, leak_form=form, **kw).fit(X)
        W, w_in = model.recurrent_weights_, model.input_weights_
        h = np.zeros((3, 5))
        for t in range(6):
            update = np.tanh(X[:, t] @ w_in.T + h @ W.T)
            h = 0.7 * h + (update if form == "unscaled" else 0.3 * update)
        np.testing.assert_allclose(model.transform(X), h, rtol=1e-6, atol=1e-7)  # float32 output


def test_time_stride_averages_epochs_before_the_reservoir():
    X = walks(n=12, T=21)
    kw = dict(seed=3, out_dim=None, scaling="none", scale_features=False, noise_level=0.0,
              dtype="float64", **{**TINY, "time_stride": 1})
    kw.pop("time_stride")
    strided = ReservoirEmbedder(time_stride=4, **kw).fit(X)
    # 21 epochs -> 5 steps of 4 and a last step of the remaining one
    coarse = np.concatenate([X[:, :20].reshape(12, 5, 4, 1).mean(axis=2), X[:, 20:]], axis=1)
    plain = ReservoirEmbedder(time_stride=1, **kw).fit(coarse)
    np.testing.assert_allclose(strided.transform(X), plain.transform(coarse), rtol=1e-10, atol=1e-12)
    # scale features stay on the full-resolution series (trend per grid step)
    t = np.arange(21.0)
    lines = np.stack([0.5 * t, -0.25 * t, 0 * t + 1.0])
    m = ReservoirEmbedder(seed=0, out_dim=2, step=1.0, **{**TINY, "time_stride": 3}).fit(np.repeat(lines, 4, axis=0))
    E = m.transform(lines)
    np.testing.assert_allclose(E[:, -1] * m.scale_std_[1] + m.scale_mean_[1], [0.5, -0.25, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="time_stride"):
        ReservoirEmbedder(time_stride=0, **kw).fit(X)
    with pytest.raises(ValueError, match="leak_form"):
        ReservoirEmbedder(leak_form="jaeger", **kw).fit(X)


def test_reservoir_is_seeded_and_scaled():
    X = walks(n=10)
    a = ReservoirEmbedder(n_units=60, connectivity=0.25, spectral_radius=0.59, seed=7, n_pca=4,
                          out_dim=None, fit_sample=10).fit(X)
    b = ReservoirEmbedder(n_units=60, connectivity=0.25, spectral_radius=0.59, seed=7, n_pca=4,
                          out_dim=None, fit_sample=10).fit(X)
    c = ReservoirEmbedder(n_units=60, connectivity=0.25, spectral_radius=0.59, seed=8, n_pca=4,
                          out_dim=None, fit_sample=10).fit(X)
    np.testing.assert_array_equal(a.recurrent_weights_, b.recurrent_weights_)
    np.testing.assert_array_equal(a.noise_bank_, b.noise_bank_)
    assert not np.array_equal(a.recurrent_weights_, c.recurrent_weights_)
    assert np.max(np.abs(np.linalg.eigvals(a.recurrent_weights_))) == pytest.approx(0.59, rel=1e-8)
    assert 0.2 < np.mean(a.recurrent_weights_ != 0) < 0.3
    assert set(np.unique(np.abs(a.input_weights_))) == {0.1}
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def test_ridge_weights_solve_the_normal_equations():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 12, 4))
    Y = X @ rng.normal(size=(4, 2)) + 0.1 * rng.normal(size=(3, 12, 2)) + 5.0
    alpha = 0.7
    coef, intercept = ridge_weights(torch.from_numpy(X), torch.from_numpy(Y), alpha)
    coef, intercept = coef.numpy(), intercept.numpy()
    from sklearn.linear_model import Ridge

    for i in range(3):
        xc, yc = X[i] - X[i].mean(0), Y[i] - Y[i].mean(0)
        w = np.linalg.solve(xc.T @ xc + alpha * np.eye(4), xc.T @ yc)
        np.testing.assert_allclose(coef[i], w.T, rtol=1e-10)
        np.testing.assert_allclose(intercept[i], Y[i].mean(0) - X[i].mean(0) @ w, rtol=1e-10)
        sk = Ridge(alpha=alpha).fit(X[i], Y[i])
        np.testing.assert_allclose(coef[i], sk.coef_, rtol=1e-8)
        np.testing.assert_allclose(intercept[i], sk.intercept_, rtol=1e-8)
    # alpha -> 0 on noise-free data recovers the generating weights
    W = rng.normal(size=(4, 2))
    Y = X @ W + 2.0
    coef, intercept = ridge_weights(torch.from_numpy(X), torch.from_numpy(Y), 1e-10)
    np.testing.assert_allclose(coef.numpy(), np.broadcast_to(W.T, (3, 2, 4)), atol=1e-6)
    np.testing.assert_allclose(intercept.numpy(), 2.0, atol=1e-6)


def test_noise_keys_depend_only_on_row_and_step():
    rows = np.array([5, 17, 123456789])
    full = noise_rows(3, rows, 2, 50)
    assert full.shape == (50, 6) and full.min() >= 0 and full.max() < NOISE_BANK_ROWS
    # the same row gives the same walk alone or in any batch
    np.testing.assert_array_equal(noise_rows(3, rows[1:2], 2, 50), full[:, 2:4])
    assert not np.array_equal(noise_rows(4, rows, 2, 50), full)
    # directions and rows get different walks
    assert len({tuple(col) for col in full.T}) == 6


def test_every_noise_walk_visits_every_bank_row_once_per_cycle():
    """Each (row, direction) walks the bank with an odd stride, which on a power-of-two bank
    visits all NOISE_BANK_ROWS rows before repeating one, so a series never meets the same
    noise vector twice within 4,096 steps. An even stride cycled through half the bank or less
    (stride 0: one noise vector at every step of the series)."""
    walks = noise_rows(11, np.arange(200), 2, NOISE_BANK_ROWS)
    for col in walks.T:
        assert len(np.unique(col)) == NOISE_BANK_ROWS

def test_neighbouring_rows_and_their_two_directions_get_their_own_noise():
    """Rows are in spatial order, so neighbours are adjacent rows: the backward pass of row r and
    the forward pass of row r + 1 must not draw the same noise walk (correlated noise between
    neighbours would pull their embeddings together)."""
    walks_ = noise_rows(3, np.array([40, 41, 42]), 2, 50)
    assert len({tuple(col) for col in walks_.T}) == 6


def test_embedding_independent_of_batching_and_noise_is_applied():
    X = walks(n=40, T=30)
    kw = dict(seed=2, out_dim=6, dtype="float64", fit_sample=40, **TINY)
    a = ReservoirEmbedder(batch_size=40, **kw).fit(X)
    full = a.transform(X, rows=np.arange(100, 140))
    b = ReservoirEmbedder(batch_size=7, **kw).fit(X)
    part = b.transform(X[13:29], rows=np.arange(113, 129))
    np.testing.assert_allclose(part, full[13:29], rtol=1e-9, atol=1e-9)
    # other row ids -> other noise -> (slightly) other embedding
    other = a.transform(X, rows=np.arange(40))
    assert not np.allclose(other, full, atol=1e-9)
    quiet = ReservoirEmbedder(batch_size=40, **{**kw, "noise_level": 0.0}).fit(X)
    assert np.array_equal(quiet.transform(X, rows=np.arange(40)), quiet.transform(X, rows=np.arange(100, 140)))


def test_embedding_and_fit_same_on_one_or_two_torch_threads():
    """A rule gets one thread under snakemake --cores 1 and two otherwise: the shipped shape
    (defaults, float32, batches of 1,024) must give the same bits on both."""
    rng = np.random.default_rng(3)
    t = np.arange(263)
    X = (rng.normal(0, 2, (1200, 263)).cumsum(axis=1) * 0.2
         + rng.normal(0, 3, (1200, 1)) * t / 60).astype(np.float32)
    before = torch.get_num_threads()
    out = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            model = ReservoirEmbedder(step=6 / 365.25, seed=4, fit_sample=1200).fit(X)
            out.append((model.pca_components_, model.proj_components_, model.transform(X)))
    finally:
        torch.set_num_threads(before)
    for one, two in zip(*out):
        np.testing.assert_array_equal(one, two)


def test_noise_distributions_by_mode():
    X = walks(n=5)
    d = ReservoirEmbedder(mode="default", out_dim=None, **TINY).fit(X).noise_bank_
    r = ReservoirEmbedder(mode="reference", out_dim=None, **TINY).fit(X).noise_bank_
    assert abs(d.mean()) < 0.02 and abs(d.std() - 1) < 0.02
    assert r.min() >= 0 and r.max() < 1 and abs(r.mean() - 0.5) < 0.01


def test_shapes_names_and_scale_features():
    rng = np.random.default_rng(1)
    T = 60
    t = np.arange(T)
    shape = np.sin(2 * np.pi * t / 20)
    X = np.concatenate([
        rng.normal(0, 0.2, (20, T)) + shape,          # small amplitude
        rng.normal(0, 2.0, (20, T)) + 10 * shape,     # 10x amplitude, same shape
        rng.normal(0, 0.2, (20, T)) + 0.5 * t,        # trend 0.5 per step
    ])
    model = ReservoirEmbedder(seed=0, out_dim=8, step=1.0, **TINY).fit(X)
    names = model.get_feature_names_out()
    assert names[:8] == [f"emb_{i:03d}" for i in range(8)] and names[8:] == ["log_std", "trend"]
    E = model.transform(X)
    assert E.shape == (60, 10) and E.dtype == np.float32 and np.isfinite(E).all()
    # z-scoring made the two sine groups alike; the log-std column separates them
    log_std, trend = E[:, 8], E[:, 9]
    assert log_std[20:40].min() > log_std[:20].max()
    assert trend[40:].min() > trend[:40].max()
    # projected columns have mean variance 1 on the sample
    assert np.mean(E[:, :8].var(0, ddof=1)) == pytest.approx(1.0, rel=1e-3)
    # raw trend is in data units per step: recover 0.5 from the standardised column
    raw_trend = trend * model.scale_std_[1] + model.scale_mean_[1]
    np.testing.assert_allclose(raw_trend[40:], 0.5, atol=0.02)


def test_multivariate_and_errors():
    X = walks(n=12, T=25, V=3)
    model = ReservoirEmbedder(out_dim=4, seed=0, **TINY).fit(X)
    assert model.transform(X).shape == (12, 4 + 6)
    with pytest.raises(ValueError, match="variables"):
        model.transform(X[:, :, :2])
    bad = X.copy()
    bad[0, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.transform(bad)
    with pytest.raises(ValueError, match="representation"):
        ReservoirEmbedder(representation="nope").fit(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        ReservoirEmbedder().transform(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        ReservoirEmbedder().get_feature_names_out()
    with pytest.raises(ValueError, match=r"rows has shape \(5,\), expected \(12,\)"):
        model.transform(X, rows=np.arange(5))
    with pytest.raises(ValueError, match=r"rows has shape \(5,\), expected \(12,\)"):
        ReservoirEmbedder(**TINY).fit(X, rows=np.arange(5))


def test_fit_transform_keys_the_noise_by_the_rows_given():
    """fit_transform(X, rows=...) is fit then transform with those rows: the noise of a series
    depends on its row, and the mixin's fit_transform left the rows out of transform."""
    X = walks(n=20, T=30)
    rows = np.arange(500, 520)
    model = ReservoirEmbedder(out_dim=4, seed=2, **TINY)
    expected = clone(model).fit(X, rows=rows).transform(X, rows=rows)
    np.testing.assert_array_equal(model.fit_transform(X, rows=rows), expected)
    np.testing.assert_array_equal(model.fit_transform(X), clone(model).fit(X).transform(X))


def test_state_roundtrip_and_sparse_matrix():
    X = walks(n=20, T=30)
    model = ReservoirEmbedder(out_dim=5, seed=4, **TINY).fit(X)
    state = model.to_state()
    again = ReservoirEmbedder.from_state(state)
    np.testing.assert_array_equal(again.transform(X), model.transform(X))
    sparse = ReservoirEmbedder.from_state(state, matrix="sparse")
    np.testing.assert_allclose(sparse.transform(X), model.transform(X), atol=1e-4)


# --------------------------------------------------------------------------- #
# what the embedding must keep doing


def creep_or_step(n=120, seed=0):
    """Two regimes raw-series k-means cannot tell apart: steady creep, and a sudden
    step (a slide event, a collapse) at an unknown date, both reaching the same
    displacement (20-30 mm) by the end of a 4.5-year 6-day grid, 2 mm noise.
    The steps' dates spread over the archive, so their mean is a ramp like the
    creep's: the two classes have the same centroid in series space."""
    rng = np.random.default_rng(seed)
    t_yr = np.arange(272) * 6 / 365.25
    total = rng.uniform(-30, -20, 2 * n)[:, None]
    when = rng.uniform(0.15, 0.85, n)[:, None] * t_yr[-1]
    X = np.concatenate([total[:n] * t_yr / t_yr[-1], np.where(t_yr >= when, total[n:], 0.0)])
    return X + rng.normal(0, 2.0, X.shape), np.repeat([0, 1], n)


@pytest.mark.parametrize("seed", [0, 1])
def test_default_embedding_separates_a_step_from_creep_that_raw_kmeans_cannot(seed):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    X, y = creep_or_step(seed=seed)

    def ari(F):
        return adjusted_rand_score(y, KMeans(2, n_init=10, random_state=0).fit_predict(F))

    by_epoch = (X - X.mean(0)) / X.std(0)
    by_series = (X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True)
    assert ari(by_epoch) < 0.4 and ari(by_series) < 0.4
    # the defaults (those of config/config.yaml, see test_embed) on the 6-day grid
    E = ReservoirEmbedder(step=6 / 365.25, seed=seed).fit(X).transform(X)
    assert ari(E) > 0.75
    # it is the dynamics, not the two scale columns (log std, trend), that separate them
    assert ari(E[:, :-2]) > 0.75


# --------------------------------------------------------------------------- #
# quality on real labelled data shipped inside a package (aeon's wheel)

sys.path.insert(0, str(ROOT / "bench"))


@pytest.mark.parametrize("dataset", ["BasicMotions", "JapaneseVowels_eq"])
def test_embedding_clusters_at_least_as_well_as_raw_series(dataset):
    embed_quality = pytest.importorskip("embed_quality")
    if embed_quality.aeon_data_dir() is None:
        pytest.skip("aeon (dev dependency, data only) is not installed")
    r = embed_quality.evaluate(dataset, seed=0)
    assert r["embedding"]["ari"] >= r["raw"]["ari"], r


def test_embed_quality_names_unequal_lengths_and_takes_validity_candidates(tmp_path):
    embed_quality = pytest.importorskip("embed_quality")
    ts = tmp_path / "Ragged_TRAIN.ts"
    ts.write_text("@problemName Ragged\n@data\n1.0,2.0,3.0:a\n1.0,2.0:b\n")
    with pytest.raises(ValueError, match="unequal length .*_eq"):
        embed_quality.read_ts(ts)
    assert embed_quality.candidate_params(None) == {}
    previous = embed_quality.candidate_params("previous")
    assert previous["n_units"] == 450 and previous["n_pca"] == 75
    with pytest.raises(SystemExit, match="unknown candidate"):
        embed_quality.candidate_params("no-such-candidate")


def test_an_out_dim_beyond_the_representation_is_capped_and_logged(caplog):
    X = walks(n=60, T=40)
    model = ReservoirEmbedder(n_units=10, n_pca=3, out_dim=500, seed=1)
    with caplog.at_level("WARNING", logger="insarclust.reservoir"):
        model.fit(X)
    kept = model.proj_components_.shape[0]
    assert kept < 500 and kept == min(model.repr_dim_, 60)
    assert any(f"out_dim 500 is more than the {kept} dimensions" in r.getMessage() for r in caplog.records)


def test_a_washout_as_long_as_the_series_is_said_in_the_log(caplog):
    """The library keeps every state when the washout is not shorter than the series (as the
    reference does); the workflow stops such a setting at planning, a library user gets a warning."""
    X = walks(n=8, T=20)
    kw = dict(n_units=5, n_pca=None, out_dim=None, representation="last", seed=0, noise_level=0.0)
    with caplog.at_level("WARNING", logger="insarclust.reservoir"):
        ReservoirEmbedder(washout=5, time_stride=4, **kw).fit(X)         # 5 steps, washout 5
    assert any("washout 5 is not shorter than the series' 5 reservoir steps (20 epochs, time_stride 4)"
               in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="insarclust.reservoir"):
        ReservoirEmbedder(washout=4, time_stride=4, **kw).fit(X)
    assert not [r for r in caplog.records if "washout" in r.getMessage()]


def test_a_thread_that_finds_the_projection_cached_finds_all_of_it():
    """embed.embedded_blocks embeds batches of one model on several threads, and the first batch
    of each adds the final projection to the shared tensor cache. A thread switch right after
    "proj" is stored is simulated by embedding inside that store: the batch of the other thread
    must find the whole projection there (it found "proj" alone and raised KeyError)."""
    X = walks()
    model = ReservoirEmbedder(out_dim=3, **TINY).fit(X)
    expected = model.transform(X)
    inner = []

    class SwitchAfterProj(dict):
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            if key == "proj" and not inner:
                inner.append(model.transform(X))

    model._cache = None
    model._cache = SwitchAfterProj(model._torch())
    outer = model.transform(X)
    assert len(inner) == 1
    np.testing.assert_array_equal(inner[0], expected)
    np.testing.assert_array_equal(outer, expected)


def test_threads_building_the_cache_at_once_share_one():
    X = walks()
    model = ReservoirEmbedder(out_dim=3, **TINY).fit(X)
    model._cache = None
    caches = at_once(model._torch, 4)
    assert len(caches) == 4 and all(c is caches[0] for c in caches) and model._cache is caches[0]
