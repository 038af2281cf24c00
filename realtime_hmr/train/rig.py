"""The Anny 'anny' rig (104 bones) as numpy arrays, and the kinematics every pose source shares.

Pose sets throughout ``realtime_hmr.train`` are arrays of local-ref deltas ``D`` (N, 104, 3, 3): entry 0 is the
root's world rotation, every other entry a rotation in the world-aligned axes of the reference (A-)pose, applied at
the bone's head and carried by its parent. In anny's kinematics (anny/utils/kinematics.py, 'local-ref') the world
delta of a bone, ``G_c = W_c U_c^T`` (posed orientation times reference orientation transposed), chains as
``G_c = G_p D_c`` with ``G_0 = D_0``, and a posed head is ``p_c = p_p + G_p (h_c - h_p)`` for reference heads ``h``.
Both facts are checked against anny itself in tests/test_poses.py.

Anny's axes: metres, Z up, +X = the subject's left, -Y = the subject's front.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

MIRROR_X = np.diag([-1.0, 1.0, 1.0])  # reflection across the sagittal plane

# Body segments (start bone head -> end bone head) used for retargeting and for checking bone directions.
SEGMENTS = {
    "thigh.L": ("upperleg01.L", "lowerleg01.L"),
    "shin.L": ("lowerleg01.L", "foot.L"),
    "foot.L": ("foot.L", "toe3-1.L"),
    "clavicle.L": ("clavicle.L", "upperarm01.L"),
    "upperarm.L": ("upperarm01.L", "lowerarm01.L"),
    "forearm.L": ("lowerarm01.L", "wrist.L"),
    "hand.L": ("wrist.L", "finger3-1.L"),
}
SEGMENTS.update({k[:-2] + ".R": (a[:-2] + ".R", b[:-2] + ".R") for k, (a, b) in SEGMENTS.items()})


def cache_dirs() -> None:
    """Point anny and warp at the project's caches unless the user already chose others."""
    os.environ.setdefault("ANNY_CACHE_DIR", os.path.expanduser("~/.cache/anny"))
    os.environ.setdefault("WARP_CACHE_PATH", os.path.expanduser("~/.cache/warp"))


@functools.lru_cache(maxsize=1)
def anny_model():
    """Anny in float32 with the default 'anny' rig and topology (imports torch and anny)."""
    cache_dirs()
    import anny
    import torch

    return anny.Anny().to(torch.float32)


@dataclass(frozen=True)
class Rig:
    labels: tuple[str, ...]
    parents: np.ndarray  # (B,) int, root -1; every parent precedes its child
    heads: np.ndarray  # (B, 3) reference-pose bone heads of the neutral body (all phenotypes 0.5)
    mirror: np.ndarray  # (B,) index of each bone's left/right twin (itself on the midline)

    def index(self, name: str) -> int:
        return self.labels.index(name)

    def segment(self, name: str) -> tuple[int, int]:
        a, b = SEGMENTS[name]
        return self.index(a), self.index(b)

    def segment_of(self, bone: str) -> tuple[int, int]:
        """The segment a bone drives (its head to the next driven bone's head)."""
        (name,) = [k for k, (a, _) in SEGMENTS.items() if a == bone]
        return self.segment(name)


@functools.lru_cache(maxsize=1)
def load_rig() -> Rig:
    import torch

    m = anny_model()
    eye = torch.eye(4).expand(1, len(m.bone_labels), 4, 4).contiguous()
    with torch.no_grad():
        heads = m(pose_parameters=eye)["bone_poses"][0, :, :3, 3].double().numpy()
    labels = tuple(m.bone_labels)
    parents = np.asarray(m.bone_parents, dtype=np.int64)
    assert parents[0] < 0 and all(parents[1:] < np.arange(1, len(parents))), "anny rig order changed"
    return Rig(labels, parents, heads, mirror_index(labels))


def mirror_index(labels) -> np.ndarray:
    def twin(name: str) -> str:
        return name[:-2] + {".L": ".R", ".R": ".L"}[name[-2:]] if name[-2:] in (".L", ".R") else name

    return np.array([labels.index(twin(n)) for n in labels], dtype=np.int64)


def world_deltas(D: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Local-ref deltas (..., B, 3, 3) -> world deltas G (..., B, 3, 3), G_c = G_p D_c."""
    G = np.empty_like(D)
    G[..., 0, :, :] = D[..., 0, :, :]
    for c in range(1, D.shape[-3]):
        G[..., c, :, :] = G[..., parents[c], :, :] @ D[..., c, :, :]
    return G


def local_deltas(G: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """World deltas -> local-ref deltas, D_c = G_p^T G_c (the inverse of world_deltas)."""
    D = np.empty_like(G)
    D[..., 0, :, :] = G[..., 0, :, :]
    D[..., 1:, :, :] = np.swapaxes(G[..., parents[1:], :, :], -1, -2) @ G[..., 1:, :, :]
    return D


def joint_positions(D: np.ndarray, rig: Rig, trans: np.ndarray | None = None) -> np.ndarray:
    """Posed bone heads (..., B, 3) of the neutral body: a cheap stand-in for anny's forward for checks."""
    G = world_deltas(D, rig.parents)
    p = np.empty(D.shape[:-2] + (3,))
    p[..., 0, :] = rig.heads[0] if trans is None else rig.heads[0] + trans
    for c in range(1, D.shape[-3]):
        q = rig.parents[c]
        p[..., c, :] = p[..., q, :] + G[..., q, :, :] @ (rig.heads[c] - rig.heads[q])
    return p


def mirror_poses(D: np.ndarray, trans: np.ndarray | None, rig: Rig) -> tuple[np.ndarray, np.ndarray | None]:
    """Left/right mirror: swap twin bones and reflect every rotation across the sagittal (X) plane.

    A reflection M turns a rotation R into M R M, which is a rotation again; applied twice it is the identity.
    """
    Dm = MIRROR_X @ D[..., rig.mirror, :, :] @ MIRROR_X
    return Dm.astype(D.dtype), None if trans is None else (trans * np.array([-1.0, 1.0, 1.0])).astype(trans.dtype)


def rotvec(v: np.ndarray) -> np.ndarray:
    """Rotation vectors (..., 3) -> matrices (..., 3, 3) (Rodrigues)."""
    v = np.asarray(v, dtype=np.float64)
    th = np.linalg.norm(v, axis=-1, keepdims=True)
    k = v / np.where(th > 1e-12, th, 1.0)
    K = np.zeros(v.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K = K - np.swapaxes(K, -1, -2)
    s, c = np.sin(th)[..., None], np.cos(th)[..., None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def axis_angle(axis, angle) -> np.ndarray:
    """Rotation about a unit ``axis`` (3,) or (..., 3) by ``angle`` radians (...,)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    return rotvec(axis * np.asarray(angle, dtype=np.float64)[..., None])


def align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation of smallest angle taking direction(s) ``a`` onto ``b`` (..., 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    ax = np.cross(a, b)
    s = np.linalg.norm(ax, axis=-1)
    c = np.sum(a * b, axis=-1)
    ang = np.arctan2(s, c)
    # antiparallel: any axis perpendicular to a
    perp = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0, 0], [0, 1.0, 0]))
    ax = np.where((s > 1e-9)[..., None], ax, perp)
    return axis_angle(ax, ang)


def angle_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle in degrees between vectors along the last axis."""
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, axis=-1)))
