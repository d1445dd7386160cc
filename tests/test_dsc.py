import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from insarclust.dsc import (VARIANTS, DeepSpatiotemporalClustering, DSCNet, PatchIndexer, PointSeries,
                            gather_patches, kl_divergence, make_patch_set, masked_mse, student_t_assignment,
                            target_distribution, write_train_log)
from insarclust.dsc import train as dsc_train
from insarclust.dsc.patches import median_spacing_m, stride_time
from insarclust.geodesy import EARTH_RADIUS_M
from insarclust.figures import plot_training_curve
from conftest import make_shards_file, torch_threads, town_and_hillside

LAT0, LON0 = 69.0, 20.0


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and spinning threads suffer on a shared machine."""
    with torch_threads(1):
        yield


def lattice(n_rows, n_cols, spacing_m, jitter_m=0.0, seed=0):
    """Points on a local east/north lattice (row 0 = north) -> lat, lon (degrees), row, col."""
    rng = np.random.default_rng(seed)
    r, c = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    r, c = r.ravel(), c.ravel()
    east = c * spacing_m + rng.uniform(-jitter_m, jitter_m, len(c))
    north = -r * spacing_m + rng.uniform(-jitter_m, jitter_m, len(r))
    lat = LAT0 + np.degrees(north / EARTH_RADIUS_M)
    lon = LON0 + np.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(LAT0))))
    return lat, lon, r, c


def two_regime_points(n_side=20, n_grid=48, seed=0):
    """West half subsides, east half is seasonal; noise 1 mm."""
    lat, lon, _, col = lattice(n_side, n_side, 40.0, jitter_m=5.0, seed=seed)
    rng = np.random.default_rng(seed)
    t_yr = np.arange(n_grid) * 12 / 365.25
    truth = (col >= n_side // 2).astype(int)
    base = np.stack([-10.0 * t_yr, 6.0 * np.sin(2 * np.pi * t_yr)])
    regular = base[truth] + rng.normal(0, 1.0, (len(lat), n_grid))
    return PointSeries.from_arrays(lat, lon, regular, (17500 + 12 * np.arange(n_grid))), truth


TINY = dict(n_clusters=2, patch_size=3, cell_size_m=40.0, time_stride=2, latent_dim=4, channels=(4, 8),
            lstm_hidden=16, batch_size=32, pretrain_epochs=3, epochs=3, lr=3e-3, update_interval=5,
            tol=0.0, train_sample=300, random_state=0, log_every_s=1e9, cpu_threads=1)


# --------------------------------------------------------------------------- #
# clustering maths


def test_student_t_and_target_against_hand_computation():
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    mu = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    # alpha = 1: kernel 1 / (1 + d^2); point 0: d^2 = 0, 4; point 1: d^2 = 1, 1
    q = student_t_assignment(z, mu, alpha=1.0)
    torch.testing.assert_close(q, torch.tensor([[5 / 6, 1 / 6], [0.5, 0.5]]))
    # f = column sums = (4/3, 2/3); p_ij ∝ q_ij^2 / f_j
    p = target_distribution(q)
    torch.testing.assert_close(p, torch.tensor([[25 / 27, 2 / 27], [1 / 3, 2 / 3]]))
    # alpha = 2: kernel (1 + d^2 / 2)^(-3/2)
    q2 = student_t_assignment(z[:1], mu, alpha=2.0)
    k = torch.tensor([1.0, 3.0 ** -1.5])
    torch.testing.assert_close(q2[0], k / k.sum())
    kl = kl_divergence(p, q)
    hand = ((p * (p / q).log()).sum(1)).mean()
    torch.testing.assert_close(kl, hand)
    assert kl > 0
    assert kl_divergence(q, q) == pytest.approx(0.0, abs=1e-7)


def test_kl_gradient_pulls_points_and_centroids_together():
    """The target sharpens q; descending KL(P||Q) moves a point towards its nearer centroid."""
    z = torch.tensor([[0.8, 0.0], [-0.2, 0.1], [2.1, 0.0]], requires_grad=True)
    mu = torch.tensor([[0.0, 0.0], [2.0, 0.0]], requires_grad=True)
    q = student_t_assignment(z, mu)
    p = target_distribution(q).detach()
    assert p[0, 0] > q[0, 0]  # sharpened towards the nearer centroid
    kl_divergence(p, q).backward()
    # d KL / d z_0x > 0: a descent step lowers x, towards centroid 0 at x = 0
    assert z.grad[0, 0] > 0
    with torch.no_grad():
        z_new = z - 0.1 * z.grad
        mu_new = mu - 0.1 * mu.grad
        q_new = student_t_assignment(z_new, mu_new)
    own = q.argmax(1)
    rows = torch.arange(3)
    assert torch.all(q_new[rows, own] > q[rows, own])  # every point more confident in its cluster
    assert kl_divergence(p, q_new) < kl_divergence(p, q)


def test_masked_mse_ignores_empty_cells():
    x = torch.zeros(1, 2, 2, 2, 2)
    x[:, :, 0] = 1.0
    x[:, :, 1, 0, 0] = 1.0  # one valid cell
    recon = torch.ones(1, 2, 2, 2) * 5
    recon[:, :, 0, 0] = 3.0
    assert masked_mse(recon, x).item() == pytest.approx(4.0)


def test_centre_weight_splits_the_loss_between_point_and_neighbours():
    x = torch.zeros(1, 1, 2, 3, 3)
    x[:, :, 1] = 1.0  # all nine cells valid, values 0
    recon = torch.ones(1, 1, 3, 3)
    recon[..., 1, 1] = 3.0  # centre error 9, each neighbour error 1
    assert masked_mse(recon, x).item() == pytest.approx((9 + 8) / 9)
    assert masked_mse(recon, x, centre_weight=0.5).item() == pytest.approx(0.5 * 9 + 0.5 * 1)
    x[:, :, 1] = 0.0
    x[..., 1, 1, 1] = 1.0  # a lonely point: only the centre counts
    assert masked_mse(recon, x, centre_weight=0.5).item() == pytest.approx(0.5 * 9)


# --------------------------------------------------------------------------- #
# patches


def test_patch_index_on_a_lattice():
    lat, lon, r, c = lattice(6, 7, 50.0, jitter_m=10.0)
    drop = 2 * 7 + 4  # one missing point leaves an empty cell
    keep = np.arange(len(lat)) != drop
    lat, lon, r, c = lat[keep], lon[keep], r[keep], c[keep]
    where = {(a, b): i for i, (a, b) in enumerate(zip(r, c))}
    idx = PatchIndexer(lat, lon, patch_size=3, cell_size_m=50.0)
    centre = where[(2, 3)]
    patch = idx.index(np.array([centre]))[0]
    expected = np.array([[where.get((2 + dr, 3 + dc), -1) for dc in (-1, 0, 1)] for dr in (-1, 0, 1)])
    np.testing.assert_array_equal(patch, expected)
    assert patch[1, 2] == -1  # the dropped point at (2, 4), east of the centre
    corner = idx.index(np.array([where[(0, 0)]]))[0]
    assert (corner[0, :] == -1).all() and (corner[:, 0] == -1).all()  # nothing north or west
    assert corner[1, 1] == where[(0, 0)] and corner[2, 2] == where[(1, 1)]
    d = idx.distances_m(np.array([centre]), patch[None])[0]
    assert d[1, 1] == 0 and np.isnan(d[1, 2])
    assert 30 < d[0, 1] < 70  # northern neighbour about 50 m away


def test_patch_cell_takes_nearest_point_inside_the_cell():
    # cells centred 0, 50, 100 m east of the point, each 50 m wide
    east = np.array([0.0, 40.0, 55.0, 130.0])
    lat = np.full(4, LAT0)
    lon = LON0 + np.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(LAT0))))
    patch = PatchIndexer(lat, lon, patch_size=5, cell_size_m=50.0).index(np.array([0]))[0]
    assert patch[2, 2] == 0
    assert patch[2, 3] == 2  # 40 m and 55 m share the cell at 50 m; 55 m is nearer its centre
    assert patch[2, 4] == -1  # 130 m lies beyond the cell at 100 m (75..125 m)
    assert (patch[[0, 1, 3, 4]] == -1).all() and (patch[2, :2] == -1).all()


def test_make_patch_set_and_gather_match_direct_reading():
    lat, lon, _, _ = lattice(5, 5, 30.0, jitter_m=3.0)
    rng = np.random.default_rng(1)
    regular = rng.normal(size=(25, 12)).astype(np.float32)
    points = PointSeries.from_arrays(lat, lon, regular)
    idx = PatchIndexer(lat, lon, 3, 30.0)
    rows = np.array([0, 12, 24])
    ps = make_patch_set(points, idx, rows, time_stride=3)
    assert ps.n_steps == 4
    x = gather_patches(torch.from_numpy(ps.series), torch.from_numpy(ps.index), ps.empty_row).numpy()
    assert x.shape == (3, 4, 2, 3, 3)
    point_index = idx.index(rows)
    strided = stride_time(regular, 3)
    centred = strided - strided.mean(1, keepdims=True)
    for i in range(3):
        for a in range(3):
            for b in range(3):
                j = point_index[i, a, b]
                if j < 0:
                    assert x[i, 0, 1, a, b] == 0 and np.all(x[i, :, 0, a, b] == 0)
                else:
                    assert x[i, 0, 1, a, b] == 1
                    np.testing.assert_allclose(x[i, :, 0, a, b], centred[j], rtol=1e-6, atol=1e-6)


def test_stride_time_averages_windows():
    x = np.arange(10, dtype=np.float32)[None]
    np.testing.assert_allclose(stride_time(x, 4), [[1.5, 5.5, 8.5]])
    np.testing.assert_array_equal(stride_time(x, 1), x)


def test_median_spacing():
    lat, lon, _, _ = lattice(10, 10, 25.0)
    assert median_spacing_m(lat, lon) == pytest.approx(25.0, rel=1e-3)


@pytest.mark.parametrize("copies", [2, 5])
def test_median_spacing_with_every_position_shared(copies):
    """Several scatterers on one building (EGMS L2a), or rounded coordinates: every point has a
    twin at its position. The cell size is the spacing of the distinct positions, not an error."""
    lat, lon, _, _ = lattice(10, 10, 25.0)
    assert median_spacing_m(np.repeat(lat, copies), np.repeat(lon, copies)) == pytest.approx(25.0, rel=1e-3)
    # and where some positions are shared, the points with a twin count too
    lat2, lon2 = np.concatenate([lat, lat[:60]]), np.concatenate([lon, lon[:60]])
    assert median_spacing_m(lat2, lon2) == pytest.approx(25.0, rel=1e-3)


def test_median_spacing_of_one_position_is_an_error():
    with pytest.raises(ValueError, match="all points share one position"):
        median_spacing_m(np.full(5, LAT0), np.full(5, LON0))


# --------------------------------------------------------------------------- #
# model


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("spatial_bands", [0, 3])
def test_variants_forward_backward(variant, spatial_bands):
    torch.manual_seed(0)
    P, T = 7, 10
    net = DSCNet(T, P, 3, latent_dim=4, channels=(4, 8, 8), lstm_hidden=8, variant=variant,
                 spatial_bands=spatial_bands, spatial_scale_m=100.0)
    x = torch.randn(5, T, 2, P, P)
    x[:, :, 1] = (torch.rand(5, 1, P, P) > 0.3).float()
    distance = torch.rand(5, P * P) * 150
    distance[:, 3] = float("nan")
    recon, emb, q = net(x, distance)
    assert emb.shape == (5, 4 + spatial_bands)
    assert q.shape == (5, 3)
    torch.testing.assert_close(q.sum(1), torch.ones(5))
    if variant == "encoder-only":
        assert recon is None
        loss = kl_divergence(target_distribution(q), q)
    else:
        assert recon.shape == (5, T, P, P)
        loss = masked_mse(recon, x) + kl_divergence(target_distribution(q), q)
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert net.to_latent.weight.grad.abs().sum() > 0
    if spatial_bands:
        assert net.spatial.centres.grad is not None


def test_skips_carry_the_layout_not_the_series():
    """Changing the series of a patch may change the reconstruction only through z."""
    torch.manual_seed(0)
    net = DSCNet(6, 5, 2, latent_dim=3, channels=(4, 8), lstm_hidden=8, variant="cnn-lstm")
    x = torch.randn(2, 6, 2, 5, 5)
    x[:, :, 1] = 1.0
    _, skips = net.encode(x)
    x2 = x.clone()
    x2[:, :, 0] = torch.randn(2, 6, 5, 5) * 10
    _, skips2 = net.encode(x2)
    for a, b in zip(skips, skips2):
        torch.testing.assert_close(a, b)
    x3 = x.clone()
    x3[:, :, 1, 0, 0] = 0.0  # another layout
    _, skips3 = net.encode(x3)
    assert not torch.allclose(skips[0], skips3[0])


@pytest.mark.parametrize("variant", ["cnn-lstm", "lstm"])
def test_lstms_run_in_float32_outside_autocast(variant):
    """Under CUDA autocast cuDNN's LSTM runs in fp16 even in a bf16 region, where no gradient
    scaler guards it, and its gradients flush to zero: both LSTMs must run in float32 with
    autocast off (checked here under the CPU's autocast)."""
    torch.manual_seed(0)
    net = DSCNet(6, 5, 2, latent_dim=3, channels=(4, 8), lstm_hidden=8, variant=variant)
    seen = []
    for lstm in (net.enc_lstm, net.dec_lstm):
        lstm.register_forward_pre_hook(lambda mod, args: seen.append(
            (args[0].dtype, torch.is_autocast_enabled("cpu"))))
    x = torch.randn(3, 6, 2, 5, 5)
    x[:, :, 1] = 1.0
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        recon, emb, q = net(x)
    assert seen == [(torch.float32, False)] * 2
    assert recon is not None and q.dtype == torch.float32


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="variant"):
        DSCNet(10, 5, 2, variant="transformer")


