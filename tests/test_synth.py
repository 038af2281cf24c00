"""data synth: determinism by seed, ground truth regenerable, shards loadable without pickles, noise statistics.

Tiny: 2-3 samples at 160x120. Skipped where moderngl EGL, mediapipe or anny is unavailable."""

import json

import numpy as np
import pytest

from tests.conftest import require_renderer


@pytest.fixture(scope="module")
def maker():
    require_renderer()
    from realtime_hmr.train.synth import SceneMaker, SynthConfig

    return SceneMaker(SynthConfig(size=(160, 120), p_multi=0.5))


@pytest.fixture(scope="module")
def shard(maker, tmp_path_factory):
    from realtime_hmr.train.synth import load_shard, make_shard

    path = tmp_path_factory.mktemp("synth") / "shard_00000.npz"
    np.savez_compressed(path, **make_shard(maker, 7, 0, 3))
    return load_shard(path)


def test_shard_rng_domains_disjoint():
    from realtime_hmr.train.synth import EVAL, TRAIN, shard_rng

    a = shard_rng(0, TRAIN, 0).random(4)
    np.testing.assert_array_equal(a, shard_rng(0, TRAIN, 0).random(4))
    assert not np.allclose(a, shard_rng(0, EVAL, 0).random(4))
    assert not np.allclose(a, shard_rng(0, TRAIN, 1).random(4))


def test_shard_contents(shard):
    from realtime_hmr.train.synth import P_MAX, decode_image

    n = len(shard["index"])
    assert n == 3
    assert shard["rotations"].shape == (n, P_MAX, 104, 3, 3) and shard["betas"].shape == (n, P_MAX, 20)
    assert shard["mp_image"].shape == (n, 33, 3) and shard["mp_world"].shape == (n, 33, 3)
    assert shard["gt_mask"].shape == (n, 120, 160) and shard["mp_mask"].shape == (n, 120, 160)
    for i in range(n):
        img = decode_image(shard, i)
        assert img.shape == (120, 160, 3)
        k = shard["n_persons"][i]
        assert 1 <= k <= P_MAX and set(np.unique(shard["gt_mask"][i])) <= set(range(k + 1))
        assert (shard["rotations"][i, k:] == 0).all()
        json.loads(str(shard["appearance_json"][i]))
    assert (shard["distance_m"] >= 1.4).all() and (shard["distance_m"] <= 10.5).all()
    det = shard["mp_detected"]
    assert ((shard["mp_person"] >= 0) == det).all()


def test_ground_truth_regenerates(shard):
    from realtime_hmr.body import Body
    from realtime_hmr.train.synth import vertices

    body = Body.load()
    for i in range(len(shard["index"])):
        for p in range(shard["n_persons"][i]):
            v = vertices(shard, i, p, body)
            np.testing.assert_allclose(body.joints(v, "smpl24"), shard["joints24"][i, p], atol=2e-4)
            K = shard["camera_K"][i]
            j = shard["joints24"][i, p]
            np.testing.assert_allclose(j[:, :2] / j[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2], shard["joints24_2d"][i, p],
                                       atol=1e-2)
    # every person stands on the ground (z = 0 in the world)
    v_world = body.skin(shard["rotations"][0, 0], shard["translation"][0, 0], shard["betas"][0, 0])
    assert abs(v_world[:, 2].min()) < 1e-4


def test_deterministic_by_seed(maker, shard):
    from realtime_hmr.train.synth import make_shard

    again = make_shard(maker, 7, 0, 3)
    for k in ("rotations", "betas", "translation", "camera_K", "camera_R", "joints24", "gt_mask", "image_jpeg"):
        np.testing.assert_array_equal(again[k], shard[k], err_msg=k)
    other = make_shard(maker, 8, 0, 1)
    assert not np.allclose(other["betas"][0], shard["betas"][0])


