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