def test_autocast_dtype_on_cpu_is_float32():
    assert dsc_train.autocast_dtype("cpu", "auto") is None
    assert dsc_train.autocast_dtype("cpu", "bf16") is None
    with pytest.raises(ValueError, match="precision"):
        dsc_train.autocast_dtype("cpu", "int8")


# --------------------------------------------------------------------------- #
# estimator


def test_tiny_dsc_finds_two_obvious_regimes(tmp_path):
    points, truth = two_regime_points()
    est = DeepSpatiotemporalClustering(**TINY).fit(points)
    labels = est.predict(points)
    assert labels.shape == (400,) and labels.dtype == np.int32
    assert adjusted_rand_score(truth, labels) >= 0.9
    proba = est.predict_proba(points)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    assert est.cluster_centers_.shape == (2, 4)
    assert [r["phase"] for r in est.history_] == ["pretrain"] * 3 + ["joint"] * 3
    recon = [r["recon_loss"] for r in est.history_]
    assert recon[-1] < recon[0]


def test_a_fitted_dsc_pickles_and_an_unfitted_one_says_so():
    """A fitted estimator pickles (its patch-index cache held the PointSeries, whose reader
    from from_arrays is a closure pickle cannot take) and labels alike after loading; an
    unfitted one raises scikit-learn's NotFittedError."""
    import pickle

    from sklearn.exceptions import NotFittedError

    points, _ = two_regime_points(n_side=8, n_grid=24)
    est = DeepSpatiotemporalClustering(**{**TINY, "pretrain_epochs": 1, "epochs": 1, "train_sample": 64})
    est.fit(points)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(points), est.predict(points))
    with pytest.raises(NotFittedError, match="not fitted"):
        DeepSpatiotemporalClustering(**TINY).predict(points)


