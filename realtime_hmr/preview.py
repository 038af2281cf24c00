"""Preview sink: the mesh (filled, translucent) or joints drawn over the frame, with ids and FPS, to a window and/or
an mp4 file. Pure drawing functions first, the sink last.

Projection uses a pinhole camera matrix K: the one given, else ``body.extras["camera_matrix"]``, else a guess
(focal length = the larger image side, principal point at the centre) - pass the mesh stage's K to be exact.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
BLAZEPOSE_EDGES = ((11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25),
                   (25, 27), (27, 29), (29, 31), (27, 31), (24, 26), (26, 28), (28, 30), (30, 32), (28, 32),
                   (0, 2), (0, 5), (2, 7), (5, 8), (9, 10), (15, 17), (15, 19), (16, 18), (16, 20))
_PALETTE = ((66, 135, 245), (80, 200, 120), (245, 160, 66), (200, 80, 200), (60, 200, 230), (230, 90, 90))


def color(pid: int) -> tuple[int, int, int]:
    return _PALETTE[pid % len(_PALETTE)]


def default_camera_matrix(width: int, height: int) -> np.ndarray:
    f = float(max(width, height))
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])


def project(points: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N, 2) of camera-space points (N, 3) (OpenCV axes) and a mask of points in front of the camera."""
    p = np.asarray(points, np.float64)
    z = p[:, 2]
    ok = np.isfinite(p).all(1) & (z > 1e-3)
    zs = np.where(ok, z, 1.0)
    uv = np.stack([K[0, 0] * p[:, 0] / zs + K[0, 2], K[1, 1] * p[:, 1] / zs + K[1, 2]], 1)
    return uv, ok


