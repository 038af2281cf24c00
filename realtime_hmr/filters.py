"""One Euro filters (Casiez et al., CHI 2012) for points and for rotations, and a per-track bank as a stage.

The cutoff frequency of a first-order low-pass rises with the signal's speed: ``fc = min_cutoff + beta * |v|``,
so slow motion is smoothed hard (little jitter) and fast motion follows with little lag.
- :class:`PointFilter`: arrays of points ``(..., D)``; the speed is the norm of each point's velocity.
- :class:`RotationFilter`: unit quaternions ``(..., 4)`` x, y, z, w, filtered as rotations: the speed is the
  angular velocity (rad/s) and the low-pass step is a slerp, on the hemisphere of the previous output.
- :class:`Smoother`: a pipeline stage holding one set of filters per person id, forgetting ended tracks.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from realtime_hmr.config import SmoothingConfig


def alpha(cutoff, dt: float):
    """Smoothing factor of an exponential low-pass with cutoff ``cutoff`` Hz sampled every ``dt`` s."""
    return 1.0 / (1.0 + 1.0 / (2 * math.pi * np.asarray(cutoff) * dt))


class PointFilter:
    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.t = self.x_raw = self.x = self.dx = None

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.x is None or x.shape != self.x.shape or not np.isfinite(x).all() or not np.isfinite(self.x).all():
            self.t, self.x_raw, self.x, self.dx = t, x, x.copy(), np.zeros(x.shape[:-1])
            return x.copy()
        dt = t - self.t
        if dt <= 0:
            return self.x.copy()
        speed = np.linalg.norm(x - self.x_raw, axis=-1) / dt
        self.dx += alpha(self.d_cutoff, dt) * (speed - self.dx)
        a = alpha(self.min_cutoff + self.beta * self.dx, dt)[..., None]
        self.x = self.x + a * (x - self.x)
        self.t, self.x_raw = t, x
        return self.x.copy()


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions x, y, z, w (broadcasting)."""
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz], -1)


def quat_conj(q: np.ndarray) -> np.ndarray:
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def quat_angle(q: np.ndarray) -> np.ndarray:
    """Rotation angle in [0, pi] of unit quaternions."""
    return 2 * np.arctan2(np.linalg.norm(q[..., :3], axis=-1), np.abs(q[..., 3]))


def slerp(q0: np.ndarray, q1: np.ndarray, t) -> np.ndarray:
    """Spherical interpolation from q0 to q1 by fraction t (per quaternion), along the shorter arc."""
    t = np.asarray(t, dtype=np.float64)[..., None]
    d = np.sum(q0 * q1, -1, keepdims=True)
    q1 = np.where(d < 0, -q1, q1)
    d = np.clip(np.abs(d), -1.0, 1.0)
    theta = np.arccos(d)
    s = np.sin(theta)
    small = s < 1e-6
    w0 = np.where(small, 1 - t, np.sin((1 - t) * theta) / np.where(small, 1, s))
    w1 = np.where(small, t, np.sin(t * theta) / np.where(small, 1, s))
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


class RotationFilter:
    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.t = self.q_raw = self.q = self.dq = None

    def __call__(self, t: float, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        q = q / np.linalg.norm(q, axis=-1, keepdims=True)
        if self.q is None or q.shape != self.q.shape or not np.isfinite(q).all():
            self.t, self.q_raw, self.q, self.dq = t, q, q.copy(), np.zeros(q.shape[:-1])
            return q.copy()
        dt = t - self.t
        if dt <= 0:
            return self.q.copy()
        q = np.where(np.sum(q * self.q, -1, keepdims=True) < 0, -q, q)  # output hemisphere stays continuous
        speed = quat_angle(quat_mul(quat_conj(self.q_raw), q)) / dt  # rad/s
        self.dq += alpha(self.d_cutoff, dt) * (speed - self.dq)
        self.q = slerp(self.q, q, alpha(self.min_cutoff + self.beta * self.dq, dt))
        self.t, self.q_raw = t, q
        return self.q.copy()


class Smoother:
    """Pipeline stage: One Euro filters per person id on joints, translation, vertices and bone rotations.

    Filters live per track and are dropped when a track has not been seen for ``forget_after_s`` seconds, so a
    new person (or a re-used id after a gap) starts unfiltered. Rotations use ``rot_min_cutoff``/``rot_beta``
    (speed in rad/s), points ``min_cutoff``/``beta`` (speed in m/s). Persons are returned as new objects.
    """

    FIELDS = ("joints", "translation", "vertices")

    def __init__(self, config: SmoothingConfig | None = None, forget_after_s: float = 1.0):
        self.config = config or SmoothingConfig()
        self.forget_after_s = forget_after_s
        self.tracks: dict[int, tuple[float, dict]] = {}

    def _filters(self) -> dict:
        c = self.config
        f = {k: PointFilter(c.min_cutoff, c.beta, c.d_cutoff) for k in self.FIELDS}
        f["rotations"] = RotationFilter(c.rot_min_cutoff, c.rot_beta, c.d_cutoff)
        return f

    def __call__(self, frame, persons: list) -> list:
        if not self.config.enabled:
            return persons
        t = frame.t
        self.tracks = {k: v for k, v in self.tracks.items() if t - v[0] <= self.forget_after_s}
        out = []
        for p in persons:
            if p.body is None:
                out.append(p)
                continue
            filters = self.tracks[p.id][1] if p.id in self.tracks else self._filters()
            self.tracks[p.id] = (t, filters)
            changes = {}
            for name, flt in filters.items():
                value = getattr(p.body, name)
                if value is not None:
                    changes[name] = flt(t, value).astype(np.asarray(value).dtype, copy=False)
            out.append(dataclasses.replace(p, body=dataclasses.replace(p.body, **changes)))
        return out