def test_resume_continues_the_same_loss_curve(tmp_path, monkeypatch):
    points, _ = two_regime_points(n_side=12, n_grid=24)
    params = dict(TINY, pretrain_epochs=2, epochs=3, train_sample=144)
    full = DeepSpatiotemporalClustering(**params, checkpoint_dir=tmp_path / "full").fit(points)
    assert (tmp_path / "full" / "dsc.pt").exists()

    saves = {"n": 0}
    original = dsc_train.save_checkpoint

    def killed_after_third_epoch(path, payload):
        original(path, payload)
        saves["n"] += 1
        if saves["n"] == 3:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(dsc_train, "save_checkpoint", killed_after_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        DeepSpatiotemporalClustering(**params, checkpoint_dir=tmp_path / "cut").fit(points)
    monkeypatch.setattr(dsc_train, "save_checkpoint", original)

    trained = []
    real_batch = dsc_train._DeviceMemory.batch

    def counting_batch(self, positions):
        trained.append(len(positions))
        return real_batch(self, positions)

    monkeypatch.setattr(dsc_train._DeviceMemory, "batch", counting_batch)
    resumed = DeepSpatiotemporalClustering(**params, checkpoint_dir=tmp_path / "cut").fit(points)
    monkeypatch.setattr(dsc_train._DeviceMemory, "batch", real_batch)

    assert len(resumed.history_) == len(full.history_) == 5
    for a, b in zip(full.history_, resumed.history_):
        assert a["phase"] == b["phase"]
        for key in ("recon_loss", "kl_loss", "label_change"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, equal_nan=True)
    # only the two remaining epochs were trained (plus forward passes for targets)
    assert sum(trained) < 3 * 144 + 20 * 144
    np.testing.assert_array_equal(full.predict(points), resumed.predict(points))

    # other parameters: the checkpoint is not reused
    other = DeepSpatiotemporalClustering(**dict(params, gamma=0.5, epochs=1),
                                         checkpoint_dir=tmp_path / "cut").fit(points)
    assert len(other.history_) == 3


def test_labelling_in_blocks_matches_one_pass(tmp_path):
    path, truth = make_shards_file(tmp_path / "shards.h5", n=600, n_grid=40, shard_size=200)
    points = PointSeries.from_shards(path)
    assert list(points.offsets) == [0, 200, 400, 600]
    est = DeepSpatiotemporalClustering(**dict(TINY, n_clusters=4, pretrain_epochs=1, epochs=1,
                                              cell_size_m=None, train_sample=200, spatial_branch=True,
                                              spatial_bands=3))
    est.fit(points)
    assert est.cell_size_m_ > 0
    emb_small, q_small = est.set_params(predict_block_rows=64).embed_and_assign(points)
    emb_big, q_big = est.set_params(predict_block_rows=10_000).embed_and_assign(points)
    assert emb_small.shape == (600, 4 + 3) and q_small.shape == (600, 4)
    np.testing.assert_allclose(emb_small, emb_big, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q_small, q_big, rtol=1e-5, atol=1e-6)
    rows = np.array([599, 0, 300])
    np.testing.assert_allclose(est.transform(points, rows), emb_big[rows], rtol=1e-5, atol=1e-6)


def test_labelling_side_by_side_gives_the_bits_of_one_thread(tmp_path, monkeypatch):
    """On CPU, ``cpu_threads`` pieces are labelled side by side on threads named ``dsc``, torch
    single-threaded in each; the pieces split blocks where their eval batches begin, so every
    point gets the bits of the one-thread labelling, block by block (rows in any order too)."""
    import threading

    path, _ = make_shards_file(tmp_path / "shards.h5", n=1500, n_grid=40, shard_size=700)
    points = PointSeries.from_shards(path)
    est = DeepSpatiotemporalClustering(**dict(TINY, n_clusters=3, pretrain_epochs=1, epochs=1, train_sample=200,
                                              batch_size=4, predict_block_rows=600)).fit(points)
    one = est.embed_and_assign(points)
    seen = []
    assign = est._assign_block

    def recording(points, indexer, block):
        seen.append((int(block[0]), len(block), threading.current_thread().name, torch.get_num_threads()))
        return assign(points, indexer, block)

    monkeypatch.setattr(est, "_assign_block", recording)
    rows = np.random.default_rng(0).permutation(1500)[:1100]
    for threads in (2, 3):
        est.set_params(cpu_threads=threads)
        seen.clear()
        got = est.embed_and_assign(points)
        assert all(np.array_equal(a, b) for a, b in zip(got, one))
        # blocks of 600 inside shards of 700 (0-600, 600-700, 700-1300, 1300-1400, 1400-1500), the first cut after
        # its first eval batch of 16, then in pieces of 16 batches (256 rows)
        assert [(a, n) for a, n, _, _ in seen] == [(0, 16), (16, 256), (272, 256), (528, 72), (600, 100),
                                                   (700, 256), (956, 256), (1212, 88), (1300, 100), (1400, 100)]
        assert seen[0][2] == threading.current_thread().name
        assert {name.split("_")[0] for _, _, name, _ in seen[1:]} == {"dsc"}
        assert {n for _, _, _, n in seen} == {1}
        picked = est.embed_and_assign(points, rows)
        assert all(np.array_equal(a, b[rows]) for a, b in zip(picked, one))


def test_train_log_and_loss_figure(tmp_path):
    history = [
        {"epoch": 1, "phase": "pretrain", "recon_loss": 0.9, "kl_loss": float("nan"),
         "label_change": float("nan"), "seconds": 1.0},
        {"epoch": 2, "phase": "joint", "recon_loss": 0.5, "kl_loss": 0.01, "label_change": 0.1, "seconds": 1.0},
    ]
    write_train_log(history, tmp_path / "train_log.tsv")
    frame = pd.read_csv(tmp_path / "train_log.tsv", sep="\t")
    assert list(frame.columns[:5]) == ["epoch", "phase", "recon_loss", "kl_loss", "label_change"]
    assert frame["phase"].tolist() == ["pretrain", "joint"]
    assert np.isnan(frame["kl_loss"][0]) and frame["kl_loss"][1] == pytest.approx(0.01)
    fig = plot_training_curve(history, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    change = fig.axes[1]   # the share of points that changed cluster, per epoch
    # pre-training has no clusters: no bar there, a note instead
    assert [round(b.get_height(), 6) for b in change.patches] == [10.0]
    assert any("pre-training" in t.get_text() for t in change.texts)
    assert "changed" in change.get_ylabel()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_estimator_from_config_maps_every_key():
    import yaml

    from insarclust.dsc.stage import estimator_from_config
    from conftest import ROOT

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())["dsc"]
    est = estimator_from_config(cfg, seed=7, device="cpu", checkpoint_dir="ck")
    assert est.n_clusters == cfg["k"] and est.random_state == 7 and est.checkpoint_dir == "ck"
    assert est.channels == tuple(cfg["channels"]) and est.variant == cfg["variant"]
    with pytest.raises(ValueError, match="unknown setting 'dropout'"):
        estimator_from_config(dict(cfg, dropout=0.1), seed=0)
    # the library's defaults are the shipped configuration
    defaults = DeepSpatiotemporalClustering().get_params()
    for key, value in cfg.items():
        if key not in ("enabled", "silhouette_sample"):
            name = {"k": "n_clusters"}.get(key, key)
            expected = tuple(value) if key == "channels" else value
            assert defaults[name] == expected, key


def test_fit_stage_then_evaluate(tmp_path):
    """Fit, label and order on small real files, then evaluate, as the two rules do."""
    from scipy.spatial import cKDTree

    from insarclust import evaluate, h5io
    from insarclust.dsc.stage import fit_stage
    from insarclust.labels import order_labels

    shards_path, truth = make_shards_file(tmp_path / "shards.h5", n=500, n_grid=40, shard_size=200)
    shards = h5io.Shards(shards_path)
    lat, lon = shards.coords()
    xy = np.c_[lat * 111_000, lon * 111_000 * math.cos(math.radians(69.05))]
    dist, nbr = cKDTree(xy).query(xy, k=6)
    h5io.write_graph(tmp_path / "graph.h5", np.arange(0, 5 * 501, 5), nbr[:, 1:].ravel(),
                     dist[:, 1:].ravel(), np.ones(5 * 500), {"k": 5, "weighting": "binary"})
    regular = shards.read("series/regular")
    h5io.write_features(tmp_path / "dyn.h5", regular[:, ::4], [f"d{j}" for j in range(10)])
    regimes = np.array(["stable", "subsiding", "seasonal", "uplifting"])[truth]
    pd.DataFrame({"pid": shards.pids(), "regime": regimes}).to_csv(tmp_path / "truth.csv", index=False)
    cfg = dict(k=4, patch_size=3, time_stride=2, latent_dim=4, channels=[4, 8], lstm_hidden=16,
               batch_size=32, pretrain_epochs=2, epochs=1, update_interval=5, train_sample=200)
    fit, est = fit_stage(shards_path, tmp_path / "dyn.h5", cfg=cfg, seed=3, device="cpu",
                         checkpoint_dir=tmp_path / "ck", silhouette_sample=300)
    labels, split, proba, latent = fit.labels, fit.split, fit.proba, fit.latent
    result = evaluate.evaluate_labelling(fit, graph_path=tmp_path / "graph.h5", shards_path=shards_path,
                                         truth_path=tmp_path / "truth.csv", thresholds={})
    assert labels.shape == (500,) and labels.dtype == np.int32
    assert proba.shape == (500, 4) and latent.shape == (500, 4)
    np.testing.assert_array_equal(proba.argmax(1), labels)  # columns follow the ordered labels
    np.testing.assert_array_equal(labels, order_labels(labels, shards_path))  # already ordered
    assert split.sum() == 300 and (split[est.train_rows_] == 0).all()
    assert result["n_train"] == 200 and result["k"] == 4
    assert set(result["metrics_latent"]) == {"silhouette", "davies_bouldin", "calinski_harabasz",
                                             "mean_intercentroid_distance"}
    assert "ari" in result["metrics"] and result["training"]["epochs_run"] == 3
    assert (tmp_path / "ck" / "dsc.pt").exists()
    # the workflow fits without dyn.h5 and measures the dyn space in evaluate: the same numbers
    from insarclust.labels import Labelling

    bare = Labelling(labels=labels, split=split, record={k: v for k, v in fit.record.items() if k != "metrics"})
    again = evaluate.evaluate_labelling(bare, graph_path=tmp_path / "graph.h5", shards_path=shards_path,
                                        truth_path=tmp_path / "truth.csv", thresholds={},
                                        features_path=tmp_path / "dyn.h5", seed=3, silhouette_sample=300)
    assert again["metrics"] == result["metrics"]
    # ... and DSC's own latent space from the stored latent vectors: a diagnostic setting
    # (dsc.silhouette_sample) reruns that job only
    workflow_fit, _ = fit_stage(shards_path, cfg=cfg, seed=3, device="cpu", checkpoint_dir=tmp_path / "ck",
                                silhouette_sample=None)
    assert "metrics" not in workflow_fit.record and "metrics_latent" not in workflow_fit.record
    np.testing.assert_array_equal(workflow_fit.labels, labels)
    workflow_fit.write(tmp_path / "dsc.h5")
    # the patches counted are the training ones; stored beside the fit record, so that neither
    # clusters/dsc.json nor summary.tsv (every number of the record's training) changes
    attrs = h5io.read_attrs(tmp_path / "dsc.h5")
    assert attrs["n_patch_counted"] == 200 and attrs["n_patch_alone"] == est.n_patch_alone_
    assert attrs["mean_patch_points"] == pytest.approx(est.mean_patch_points_) and 1 < est.mean_patch_points_ <= 9
    assert not any("patch" in key for key in result["training"])
    stored = evaluate.evaluate_labelling(Labelling.read(tmp_path / "dsc.h5"), graph_path=tmp_path / "graph.h5",
                                         shards_path=shards_path, truth_path=tmp_path / "truth.csv",
                                         thresholds={}, features_path=tmp_path / "dyn.h5", seed=3,
                                         silhouette_sample=300)
    assert stored["metrics_latent"] == result["metrics_latent"]
    assert stored["metrics"] == result["metrics"]
    assert list(stored).index("metrics_latent") == list(result).index("metrics_latent")


# --------------------------------------------------------------------------- #
# reproducibility and edge cases found by review

def test_cpu_result_depends_on_cpu_threads_not_on_the_callers_threads():
    """Training sums are split per thread: the estimator fixes its own thread count, so the
    cores a job is given (snakemake --cores 1 lowers the rule's threads) cannot change labels."""
    points, _ = two_regime_points(n_side=14, n_grid=24)
    params = dict(TINY, n_clusters=3, pretrain_epochs=1, epochs=1, train_sample=196, cpu_threads=2)
    probas = []
    for outer in (1, 3):
        torch.set_num_threads(outer)
        est = DeepSpatiotemporalClustering(**params).fit(points)
        probas.append(est.predict_proba(points))
        assert torch.get_num_threads() == outer      # restored after fit and predict
    np.testing.assert_array_equal(probas[0], probas[1])


def test_checkpoint_of_other_code_is_not_reused(tmp_path, monkeypatch, caplog):
    """A finished checkpoint written by other DSC code (or torch) is another model: retrain."""
    points, _ = two_regime_points(n_side=10, n_grid=24)
    params = dict(TINY, pretrain_epochs=1, epochs=1, train_sample=100, checkpoint_dir=tmp_path)
    DeepSpatiotemporalClustering(**params).fit(points)
    again = DeepSpatiotemporalClustering(**params)
    with caplog.at_level("INFO", logger="insarclust"):
        again.fit(points)
    assert "resumed from" in caplog.text
    caplog.clear()
    monkeypatch.setattr(dsc_train, "code_digest", lambda: "other code")
    with caplog.at_level("INFO", logger="insarclust"):
        DeepSpatiotemporalClustering(**params).fit(points)
    assert "resumed from" not in caplog.text and "starting afresh" in caplog.text


def test_series_with_a_gap_are_refused():
    """A NaN gave NaN probabilities to every patch holding the point (time_stride 1) or was
    averaged away (time_stride > 1), without a word."""
    from insarclust.dsc.patches import PointSeries

    reg = np.zeros((20, 12), dtype=np.float32)
    reg[5, 3] = np.nan
    with pytest.raises(ValueError, match="row 5, epoch 3 is nan"):
        PointSeries.from_arrays(np.linspace(69, 69.01, 20), np.full(20, 20.0), reg)


def test_an_unreadable_checkpoint_is_trained_afresh(tmp_path, caplog):
    """A checkpoint cut short (or pickled by another torch) failed the job naming no file; it is
    a head start only, so the job trains afresh and says why: the same labels as a fresh run."""
    points, _ = two_regime_points(n_side=10, n_grid=24)
    params = dict(TINY, pretrain_epochs=1, epochs=1, train_sample=100)
    fresh = DeepSpatiotemporalClustering(**params, checkpoint_dir=tmp_path / "fresh").fit(points)
    ckpt = tmp_path / "fresh" / dsc_train.CHECKPOINT_NAME
    (tmp_path / "cut").mkdir()
    data = ckpt.read_bytes()
    (tmp_path / "cut" / dsc_train.CHECKPOINT_NAME).write_bytes(data[:len(data) // 2])
    with caplog.at_level("INFO", logger="insarclust"):
        cut = DeepSpatiotemporalClustering(**params, checkpoint_dir=tmp_path / "cut").fit(points)
    assert "cannot be read" in caplog.text and "starting afresh" in caplog.text
    assert "resumed from" not in caplog.text and "other parameters" not in caplog.text
    np.testing.assert_array_equal(cut.predict(points), fresh.predict(points))


def test_convergence_at_an_epochs_first_batch_logs_no_empty_epoch():
    """A target refresh that converges before an epoch's first batch ends training without
    a row of zero losses in the train log (and the loss figure)."""
    points, _ = two_regime_points(n_side=12, n_grid=24)
    est = DeepSpatiotemporalClustering(**dict(TINY, train_sample=160, batch_size=32, update_interval=5,
                                              tol=0.5, pretrain_epochs=2, epochs=4)).fit(points)
    assert est.converged_
    assert all(r["recon_loss"] > 0 for r in est.history_)
    assert [r["epoch"] for r in est.history_] == list(range(1, len(est.history_) + 1))


@pytest.mark.parametrize("P", [3, 4])
def test_spatial_context_leaves_out_the_points_own_cell(P):
    """The point sits in cell (P // 2, P // 2); for even P that is not flat cell P * P // 2."""
    net = DSCNet(8, P, 2, latent_dim=4, channels=[4], lstm_hidden=8, spatial_bands=3, spatial_scale_m=100.0)
    d = torch.full((1, P * P), float("nan"))
    c = P * (P // 2) + P // 2
    d[0, c] = 0.0                      # the point itself
    alone = net.spatial_context(d)
    assert torch.count_nonzero(alone) == 0        # no neighbour: pools to zeros
    d[0, (c + 1) % (P * P)] = 80.0
    assert torch.count_nonzero(net.spatial_context(d)) > 0


def test_patch_cells_match_brute_force_on_clustered_points():
    """Dense blobs: a cell whose 4 nearest candidates all lie in its circle but outside its
    square can still hold a point; it is found (it was reported empty)."""
    from insarclust.dsc.patches import east_north

    rng = np.random.default_rng(0)
    n, side, cell, P = 1500, 600.0, 20.0, 5
    east, north = rng.uniform(0, side, n), rng.uniform(0, side, n)
    blob = rng.integers(0, 15, n // 2)
    ce, cn = rng.uniform(0, side, 15), rng.uniform(0, side, 15)
    east[: n // 2] = ce[blob] + rng.normal(0, 10, n // 2)
    north[: n // 2] = cn[blob] + rng.normal(0, 10, n // 2)
    lat = LAT0 + np.degrees(north / EARTH_RADIUS_M)
    lon = LON0 + np.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(LAT0))))
    ix = PatchIndexer(lat, lon, P, cell)
    rows = np.arange(0, n, 3)
    got = ix.index(rows)
    E, N = east_north(lat, lon)
    h = cell / 2
    for a, i in enumerate(rows):
        d = ix.xyz - ix.xyz[i]
        pe, pn = d @ E[i], d @ N[i]
        for r in range(P):
            for c in range(P):
                if r == c == P // 2:
                    continue
                oe, on = (c - P // 2) * cell, -(r - P // 2) * cell
                inside = np.flatnonzero((np.abs(pe - oe) <= h) & (np.abs(pn - on) <= h))
                want = -1 if not len(inside) else inside[np.argmin(np.hypot(pe[inside] - oe, pn[inside] - on))]
                assert got[a, r, c] == want, (i, r, c)


def test_student_t_with_underflowing_kernels_stays_a_distribution():
    """alpha 50 and far latents: every kernel of a row underflows; q is still finite, sums to 1
    and has finite gradients (it was 0 / 0)."""
    torch.manual_seed(0)
    z = (torch.randn(64, 30) * 30).requires_grad_(True)
    centroids = torch.randn(4, 30)
    q = student_t_assignment(z, centroids, 50.0)
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(1), torch.ones(64))
    assert torch.equal(q.argmax(1), torch.cdist(z, centroids).argmin(1))
    q[:, 0].sum().backward()
    assert torch.isfinite(z.grad).all()
    small = torch.randn(16, 4)
    kernel = (1 + torch.cdist(small, centroids[:, :4]).pow(2)).pow(-1.0)
    torch.testing.assert_close(student_t_assignment(small, centroids[:, :4]), kernel / kernel.sum(1, keepdim=True))


def test_student_t_of_underflowing_kernels_is_the_same_formula():
    """Where every kernel of a row underflows, q is still (1 + d^2 / alpha)^(-(alpha + 1) / 2)
    normalised: latents 1e16 and 2e16 from the centroids (d^2 1e32 and 4e32, alpha 1) give
    kernels in the ratio 4 : 1, so q = (0.8, 0.2), as float64 computes it directly."""
    z = torch.zeros(1, 2)
    mu = torch.tensor([[1e16, 0.0], [2e16, 0.0]])
    torch.testing.assert_close(student_t_assignment(z, mu, alpha=1.0), torch.tensor([[0.8, 0.2]]))
    z = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    mu = torch.tensor([[40.0, 0.0], [90.0, 0.0]])
    sq = torch.cdist(z.double(), mu.double()).pow(2)
    kernel = (1 + sq / 50.0).pow(-51.0 / 2)       # alpha 50: float32 kernels underflow, float64 not
    torch.testing.assert_close(student_t_assignment(z, mu, alpha=50.0),
                               (kernel / kernel.sum(1, keepdim=True)).float())


def test_cell_whose_four_nearest_lie_outside_its_square_still_finds_its_point():
    """The east cell of a 3 x 3 patch (centre 20 m east, square 10..30 m x -10..10 m): four
    points 11 m from the cell centre lie just outside the square, one inside lies 13.4 m
    away. The cell holds that point (the 4 nearest candidates alone reported it empty)."""
    east = np.array([0.0, 9.0, 31.0, 20.0, 20.0, 29.5])
    north = np.array([0.0, 0.0, 0.0, 11.0, -11.0, 9.5])
    lat = LAT0 + np.degrees(north / EARTH_RADIUS_M)
    lon = LON0 + np.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(LAT0))))
    index = PatchIndexer(lat, lon, 3, 20.0).index(np.array([0]))
    assert index[0, 1, 2] == 5
    assert index[0, 1, 1] == 0


def test_empty_dsc_clusters_are_logged(tmp_path, caplog):
    """More clusters than the patches separate: the stage says how many stayed empty."""
    from insarclust import h5io
    from insarclust.dsc.stage import fit_stage

    shards_path, _ = make_shards_file(tmp_path / "shards.h5", n=300, n_grid=40, shard_size=200)
    regular = h5io.Shards(shards_path).read("series/regular")
    h5io.write_features(tmp_path / "dyn.h5", regular[:, ::4], [f"d{j}" for j in range(10)])
    cfg = dict(k=12, variant="encoder-only", patch_size=3, time_stride=2, latent_dim=4, channels=[4, 8],
               lstm_hidden=16, batch_size=32, pretrain_epochs=0, epochs=2, update_interval=5,
               train_sample=200, cpu_threads=1)
    with caplog.at_level("WARNING", logger="insarclust"):
        fit, _ = fit_stage(shards_path, tmp_path / "dyn.h5", cfg=cfg, seed=3, device="cpu", silhouette_sample=100)
    empty = int(np.count_nonzero(np.bincount(fit.labels, minlength=12) == 0))
    assert empty > 0 and f"dsc k=12: {empty} cluster(s) hold no point" in caplog.text


def test_checkpoint_of_an_unscaled_run_resumes_under_fp16(tmp_path, monkeypatch, caplog):
    """A checkpoint written without a gradient scaler (CPU, fp32, bf16: an empty scaler state)
    resumes where the scaler is on (fp16 on CUDA; the device is not part of the fingerprint):
    no 'source state dict is empty' crash, the trained model is reused."""
    points, _ = two_regime_points(n_side=10, n_grid=24)
    params = dict(TINY, pretrain_epochs=1, epochs=1, train_sample=100, checkpoint_dir=tmp_path)
    first = DeepSpatiotemporalClustering(**params).fit(points)
    real_scaler = torch.amp.GradScaler
    # an fp16 device here: an enabled scaler (on the CPU, the only device of the test machine)
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device, enabled=True: real_scaler("cpu", enabled=enabled))
    monkeypatch.setattr(dsc_train, "autocast_dtype", lambda device, precision: torch.float16)
    again = DeepSpatiotemporalClustering(**params)
    with caplog.at_level("INFO", logger="insarclust"):
        again.fit(points)
    assert "resumed from" in caplog.text
    np.testing.assert_array_equal(again.cluster_centers_, first.cluster_centers_)
    assert [r["recon_loss"] for r in again.history_] == [r["recon_loss"] for r in first.history_]


