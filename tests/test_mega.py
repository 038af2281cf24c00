"""The MEGA decoder module: static shapes, masking schedule, decoding modes, learning a toy mapping, ONNX export."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from realtime_hmr.models.mega import MEGA, N_LANDMARKS, MEGAConfig, rotation_6d_to_matrix, training_mask  # noqa: E402

SMALL = MEGAConfig(d=64, layers=2, heads=4, codebook=32, dropout=0.0)
BOOK = torch.randn(32, 6, generator=torch.Generator().manual_seed(11))  # a tokenizer's codebook stand-in


def cond_inputs(B, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, N_LANDMARKS, 4, generator=g), torch.randn(B, N_LANDMARKS, 3, generator=g),
            torch.randn(B, 3, generator=g))


def test_shapes_and_any_batch():
    m = MEGA(SMALL).eval()
    for B in (1, 3, 7):
        c = m.condition(*cond_inputs(B))
        assert c.shape == (B, m.n_cond, SMALL.d)
        logits, rot6 = m(m.masked(B), c)
        assert logits.shape == (B, 54, 32) and rot6.shape == (B, 6)
        tok, r = m.deterministic(c)
        assert tok.shape == (B, 54) and tok.max() < 32
    R = rotation_6d_to_matrix(rot6)
    np.testing.assert_allclose((R.transpose(-1, -2) @ R).detach().numpy(), np.tile(np.eye(3), (7, 1, 1)), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(7), atol=1e-5)


def test_expected_tokens_pick_the_code_nearest_the_mean_code():
    """A confident position keeps its argmax; a position split between two codes gets the code that lies between
    them, which the argmax never picks."""
    from realtime_hmr.models.mega import expected_tokens

    book = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [9.0, 9.0]])
    logits = torch.full((1, 3, 4), -30.0)
    logits[0, 0, 3] = 10.0  # sure of code 3
    logits[0, 1, 0] = logits[0, 1, 2] = 5.0  # torn between codes 0 and 2 (code 1 sits halfway)
    logits[0, 2, 0], logits[0, 2, 2] = 5.0, 3.0  # leaning to 0: the mean code (~0.24, 0) is nearest code 0
    assert expected_tokens(logits, book).tolist() == [[3, 1, 0]]
    assert logits.argmax(-1)[0, 1].item() in (0, 2)


def test_training_mask_ratio_and_no_empty_mask():
    g = torch.Generator().manual_seed(0)
    m = training_mask(4000, 54, g)
    counts = m.sum(1).float()
    assert counts.min() >= 1 and counts.max() <= 54
    # E[cos(pi/2 u)] = 2/pi of the positions on average
    assert abs(counts.mean().item() / 54 - 2 / np.pi) < 0.03


def test_stochastic_decoding_fills_every_position_and_varies():
    m = MEGA(SMALL).eval()
    c = m.condition(*cond_inputs(2))
    tok, rot6 = m.stochastic(c, samples=6, steps=5, temperature=3.0, generator=torch.Generator().manual_seed(1))
    assert tok.shape == (2, 6, 54) and rot6.shape == (2, 6, 6)
    assert (tok < 32).all()  # no [MASK] left
    assert len({tuple(t.tolist()) for t in tok[0]}) > 1  # samples differ


def test_unconditional_and_null_condition_agree():
    m = MEGA(SMALL).eval()
    drop = torch.tensor([True, True])
    c_drop = m.condition(*cond_inputs(2), drop=drop)
    c_null = m.unconditional(2)
    assert torch.allclose(c_drop, c_null)


def test_learns_tokens_from_landmarks():
    """A toy: the tokens are a function of the whole set of landmarks (as a body's tokens are), position-dependent;
    a few hundred steps must get most of them right."""
    torch.manual_seed(0)
    m = MEGA(SMALL)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    offset = torch.linspace(-1, 1, 54)

    def batch(B):
        lm2d, lmw, geom = cond_inputs(B, seed=int(torch.randint(0, 10**6, (1,))))
        s = lm2d[:, :, 0].mean(1, keepdim=True) * N_LANDMARKS**0.5  # ~N(0, 1)
        tokens = torch.bucketize(s + offset, torch.tensor([-0.6, 0.0, 0.6]))  # ids 0..3
        return lm2d, lmw, geom, tokens

    for _ in range(300):
        lm2d, lmw, geom, tokens = batch(32)
        mask = training_mask(32, 54)
        inp = torch.where(mask, torch.full_like(tokens, m.mask_id), tokens)
        logits, _ = m(inp, m.condition(lm2d, lmw, geom))
        loss = torch.nn.functional.cross_entropy(logits[mask], tokens[mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    lm2d, lmw, geom, tokens = batch(256)
    pred, _ = m.deterministic(m.condition(lm2d, lmw, geom))
    majority = torch.bincount(tokens.ravel()).max() / tokens.numel()
    assert (pred == tokens).float().mean() > max(0.7, majority + 0.3)


def test_onnx_export_of_the_deterministic_pass_and_step(tmp_path):
    """The shipped export path: both ONNX files keep a free batch axis and agree with torch."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from realtime_hmr.train.mega import export

    m = MEGA(SMALL).eval()
    report = export(m, tmp_path, BOOK)
    assert report["mega_det.onnx"]["token_agreement_vs_torch"] == 1.0
    assert report["mega_det.onnx"]["max_abs_diff_vs_torch"] < 1e-4
    assert report["mega_step.onnx"]["max_abs_diff_vs_torch"] < 1e-4
    s = ort.InferenceSession(str(tmp_path / "mega_det.onnx"), providers=["CPUExecutionProvider"])
    assert not isinstance(s.get_inputs()[0].shape[0], int)  # the batch axis stayed dynamic
    x = cond_inputs(5, seed=3)  # another batch size than the export's
    tok, rot6, tok_argmax = s.run(None, {"lm2d": x[0].numpy(), "lmw": x[1].numpy(), "geom": x[2].numpy()})
    ref_tok, ref_rot = m.deterministic(m.condition(*x), BOOK)
    assert (tok == ref_tok.numpy()).mean() > 0.99
    assert (tok_argmax == m.deterministic(m.condition(*x))[0].numpy()).mean() > 0.99
    np.testing.assert_allclose(rot6, ref_rot.numpy(), atol=1e-4)


def test_generate_samples_the_exported_prior(tmp_path):
    """`realtime-hmr generate` end to end on an exported (untrained) decoder: the unconditional step agrees with
    torch, samples are full token sequences decoded to meshes, reproducible by seed and different from each other."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import json

    import torch

    from realtime_hmr.cli import main
    from realtime_hmr.mesh import generate
    from realtime_hmr.train.mega import export

    torch.manual_seed(0)
    m = MEGA(SMALL).eval()
    with torch.no_grad():  # a peaked, position-dependent prior so that samples are not all alike by chance
        m.logits.bias.normal_(0, 3.0)
    report = export(m, tmp_path, BOOK)
    assert report["mega_prior.onnx"]["max_abs_diff_vs_torch"] < 1e-4
    (tmp_path / "mega.json").write_text(json.dumps({"config": SMALL.__dict__}))
    a = generate(4, steps=5, seed=1, mega_dir=tmp_path)
    b = generate(4, steps=5, seed=1, mega_dir=tmp_path)
    assert a["tokens"].shape == (4, 54) and a["tokens"].min() >= 0 and a["tokens"].max() < SMALL.codebook
    np.testing.assert_array_equal(a["tokens"], b["tokens"])
    assert len({tuple(t) for t in a["tokens"]}) == 4
    assert a["vertices"].shape == (4, 13718, 3) and np.isfinite(a["vertices"]).all()
    out = tmp_path / "bodies.npz"
    assert main(["generate", "--n", "3", "--out", str(out), "--model", str(tmp_path)]) == 0
    with np.load(out) as z:
        assert z["vertices"].shape == (3, 13718, 3) and z["faces"].shape[1] == 3
    assert main(["generate", "--n", "1", "--out", str(out), "--model", str(tmp_path / "missing")]) == 2


IMG = MEGAConfig(d=64, layers=2, heads=4, codebook=32, dropout=0.0, image_tokens=5, image_dim=12)


def test_image_tokens_condition_and_null():
    """Image-feature tokens: they change the prediction; a person flagged without them, or none given, gets the
    learned null image tokens; a dropped condition is the unconditional one; the ONNX export takes an image input."""
    m = MEGA(IMG).eval()
    x = cond_inputs(3)
    img = torch.randn(3, 5, 12, generator=torch.Generator().manual_seed(4))
    c = m.condition(*x, img)
    assert c.shape == (3, m.n_cond, 64) and m.n_cond == 2 * N_LANDMARKS + 1 + 5 + 1
    assert not torch.allclose(m(m.masked(3), c)[0], m(m.masked(3), m.condition(*x, img * 2))[0])
    none = m.condition(*x)
    flagged = m.condition(*x, img, has_image=torch.tensor([False, True, False]))
    assert torch.allclose(flagged[0], none[0]) and torch.allclose(flagged[2], none[2])
    assert torch.allclose(flagged[1], c[1]) and not torch.allclose(flagged[1], none[1])
    assert torch.allclose(m.condition(*x, img, drop=torch.tensor([True] * 3)), m.unconditional(3))


def test_onnx_export_with_image_tokens(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from realtime_hmr.train.mega import export

    m = MEGA(IMG).eval()
    report = export(m, tmp_path, BOOK)
    assert report["mega_det.onnx"]["inputs"] == ["lm2d", "lmw", "geom", "image"]
    assert report["mega_step.onnx"]["max_abs_diff_vs_torch"] < 1e-4
    s = ort.InferenceSession(str(tmp_path / "mega_det.onnx"), providers=["CPUExecutionProvider"])
    x = cond_inputs(4, seed=5)
    img = torch.randn(4, 5, 12, generator=torch.Generator().manual_seed(6))
    feeds = {"lm2d": x[0].numpy(), "lmw": x[1].numpy(), "geom": x[2].numpy(), "image": img.numpy()}
    tok, rot6, _ = s.run(None, feeds)
    ref_tok, ref_rot = m.deterministic(m.condition(*x, img), BOOK)
    assert (tok == ref_tok.numpy()).mean() > 0.99
    np.testing.assert_allclose(rot6, ref_rot.numpy(), atol=1e-4)

