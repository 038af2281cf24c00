"""Fit a posed body to 2D landmarks: the body's pose moved, as little as it takes, to match what the image shows.

A recovered body (its rig's deltas D, root translation d_0 and shape, e.g. from :meth:`Body.ik`) is refined on the 33
BlazePose image landmarks by robust, damped Gauss-Newton (Levenberg-Marquardt) on

    sum_l rho(|| (pi(K x_l) - u_l) / sigma || ^ 2) * vis_l * w_l  +  sum_c || omega_c / sigma_rot || ^ 2

x_l: the body's MediaPipe-33 landmark l (a fixed linear regressor of the skinned vertices), pi: the pinhole
projection, u_l / vis_l: the tracker's landmark and visibility, sigma: a fraction of the person's box, rho: soft-L1
(outliers count linearly). The unknowns are a rotation omega_c (left increment, the rig's reference axes) of each
bone of :data:`FIT_BONES` (root, spine, neck, head, shoulders, arms, legs) and the root translation; the prior keeps
every omega_c near zero, i.e. the body near the one recovered. Depth is what the image does not show; it stays the
recovered body's.

Everything is linear in the skinning transforms T_b: x_l = sum_b T_b c_lb with c_lb = sum_v J_lv w_vb [x_v; 1]
(regressor J, skin weights w, rest vertices x_v; per shape, cached). Turning bone c by a (world axis) about its posed
head h_c moves x_l by a x sum_{b below c} (T_b c_lb - c_lb,4 h_c), so the Jacobian is analytic and one forward
kinematics pass per iteration is all it costs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from realtime_hmr.body import kinematics as kin

FIT_BONES = ("root", "spine03", "spine01", "neck01", "head", "clavicle.L", "clavicle.R", "upperarm01.L",
             "upperarm01.R", "lowerarm01.L", "lowerarm01.R", "wrist.L", "wrist.R", "upperleg01.L", "upperleg01.R",
             "lowerleg01.L", "lowerleg01.R", "foot.L", "foot.R")
FACE = slice(0, 11)  # MediaPipe-33: nose, eyes, ears, mouth


def rotvec(R: np.ndarray) -> np.ndarray:
    """Rotation vectors of rotation matrices (..., 3, 3), for angles below pi (the log map)."""
    c = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    angle = np.arccos(c)
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    s = np.sin(angle)
    scale = np.where(s > 1e-8, angle / (2 * np.maximum(s, 1e-8)), 0.5 + angle**2 / 12)
    return v * scale[..., None]


@dataclass
class FitResult:
    rotations: np.ndarray  # (B, 3, 3) deltas
    translation: np.ndarray  # (3,) root translation parameter
    bone_poses: np.ndarray  # (B, 3, 4) posed bone frames
    transforms: np.ndarray  # (B, 3, 4) skinning transforms
    start_transforms: np.ndarray  # (B, 3, 4) the skinning transforms of the body as given
    px_before: float  # median reprojection error (px) of the visible landmarks, before and after
    px_after: float
    iterations: int


class LandmarkFit:
    """``LandmarkFit(body)(rotations, translation, betas, xy, visibility, K, scale_px)`` -> :class:`FitResult`.

    ``rot_sigma`` (radians; one value, or one per bone): how far a bone may turn for one sigma of reprojection
    error; ``px_sigma``: sigma as a fraction of ``scale_px`` (the person's box size); ``robust``: the robust loss'
    scale in sigmas; ``face_weight``: weight of the 11 face landmarks; ``min_visibility``: landmarks below it are left
    out; ``loss``: soft_l1 or cauchy; ``tol``: stop when no parameter moves more than this (radians, metres).
    The defaults were chosen on a tuning set (``eval synthetic`` people of seed 1), not on the reported one (seed 0):
    docs/mega.md.
    """

    def __init__(self, body, bones=FIT_BONES, rot_sigma: float = 0.2, px_sigma: float = 0.02, robust: float = 2.0,
                 face_weight: float = 0.3, min_visibility: float = 0.05, iterations: int = 10, cache: int = 64,
                 loss: str = "soft_l1", tol: float = 1e-3):
        if loss not in ("soft_l1", "cauchy"):
            raise ValueError(f"loss must be soft_l1 or cauchy, got {loss!r}")
        self.body, self.loss, self.tol = body, loss, tol
        self.sel = np.array([body.bone_names.index(b) for b in bones])
        self.rot_sigma, self.px_sigma, self.robust = rot_sigma, px_sigma, robust
        self._rs = np.repeat(np.broadcast_to(np.asarray(rot_sigma, np.float64), (len(bones),)), 3)  # per parameter
        self.min_visibility, self.iterations = min_visibility, iterations
        self.weight = np.ones(33)
        self.weight[FACE] = face_weight
        B, parents = body.n_bones, body.bone_parents
        below = np.zeros((len(self.sel), B), bool)  # bones in each selected bone's subtree (itself included)
        for i, c in enumerate(self.sel):
            for b in range(B):
                a = b
                while a >= 0 and a != c:
                    a = parents[a]
                below[i, b] = a == c
        self.below = below.astype(np.float64)
        self._J = body._regressors["mediapipe33"]
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache

    def basis(self, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per shape: c (33, B, 4) with landmark l = sum_b T_b c_lb, and the rest heads and orientations."""
        key = np.ascontiguousarray(betas, np.float64).tobytes()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        b = self.body
        X = b.template + np.einsum("k,kvd->vd", betas, b.shape_dirs)
        Xh = np.concatenate([X, np.ones((len(X), 1))], 1)
        C = np.stack([(self._J @ b.weights.multiply(Xh[:, k:k + 1])).toarray() for k in range(4)], -1)
        heads, R = b.rest_frame(np.asarray(betas, np.float64)[None])
        self._cache[key] = out = (C, heads, R)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def landmarks(self, D: np.ndarray, d0: np.ndarray, basis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Landmarks (33, 3), and the bone poses W and skinning transforms T (B, 3, 4) of one body."""
        C, heads, R = basis
        W, T = kin.forward(D[None], d0[None], R, heads, self.body.reference, self.body.bone_parents, self.body.levels)
        return C.reshape(len(C), -1) @ np.swapaxes(T[0], 1, 2).reshape(-1, 3), W[0], T[0]

    def jacobian(self, W: np.ndarray, T: np.ndarray, basis) -> np.ndarray:
        """d landmarks / d (omega of each selected bone, root translation): (33, 3, 3 * len(sel) + 3)."""
        C = basis[0]
        U, parents = self.body.reference, self.body.bone_parents
        P = (T[None] @ C[..., None])[..., 0]  # (33, B, 3): each bone's share of each landmark
        S = np.swapaxes(np.tensordot(self.below, P, axes=([1], [1])), 0, 1)  # (33, nsel, 3)
        wsum = C[..., 3] @ self.below.T  # (33, nsel)
        rel = S - wsum[..., None] * W[self.sel, :, 3][None]  # about each selected bone's posed head
        # omega in the reference axes of the parent -> world axis: a = W_p,rot U_p^T omega (root: U_0^T omega)
        par = parents[self.sel]
        A = np.where((par >= 0)[:, None, None], W[np.maximum(par, 0), :, :3], np.eye(3)) @ \
            np.swapaxes(U[np.where(par >= 0, par, self.sel)], -1, -2)
        sk = np.zeros(rel.shape + (3,))  # d x / d a = -[rel]x
        sk[..., 0, 1], sk[..., 0, 2], sk[..., 1, 2] = rel[..., 2], -rel[..., 1], rel[..., 0]
        sk[..., 1, 0], sk[..., 2, 0], sk[..., 2, 1] = -rel[..., 2], rel[..., 1], -rel[..., 0]
        Jw = np.swapaxes(sk @ A[None], 1, 2).reshape(33, 3, -1)
        Jt = C[..., 3].sum(1)[:, None, None] * U[0].T[None]  # W_0's translation is U_0^T d_0
        return np.concatenate([Jw, Jt], -1)

    def __call__(self, D: np.ndarray, d0: np.ndarray, betas: np.ndarray, xy: np.ndarray, visibility: np.ndarray,
                 K: np.ndarray, scale_px: float, landmarks: np.ndarray | None = None) -> FitResult:
        """``landmarks``: the landmarks (33, 3, camera space) of the mesh the fit will move (:meth:`vertex_shift`),
        when the rig given does not reproduce them exactly (a shape kept from an earlier frame, IK's residual). The
        mesh's landmarks move by exactly the rig's change of landmarks (both are linear in the skinning), so the
        cost is on ``landmarks + rig(now) - rig(start)``: the landmarks of the body that comes out."""
        basis = self.basis(betas)
        nsel = len(self.sel)
        xy = np.asarray(xy, np.float64)
        vis = np.nan_to_num(np.clip(np.asarray(visibility, np.float64), 0, 1))
        w = np.where((vis >= self.min_visibility) & np.isfinite(xy).all(1), vis * self.weight, 0.0)
        xy = np.where(np.isfinite(xy), xy, 0.0)
        if not (np.isfinite(scale_px) and scale_px > 1):  # no usable box: the visible landmarks' extent
            scale_px = float(np.ptp(xy[w > 0], axis=0).max()) if (w > 0).sum() >= 2 else 0.0
        D0, D, d0 = D, np.array(D, np.float64), np.asarray(d0, np.float64).copy()
        x, W, T = self.landmarks(D, d0, basis)
        offset = 0.0 if landmarks is None else np.asarray(landmarks, np.float64) - x
        if scale_px <= 1 or not (w > 0).any():  # nothing to fit to: the body as recovered
            return FitResult(rotations=D, translation=d0, bone_poses=W, transforms=T, start_transforms=T,
                             px_before=float("nan"), px_after=float("nan"), iterations=0)
        sigma = self.px_sigma * float(scale_px)

        def turned(D):  # each selected bone's turn away from the recovered body (the prior's argument)
            return rotvec(D[self.sel] @ np.swapaxes(D0[self.sel], -1, -2))

        def cost(x, omega):
            p = (x + offset) @ K.T
            uv = p[:, :2] / np.maximum(p[:, 2:], 1e-6)
            e = np.linalg.norm(uv - xy, axis=1) / sigma
            q = (e / self.robust) ** 2
            rob = self.robust**2 * (2 * (np.sqrt(1 + q) - 1) if self.loss == "soft_l1" else np.log1p(q))
            return float((w * rob).sum() + ((omega.ravel() / self._rs) ** 2).sum()), uv, p[:, 2], e

        omega = np.zeros((nsel, 3))
        T_start = T
        c, uv, z, e = cost(x, omega)
        shown = w > 0
        px_before = float(np.median(e[shown]) * sigma) if shown.any() else float("nan")
        lam, it = 1e-3, 0
        while it < self.iterations:
            it += 1
            Jx = self.jacobian(W, T, basis)  # (33, 3, P)
            Juv = (K[None, :2, :] - uv[:, :, None] * K[2][None, None, :]) / z[:, None, None]  # (33, 2, 3)
            Jr = (Juv @ Jx) / sigma  # (33, 2, P)
            q = (e / self.robust) ** 2  # the robust loss as reweighted least squares
            irls = np.sqrt(w / (np.sqrt(1 + q) if self.loss == "soft_l1" else 1 + q))[:, None]
            Jw, rw = (Jr * irls[..., None]).reshape(-1, Jr.shape[-1]), (((uv - xy) / sigma) * irls).ravel()
            H, g = Jw.T @ Jw, Jw.T @ rw
            H[: 3 * nsel, : 3 * nsel] += np.diag(1 / self._rs**2)
            g[: 3 * nsel] += omega.ravel() / self._rs**2
            accepted = False
            while lam <= 1e4:
                step = -np.linalg.solve(H + lam * np.diag(np.diag(H) + 1e-9), g)
                D_n = D.copy()
                D_n[self.sel] = Rotation.from_rotvec(step[: 3 * nsel].reshape(nsel, 3)).as_matrix() @ D[self.sel]
                d0_n = d0 + step[3 * nsel:]
                om_n = turned(D_n)
                x_n, W_n, T_n = self.landmarks(D_n, d0_n, basis)
                c_n, uv_n, z_n, e_n = cost(x_n, om_n)
                if c_n < c and np.all(z_n > 1e-3):
                    D, d0, omega, W, T, c, uv, z, e = D_n, d0_n, om_n, W_n, T_n, c_n, uv_n, z_n, e_n
                    lam, accepted = max(lam / 3, 1e-6), True
                    break
                lam *= 10
            if not accepted or np.abs(step).max() < self.tol:
                break
        px_after = float(np.median(e[shown]) * sigma) if shown.any() else float("nan")
        return FitResult(rotations=D, translation=d0, bone_poses=W, transforms=T, start_transforms=T_start,
                         px_before=px_before, px_after=px_after, iterations=it)

    def vertex_shift(self, betas: np.ndarray, result: FitResult) -> np.ndarray:
        """How a fit moves the body's vertices (V, 3): the skinning blend of its change of transforms. Added to the
        mesh the fit started from (a decoded one, say), it leaves whatever the rig does not model as it was."""
        b = self.body
        rest = b.template + np.einsum("k,kvd->vd", np.asarray(betas, np.float64), b.shape_dirs)
        return kin.blend((result.transforms - result.start_transforms)[None], b.weights, rest[None])[0]
