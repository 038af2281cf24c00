"""Pinhole cameras for synthetic scenes: intrinsics/extrinsics sampling, projection, GL matrices.

Conventions. World = the body frame (metres, Z up, +X the subject's left, -Y the subject's front), ground at z = 0.
Camera = OpenCV axes (x right, y down, z forward): ``X_cam = R @ X_world + t``; pixels ``u = fx x/z + cx``.

Scene sampling (:func:`sample_camera`), per image:
- horizontal field of view: 85 % webcam/sports-like U(40, 90) degrees, 15 % telephoto U(12, 30) degrees;
- the camera looks at the main person from a uniform azimuth (full turn of relative yaw), from a height of
  0.3-2.5 m, at a distance chosen so the person fills a sampled fraction of the image height (80 %: 0.35-0.9, fully
  in view; 20 %: 0.9-1.6, partly out of frame), clipped to 1.5-10 m;
- the aim point is jittered around the body's centre (more for partly-out-of-frame shots), principal point jittered
  by up to 2 % of the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIST_RANGE = (1.5, 10.0)


@dataclass
class Camera:
    K: np.ndarray  # (3, 3) intrinsics
    R: np.ndarray  # (3, 3) world -> camera rotation
    t: np.ndarray  # (3,) world -> camera translation
    size: tuple[int, int]  # (width, height) pixels

    @property
    def center(self) -> np.ndarray:
        """Camera position in the world."""
        return -self.R.T @ self.t

    @property
    def hfov_deg(self) -> float:
        return float(np.degrees(2 * np.arctan(self.size[0] / (2 * self.K[0, 0]))))

    def to_camera(self, X: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> camera frame (..., 3)."""
        return X @ self.R.T + self.t

    def project(self, X: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> pixels (..., 2) (points behind the camera give meaningless values)."""
        return project(self.to_camera(X), self.K)

    def gl_mvp(self, near: float = 0.05, far: float = 100.0) -> np.ndarray:
        """4x4 matrix taking world points to GL clip space, image row 0 at the top of the framebuffer read-back."""
        return gl_projection(self.K, self.size, near, far) @ np.vstack([np.hstack([self.R, self.t[:, None]]),
                                                                      [0.0, 0.0, 0.0, 1.0]])


def project(Xc: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) -> pixels (..., 2)."""
    z = np.maximum(Xc[..., 2:3], 1e-6)
    return Xc[..., :2] / z * K[[0, 1], [0, 1]] + K[:2, 2]


def intrinsics(hfov_deg: float, size: tuple[int, int], pp_offset=(0.0, 0.0)) -> np.ndarray:
    w, h = size
    f = (w / 2) / np.tan(np.radians(hfov_deg) / 2)
    return np.array([[f, 0, w / 2 + pp_offset[0]], [0, f, h / 2 + pp_offset[1]], [0, 0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of an OpenCV camera at ``eye`` looking at ``target`` with world ``up`` pointing up in the image."""
    f = np.asarray(target, float) - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, up)
    if np.linalg.norm(r) < 1e-6:  # looking straight up or down
        r = np.cross(f, (0.0, 1.0, 0.0))
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    R = np.stack([r, d, f])
    return R, -R @ eye


def gl_projection(K: np.ndarray, size: tuple[int, int], near: float, far: float) -> np.ndarray:
    """OpenCV camera frame -> GL clip space, so that glReadPixels row 0 is image row 0 (no flip needed)."""
    w, h = size
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # x_ndc = (u / w) * 2 - 1 with u = fx x/z + cx; y_ndc = (v / h) * 2 - 1 (framebuffer row 0 = image top).
    return np.array([
        [2 * fx / w, 0, 2 * cx / w - 1, 0],
        [0, 2 * fy / h, 2 * cy / h - 1, 0],
        [0, 0, (far + near) / (far - near), -2 * far * near / (far - near)],
        [0, 0, 1, 0],
    ])


def sample_camera(rng: np.random.Generator, size: tuple[int, int], body_min: np.ndarray, body_max: np.ndarray
                  ) -> tuple[Camera, dict]:
    """A camera looking at a body with world bounding box [body_min, body_max]; returns (camera, scene info)."""
    tele = rng.random() < 0.15
    hfov = rng.uniform(12, 30) if tele else rng.uniform(40, 90)
    pp = rng.uniform(-0.02, 0.02, 2) * np.asarray(size)
    K = intrinsics(hfov, size, pp)
    vfov = 2 * np.arctan(size[1] / (2 * K[1, 1]))
    partial = rng.random() < 0.2
    fill = rng.uniform(0.9, 1.6) if partial else rng.uniform(0.35, 0.9)
    height = float(body_max[2] - body_min[2])
    dist = float(np.clip(height / (2 * fill * np.tan(vfov / 2)), *DIST_RANGE))
    centre = (body_min + body_max) / 2
    az = rng.uniform(0, 2 * np.pi)
    cam_h = rng.uniform(0.3, 2.5)
    eye = np.array([centre[0] + dist * np.cos(az), centre[1] + dist * np.sin(az), cam_h])
    jit = (0.35 if partial else 0.08) * height
    target = centre + rng.uniform(-jit, jit, 3) * np.array([1.0, 1.0, 1.0])
    R, t = look_at(eye, target)
    info = {"hfov_deg": float(hfov), "telephoto": bool(tele), "partial": bool(partial), "fill": float(fill),
            "distance_m": float(np.linalg.norm(eye - centre)), "azimuth_rad": float(az), "camera_height_m": cam_h}
    return Camera(K, R, t, tuple(size)), info


def relative_yaw_deg(root_rotation: np.ndarray, camera: Camera, position: np.ndarray) -> float:
    """The body's heading relative to the camera in degrees, (-180, 180]: 0 = facing the camera, 90 = the subject's
    left side towards the camera. The body's front is -Y of its root rotation, projected on the ground."""
    front = -root_rotation[:, 1]
    to_cam = camera.center - position
    a = np.arctan2(front[1], front[0])
    b = np.arctan2(to_cam[1], to_cam[0])
    return float((np.degrees(b - a) + 180.0) % 360.0 - 180.0)