def test_noise_stats_on_a_shard(shard, tmp_path):
    from realtime_hmr.train.noise_stats import noise_stats

    np.savez(tmp_path / "shard_00000.npz", **shard)
    s = noise_stats([tmp_path])
    assert s["samples"] == 3 and len(s["landmarks"]) == 33
    det = shard["mp_detected"] & (shard["mp_person"] == 0)
    assert s["detection_rate"] == pytest.approx(det.mean(), abs=1e-4)
    assert len(s["image"]["bias"]) == 33 and len(s["by_yaw"]) == 8 and len(s["by_distance"]) == 4
    assert sum(b["n"] for b in s["by_yaw"]) == 3


def test_synth_command_writes_shards(tmp_path):
    require_renderer()
    from realtime_hmr.cli import main

    out = tmp_path / "d"
    rc = main(["data", "synth", "--n", "2", "--out", str(out), "--workers", "1", "--shard-size", "2", "--width", "96",
               "--height", "96", "--no-progress"])
    assert rc == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["n"] == 2 and m["shards"] == 1 and m["bytes_per_sample"] > 0
    with np.load(out / "shard_00000.npz", allow_pickle=False) as z:
        assert z["image_size"].tolist() == [96, 96] and len(z["index"]) == 2


def test_noise_model_reproduces_its_statistics():
    from realtime_hmr.train.noise_stats import NoiseModel

    names = [f"l{i}" for i in range(33)]
    bias = [[0.01 * (i % 3), -0.02] for i in range(33)]
    stats = {"detection_rate": 0.8, "landmarks": names,
             "image": {"bias": bias, "std": [[0.03, 0.01]] * 33, "outlier_rate": [0.0] * 33, "p90_norm": [0.1] * 33},
             "by_distance": [{"detection_rate": r} for r in (1.0, 0.5, 0.0, None)]}
    nm = NoiseModel(stats)
    rng = np.random.default_rng(0)
    n = 4000
    gt = rng.uniform(0, 300, (n, 33, 2))
    depth, focal = np.full(n, 4.0), np.full(n, 400.0)  # 100 px per metre
    xy, det = nm.sample(gt, depth, focal, np.full(n, 2.0), rng)
    assert det.all()  # distance 2 m: the first bin, rate 1.0
    err = (xy - gt) / 100.0
    np.testing.assert_allclose(err.mean(0), bias, atol=0.003)
    np.testing.assert_allclose(err.std(0).mean(0), [0.03, 0.01], rtol=0.05)
    _, det = nm.sample(gt, depth, focal, np.full(n, 3.0), rng)
    assert abs(det.mean() - 0.5) < 0.03
    xy, det = nm.sample(gt, depth, focal, np.full(n, 5.0), rng)
    assert not det.any() and np.isnan(xy).all()
    # the shipped file loads and gives finite landmarks for a detected sample
    shipped = NoiseModel.load()
    xy, det = shipped.sample(gt[:50], depth[:50], focal[:50], np.full(50, 2.0), rng)
    assert np.isfinite(xy[det]).all() and det.any()


def test_port_labeler_stores_image_features(tmp_path):
    """`data synth --labeler port`: labels from our BlazePose port, with its image features per sample."""
    require_renderer()
    from realtime_hmr.train.synth import SceneMaker, SynthConfig, make_shard

    with pytest.raises(ValueError, match="labeler"):
        SceneMaker(SynthConfig(size=(96, 96), labeler="nope"))
    maker = SceneMaker(SynthConfig(size=(192, 144), labeler="port", p_multi=0.0))
    s = make_shard(maker, 11, 0, 3)
    det = s["mp_detected"]
    assert s["mp_features"].shape == (3, 20, 288) and s["mp_features"].dtype == np.float16
    assert det.any(), "nobody detected in 3 renders"
    assert (s["mp_features"][~det] == 0).all() and (np.abs(s["mp_features"][det]).mean((1, 2)) > 0.01).all()
    assert (s["mp_match_px"][det] < 0.25 * np.ptp(s["mp33_2d"][det, 0, :, 1], -1)).all()  # it saw the person
