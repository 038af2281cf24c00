"""Body shapes from Anny's shape distribution: all ages, both genders (needs anny)."""

import numpy as np
import pytest

pytest.importorskip("anny")
pytest.importorskip("torch")

from realtime_hmr.train.shapes import PHENOTYPES, sample_shapes  # noqa: E402


@pytest.fixture(scope="module")
def shapes():
    return sample_shapes(800, np.random.default_rng(0))


def test_order_matches_anny():
    from realtime_hmr.train import rig as R

    assert tuple(R.anny_model().phenotype_labels) == PHENOTYPES


def test_children_to_elderly_both_genders(shapes):
    age, g = shapes.age_years, shapes.params[:, 0]
    assert shapes.params.shape == (800, 6) and shapes.params.dtype == np.float32
    assert (0 <= shapes.params).all() and (shapes.params <= 1).all()
    for lo, hi in ((3, 12), (12, 18), (18, 60), (70, 90)):  # children, teens, adults, elderly
        band = (age >= lo) & (age < hi)
        assert band.sum() > 30 and (g[band] < 0.5).sum() > 10 and (g[band] > 0.5).sum() > 10, (lo, hi)
    # anny's age parameter rises with the age drawn
    a = shapes.params[:, 1]
    assert np.corrcoef(np.argsort(np.argsort(age)), np.argsort(np.argsort(a)))[0, 1] > 0.95
    kw = shapes.as_kwargs()
    assert list(kw) == list(PHENOTYPES) and kw["age"].shape == (800,)


def test_children_are_smaller(shapes):
    import torch

    from realtime_hmr.train import rig as R

    kids = np.flatnonzero(shapes.age_years < 8)[:6]
    adults = np.flatnonzero((shapes.age_years > 25) & (shapes.age_years < 60))[:6]
    idx = np.concatenate([kids, adults])
    kw = {k: torch.as_tensor(shapes.params[idx, i]) for i, k in enumerate(PHENOTYPES)}
    P = torch.eye(4).expand(len(idx), 104, 4, 4).contiguous()
    with torch.no_grad():
        v = R.anny_model()(pose_parameters=P, phenotype_kwargs=kw)["vertices"].numpy()
    height = v[..., 2].max(1) - v[..., 2].min(1)
    assert height[: len(kids)].max() < 1.35 and height[len(kids):].min() > 1.45, height


def test_deterministic():
    a, b = sample_shapes(10, np.random.default_rng(3)), sample_shapes(10, np.random.default_rng(3))
    assert np.array_equal(a.params, b.params)
    assert not np.array_equal(a.params, sample_shapes(10, np.random.default_rng(4)).params)


def test_anny_betas_hold_in_any_blendshape_basis(shapes):
    """Phenotype bodies of the installed Anny map to betas in vertex space: the body they give matches Anny's rest mesh
    (the shape space's own error), and another basis for the same blendshapes gives the same betas."""
    from types import SimpleNamespace

    import torch

    from realtime_hmr.body import Body
    from realtime_hmr.train import rig as R
    from realtime_hmr.train.shapes import AnnyBetas

    body, m = Body.load(), R.anny_model()
    kw = {k: torch.tensor(shapes.params[:40, i], dtype=torch.float64) for i, k in enumerate(PHENOTYPES)}
    with torch.no_grad():
        c = m.get_phenotype_blendshape_coefficients(**kw).double().numpy()
    betas = AnnyBetas(body, m)(c)
    blend = m.blendshapes.double().numpy()
    rest_anny = np.einsum("nk,kvd->nvd", c, blend) + m.template_vertices.double().numpy()
    rest = body.template[None] + np.einsum("nk,kvd->nvd", betas, body.shape_dirs)
    err = np.linalg.norm(rest - rest_anny, axis=-1)
    assert err.mean() < 1e-3 and err.max() < 0.01  # metres: 20 shape directions (0.3 mm mean, a few mm at worst)
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(len(blend), len(blend))))[0]  # another orthonormal basis
    other = SimpleNamespace(blendshapes=torch.as_tensor(np.einsum("jk,kvd->jvd", q.T, blend)),
                            template_vertices=m.template_vertices)
    np.testing.assert_allclose(AnnyBetas(body, other)(c @ q), betas, atol=1e-6)
