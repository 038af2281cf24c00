"""Unity humanoid (VRM-normalised) rotations from the rig: what the VMC protocol and game engines expect.

VMC receivers copy local rotations onto a humanoid whose bones all have identity rotation in a T-pose. So for each
humanoid bone H we need Q_H, the rotation that takes H from its T-pose orientation to its current one, and send
L_H = Q_parent(H)^-1 Q_H (the root's Q as the hips' rotation).

Our rig's reference pose is an A-pose. The T-pose orientation of H is its reference orientation turned by the
smallest rotation that points its segment (head -> the next humanoid bone's head) along the T-pose direction: arms
out sideways, legs and spine straight, feet and eyes forward. Rig bones between humanoid bones (twist bones, the
three-part neck, metacarpals) follow the humanoid bone whose segment they belong to.

All rotations here are in the body frame (metres, Z up, +X the subject's left, -Y the subject's front).
"""

from __future__ import annotations

import numpy as np

from realtime_hmr.body import kinematics as kin
from realtime_hmr.body.names import HUMANOID

# humanoid parent of each humanoid bone (Unity's hierarchy)
PARENT = {"Hips": None, "Spine": "Hips", "Chest": "Spine", "UpperChest": "Chest", "Neck": "UpperChest",
          "Head": "Neck"}
for _S in ("Left", "Right"):
    PARENT.update({f"{_S}Shoulder": "UpperChest", f"{_S}UpperArm": f"{_S}Shoulder", f"{_S}LowerArm": f"{_S}UpperArm",
                   f"{_S}Hand": f"{_S}LowerArm", f"{_S}UpperLeg": "Hips", f"{_S}LowerLeg": f"{_S}UpperLeg",
                   f"{_S}Foot": f"{_S}LowerLeg", f"{_S}Toes": f"{_S}Foot", f"{_S}Eye": "Head"})
    for _f in ("Thumb", "Index", "Middle", "Ring", "Little"):
        PARENT.update({f"{_S}{_f}Proximal": f"{_S}Hand", f"{_S}{_f}Intermediate": f"{_S}{_f}Proximal",
                       f"{_S}{_f}Distal": f"{_S}{_f}Intermediate"})
NAMES = list(PARENT)  # parents first
assert set(NAMES) == set(HUMANOID)

# where each humanoid segment points in the T-pose (body frame); None: keep the reference orientation
_UP, _FWD = np.array([0.0, 0, 1]), np.array([0.0, -1, 0])


def _t_direction(name: str) -> np.ndarray | None:
    side = 1.0 if name.startswith("Left") else -1.0
    if name in ("Spine", "Chest", "UpperChest", "Neck", "Head"):
        return _UP
    if any(k in name for k in ("Shoulder", "UpperArm", "LowerArm", "Hand", "Index", "Middle", "Ring", "Little",
                               "Thumb")):
        return np.array([side, 0.0, 0.0])
    if "UpperLeg" in name or "LowerLeg" in name:
        return -_UP
    if "Foot" in name or "Toes" in name:
        return _FWD
    return None  # Hips, eyes


def _child_for_direction(name: str) -> str | None:
    kids = [k for k, p in PARENT.items() if p == name and "Eye" not in k and "Thumb" not in k]
    if name.endswith("Hand"):
        kids = [k for k in kids if "Middle" in k]
    if name == "UpperChest":
        kids = ["Neck"]
    return kids[0] if kids else None


