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

With a person's silhouette (the landmark network's segmentation, ``mask``) two more terms join, as in
silhouette-based fitting (SMPLify-style, D2A-HMR): every one of a fixed, evenly drawn subset of the body's vertices
should project inside the silhouette (its distance transform, zero inside), and every one of a sample of the
silhouette's pixels should have a projected vertex near it (the nearest one, re-associated each iteration). Both
use all vertices, seen or not, so self-occlusion does not matter; the vertices are linear in the skinning too, so the
same analytic Jacobian serves.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.spatial import cKDTree
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


def bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """``image`` (H, W) sampled at pixel positions ``uv`` (n, 2) (pixel centres at integers), clamped to its edge."""
    h, w = image.shape
    x, y = np.clip(uv[:, 0], 0, w - 1.001), np.clip(uv[:, 1], 0, h - 1.001)
    x0, y0 = x.astype(int), y.astype(int)
    fx, fy = x - x0, y - y0
    return (image[y0, x0] * (1 - fx) * (1 - fy) + image[y0, x0 + 1] * fx * (1 - fy)
            + image[y0 + 1, x0] * (1 - fx) * fy + image[y0 + 1, x0 + 1] * fx * fy)


def even_vertices(points: np.ndarray, n: int) -> np.ndarray:
    """About ``n`` indices of ``points`` (V, 3) spread evenly over the body: one per cell of the coarsest grid that
    still has ``n`` occupied cells (vertex density varies: hands and face are dense)."""
    points = np.asarray(points, np.float64)
    if n >= len(points):
        return np.arange(len(points))
    lo, hi = 1e-4, float(np.ptp(points, axis=0).max())
    for _ in range(20):  # bisection on the cell size
        cell = 0.5 * (lo + hi)
        count = len(np.unique(np.floor(points / cell).astype(np.int64), axis=0))
        lo, hi = (cell, hi) if count > n else (lo, cell)
    keys = np.floor(points / lo).astype(np.int64)
    return np.sort(np.unique(keys, axis=0, return_index=True)[1])