def test_auto_precision_takes_bf16_only_where_the_chosen_gpu_has_it(monkeypatch):
    """precision auto: bf16 on a GPU with native bf16 (compute capability >= 8), fp16 with a
    scaler on older GPUs, even where torch can emulate bf16 there; and the capability is that
    of the device DSC runs on ('cuda:1'), not of the current device."""
    capability = {0: (8, 0), 1: (7, 5)}   # cuda:0 an A100, cuda:1 a T4

    def index(device=None):
        d = torch.device("cuda", 0) if device is None else torch.device(device)
        return 0 if d.index is None else d.index

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability[index(device)])
    # torch: True on the current device (cuda:0); with emulation, True on any recent CUDA
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert dsc_train.autocast_dtype("cuda", "auto") == torch.bfloat16
    assert dsc_train.autocast_dtype("cuda:0", "auto") == torch.bfloat16
    assert dsc_train.autocast_dtype("cuda:1", "auto") == torch.float16
    assert dsc_train.autocast_dtype("cuda:1", "bf16") == torch.bfloat16   # asked for: granted
    assert dsc_train.autocast_dtype("cuda:0", "fp16") == torch.float16
    assert dsc_train.autocast_dtype("cuda:1", "fp32") is None


def test_bf16_asked_for_on_a_gpu_without_native_bf16_warns(monkeypatch, caplog):
    """Granted (asked for), but emulated and slow on a V100/T4: said in the log."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    with caplog.at_level("WARNING", logger=dsc_train.log.name):
        assert dsc_train.autocast_dtype("cuda", "bf16") == torch.bfloat16
    assert any("no native bf16" in r.getMessage() for r in caplog.records)
    caplog.clear()
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    with caplog.at_level("WARNING", logger=dsc_train.log.name):
        assert dsc_train.autocast_dtype("cuda", "bf16") == torch.bfloat16
        assert dsc_train.autocast_dtype("cuda", "auto") == torch.bfloat16
    assert not caplog.records


def test_resolve_device_names_a_missing_gpu_index(monkeypatch):
    """'cuda:1' on a one-GPU machine: a message naming the count and the fix, before torch's
    'invalid device ordinal' from deep inside the first transfer."""
    from insarclust.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "fake GPU")
    with pytest.raises(RuntimeError, match=r"'cuda:1' requested but this machine has 1 CUDA device"):
        resolve_device("cuda:1")
    assert resolve_device("cuda:0") == "cuda:0" and resolve_device("cuda") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == "cpu"


def test_auto_device_on_a_gpu_job_without_usable_cuda_warns(monkeypatch, caplog):
    """A job given a GPU (CUDA_VISIBLE_DEVICES set) whose torch finds none (a CPU build, an old
    driver) runs on CPU with a warning, not with the same log line as a CPU job."""
    from insarclust import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_logged", set())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with caplog.at_level("WARNING", logger="insarclust.device"):
        assert device.resolve_device("auto") == "cpu"
    assert not caplog.records
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with caplog.at_level("WARNING", logger="insarclust.device"):
        assert device.resolve_device("auto") == "cpu"
    assert any("CUDA_VISIBLE_DEVICES=0" in r.getMessage() for r in caplog.records)


def test_auto_device_in_a_slurm_job_given_no_gpu_is_the_cpu(monkeypatch):
    """A CPU job (embed_part) on a GPU node whose GPUs the cluster does not hide: 'auto' took
    cuda:0, another job's GPU. A job SLURM gave a GPU (CUDA_VISIBLE_DEVICES) takes it."""
    from insarclust import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "fake GPU")
    monkeypatch.setattr(device, "_logged", set())
    for var in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.delenv(var, raising=False)
    assert device.resolve_device("auto") == "cuda"          # no SLURM: the GPU at hand
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert device.resolve_device("auto") == "cpu"
    assert device.resolve_device("cuda") == "cuda"          # asked for: granted
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert device.resolve_device("auto") == "cuda"


