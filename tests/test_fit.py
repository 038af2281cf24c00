"""Fitting a body's pose to 2D landmarks (realtime_hmr/body/fit.py) and its place in MeshRecovery (--fit)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from realtime_hmr.body.fit import LandmarkFit, SilhouetteTarget
from tests.test_mesh_geometry import _Fixed, camera, project

TO_CAM = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # body (Z up, -Y front) facing an OpenCV camera
F = 900.0  # focal length of the tests' camera (pixels)


@pytest.fixture(scope="module")
def fitter(body):
    return LandmarkFit(body)


def placed_pose(body, seed=0, deg=12.0, at=(0.1, 0.0, 3.5)):
    """Deltas and root translation of a mildly posed body facing the camera with its pelvis at ``at``."""
    rng = np.random.default_rng(seed)
    D = Rotation.from_rotvec(rng.normal(0, np.deg2rad(deg), (body.n_bones, 3))).as_matrix()
    U0 = body.reference[0]
    D[0] = U0 @ TO_CAM @ U0.T  # W_0 = U_0^T D_0 U_0 = TO_CAM
    pelvis = body.joints(body.skin(D))[0]
    return D, U0 @ (np.asarray(at) - pelvis)  # W_0's translation is U_0^T d_0


def turn_in_image(body, D, d0, bones, ends, deg):
    """Turn each bone (and what hangs on it) so that the landmark ``ends`` at its far end moves across the image,
    not in depth: about the viewing axis' component perpendicular to the segment. A change the 2D landmarks show."""
    _, W = body.pose(D, d0)
    lm = body.joints(body.skin(D, d0), "mediapipe33")
    D = D.copy()
    for name, end, g in zip(bones, ends, deg):
        c = body.bone_names.index(name)
        p = body.bone_parents[c]
        seg = lm[end] - W[0, c, :, 3]
        seg /= np.linalg.norm(seg)
        axis = np.array([0, 0, 1.0]) - seg[2] * seg
        a = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.deg2rad(g)).as_matrix()  # world (camera) axes
        # a = W_p U_p^T dR U_p W_p^T  =>  dR = U_p W_p^T a W_p U_p^T
        Wp, Up = W[0, p, :, :3], body.reference[p]
        D[c] = Up @ Wp.T @ a @ Wp @ Up.T @ D[c]
    return D


def test_jacobian_matches_finite_differences(body, fitter):
    rng = np.random.default_rng(1)
    D = Rotation.from_rotvec(rng.normal(0, 0.3, (body.n_bones, 3))).as_matrix()
    d0, betas = rng.normal(size=3), rng.normal(size=body.n_betas)
    basis = fitter.basis(betas)
    x, W, T = fitter.landmarks(D, d0, basis)
    np.testing.assert_allclose(x, body.joints(body.skin(D, d0, betas), "mediapipe33"), atol=1e-9)
    J = fitter.jacobian(W, T, basis)
    nsel, eps = len(fitter.sel), 1e-6
    num = np.zeros_like(J)
    for k in range(J.shape[-1]):
        Dk, dk = D.copy(), d0.copy()
        if k < 3 * nsel:
            i, axis = divmod(k, 3)
            Dk[fitter.sel[i]] = Rotation.from_rotvec(np.eye(3)[axis] * eps).as_matrix() @ D[fitter.sel[i]]
        else:
            dk[k - 3 * nsel] += eps
        num[..., k] = (fitter.landmarks(Dk, dk, basis)[0] - x) / eps
    np.testing.assert_allclose(J, num, atol=1e-5)


