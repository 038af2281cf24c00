"""MEGA training data: simulated people and what the tracker would report for them."""

import numpy as np
import pytest

from tests.conftest import has_module

pytestmark = pytest.mark.skipif(not has_module("anny") or not has_module("torch") or not has_module("moderngl"),
                                reason="needs the [train] extra")


def test_simulated_people_and_observations():
    from realtime_hmr.train.mega import SIZE, observe, simulate_people
    from realtime_hmr.train.noise_stats import NoiseModel
    from realtime_hmr.train.synth import TRAIN

    seen = []

    def encoder(v):
        seen.append(v)
        return np.zeros((len(v), 54), np.int64)

    d = simulate_people(6, 0, TRAIN, encoder, batch=3)
    assert d["tokens"].shape == (6, 54) and d["mp33"].shape == (6, 33, 3) and d["K"].shape == (6, 3, 3)
    canon = np.concatenate(seen)
    assert canon.shape == (6, 13718, 3) and np.abs(canon.mean(1)).max() < 1e-4  # centred canonical meshes
    R = d["R"]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.tile(np.eye(3), (6, 1, 1)), atol=1e-6)
    assert (d["mp33"][..., 2] > 1.0).all()  # in front of the camera
    lm2d, lmw, geom, det = observe(d["mp33"], d["K"], np.random.default_rng(0), NoiseModel.load())
    assert lm2d.shape == (6, 33, 4) and lmw.shape == (6, 33, 3) and geom.shape == (6, 3) and det.shape == (6,)
    assert np.isfinite(lm2d).all() and (lm2d[..., 3] >= 0).all() and (lm2d[..., 3] <= 1).all()
    # world landmarks are hip-centred: the hips' midpoint near the origin (up to the simulated noise)
    assert np.abs(lmw[:, 23:25].mean(1)).max() < 0.2
    assert (geom[:, 2] > 0).all() and (geom[:, 2] < 2 * SIZE[0] / d["K"][:, 0, 0]).all()


def test_vertex_loss_is_zero_at_the_true_tokens_and_has_gradients():
    import torch

    from realtime_hmr.train.mega import ASSETS, frozen_tokenizer, vertex_loss

    tk = frozen_tokenizer(ASSETS / "vqvae" / "vqvae.safetensors")
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, tk.cfg.codebook_size, (2, tk.cfg.n_tokens), generator=g)
    mask = torch.rand(2, tk.cfg.n_tokens, generator=g) < 0.5
    sure = torch.nn.functional.one_hot(tokens, tk.cfg.codebook_size).float() * 50.0  # all mass on the truth
    assert float(vertex_loss(tk, sure, tokens, mask, 500)) < 1e-4
    logits = torch.randn(2, tk.cfg.n_tokens, tk.cfg.codebook_size, generator=g, requires_grad=True)
    loss = vertex_loss(tk, logits, tokens, mask, 500)
    assert float(loss) > 1e-3
    loss.backward()
    assert logits.grad[mask].abs().sum() > 0 and logits.grad[~mask].abs().sum() == 0  # only masked positions learn


