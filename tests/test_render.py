"""Cameras and the offscreen renderer (tiny images; skipped where moderngl's EGL backend is unavailable)."""

import numpy as np
import pytest

from realtime_hmr.train import camera as C


def test_look_at_and_projection():
    R, t = C.look_at(np.array([0.0, -3.0, 1.0]), np.array([0.0, 0.0, 1.0]))
    cam = C.Camera(C.intrinsics(60, (200, 100)), R, t, (200, 100))
    np.testing.assert_allclose(cam.center, [0, -3, 1], atol=1e-12)
    np.testing.assert_allclose(cam.project(np.array([0.0, 0.0, 1.0])), [100, 50], atol=1e-9)
    # world up is image up (smaller v), the world's +X is image right for a camera looking along +Y
    assert cam.project(np.array([0.0, 0.0, 1.5]))[1] < 50
    assert cam.project(np.array([0.5, 0.0, 1.0]))[0] > 100
    assert cam.hfov_deg == pytest.approx(60)
    # a point at the image's right edge: x / z = tan(hfov / 2)
    np.testing.assert_allclose(cam.project(np.array([3 * np.tan(np.radians(30)), 0.0, 1.0]))[0], 200, atol=1e-9)


def test_relative_yaw():
    eye = np.eye(3)
    cam_front = C.Camera(C.intrinsics(60, (64, 64)), *C.look_at(np.array([0.0, -3.0, 1.0]), np.zeros(3)), (64, 64))
    assert C.relative_yaw_deg(eye, cam_front, np.zeros(3)) == pytest.approx(0.0)  # the body's front is -Y
    cam_left = C.Camera(C.intrinsics(60, (64, 64)), *C.look_at(np.array([3.0, 0.0, 1.0]), np.zeros(3)), (64, 64))
    assert C.relative_yaw_deg(eye, cam_left, np.zeros(3)) == pytest.approx(90.0)  # +X is the subject's left


def test_sample_camera_ranges():
    rng = np.random.default_rng(0)
    fovs, dists = [], []
    for _ in range(300):
        cam, info = C.sample_camera(rng, (320, 240), np.array([-0.3, -0.2, 0.0]), np.array([0.3, 0.2, 1.7]))
        fovs.append(cam.hfov_deg)
        dists.append(np.linalg.norm(cam.center[:2]))
        if not info["partial"]:  # the body's centre is near the image centre
            u, v = cam.project(np.array([0.0, 0.0, 0.85]))
            assert 0.15 * 320 < u < 0.85 * 320 and 0.15 * 240 < v < 0.85 * 240
    fovs, dists = np.array(fovs), np.array(dists)
    assert fovs.min() >= 12 and fovs.max() <= 90 and (fovs < 31).mean() > 0.05 and (fovs > 40).mean() > 0.7
    assert dists.min() >= 1.4 and dists.max() <= 10.1


@pytest.fixture(scope="module")
def renderer():
    pytest.importorskip("moderngl")
    from realtime_hmr.body import Body
    from realtime_hmr.train import render

    try:
        ctx = render.create_context("egl")
    except Exception as e:  # noqa: BLE001 - any EGL failure means: no renderer on this machine
        pytest.skip(f"moderngl EGL context unavailable: {e}")
    return render.Renderer(Body.load(), (128, 96), samples=0, ctx=ctx)


def _standing(body, xy=(0.0, 0.0)):
    v = body.skin(np.broadcast_to(np.eye(3), (body.n_bones, 3, 3)))
    return v - [v[:, 0].mean() - xy[0], v[:, 1].mean() - xy[1], v[:, 2].min()]


def test_render_matches_projection(renderer):
    from realtime_hmr.body import Body
    from realtime_hmr.train import render

    body = Body.load()
    v = _standing(body)
    R, t = C.look_at(np.array([0.0, -4.0, 0.9]), np.array([0.0, 0.0, 0.9]))
    cam = C.Camera(C.intrinsics(50, (128, 96)), R, t, (128, 96))
    rng = np.random.default_rng(0)
    app = render.sample_appearance(rng, renderer.parts)
    rgba, ids = renderer.draw([v], [app], cam, render.sample_light(rng))
    assert rgba.shape == (96, 128, 4) and ids.shape == (96, 128)
    ys, xs = np.nonzero(ids)
    assert set(np.unique(ids)) == {0, 1}
    uv = cam.project(v)
    # the mask's bounding box is the projected mesh's (within a pixel or two)
    np.testing.assert_allclose([xs.min(), xs.max(), ys.min(), ys.max()],
                               [uv[:, 0].min(), uv[:, 0].max(), uv[:, 1].min(), uv[:, 1].max()], atol=2.0)
    pelvis = cam.project(body.joints(v, "smpl24")[0]).round().astype(int)
    assert ids[pelvis[1], pelvis[0]] == 1
    assert (rgba[..., 3][ids > 0] == 255).all() and (rgba[..., 3][ids == 0] == 0).all()