def test_fit_recovers_limbs_the_image_shows(body, fitter):
    K = camera(F)
    D_true, d0 = placed_pose(body)
    betas = np.zeros(body.n_betas)
    truth = body.joints(body.skin(D_true, d0, betas), "mediapipe33")
    xy = project(truth, K)
    # the recovered body has a forearm and a shin turned 20 degrees across the image
    D_off = turn_in_image(body, D_true, d0, ("lowerarm01.L", "lowerleg01.R"), (15, 28), (20.0, -20.0))
    before = body.joints(body.skin(D_off, d0, betas), "mediapipe33")
    r = fitter(D_off, d0, betas, xy, np.ones(33), K, scale_px=400.0)
    after = body.joints(body.skin(r.rotations, r.translation, betas), "mediapipe33")
    err = lambda X: np.linalg.norm(X - truth, axis=1)  # noqa: E731
    px = lambda X: np.linalg.norm(project(X, K) - xy, axis=1)  # noqa: E731
    for lm in (15, 28):  # left wrist, right ankle
        assert err(before)[lm] > 0.05 and err(after)[lm] < err(before)[lm] / 3
        assert px(after)[lm] < px(before)[lm] / 3
    assert np.median(px(after)) < 1.0  # what was right stays right
    np.testing.assert_allclose(r.bone_poses, body.pose(r.rotations, r.translation, betas)[1][0], atol=1e-9)
    # the vertex shift carries the mesh the fit started from onto the fitted body
    np.testing.assert_allclose(body.skin(D_off, d0, betas) + fitter.vertex_shift(betas, r),
                               body.skin(r.rotations, r.translation, betas), atol=1e-9)


def test_fit_moves_the_mesh_it_is_given_when_the_rig_has_another_shape(body, fitter):
    """In video the rig keeps a track's first shape; the decoded mesh of a later frame has its own. The fit must score
    the landmarks of the mesh that comes out (its own, moved by the rig's change), not the rig's."""
    K = camera(F)
    D_true, d0 = placed_pose(body, seed=5)
    betas = np.zeros(body.n_betas)
    kept = betas.copy()
    kept[:3] = (1.5, -1.2, 1.0)  # the shape the track kept: another person's proportions
    truth = body.joints(body.skin(D_true, d0, betas), "mediapipe33")
    xy = project(truth, K)
    D_off = turn_in_image(body, D_true, d0, ("lowerarm01.R", "lowerleg01.L"), (16, 27), (20.0, -20.0))
    mesh = body.skin(D_off, d0, betas)  # the decoded mesh: the right shape, two limbs off
    own = body.joints(mesh, "mediapipe33")
    px = lambda X: np.linalg.norm(project(X, K) - xy, axis=1)  # noqa: E731
    out = {}
    for name, given in (("mesh's landmarks", own), ("rig's", None)):
        r = fitter(D_off, d0, kept, xy, np.ones(33), K, scale_px=400.0, landmarks=given)
        out[name] = body.joints(mesh + fitter.vertex_shift(kept, r), "mediapipe33")
        if given is not None:
            assert r.px_before == pytest.approx(np.median(px(own)), rel=1e-6)
            assert r.px_after == pytest.approx(np.median(px(out[name])), rel=1e-6)
    good, bad = out["mesh's landmarks"], out["rig's"]
    for lm in (16, 27):  # right wrist, left ankle
        assert np.linalg.norm(good[lm] - truth[lm]) < np.linalg.norm(own[lm] - truth[lm]) / 3
    assert np.median(px(good)) < 1.0 and np.median(px(bad)) > 3 * np.median(px(good))