def test_rendered_labels_pair_mediapipe_inputs_with_the_matched_persons_targets(tmp_path):
    """load_rendered: skips images where MediaPipe found nobody or somebody too far from every person, takes the
    person MediaPipe matched, and gives the
    targets of that person: tokens of its centred canonical mesh, and the rotation of that mesh onto its
    camera-space vertices."""
    from scipy.spatial.transform import Rotation

    from realtime_hmr.body import Body
    from realtime_hmr.mesh import condition
    from realtime_hmr.train.mega import load_rendered

    body = Body.load()
    rng = np.random.default_rng(3)
    n, P = 5, 2  # the last image: MediaPipe's skeleton 51 px (over a quarter of the height) from its match
    rot = np.tile(np.eye(3), (n, P, body.n_bones, 1, 1))
    rot[:, :, 0] = Rotation.random(n * P, random_state=1).as_matrix().reshape(n, P, 3, 3)
    rot[:, :, 5] = Rotation.from_rotvec(rng.normal(0, 0.4, (n * P, 3))).as_matrix().reshape(n, P, 3, 3)
    K = np.tile(np.array([[300.0, 0, 192], [0, 300.0, 144], [0, 0, 1]]), (n, 1, 1))
    cam_R = Rotation.random(n, random_state=2).as_matrix()
    mp33_2d = np.zeros((n, P, 33, 2))
    mp33_2d[..., 1] = np.linspace(0, 200, 33)  # everyone 200 px tall
    shard = {"mp_detected": np.array([True, False, True, True, True]), "mp_person": np.array([1, -1, 0, 1, 0]),
             "mp_match_px": np.array([3.0, 0, 49.0, 10.0, 51.0]), "mp33_2d": mp33_2d,
             "mp_image": rng.uniform(0, 300, (n, 33, 3)), "mp_world": rng.normal(0, 0.3, (n, 33, 3)),
             "mp_visibility": rng.uniform(0, 1, (n, 33)), "camera_K": K, "camera_R": cam_R,
             "camera_t": rng.normal(0, 1, (n, 3)) + [0, 0, 4], "rotations": rot,
             "translation": rng.normal(0, 1, (n, P, 3)), "betas": rng.normal(0, 0.5, (n, P, 20)),
             "pose_source": np.array([["rom", "cmu"]] * n)}
    np.savez(tmp_path / "shard_00000.npz", **shard)
    seen = []

    def encoder(v):
        seen.append(v)
        return np.arange(len(v) * 54).reshape(len(v), 54)

    d = load_rendered([tmp_path], encoder)
    keep, person = np.array([0, 2, 3]), np.array([1, 0, 1])
    assert len(d["tokens"]) == 3 and list(d["source"]) == ["cmu", "rom", "cmu"]
    want = condition(shard["mp_image"][keep], shard["mp_world"][keep], shard["mp_visibility"][keep], K[keep])
    for got, w in zip((d["lm2d"], d["lmw"], d["geom"]), want):
        np.testing.assert_allclose(got, w)
    canon = np.concatenate(seen)
    assert np.abs(canon.mean(1)).max() < 1e-4
    for k, (i, p) in enumerate(zip(keep, person)):
        cam = body.skin(rot[i, p], shard["translation"][i, p], shard["betas"][i, p]) @ cam_R[i].T
        posed = canon[k] @ d["R"][k].T
        np.testing.assert_allclose(posed - posed.mean(0), cam - cam.mean(0), atol=1e-4)  # same body, turned
    with pytest.raises(FileNotFoundError, match="shard"):
        load_rendered([tmp_path / "empty"], encoder)
    with pytest.raises(ValueError, match="labeler port"):  # these shards were labelled without image features
        load_rendered([tmp_path], encoder, features=True)
    feats = rng.normal(0, 1, (n, 20, 288)).astype(np.float16)
    np.savez(tmp_path / "shard_00000.npz", **shard, mp_features=feats)
    d2 = load_rendered([tmp_path], encoder, features=True)
    np.testing.assert_array_equal(d2["image"], feats[keep])  # each kept person's own features, in order
    np.testing.assert_allclose(d2["lm2d"], d["lm2d"])


def test_simulated_world_landmarks_follow_the_measured_error():
    """NoiseModel.sample_world: per-landmark errors as measured (hips tight, wrists loose, with outliers)."""
    import json

    from realtime_hmr.train.mega import ASSETS
    from realtime_hmr.train.noise_stats import NoiseModel

    nm = NoiseModel.load()
    gt = np.zeros((4000, 33, 3))
    err = np.linalg.norm(nm.sample_world(gt, np.random.default_rng(0)), axis=-1)
    med = np.median(err, 0)
    assert med[23] < 0.08 and med[15] > 0.1  # left hip vs left wrist (measured medians 0.04 and 0.19 m)
    measured = json.loads((ASSETS / "mediapipe_noise.json").read_text())["world"]["median_norm"]
    np.testing.assert_allclose(med, measured, rtol=0.5)
    assert (err > 0.2).mean(0)[15] > 0.3  # wrists: outliers as often as measured (0.48)