def test_checkpoint_is_read_onto_the_host(tmp_path, monkeypatch):
    """Resuming reads the checkpoint onto the host and lets load_state_dict place the tensors: read
    straight onto a GPU, Adam's step counts would sit there (torch leaves them where they were
    loaded) and cost host syncs at every step; the target goes to the training device."""
    points, _ = two_regime_points(n_side=8, n_grid=16)
    params = dict(TINY, pretrain_epochs=1, epochs=1, train_sample=64)
    DeepSpatiotemporalClustering(**params, checkpoint_dir=tmp_path).fit(points)
    seen = []
    real_load = torch.load

    def load(*args, **kwargs):
        seen.append(kwargs.get("map_location"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(dsc_train.torch, "load", load)
    monkeypatch.setattr(dsc_train, "resolve_device", lambda device: "cpu:0")   # a device named apart from the host
    est = DeepSpatiotemporalClustering(**dict(params, epochs=2), checkpoint_dir=tmp_path)
    monkeypatch.setattr(est, "_fingerprint", lambda points, patches: real_load(
        tmp_path / "dsc.pt", weights_only=False)["fingerprint"])
    est.fit(points)
    assert seen and all(m == "cpu" for m in seen)
    assert len(est.history_) == 3   # resumed after epoch 2, ran the third


def test_a_slurm_job_given_a_gpu_by_any_of_its_variables_takes_it(monkeypatch, caplog):
    """SLURM names a job's GPUs in CUDA_VISIBLE_DEVICES, SLURM_JOB_GPUS or SLURM_STEP_GPUS: any one
    set (not blank) is a GPU job. Without CUDA in torch, 'auto' is the CPU without the message of a
    GPU node's CPU job."""
    from insarclust import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "fake GPU")
    for var in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    for var in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.setattr(device, "_logged", set())
        monkeypatch.setenv(var, "0")
        assert device.resolve_device("auto") == "cuda", var
        monkeypatch.delenv(var)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", " ")
    assert device.resolve_device("auto") == "cpu"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_logged", set())
    caplog.clear()   # the blank CUDA_VISIBLE_DEVICES above says it (when INFO reaches caplog)
    with caplog.at_level("INFO", logger="insarclust.device"):
        assert device.resolve_device("auto") == "cpu"
    assert not any("although the node has one" in r.getMessage() for r in caplog.records)


def test_the_cpu_fallback_warning_is_given_once_and_only_for_a_gpu_named(monkeypatch, caplog):
    """CUDA_VISIBLE_DEVICES=-1 or NoDevFiles hides every GPU (a CPU job): no warning; a GPU named
    and found: no warning; a GPU named and not found: one warning, however often a job asks."""
    from insarclust import device

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for hidden in ("-1", "NoDevFiles"):
        monkeypatch.setattr(device, "_logged", set())
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        with caplog.at_level("WARNING", logger="insarclust.device"):
            assert device.resolve_device("auto") == "cpu"
    assert not caplog.records
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "fake GPU")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with caplog.at_level("WARNING", logger="insarclust.device"):
        assert device.resolve_device("auto") == "cuda"
    assert not caplog.records
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level("WARNING", logger="insarclust.device"):
        assert device.resolve_device("auto") == "cpu"
        assert device.resolve_device("auto") == "cpu"
    assert [r.getMessage().split(" names")[0] for r in caplog.records] == ["CUDA_VISIBLE_DEVICES=0"]


