import numpy as np
import pytest

from realtime_hmr.metrics import mpjpe, pa_mpjpe, procrustes, pve


def rot_z(deg):
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def test_mpjpe_hand_computed():
    gt = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    pred = gt + [5, 5, 5]  # a pure translation vanishes after root alignment
    assert mpjpe(pred, gt) == pytest.approx(0.0)
    pred = gt.copy()
    pred[1] += [0, 3, 4]  # one joint off by 5, root untouched: mean over 3 joints = 5/3
    assert mpjpe(pred, gt) == pytest.approx(5 / 3)
    pred = gt.copy()
    pred[0] += [0, 0, 2]  # the root moves: every other joint is off by 2 after alignment
    assert mpjpe(pred, gt) == pytest.approx(4 / 3)


def test_mpjpe_explicit_roots_and_batch():
    gt = np.zeros((2, 4, 3))
    gt[:, :, 0] = np.arange(4)
    pred = gt + [[[0, 1, 0]], [[0, 0, 0]]]
    e = mpjpe(pred, gt, root=np.zeros((2, 3)), pred_root=np.array([[0, 1, 0], [0, 0, 0]]))
    np.testing.assert_allclose(e, [0.0, 0.0])
    e = mpjpe(pred, gt, root=np.zeros((2, 3)), pred_root=np.zeros((2, 3)))
    np.testing.assert_allclose(e, [1.0, 0.0])


def test_pve_is_mpjpe_on_vertices():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 3))
    w = v + rng.normal(0, 0.01, v.shape)
    assert pve(w, v, w[0], v[0]) == pytest.approx(mpjpe(w, v, root=0))


def test_pa_removes_similarity_exactly():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(3, 17, 3))
    pred = 1.7 * gt @ rot_z(40).T + [1, -2, 3]
    np.testing.assert_allclose(pa_mpjpe(pred, gt), 0.0, atol=1e-9)
    assert (mpjpe(pred, gt) > 0.1).all()


def test_pa_hand_computed_scale():
    gt = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2.0]])
    np.testing.assert_allclose(procrustes(gt * 0.5, gt), gt, atol=1e-12)
    # one point off: Procrustes minimises the squared error, so it beats the identity and small perturbations of
    # its own solution
    pred = gt.copy()
    pred[3] += [0.3, 0, 0]
    sse = ((procrustes(pred, gt) - gt) ** 2).sum()
    assert sse < ((pred - gt) ** 2).sum()
    for R in (rot_z(1), rot_z(-1)):
        for s in (0.99, 1.01):
            aligned = procrustes(pred, gt)
            c = aligned.mean(0)
            assert sse <= (((s * (aligned - c) @ R.T + c) - gt) ** 2).sum()


def test_pa_excludes_reflections():
    gt = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1.0], [-1, 0.5, 0.2]])
    mirrored = gt * [-1, 1, 1]
    assert pa_mpjpe(mirrored, gt) > 0.05  # a mirror image is not a rotation: it must not align perfectly


def test_shape_errors():
    with pytest.raises(ValueError):
        mpjpe(np.zeros((4, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError):
        pa_mpjpe(np.zeros((4, 2)), np.zeros((4, 2)))