def test_train_on_rendered_people_only_with_image_tokens(tmp_path):
    """`train mega --rendered DIR --rendered-frac 1 --image-tokens` end to end at toy size: every batch rendered
    people with their image features, validation on held-out ones, and an export whose passes take the features."""
    import argparse
    import json

    from realtime_hmr.body import Body
    from realtime_hmr.train.mega import add_args, train

    body = Body.load()
    rng = np.random.default_rng(5)
    n = 12
    rot = np.tile(np.eye(3), (n, 1, body.n_bones, 1, 1))
    mp33_2d = np.zeros((n, 1, 33, 2))
    mp33_2d[..., 1] = np.linspace(0, 200, 33)
    shard = {"mp_detected": np.ones(n, bool), "mp_person": np.zeros(n, int), "mp_match_px": np.full(n, 2.0),
             "mp33_2d": mp33_2d, "mp_image": rng.uniform(0, 300, (n, 33, 3)),
             "mp_world": rng.normal(0, 0.3, (n, 33, 3)), "mp_visibility": rng.uniform(0, 1, (n, 33)),
             "camera_K": np.tile(np.array([[300.0, 0, 192], [0, 300.0, 144], [0, 0, 1]]), (n, 1, 1)),
             "camera_R": np.tile(np.eye(3), (n, 1, 1)), "camera_t": np.tile([0, 0, 4.0], (n, 1)),
             "rotations": rot, "translation": np.zeros((n, 1, 3)), "betas": np.zeros((n, 1, 20)),
             "pose_source": np.array([["rom"]] * n), "mp_features": rng.normal(0, 1, (n, 20, 288)).astype(np.float16)}
    (tmp_path / "d").mkdir()
    np.savez(tmp_path / "d" / "shard_00000.npz", **shard)
    p = argparse.ArgumentParser()
    add_args(p)
    args = p.parse_args(["--samples", "4", "--val", "2", "--steps", "2", "--pretrain", "1", "--batch", "4", "--d", "32",
                         "--layers", "1", "--rendered", str(tmp_path / "d"), "--rendered-frac", "1",
                         "--rendered-val", "2", "--image-tokens", "--out", str(tmp_path / "out")])
    with pytest.raises(ValueError, match="image features"):  # refused at once, before any data is prepared
        train(p.parse_args(["--image-tokens", "--out", str(tmp_path / "x")]))
    meta = train(args)
    assert meta["config"]["image_tokens"] == 20 and meta["config"]["image_dim"] == 288
    assert meta["rendered"]["people"] == 10 and meta["rendered"]["held_out"] == 2 and meta["rendered"]["fraction"] == 1
    assert meta["history"][-1]["val_rendered_canonical_pve_mm"] > 0
    assert meta["onnx"]["mega_det.onnx"]["inputs"] == ["lm2d", "lmw", "geom", "image"]
    assert meta["onnx"]["mega_det.onnx"]["token_agreement_vs_torch"] == 1.0
    assert json.loads((tmp_path / "out" / "mega.json").read_text())["image_tokens"]
    assert meta["history"][-1]["val_rendered_expected_canonical_pve_mm"] > 0
    # --init: a run that starts from this decoder continues from its weights (a run of another size is refused),
    # and --steps 0 only re-exports it, with the weights unchanged and the export recorded
    from safetensors.numpy import load_file

    with pytest.raises(ValueError, match="--init"):
        train(p.parse_args(["--init", str(tmp_path / "out"), "--d", "64", "--layers", "1", "--samples", "4", "--val",
                            "2", "--steps", "1", "--rendered", str(tmp_path / "d"), "--rendered-frac", "1",
                            "--rendered-val", "2", "--image-tokens", "--out", str(tmp_path / "y")]))
    again = train(p.parse_args(["--init", str(tmp_path / "out"), "--steps", "0", "--out", str(tmp_path / "re")]))
    assert again["reexported_from"] == str(tmp_path / "out")
    assert again["onnx"]["mega_det.onnx"]["outputs"] == ["tokens", "rot6", "tokens_argmax"]
    a, b = load_file(str(tmp_path / "out" / "mega.safetensors")), load_file(str(tmp_path / "re" / "mega.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="--init"):
        train(p.parse_args(["--steps", "0", "--out", str(tmp_path / "z")]))
    # a landmarks-only decoder starts an --image-tokens run: its weights carry over (lr 0 keeps them), the image
    # slot is new
    common = ["--samples", "4", "--val", "2", "--steps", "1", "--pretrain", "0", "--batch", "4", "--d", "32",
              "--layers", "1", "--rendered", str(tmp_path / "d"), "--rendered-frac", "1", "--rendered-val", "2"]
    train(p.parse_args([*common, "--out", str(tmp_path / "plain")]))
    grown = train(p.parse_args([*common, "--image-tokens", "--lr", "0", "--init", str(tmp_path / "plain"),
                                "--out", str(tmp_path / "grown")]))
    assert grown["config"]["image_tokens"] == 20
    a, b = (load_file(str(tmp_path / d / "mega.safetensors")) for d in ("plain", "grown"))
    assert set(b) - set(a) and all(k.startswith("img") for k in set(b) - set(a))
    assert all(np.array_equal(a[k], b[k]) for k in a)