# --------------------------------------------------------------------------- #
# patches that hold their point alone

def _random_series(lat, n_grid=16, seed=0):
    return np.random.default_rng(seed).normal(0, 2, (len(lat), n_grid)).astype(np.float32)


LONE = dict(n_clusters=2, patch_size=9, time_stride=8, latent_dim=2, channels=(2, 4), lstm_hidden=4,
            pretrain_epochs=0, epochs=0, kmeans_n_init=1, random_state=0, log_every_s=1e9, cpu_threads=1)


def _lone_records(caplog):
    return [r for r in caplog.records if "hold their point alone" in r.getMessage()]


def test_patches_holding_their_point_alone_match_brute_force():
    """The filled cells of each patch, and the count of patches with no other point than their
    own, against every point's offsets on its own east/north plane (a twin in the point's own
    cell is not a neighbour the patch shows)."""
    from insarclust.dsc.patches import east_north

    rng = np.random.default_rng(4)
    n, cell, P = 400, 12.0, 5
    # a dense part, a sparse one, and two points 2 m apart far from both (each in the other's cell)
    east = np.r_[rng.uniform(0, 150, 250), rng.uniform(300, 1500, 148), 3000.0, 3002.0]
    north = np.r_[rng.uniform(0, 150, 250), rng.uniform(0, 1200, 148), 3000.0, 3000.0]
    lat = LAT0 + np.degrees(north / EARTH_RADIUS_M)
    lon = LON0 + np.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(LAT0))))
    points = PointSeries.from_arrays(lat, lon, _random_series(lat))
    ix = PatchIndexer(lat, lon, P, cell)
    filled = make_patch_set(points, ix, np.arange(n)).filled_cells()
    E, N = east_north(lat, lon)
    h, want = cell / 2, np.ones(n, dtype=np.int64)
    for i in range(n):
        d = ix.xyz - ix.xyz[i]
        pe, pn = d @ E[i], d @ N[i]
        for r in range(P):
            for c in range(P):
                oe, on = (c - P // 2) * cell, -(r - P // 2) * cell
                if not r == c == P // 2 and np.any((np.abs(pe - oe) <= h) & (np.abs(pn - on) <= h)):
                    want[i] += 1
    np.testing.assert_array_equal(filled, want)
    assert 20 < np.count_nonzero(want == 1) < 150 and (want[:250] > 1).all() and (want[-2:] == 1).all()
    est = DeepSpatiotemporalClustering(**{**LONE, "patch_size": P, "cell_size_m": cell, "train_sample": n})
    est.fit(points)
    assert est.n_patch_alone_ == np.count_nonzero(want == 1)
    assert est.mean_patch_points_ == pytest.approx(want.mean())


def test_patches_alone_on_an_uneven_site_are_warned_of(caplog):
    """The automatic cell is the town's spacing (11 m): most hillside patches hold their point
    alone, which the fit warns of, naming dsc.cell_size_m; the hillside's spacing as the cell
    leaves no patch alone and no warning."""
    lat, lon = town_and_hillside()
    points = PointSeries.from_arrays(lat, lon, _random_series(lat))
    with caplog.at_level("INFO", logger="insarclust"):
        est = DeepSpatiotemporalClustering(**LONE, train_sample=2000).fit(points)
    hill = est.train_rows_ >= 3000
    assert est.cell_size_m_ < 15 and 0.15 < est.n_patch_alone_ / 2000 < 0.25
    assert est.n_patch_alone_ > 0.7 * hill.sum()
    warned = [r for r in _lone_records(caplog) if r.levelname == "WARNING"]
    assert len(warned) == 1
    assert "dsc.cell_size_m" in warned[0].getMessage() and "dense part" in warned[0].getMessage()

    caplog.clear()
    with caplog.at_level("INFO", logger="insarclust"):
        wide = DeepSpatiotemporalClustering(**LONE, train_sample=2000, cell_size_m=90.0).fit(points)
    assert wide.n_patch_alone_ == 0 and wide.mean_patch_points_ > 30
    assert [r.levelname for r in _lone_records(caplog)] == ["INFO"]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_patches_on_a_uniform_site_are_counted_without_a_warning(caplog):
    rng = np.random.default_rng(1)
    east, north = rng.uniform(0, 1000, (2, 1500))
    lat = LAT0 + np.degrees(north / EARTH_RADIUS_M)
    lon = LON0 + np.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(LAT0))))
    with caplog.at_level("INFO", logger="insarclust"):
        est = DeepSpatiotemporalClustering(**LONE, train_sample=1500).fit(
            PointSeries.from_arrays(lat, lon, _random_series(lat)))
    assert est.n_patch_alone_ == 0 and 12 < est.mean_patch_points_ < 22
    assert [r.levelname for r in _lone_records(caplog)] == ["INFO"]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_training_sample_shorter_than_update_interval_refreshes_the_target_every_epoch():
    """144 points in batches of 32 are 5 batches an epoch: with update_interval 50 the target
    was computed once and never again (label change NaN in every epoch, tol never reached)."""
    points, _ = two_regime_points(n_side=12, n_grid=24)
    est = DeepSpatiotemporalClustering(**dict(TINY, train_sample=144, batch_size=32, update_interval=50,
                                              tol=0.0, pretrain_epochs=1, epochs=3)).fit(points)
    joint = [r for r in est.history_ if r["phase"] == "joint"]
    assert len(joint) == 3
    assert np.isnan(joint[0]["label_change"])               # the first refresh has nothing to compare
    assert all(np.isfinite(r["label_change"]) for r in joint[1:])