def silhouette_of(body, verts, K, size=(640, 480)) -> np.ndarray:
    """The body's silhouette (H, W) bool: its faces filled in the image."""
    import cv2

    uv = np.round(project(verts, K) * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    mask = np.zeros(size[::-1], np.uint8)
    for tri in uv[body.faces]:  # one by one: fillPoly's even-odd rule would cancel overlapping faces
        cv2.fillConvexPoly(mask, tri, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def test_silhouette_points_and_jacobian(body, fitter):
    """With a silhouette the fit's points are the 33 landmarks then a fixed subset of the vertices, and the analytic
    Jacobian covers them all."""
    rng = np.random.default_rng(7)
    D = Rotation.from_rotvec(rng.normal(0, 0.3, (body.n_bones, 3))).as_matrix()
    d0, betas = rng.normal(size=3), rng.normal(size=body.n_betas)
    basis = fitter.basis(betas, silhouette=True)
    x, W, T = fitter.landmarks(D, d0, basis)
    verts = body.skin(D, d0, betas)
    np.testing.assert_allclose(x[:33], body.joints(verts, "mediapipe33"), atol=1e-9)
    np.testing.assert_allclose(x[33:], verts[fitter.sil_vertices], atol=1e-9)
    J = fitter.jacobian(W, T, basis)
    eps, k = 1e-6, 3 * fitter.sel.tolist().index(body.bone_names.index("lowerarm01.L")) + 1
    i, axis = divmod(k, 3)
    Dk = D.copy()
    Dk[fitter.sel[i]] = Rotation.from_rotvec(np.eye(3)[axis] * eps).as_matrix() @ D[fitter.sel[i]]
    num = (fitter.landmarks(Dk, d0, basis)[0] - x) / eps
    assert np.abs(num).max() > 0.1  # the forearm moves some of the points
    np.testing.assert_allclose(J[..., k], num, atol=1e-5)


def test_silhouette_target_from_a_mask():
    mask = np.zeros((40, 60), bool)
    mask[10:20, 30:50] = True
    unknown = np.zeros_like(mask)
    unknown[:, :5] = True  # beyond the frame's edge
    t = SilhouetteTarget.from_mask(mask, origin=(100, 200), samples=50, unknown=unknown)
    assert t.dist[15, 40] == 0 and t.dist[15, 20] == pytest.approx(10.0) and t.dist[15, 2] == 0
    x, y = (t.points - (100, 200)).astype(int).T
    assert len(t.points) == 50 and mask[y, x].all()
    assert t.grad[0, 15, 20] == pytest.approx(-1.0)  # the distance falls towards the silhouette
    empty = SilhouetteTarget.from_mask(np.zeros((8, 8), bool))
    assert len(empty.points) == 0  # nothing to fit to: the fit leaves the silhouette terms out


def test_silhouette_recovers_a_limb_the_landmarks_miss(body, fitter):
    """A forearm turned across the image whose wrist and hand landmarks are not seen: the landmarks cannot bring it
    back; the person's silhouette does."""
    K = camera(F)
    D_true, d0 = placed_pose(body, seed=8)
    betas = np.zeros(body.n_betas)
    truth = body.skin(D_true, d0, betas)
    xy = project(body.joints(truth, "mediapipe33"), K)
    vis = np.ones(33)
    vis[[15, 17, 19, 21]] = 0.0  # left wrist, pinky, index, thumb: not seen
    D_off = turn_in_image(body, D_true, d0, ("lowerarm01.L",), (15,), (25.0,))
    sil = SilhouetteTarget.from_mask(silhouette_of(body, truth, K))
    forearm = np.asarray(body.weights[:, [body.bone_names.index(b) for b in ("lowerarm01.L", "wrist.L")]]
                         .sum(1)).ravel() > 0.5
    err = lambda v: np.linalg.norm(v - truth, axis=1)[forearm].mean()  # noqa: E731
    start = body.skin(D_off, d0, betas)
    plain = fitter(D_off, d0, betas, xy, vis, K, scale_px=400.0)
    with_sil = fitter(D_off, d0, betas, xy, vis, K, scale_px=400.0, silhouette=sil, vertices=start)
    e0 = err(start)
    e_plain = err(start + fitter.vertex_shift(betas, plain))
    e_sil = err(start + fitter.vertex_shift(betas, with_sil))
    assert e0 > 0.05 and e_plain > 0.7 * e0  # the landmarks alone leave the forearm where it was
    assert e_sil < e0 / 2.5  # 51 -> 16 mm here
    assert np.linalg.norm(start + fitter.vertex_shift(betas, with_sil) - truth, axis=1).mean() < 0.01


def test_fit_with_nothing_visible_keeps_the_body(body, fitter):
    K = camera(F)
    D, d0 = placed_pose(body, seed=2)
    betas = np.zeros(body.n_betas)
    xy = project(body.joints(body.skin(D, d0, betas), "mediapipe33"), K) + 40.0  # far off, but not visible
    r = fitter(D, d0, betas, xy, np.zeros(33), K, scale_px=400.0)
    np.testing.assert_allclose(r.rotations, D, atol=1e-9)
    np.testing.assert_allclose(r.translation, d0, atol=1e-9)


def test_fit_outlier_landmark_does_not_drag_the_body(body, fitter):
    """One landmark wildly off (a swapped or misplaced detection) costs linearly, not quadratically."""
    K = camera(F)
    D, d0 = placed_pose(body, seed=3)
    betas = np.zeros(body.n_betas)
    truth = body.joints(body.skin(D, d0, betas), "mediapipe33")
    xy = project(truth, K)
    xy[16] += (150.0, -120.0)  # right wrist
    r = fitter(D, d0, betas, xy, np.ones(33), K, scale_px=400.0)
    moved = np.linalg.norm(body.joints(body.skin(r.rotations, r.translation, betas), "mediapipe33") - truth, axis=1)
    # the outlier is ~0.6 m away; plain least squares (robust=1e6) drags the wrist and the body ~0.2 m towards it
    assert moved.max() < 0.05


def test_mesh_recovery_fit_moves_the_body_onto_the_landmarks(body):
    from realtime_hmr.mesh import MeshRecovery
    from realtime_hmr.types import Person

    K = camera(F)
    D_true, d0 = placed_pose(body, seed=4)
    truth = body.skin(D_true, d0)
    D_off = turn_in_image(body, D_true, d0, ("upperarm01.R", "lowerleg01.L"), (14, 27), (-18.0, 15.0))
    off = body.skin(D_off, d0)  # what the decoder "recovered": two limbs off
    R = TO_CAM
    canon = (off - off.mean(0)) @ R  # its canonical mesh (camera-from-body rotation R)
    lm = body.joints(truth, "mediapipe33")
    person = Person(id=1, box=np.array([200.0, 40.0, 440.0, 440.0]), score=1.0,
                    landmarks_2d=np.c_[project(lm, K), np.zeros(33)], landmarks_world=lm - lm[23:25].mean(0),
                    visibility=np.ones(33))
    fixed = dict(decoder=_Fixed({"tokens": np.zeros(54, np.int64), "tokens_argmax": np.zeros(54, np.int64),
                                 "rot6": np.concatenate([R[:, 0], R[:, 1]])}),
                 vq_decoder=_Fixed({"vertices": canon.astype(np.float32)}), body=body, camera_matrix=K)
    plain = MeshRecovery(tracker=None, **fixed).recover([person], K)[0].body
    fitted = MeshRecovery(tracker=None, fit=True, **fixed).recover([person], K)[0].body
    pve = lambda v: np.linalg.norm(v - truth, axis=1).mean()  # noqa: E731
    assert pve(fitted.vertices) < pve(plain.vertices) / 2
    before, after = fitted.extras["fit_px"]  # median over the 33 landmarks, most of which were right already
    assert after <= before + 0.5
    assert "fit_px" not in plain.extras
    with pytest.raises(ValueError, match="deterministic"):
        MeshRecovery(tracker=None, mode="stochastic", step=object(), fit=True, **fixed)


def test_mesh_recovery_fit_uses_the_person_silhouette(body):
    """MeshRecovery(fit=True, silhouette=True) fits each person on its own silhouette (the tracker's segmentation in
    its crop): a forearm whose landmarks are not seen comes back; without silhouettes it is a clear error."""
    from realtime_hmr.mesh import MeshRecovery
    from realtime_hmr.types import Person, Silhouette

    K = camera(F)
    D_true, d0 = placed_pose(body, seed=8)
    truth = body.skin(D_true, d0)
    off = body.skin(turn_in_image(body, D_true, d0, ("lowerarm01.L",), (15,), (25.0,)), d0)
    R = TO_CAM
    canon = (off - off.mean(0)) @ R
    lm = body.joints(truth, "mediapipe33")
    vis = np.ones(33)
    vis[[15, 17, 19, 21]] = 0.0  # left wrist and hand: not seen
    crop_from_image = np.array([[0.5, 0, -100.0], [0, 0.5, 0.0]])  # a crop at half size, from x = 200
    mask = silhouette_of(body, truth, K)[:, 200:][::2, ::2].astype(np.float32)
    person = Person(id=1, box=np.r_[project(lm, K).min(0), project(lm, K).max(0)], score=1.0,
                    landmarks_2d=np.c_[project(lm, K), np.zeros(33)], landmarks_world=lm - lm[23:25].mean(0),
                    visibility=vis, silhouette=Silhouette(mask, crop_from_image, (640, 480)))
    fixed = dict(decoder=_Fixed({"tokens": np.zeros(54, np.int64), "tokens_argmax": np.zeros(54, np.int64),
                                 "rot6": np.concatenate([R[:, 0], R[:, 1]])}),
                 vq_decoder=_Fixed({"vertices": canon.astype(np.float32)}), body=body, camera_matrix=K)
    forearm = np.asarray(body.weights[:, [body.bone_names.index(b) for b in ("lowerarm01.L", "wrist.L")]]
                         .sum(1)).ravel() > 0.5
    err = lambda v: np.linalg.norm(v - truth, axis=1)[forearm].mean()  # noqa: E731
    fit = MeshRecovery(tracker=None, fit=True, **fixed).recover([person], K)[0].body
    sil = MeshRecovery(tracker=None, fit=True, silhouette=True, **fixed).recover([person], K)[0].body
    assert err(off) > 0.05 and err(fit.vertices) > 0.7 * err(off) and err(sil.vertices) < err(off) / 2
    with pytest.raises(ValueError, match="fit=True"):
        MeshRecovery(tracker=None, silhouette=True, **fixed)
    from dataclasses import replace

    with pytest.raises(ValueError, match="mask=True"):
        MeshRecovery(tracker=None, fit=True, silhouette=True, **fixed).recover([replace(person, silhouette=None)], K)


def test_rotvec_is_the_log_map():
    from realtime_hmr.body.fit import rotvec

    rv = np.random.default_rng(5).normal(0, 1.0, (200, 3))
    rv = rv / np.linalg.norm(rv, axis=1, keepdims=True) * np.random.default_rng(6).uniform(0, 3.0, (200, 1))
    rv[:3] = [[0, 0, 0], [1e-9, 0, 0], [0, 2e-5, 0]]
    np.testing.assert_allclose(rotvec(Rotation.from_rotvec(rv).as_matrix()), rv, atol=1e-7)


def test_fit_takes_bad_input_without_harm(body, fitter):
    """NaN landmarks are left out, a missing box falls back to the landmarks' extent, and with nothing usable the body
    comes back as it was."""
    K = camera(F)
    D, d0 = placed_pose(body, seed=6)
    betas = np.zeros(body.n_betas)
    truth = body.joints(body.skin(D, d0, betas), "mediapipe33")
    xy = project(truth, K)
    D_off = turn_in_image(body, D, d0, ("lowerarm01.L",), (15,), (20.0,))
    xy_nan = xy.copy()
    xy_nan[:5] = np.nan
    r = fitter(D_off, d0, betas, xy_nan, np.ones(33), K, scale_px=0.0)
    after = body.joints(body.skin(r.rotations, r.translation, betas), "mediapipe33")
    before = body.joints(body.skin(D_off, d0, betas), "mediapipe33")
    wrist = lambda X: np.linalg.norm(X[15] - truth[15])  # noqa: E731
    assert np.isfinite(after).all() and wrist(after) < wrist(before) / 2
    r = fitter(D_off, d0, betas, np.full((33, 2), np.nan), np.ones(33), K, scale_px=300.0)
    assert r.iterations == 0 and np.array_equal(r.rotations, D_off) and np.isnan(r.px_before)