def _align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector a to unit vector b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -0.999999:
        axis = np.cross(a, [1.0, 0, 0]) if abs(a[0]) < 0.9 else np.cross(a, [0, 1.0, 0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + K + K @ K / (1 + c)


class Humanoid:
    """T-pose calibration of the rig and per-frame humanoid rotations (mean body shape; shape barely moves it)."""

    def __init__(self, body):
        self.body = body
        bi = {n: i for i, n in enumerate(body.bone_names)}
        self.head_bone = {h: bi[HUMANOID[h][0]] for h in NAMES}
        self.rot_bone = {h: bi[HUMANOID[h][1]] for h in NAMES}
        eye = np.tile(np.eye(3), (1, body.n_bones, 1, 1))
        heads, R = body.rest_frame(np.zeros((1, body.n_betas)))
        W, _ = kin.forward(eye, np.zeros((1, 3)), R, heads, body.reference, body.bone_parents, body.levels)
        self.ref_orient = W[0, :, :, :3]  # (B, 3, 3) reference-pose orientations
        ref_heads = W[0, :, :, 3]
        # T-pose turn of each humanoid bone, and the T-pose heads (each segment turned rigidly with its bone)
        self.turn, t_heads = {}, {}
        for h in NAMES:
            p = PARENT[h]
            head = ref_heads[self.head_bone[h]]
            t_heads[h] = head if p is None else t_heads[p] + self.turn[p] @ (head - ref_heads[self.head_bone[p]])
            target, child = _t_direction(h), _child_for_direction(h)
            if target is None or child is None:
                d = None
            else:
                d = ref_heads[self.head_bone[child]] - head
            if d is None and target is not None and h.endswith(("Distal", "Toes")):
                # the last bone of a chain: point along the bone's own rest axis (head -> tail is its local y)
                d = self.ref_orient[self.rot_bone[h]][:, 1]
            self.turn[h] = _align(d, target) if d is not None else (self.turn[p] if p else np.eye(3))
        self.t_heads = t_heads
        # local offsets of each humanoid bone from its humanoid parent in the T-pose (body frame, metres)
        self.rest_offsets = {h: (t_heads[h] - t_heads[PARENT[h]]) if PARENT[h] else np.zeros(3) for h in NAMES}
        self._inv_t = {h: (self.turn[h] @ self.ref_orient[self.rot_bone[h]]).T for h in NAMES}

    def global_rotations(self, bone_poses: np.ndarray) -> dict[str, np.ndarray]:
        """Q_H (..., 3, 3): each humanoid bone's rotation from its T-pose orientation, from posed bone frames
        (..., B, 3, 4) such as ``IKResult.bone_poses``."""
        W = np.asarray(bone_poses)[..., :3]
        return {h: W[..., self.rot_bone[h], :, :] @ self._inv_t[h] for h in NAMES}

    def local_rotations(self, bone_poses: np.ndarray) -> dict[str, np.ndarray]:
        """L_H (..., 3, 3) = Q_parent^-1 Q_H; for the hips, Q_Hips itself (relative to the world)."""
        Q = self.global_rotations(bone_poses)
        return {h: Q[h] if PARENT[h] is None else np.swapaxes(Q[PARENT[h]], -1, -2) @ Q[h] for h in NAMES}

    def hips_position(self, bone_poses: np.ndarray) -> np.ndarray:
        return np.asarray(bone_poses)[..., self.head_bone["Hips"], :, 3]

    def tpose_deltas(self) -> np.ndarray:
        """Rig deltas (B, 3, 3) posing the body in this T-pose: every humanoid bone at identity Q."""
        b = self.body
        owner = np.full(b.n_bones, -1)  # humanoid bone whose turn each rig bone takes
        index = {h: i for i, h in enumerate(NAMES)}
        for h in NAMES:
            owner[self.rot_bone[h]] = index[h]
            owner[self.head_bone[h]] = index[h]
        turns = np.stack([self.turn[h] for h in NAMES])
        Wt = np.empty((b.n_bones, 3, 3))
        for c in range(b.n_bones):
            if owner[c] < 0 and c > 0:
                owner[c] = owner[b.bone_parents[c]]
            Wt[c] = (turns[owner[c]] if owner[c] >= 0 else np.eye(3)) @ self.ref_orient[c]
        heads, R = b.rest_frame(np.zeros((1, b.n_betas)))
        G = Wt[None] @ np.swapaxes(R, -1, -2)
        return kin.deltas_from_global(G, R, b.reference, b.bone_parents)[0]
