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