def draw_mesh(image: np.ndarray, vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, rgb, alpha=0.45,
              max_faces: int = 4000) -> None:
    """Blend the mesh's silhouette over ``image`` in place.

    Up to ``max_faces`` triangles are filled exactly, one by one; a denser mesh (OpenCV fills ~1.5 us per
    triangle, 40 ms for a 27k-face body) is splatted instead: every projected vertex marks the mask, and a
    morphological closing as wide as the typical projected edge fills the gaps (~2 ms). Blending touches only the
    mesh's bounding box.
    """
    uv, ok = project(vertices, K)
    h, w = image.shape[:2]
    tri = faces[ok[faces].all(1)]
    if len(tri) == 0:
        return
    used = uv[ok]
    x0, y0 = np.clip(np.floor(used.min(0)).astype(int) - 2, 0, [w, h])
    x1, y1 = np.clip(np.ceil(used.max(0)).astype(int) + 3, 0, [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    local = uv - [x0, y0]
    if len(tri) <= max_faces:  # one call per triangle: a single fillPoly would cancel overlapping triangles out
        for t in np.round(local[tri] * 8).astype(np.int32):
            cv2.fillConvexPoly(mask, t, 255, lineType=cv2.LINE_8, shift=3)
    else:
        p = np.round(local[ok]).astype(np.int64)
        inside = (p[:, 0] >= 0) & (p[:, 0] < x1 - x0) & (p[:, 1] >= 0) & (p[:, 1] < y1 - y0)
        mask[p[inside, 1], p[inside, 0]] = 255
        some = tri[:: max(1, len(tri) // 2000)]
        edge = np.median(np.linalg.norm(local[some[:, 0]] - local[some[:, 1]], axis=1))
        k = int(np.clip(np.ceil(edge * 1.5), 1, 31)) | 1
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    roi = image[y0:y1, x0:x1]
    blended = cv2.addWeighted(roi, 1 - alpha, np.full_like(roi, rgb[::-1]), alpha, 0)
    cv2.copyTo(blended, mask, roi)


def draw_skeleton(image, points_2d, edges, rgb, ok=None) -> None:
    ok = np.isfinite(points_2d).all(1) if ok is None else ok
    for a, b in edges:
        if ok[a] and ok[b]:
            cv2.line(image, tuple(map(int, points_2d[a])), tuple(map(int, points_2d[b])), rgb[::-1], 2, cv2.LINE_AA)
    for p in points_2d[ok]:
        cv2.circle(image, tuple(map(int, p)), 3, rgb[::-1], -1, cv2.LINE_AA)


def put_text(image: np.ndarray, text: str, org: tuple[int, int], scale: float, rgb, thickness: int = 1) -> None:
    """cv2.putText on a view around the text only (antialiased putText on a whole large frame costs ~5-10 ms)."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    h, w = image.shape[:2]
    x0, y0 = max(0, org[0] - 2), max(0, org[1] - th - 2)
    x1, y1 = min(w, org[0] + tw + 2), min(h, org[1] + base + 2)
    if x1 > x0 and y1 > y0:
        cv2.putText(image[y0:y1, x0:x1], text, (org[0] - x0, org[1] - y0), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    rgb[::-1], thickness, cv2.LINE_AA)


def draw(image: np.ndarray, persons, faces=None, K=None, fps: float | None = None) -> np.ndarray:
    """A copy of ``image`` with every person: mesh (if faces and vertices) or 3D joints, else 2D landmarks; box, id."""
    out = image.copy()
    h, w = out.shape[:2]
    for p in persons:
        rgb = color(p.id)
        body = p.body
        k = K if K is not None else (body.extras.get("camera_matrix") if body is not None else None)
        k = default_camera_matrix(w, h) if k is None else np.asarray(k)
        if body is not None and body.vertices is not None and faces is not None:
            draw_mesh(out, body.vertices, faces, k, rgb)
        if body is not None and body.joints is not None and len(body.joints) == len(SMPL_PARENTS):
            uv, ok = project(body.joints, k)
            draw_skeleton(out, uv, [(i, j) for i, j in enumerate(SMPL_PARENTS) if j >= 0], rgb, ok)
        elif p.landmarks_2d is not None:
            draw_skeleton(out, np.asarray(p.landmarks_2d)[:, :2], BLAZEPOSE_EDGES, rgb)
        x0, y0, x1, y1 = (int(v) for v in p.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), rgb[::-1], 1)
        put_text(out, f"id {p.id}", (x0, max(12, y0 - 4)), 0.5, rgb)
    if fps is not None:
        put_text(out, f"{fps:5.1f} FPS", (8, 20), 0.6, (255, 255, 255), 2)
    return out


class Preview:
    """Pipeline sink: a window (``window=True``) and/or an mp4 (``out``). 'q' or Esc in the window stops the run."""

    def __init__(self, window: bool = False, out: str | Path | None = None, *, faces: np.ndarray | None = None,
                 camera_matrix: np.ndarray | None = None, fps: float = 30.0, title: str = "realtime-hmr"):
        if not window and out is None:
            raise ValueError("Preview needs window=True or an output file")
        self.window, self.out, self.faces, self.K, self.fps, self.title = window, out, faces, camera_matrix, fps, title
        if window:
            try:
                cv2.namedWindow(title, cv2.WINDOW_NORMAL)
            except cv2.error as e:
                raise RuntimeError("this OpenCV build has no GUI (e.g. opencv-python-headless), so --preview cannot "
                                   "open a window; write a video instead with --preview-out FILE.mp4") from e
        self._writer = None
        self._last: float | None = None
        self._rate: float | None = None
        self.frames = 0

    def __call__(self, frame, persons) -> None:
        now = time.perf_counter()
        if self._last is not None and now > self._last:
            inst = 1.0 / (now - self._last)
            self._rate = inst if self._rate is None else 0.9 * self._rate + 0.1 * inst
        self._last = now
        image = draw(frame.image, persons, self.faces, self.K, self._rate)
        if self.out is not None:
            if self._writer is None:
                Path(self.out).parent.mkdir(parents=True, exist_ok=True)
                h, w = image.shape[:2]
                self._writer = cv2.VideoWriter(str(self.out), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
                if not self._writer.isOpened():
                    raise RuntimeError(f"cannot write video {self.out}")
            self._writer.write(image)
        if self.window:
            cv2.imshow(self.title, image)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                raise KeyboardInterrupt
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            log.info("preview written to %s (%d frames)", self.out, self.frames)
        if self.window:
            cv2.destroyWindow(self.title)
