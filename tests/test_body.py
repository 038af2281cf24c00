"""The body asset and the numpy body maths: skinning, joints, inverse kinematics, bad input."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from realtime_hmr.body import COCO17, HUMANOID, MEDIAPIPE33, SMPL24
from realtime_hmr.body.kinematics import forward


def random_pose(body, n, seed, deg=25.0):
    rng = np.random.default_rng(seed)
    rv = rng.normal(0, np.deg2rad(deg), (n, body.n_bones, 3))
    rv[:, 0] = rng.normal(0, 1.0, (n, 3))
    return Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix().reshape(n, body.n_bones, 3, 3)


def angle_deg(A, B):
    c = (np.trace(np.swapaxes(A, -1, -2) @ B, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


def test_asset_contents(body):
    assert body.n_vertices == 13718 and body.faces.shape == (27420, 3) and body.n_bones == 104
    assert body.faces.min() == 0 and body.faces.max() == body.n_vertices - 1
    assert body.joint_names == SMPL24 and len(SMPL24) == 24
    np.testing.assert_allclose(np.asarray(body.weights.sum(1)).ravel(), 1.0, atol=1e-5)
    for kind, names in (("smpl24", SMPL24), ("coco17", COCO17), ("mediapipe33", MEDIAPIPE33)):
        J = body._regressors[kind]
        assert J.shape == (len(names), body.n_vertices)
        if kind == "coco17":
            assert (J.data >= 0).all()
        np.testing.assert_allclose(np.asarray(J.sum(1)).ravel(), 1.0, atol=1e-5)
    meta = body.meta
    assert meta["anny_version"] and "build_body" in meta["command"]
    assert set(body.humanoid_names) - {""} == set(HUMANOID)


def test_rest_landmarks_are_anatomical(body):
    v = body.template[None]
    mp = dict(zip(MEDIAPIPE33, body.joints(v, "mediapipe33")[0]))
    # +X is the subject's left, -Y the front, +Z up
    for part in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "heel", "foot_index", "pinky"):
        assert mp[f"left_{part}"][0] > 0.01 > -0.01 > mp[f"right_{part}"][0], part
    assert mp["mouth_left"][0] > 0 > mp["mouth_right"][0]
    for side in ("left", "right"):
        assert abs(mp[f"{side}_eye_inner"][0]) < abs(mp[f"{side}_eye"][0]) < abs(mp[f"{side}_eye_outer"][0])
        assert mp[f"{side}_foot_index"][1] < mp[f"{side}_heel"][1]  # toes in front of the heel
    assert mp["nose"][1] < mp["left_ear"][1]
    z = {k: p[2] for k, p in mp.items()}
    assert z["nose"] > z["mouth_left"] > z["left_shoulder"] > z["left_hip"] > z["left_knee"] > z["left_ankle"]
    j = dict(zip(SMPL24, body.joints(v)[0]))
    assert j["head"][2] > j["neck"][2] > j["spine3"][2] > j["spine2"][2] > j["spine1"][2] > j["pelvis"][2] - 0.01


def test_identity_pose_is_reference_and_translation_moves_everything(body):
    eye = np.tile(np.eye(3), (body.n_bones, 1, 1))
    v0 = body.skin(eye)
    assert v0.shape == (body.n_vertices, 3)
    t = np.array([0.3, -1.0, 2.0])
    v1 = body.skin(eye, translation=t)
    np.testing.assert_allclose(v1 - v0, np.broadcast_to(body.reference[0].T @ t, v0.shape), atol=1e-9)
    # a batch gives the same as one at a time
    R = random_pose(body, 3, 0)
    vb = body.skin(R)
    np.testing.assert_allclose(vb[1], body.skin(R[1]), atol=1e-9)


def test_rotating_the_root_rotates_the_body_rigidly(body):
    R = random_pose(body, 1, 1)
    turn = Rotation.from_euler("z", 70, degrees=True).as_matrix()
    R2 = R.copy()
    R2[0, 0] = body.reference[0] @ turn @ body.reference[0].T @ R[0, 0]
    v1, v2 = body.skin(R), body.skin(R2)
    c1, c2 = v1.mean(1, keepdims=True), v2.mean(1, keepdims=True)
    np.testing.assert_allclose((v1 - c1) @ turn.T, v2 - c2, atol=1e-6)


def test_forward_kinematics_chain_consistency(body):
    """Every bone's skinning transform maps its rest head onto its parent's image of it (heads stay connected)."""
    R = random_pose(body, 2, 2)
    betas = np.random.default_rng(0).normal(size=(2, body.n_betas))
    X, heads, Rr = body.rest(betas)
    W, T = forward(R, np.zeros((2, 3)), Rr, heads, body.reference, body.bone_parents, body.levels)
    p = body.bone_parents
    own = np.einsum("nbij,nbj->nbi", T[..., :3], heads) + T[..., 3]
    Tp = T[:, p[1:]]
    par = np.einsum("nbij,nbj->nbi", Tp[..., :3], heads[:, 1:]) + Tp[..., 3]
    np.testing.assert_allclose(own[:, 1:], par, atol=1e-6)  # float32 reference orientations
    np.testing.assert_allclose(own, W[..., 3], atol=1e-6)


def test_ik_is_exact_at_known_shape(body):
    R = random_pose(body, 4, 3)
    betas = np.random.default_rng(1).normal(size=(4, body.n_betas))
    t = np.random.default_rng(2).normal(size=(4, 3))
    v, W = body.pose(R, t, betas)
    res = body.ik(v, betas=betas, fit_shape=False)
    v2 = body.skin(res.rotations, res.translation, res.betas)
    assert np.linalg.norm(v2 - v, axis=-1).mean() < 0.5e-3  # metres
    major = [body.bone_names.index(rot) for _, rot in HUMANOID.values() if rot != "root"]
    assert np.median(angle_deg(res.bone_poses[..., :3][:, major], W[..., :3][:, major])) < 0.5
    np.testing.assert_allclose(res.bone_poses[..., 3], W[..., 3], atol=2e-3)


def test_ik_with_unknown_shape(body):
    R = random_pose(body, 3, 4, deg=20)
    betas = np.random.default_rng(5).normal(size=(3, body.n_betas))
    t = np.random.default_rng(6).normal(size=(3, 3))
    v, W = body.pose(R, t, betas)
    mean_shape = body.ik(v, fit_shape=False)
    fitted = body.ik(v)  # Gauss-Newton on rotations, shape and root from the mean-shape solve
    err = {k: np.linalg.norm(body.skin(r.rotations, r.translation, r.betas) - v, axis=-1).mean()
           for k, r in (("mean", mean_shape), ("fitted", fitted))}
    assert err["mean"] > 0.005 and err["fitted"] < 0.001, err  # metres
    major = [body.bone_names.index(rot) for _, rot in HUMANOID.values() if rot != "root"]
    assert np.median(angle_deg(fitted.bone_poses[..., :3][:, major], W[..., :3][:, major])) < 0.5
    assert np.abs(fitted.betas - betas).max() < 0.2


def test_ik_tolerates_noise(body):
    R = random_pose(body, 2, 6, deg=20)
    v, W = body.pose(R)
    noisy = v + np.random.default_rng(7).normal(0, 0.005, v.shape)
    res = body.ik(noisy, betas=np.zeros(body.n_betas), fit_shape=False)
    major = [body.bone_names.index(rot) for _, rot in HUMANOID.values() if rot != "root" and "finger" not in rot
             and "toe" not in rot]
    assert np.median(angle_deg(res.bone_poses[..., :3][:, major], W[..., :3][:, major])) < 3.0


@pytest.mark.parametrize("kind,k", [("smpl24", 24), ("coco17", 17), ("mediapipe33", 33)])
def test_joint_kinds(body, kind, k):
    v = body.skin(random_pose(body, 2, 8))
    assert body.joints(v, kind).shape == (2, k, 3)
    assert body.joints(v[0], kind).shape == (k, 3)


def test_bad_input_names_the_expected_shape(body):
    with pytest.raises(ValueError, match=r"\(n, 104, 3, 3\)"):
        body.skin(np.zeros((104, 3)))
    with pytest.raises(ValueError, match="NaN"):
        body.skin(np.full((104, 3, 3), np.nan))
    with pytest.raises(ValueError, match="dtype"):
        body.skin(np.full((104, 3, 3), "a"))
    with pytest.raises(ValueError, match=r"13718, 3"):
        body.joints(np.zeros((100, 3)))
    with pytest.raises(ValueError, match="unknown joint kind"):
        body.joints(body.template, "smplx")
    with pytest.raises(ValueError, match=r"\(n, 13718, 3\)"):
        body.ik(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="betas"):
        body.skin(np.tile(np.eye(3), (104, 1, 1)), betas=np.zeros(3))
    with pytest.raises(FileNotFoundError, match="build_body"):
        type(body).load("/nonexistent/body.npz")
