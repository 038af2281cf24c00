"""Preview: projection, drawing changes the pixels where the person is, mp4 output, clear GUI error."""

import cv2
import numpy as np
import pytest

from realtime_hmr.preview import Preview, default_camera_matrix, draw, project
from realtime_hmr.types import BodyResult, Frame, Person


def test_project_centre_and_behind_camera():
    K = default_camera_matrix(640, 480)
    uv, ok = project(np.array([[0, 0, 2.0], [0.5, 0, 2.0], [0, 0, -1.0]]), K)
    np.testing.assert_allclose(uv[0], [320, 240])
    np.testing.assert_allclose(uv[1], [320 + 640 * 0.25, 240])
    assert ok.tolist() == [True, True, False]


def square_person(pid=3):
    v = np.array([[-0.3, -0.3, 2.0], [0.3, -0.3, 2.0], [0.3, 0.3, 2.0], [-0.3, 0.3, 2.0]])
    joints = np.zeros((24, 3)) + [0, 0, 2.0]
    return Person(id=pid, box=np.array([200, 140, 440, 340.0]), score=1.0, body=BodyResult(joints=joints, vertices=v))


def test_draw_mesh_fills_projected_area():
    img = np.zeros((480, 640, 3), np.uint8)
    out = draw(img, [square_person()], faces=np.array([[0, 1, 2], [0, 2, 3]]), fps=30.0)
    assert img.max() == 0  # input untouched
    assert out[240, 300].sum() > 0 and out[200, 400].sum() > 0  # inside the projected square (224..416, 144..336)
    assert out[460, 600].sum() == 0  # far outside


def test_preview_writes_mp4(tmp_path):
    path = tmp_path / "p.mp4"
    pv = Preview(out=path, faces=np.array([[0, 1, 2]]), fps=10)
    for i in range(5):
        pv(Frame(np.zeros((48, 64, 3), np.uint8), t=i / 10, seq=i), [square_person()])
    pv.close()
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 64


def test_window_without_gui_gives_clear_error():
    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        pytest.skip("this OpenCV has a GUI")
    except cv2.error:
        pass
    with pytest.raises(RuntimeError, match="--preview-out"):
        Preview(window=True)


def grid_mesh(n=60, z=2.0):
    """A flat n x n grid, 0.6 m square, facing the camera (2 (n-1)^2 triangles)."""
    g = np.linspace(-0.3, 0.3, n)
    v = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    v = np.concatenate([v, np.full((len(v), 1), z)], 1)
    i = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None]).ravel()
    faces = np.concatenate([np.stack([i, i + 1, i + n], 1), np.stack([i + 1, i + n + 1, i + n], 1)])
    return v, faces


def test_overlapping_triangles_do_not_cancel():
    from realtime_hmr.preview import draw_mesh

    v, f = grid_mesh(4)
    v2 = np.concatenate([v, v + [0.01, 0.01, 0.0]])  # a second copy overlapping the first
    f2 = np.concatenate([f, f + len(v)])
    img = np.zeros((480, 640, 3), np.uint8)
    draw_mesh(img, v2, f2, default_camera_matrix(640, 480), (255, 255, 255), alpha=1.0)
    assert img[240, 320].all() and img[200, 280].all()  # inside both copies: still filled


def test_dense_mesh_splat_matches_exact_fill():
    from realtime_hmr.preview import draw_mesh

    v, f = grid_mesh(80)  # 12,482 faces > max_faces: the splat path
    K = default_camera_matrix(640, 480)
    exact, splat = np.zeros((480, 640, 3), np.uint8), np.zeros((480, 640, 3), np.uint8)
    draw_mesh(exact, v, f, K, (255, 255, 255), alpha=1.0, max_faces=10**6)
    draw_mesh(splat, v, f, K, (255, 255, 255), alpha=1.0)
    a, b = exact[..., 0] > 0, splat[..., 0] > 0
    assert a.sum() > 30000 and (a & b).sum() / (a | b).sum() > 0.9