@dataclass
class SilhouetteTarget:
    """What the silhouette terms need, prepared once per fit from a boolean mask over an image window."""

    dist: np.ndarray  # (h, w) pixels from the silhouette (0 inside; 0 where the frame has no pixels)
    grad: np.ndarray  # (2, h, w) its gradient along x and y
    points: np.ndarray  # (m, 2) silhouette pixels, image coordinates
    origin: np.ndarray  # (2,) the window's top-left pixel in the image

    @classmethod
    def from_mask(cls, mask: np.ndarray, origin=(0, 0), samples: int = 400, unknown: np.ndarray | None = None):
        """``unknown``: pixels outside the frame, which neither pull vertices nor need covering."""
        mask = np.asarray(mask, bool)
        dist = ndimage.distance_transform_edt(~mask)
        if unknown is not None:
            dist[unknown] = 0.0
        gy, gx = np.gradient(dist)
        ys, xs = np.nonzero(mask)
        pick = np.linspace(0, len(xs) - 1, min(samples, len(xs))).astype(int) if len(xs) else np.zeros(0, int)
        origin = np.asarray(origin, np.float64)
        return cls(dist, np.stack([gx, gy]), np.stack([xs[pick], ys[pick]], 1) + origin, origin)


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
    With a silhouette: ``silhouette_vertices`` vertices must project inside it and ``silhouette_samples`` of its
    pixels must each be near a projected vertex; ``silhouette_inside`` / ``silhouette_cover``: the two terms' weights,
    each as a whole against the 33 landmarks' (1: as much as all the landmarks together), in the same sigma.
    The defaults were chosen on a tuning set (``eval synthetic`` people of seed 1), not on the reported one (seed 0):
    docs/mega.md.
    """

    def __init__(self, body, bones=FIT_BONES, rot_sigma: float = 0.2, px_sigma: float = 0.02, robust: float = 2.0,
                 face_weight: float = 0.3, min_visibility: float = 0.05, iterations: int = 10, cache: int = 64,
                 loss: str = "soft_l1", tol: float = 1e-3, silhouette_vertices: int = 1000,
                 silhouette_inside: float = 2.0, silhouette_cover: float = 4.0, silhouette_samples: int = 400):
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
        self.sil_inside, self.sil_cover, self.sil_samples = silhouette_inside, silhouette_cover, silhouette_samples
        self._sil_n, self._sil = silhouette_vertices, None
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache

    @property
    def sil_vertices(self) -> np.ndarray:
        """The vertices the silhouette terms use (drawn once, on first use)."""
        if self._sil is None:
            self._sil = even_vertices(self.body.template, self._sil_n)
        return self._sil

    def basis(self, betas: np.ndarray, silhouette: bool = False) -> tuple:
        """Per shape: c (n, B, 4) with point l = sum_b T_b c_lb (the 33 landmarks, then with ``silhouette`` the
        silhouette's vertices) as a sparse (n, B * 4) matrix (each point hangs on a few bones) with what the Jacobian
        reuses (each point's skin weight below each fitted bone, and in all), and the rest heads and orientations."""
        key = np.ascontiguousarray(betas, np.float64).tobytes() + bytes([silhouette])
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        b = self.body
        X = b.template + np.einsum("k,kvd->vd", betas, b.shape_dirs)
        Xh = np.concatenate([X, np.ones((len(X), 1))], 1)
        J = self._J
        if silhouette:  # the 33 landmarks, then the silhouette's vertices
            k = len(self.sil_vertices)
            J = sparse.vstack([J, sparse.csr_matrix((np.ones(k), (np.arange(k), self.sil_vertices)),
                                                    shape=(k, b.n_vertices))]).tocsr()
        C = np.stack([(J @ b.weights.multiply(Xh[:, k:k + 1])).toarray() for k in range(4)], -1)
        heads, R = b.rest_frame(np.asarray(betas, np.float64)[None])
        c = {"sparse": sparse.csr_matrix(C.reshape(len(C), -1)), "below": C[..., 3] @ self.below.T,
             "total": C[..., 3].sum(1)}
        self._cache[key] = out = (c, heads, R)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def landmarks(self, D: np.ndarray, d0: np.ndarray, basis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Landmarks (33, 3; then the silhouette's vertices where the basis has them), and the bone poses W and
        skinning transforms T (B, 3, 4) of one body."""
        c, heads, R = basis
        W, T = kin.forward(D[None], d0[None], R, heads, self.body.reference, self.body.bone_parents, self.body.levels)
        return c["sparse"] @ np.swapaxes(T[0], 1, 2).reshape(-1, 3), W[0], T[0]

    def jacobian(self, W: np.ndarray, T: np.ndarray, basis) -> np.ndarray:
        """d points / d (omega of each selected bone, root translation): (n, 3, 3 * len(sel) + 3)."""
        c = basis[0]
        n, nsel, B = c["sparse"].shape[0], len(self.sel), len(T)
        U, parents = self.body.reference, self.body.bone_parents
        # S[l, c] = sum over the bones b below c of T_b c_lb: one sparse product, (n, B * 4) x (B * 4, nsel * 3)
        S = (c["sparse"] @ np.einsum("cb,bik->bkci", self.below, T).reshape(B * 4, nsel * 3)).reshape(n, nsel, 3)
        rel = S - c["below"][..., None] * W[self.sel, :, 3][None]  # about each selected bone's posed head
        # omega in the reference axes of the parent -> world axis: a = W_p,rot U_p^T omega (root: U_0^T omega)
        par = parents[self.sel]
        A = np.where((par >= 0)[:, None, None], W[np.maximum(par, 0), :, :3], np.eye(3)) @ \
            np.swapaxes(U[np.where(par >= 0, par, self.sel)], -1, -2)
        # d x / d omega_j = (A e_j) x rel: a turn about A's column j moves the point across its lever
        Jw = np.cross(np.swapaxes(A, 1, 2)[None], rel[:, :, None, :]).transpose(0, 3, 1, 2).reshape(n, 3, -1)
        Jt = c["total"][:, None, None] * U[0].T[None]  # W_0's translation is U_0^T d_0
        return np.concatenate([Jw, Jt], -1)

    def _robust(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The robust loss of errors ``e`` (in sigmas) and its reweighting (1 where the loss is quadratic)."""
        q = (e / self.robust) ** 2
        if self.loss == "soft_l1":
            return self.robust**2 * 2 * (np.sqrt(1 + q) - 1), 1 / np.sqrt(1 + q)
        return self.robust**2 * np.log1p(q), 1 / (1 + q)

    def __call__(self, D: np.ndarray, d0: np.ndarray, betas: np.ndarray, xy: np.ndarray, visibility: np.ndarray,
                 K: np.ndarray, scale_px: float, landmarks: np.ndarray | None = None,
                 silhouette: SilhouetteTarget | None = None, vertices: np.ndarray | None = None) -> FitResult:
        """``landmarks``: the landmarks (33, 3, camera space) of the mesh the fit will move (:meth:`vertex_shift`),
        when the rig given does not reproduce them exactly (a shape kept from an earlier frame, IK's residual). The
        mesh's landmarks move by exactly the rig's change of landmarks (both are linear in the skinning), so the
        cost is on ``landmarks + rig(now) - rig(start)``: the landmarks of the body that comes out.
        ``silhouette``: the person's silhouette (:meth:`SilhouetteTarget.from_mask`), adding its two terms;
        ``vertices``: that mesh's vertices (V, 3), for the same reason as ``landmarks``."""
        use_sil = silhouette is not None and len(silhouette.points) >= 10
        basis = self.basis(betas, use_sil)
        nsel = len(self.sel)
        xy = np.asarray(xy, np.float64)
        vis = np.nan_to_num(np.clip(np.asarray(visibility, np.float64), 0, 1))
        w = np.where((vis >= self.min_visibility) & np.isfinite(xy).all(1), vis * self.weight, 0.0)
        xy = np.where(np.isfinite(xy), xy, 0.0)
        if not (np.isfinite(scale_px) and scale_px > 1):  # no usable box: the visible landmarks' extent
            scale_px = float(np.ptp(xy[w > 0], axis=0).max()) if (w > 0).sum() >= 2 else 0.0
        D0, D, d0 = D, np.array(D, np.float64), np.asarray(d0, np.float64).copy()
        x, W, T = self.landmarks(D, d0, basis)
        offset = np.zeros_like(x)
        if landmarks is not None:
            offset[:33] = np.asarray(landmarks, np.float64) - x[:33]
        if use_sil and vertices is not None:
            offset[33:] = np.asarray(vertices, np.float64)[self.sil_vertices] - x[33:]
        if scale_px <= 1 or not ((w > 0).any() or use_sil):  # nothing to fit to: the body as recovered
            return FitResult(rotations=D, translation=d0, bone_poses=W, transforms=T, start_transforms=T,
                             px_before=float("nan"), px_after=float("nan"), iterations=0)
        sigma = self.px_sigma * float(scale_px)
        if use_sil:  # each term as a whole weighs as much as the 33 landmarks (times its weight)
            w_in = self.sil_inside * 33 / len(self.sil_vertices)
            w_cov = self.sil_cover * 33 / len(silhouette.points)

        def turned(D):  # each selected bone's turn away from the recovered body (the prior's argument)
            return rotvec(D[self.sel] @ np.swapaxes(D0[self.sel], -1, -2))

        if use_sil:  # how far apart the projected vertices lie: the silhouette's pixels that near one are covered
            p = (x[33:] + offset[33:]) @ K.T
            uv0 = p[:, :2] / np.maximum(p[:, 2:], 1e-6)
            gap = float(np.percentile(cKDTree(uv0).query(uv0, k=2)[0][:, 1], 90))

        def evaluate(x, omega):
            p = (x + offset) @ K.T
            uv = p[:, :2] / np.maximum(p[:, 2:], 1e-6)
            ev = {"uv": uv, "z": p[:, 2], "e": np.linalg.norm(uv[:33] - xy, axis=1) / sigma}
            c = float((w * self._robust(ev["e"])[0]).sum() + ((omega.ravel() / self._rs) ** 2).sum())
            if use_sil:
                local = uv[33:] - silhouette.origin
                ev["inside"] = bilinear(silhouette.dist, local) / sigma
                d, ev["near"] = cKDTree(uv[33:]).query(silhouette.points)
                ev["dir"] = (uv[33:][ev["near"]] - silhouette.points) / np.maximum(d, 1e-9)[:, None]
                ev["cover"] = np.maximum(d - gap, 0.0) / sigma  # a hinge: gaps between the vertices do not count
                c += (w_in * float(self._robust(ev["inside"])[0].sum())
                      + w_cov * float(self._robust(ev["cover"])[0].sum()))
            return c, ev

        omega = np.zeros((nsel, 3))
        T_start = T
        c, ev = evaluate(x, omega)
        shown = w > 0
        px_before = float(np.median(ev["e"][shown]) * sigma) if shown.any() else float("nan")
        lam, it = 1e-3, 0
        while it < self.iterations:
            it += 1
            Jx = self.jacobian(W, T, basis)  # (n, 3, P)
            uv, z = ev["uv"], ev["z"]
            Juv = (K[None, :2, :] - uv[:, :, None] * K[2][None, None, :]) / z[:, None, None]  # (n, 2, 3)
            Jp = np.einsum("nij,njp->nip", Juv / sigma, Jx)  # (n, 2, P)
            irls = np.sqrt(w * self._robust(ev["e"])[1])[:, None]  # the robust loss as reweighted least squares
            rows = [(Jp[:33] * irls[..., None]).reshape(-1, Jp.shape[-1])]
            res = [(((uv[:33] - xy) / sigma) * irls).ravel()]
            if use_sil:
                local = uv[33:] - silhouette.origin
                g = np.stack([bilinear(silhouette.grad[0], local), bilinear(silhouette.grad[1], local)], 1)
                r = np.sqrt(w_in * self._robust(ev["inside"])[1])
                rows.append(np.einsum("ni,nip->np", g, Jp[33:]) * r[:, None])
                res.append(ev["inside"] * r)
                r = np.sqrt(w_cov * self._robust(ev["cover"])[1]) * (ev["cover"] > 0)
                rows.append(np.einsum("ni,nip->np", ev["dir"], Jp[33:][ev["near"]]) * r[:, None])
                res.append(ev["cover"] * r)
            Jw, rw = np.concatenate(rows), np.concatenate(res)
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
                c_n, ev_n = evaluate(x_n, om_n)
                if c_n < c and np.all(ev_n["z"] > 1e-3):
                    D, d0, omega, W, T, c, ev = D_n, d0_n, om_n, W_n, T_n, c_n, ev_n
                    lam, accepted = max(lam / 3, 1e-6), True
                    break
                lam *= 10
            if not accepted or np.abs(step).max() < self.tol:
                break
        px_after = float(np.median(ev["e"][shown]) * sigma) if shown.any() else float("nan")
        return FitResult(rotations=D, translation=d0, bone_poses=W, transforms=T, start_transforms=T_start,
                         px_before=px_before, px_after=px_after, iterations=it)

    def vertex_shift(self, betas: np.ndarray, result: FitResult) -> np.ndarray:
        """How a fit moves the body's vertices (V, 3): the skinning blend of its change of transforms. Added to the
        mesh the fit started from (a decoded one, say), it leaves whatever the rig does not model as it was."""
        b = self.body
        rest = b.template + np.einsum("k,kvd->vd", np.asarray(betas, np.float64), b.shape_dirs)
        return kin.blend((result.transforms - result.start_transforms)[None], b.weights, rest[None])[0]
