"""Mesh and joint errors (numpy only): PVE, MPJPE, PA-MPJPE, as in the MEGA / 3DPW literature.

All functions take predictions and ground truth of shape (..., K, 3) in metres and return per-sample errors in the
same unit (multiply by 1000 for mm); average over samples yourself (``np.mean``).

- MPJPE / PVE: mean Euclidean distance over joints / vertices after subtracting each set's root (pelvis) joint.
  ``root`` is an index into the points, or explicit root positions (..., 3) for prediction and ground truth (for
  vertices, pass the pelvis of the matching joints).
- PA-MPJPE: MPJPE after the similarity transform (rotation, uniform scale, translation) that best maps the
  prediction onto the ground truth in the least-squares sense (Umeyama 1991, reflections excluded).
"""

from __future__ import annotations

import numpy as np


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if p.shape != g.shape or p.ndim < 2 or p.shape[-1] != 3:
        raise ValueError(f"pred and gt must have the same shape (..., K, 3); got {p.shape} and {g.shape}")
    return p, g


def root_align(points: np.ndarray, root) -> np.ndarray:
    """Points (..., K, 3) minus their root: an index into K, or positions (..., 3)."""
    r = points[..., root, :] if np.ndim(root) == 0 else np.asarray(root, np.float64)
    return points - r[..., None, :]


def mpjpe(pred, gt, root=0, pred_root=None) -> np.ndarray:
    """Mean per-joint position error after root alignment, per sample (...). ``root``: index, or the ground
    truth's root positions (..., 3) with ``pred_root`` the prediction's (defaults to ``root``)."""
    p, g = _check(pred, gt)
    pr = root if pred_root is None else pred_root
    return np.linalg.norm(root_align(p, pr) - root_align(g, root), axis=-1).mean(-1)


def pve(pred_vertices, gt_vertices, pred_root, gt_root) -> np.ndarray:
    """Per-vertex error after aligning the roots (pelvis positions (..., 3) of prediction and ground truth)."""
    return mpjpe(pred_vertices, gt_vertices, root=gt_root, pred_root=pred_root)


def procrustes(pred, gt) -> np.ndarray:
    """``pred`` (..., K, 3) mapped by the similarity transform that best fits it to ``gt`` (least squares)."""
    p, g = _check(pred, gt)
    mp, mg = p.mean(-2, keepdims=True), g.mean(-2, keepdims=True)
    x, y = p - mp, g - mg
    cov = np.swapaxes(x, -1, -2) @ y  # (..., 3, 3)
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.ones(S.shape)
    D[..., -1] = d
    R = (U * D[..., None, :]) @ Vt  # rotation acting on row vectors: x @ R
    var = (x ** 2).sum((-1, -2))
    s = (S * D).sum(-1) / np.maximum(var, 1e-12)
    return s[..., None, None] * (x @ R) + mg


def pa_mpjpe(pred, gt) -> np.ndarray:
    """MPJPE after a similarity (Procrustes) alignment, per sample."""
    p, g = _check(pred, gt)
    return np.linalg.norm(procrustes(p, g) - g, axis=-1).mean(-1)