def test_two_people_ids_and_occlusion(renderer):
    from realtime_hmr.body import Body
    from realtime_hmr.train import render

    body = Body.load()
    near, far = _standing(body, (0.0, 0.0)), _standing(body, (0.0, 2.0))  # the far one hides behind the near one
    side = _standing(body, (1.2, 2.0))
    R, t = C.look_at(np.array([0.0, -4.0, 0.9]), np.array([0.3, 0.0, 0.9]))
    cam = C.Camera(C.intrinsics(70, (128, 96)), R, t, (128, 96))
    rng = np.random.default_rng(1)
    apps = [render.sample_appearance(rng, renderer.parts) for _ in range(3)]
    _, ids = renderer.draw([far, near, side], apps, cam, render.sample_light(rng))
    assert set(np.unique(ids)) == {0, 1, 2, 3}
    pelvis = cam.project(body.joints(near, "smpl24")[0]).round().astype(int)
    assert ids[pelvis[1], pelvis[0]] == 2  # depth test: the near person wins


def test_appearance_and_backgrounds_deterministic(renderer):
    from realtime_hmr.train import render

    a1 = render.sample_appearance(np.random.default_rng(5), renderer.parts)
    a2 = render.sample_appearance(np.random.default_rng(5), renderer.parts)
    np.testing.assert_array_equal(a1.mat, a2.mat)
    assert set(np.unique(a1.mat)) <= set(range(render.N_MAT)) and (a1.mat == render.SKIN).any()
    bgs = render.Backgrounds((64, 48))
    for s in range(6):
        b1, b2 = bgs.sample(np.random.default_rng(s)), bgs.sample(np.random.default_rng(s))
        assert b1.shape == (48, 64, 3) and b1.dtype == np.uint8
        np.testing.assert_array_equal(b1, b2)


def test_composite():
    from realtime_hmr.train.render import composite

    bg = np.full((4, 4, 3), 100, np.uint8)
    fg = np.zeros((4, 4, 4), np.uint8)
    fg[0, 0] = (200, 10, 20, 255)
    fg[1, 1] = (50, 50, 50, 128)  # premultiplied half coverage
    out = composite(fg, bg)
    np.testing.assert_array_equal(out[0, 0], [200, 10, 20])
    np.testing.assert_array_equal(out[2, 2], [100, 100, 100])
    np.testing.assert_allclose(out[1, 1], 50 + 100 * (1 - 128 / 255), atol=1)


def test_demo_clip_asset():
    """The shipped demo clip: 640x480, 150 frames at 30 fps, ground truth beside it that matches its projection."""
    import json
    from pathlib import Path

    import cv2

    d = Path(__file__).resolve().parents[1] / "realtime_hmr" / "assets" / "demo"
    if not (d / "demo.mp4").exists():
        pytest.skip("demo clip not built (python -m realtime_hmr.train.demo_clip)")
    meta = json.loads((d / "demo.json").read_text())
    assert (d / "demo.mp4").stat().st_size == meta["bytes"] <= 3_500_000
    cap = cv2.VideoCapture(str(d / "demo.mp4"))
    n = 0
    ok, frame = cap.read()
    first = frame
    while ok:
        n += 1
        ok, frame = cap.read()
    assert n == meta["frames"] == 150 and first.shape == (480, 640, 3)
    with np.load(d / "demo_gt.npz", allow_pickle=False) as z:
        j, uv, K = z["joints24"], z["joints24_2d"], z["camera_K"]
    assert j.shape == (150, 2, 24, 3) and (j[..., 2] > 1).all()
    np.testing.assert_allclose(C.project(j, K), uv, atol=1e-2)
    # both people are inside the image at the first frame, and the first frame is not blank
    assert (uv[0, ..., 0] > 0).all() and (uv[0, ..., 0] < 640).all() and first.std() > 10
