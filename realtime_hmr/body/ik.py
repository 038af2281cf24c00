"""Inverse kinematics: posed vertices -> the rig's rotations, root translation and shape.

With the skinning rotations G_a of every bone as unknowns (G_a = posed orientation x rest orientation^T), a posed
vertex is linear in them:

    y_v = p_root + sum_a G_a r_va,   r_va = w_va (x_v - h_a) + sum_{c below a} w_vc (h_next(a,c) - h_a)

(x_v rest vertex, h rest heads, w skin weights, next(a, c) the child of a on the way to c): each bone turns its own
vertices about its head and carries every head below it. So all rotations come from ONE linear least-squares solve,
with the chain of heads built in; each solution is then projected on the nearest rotation. A tree-Laplacian of
weight 1e-7 settles what no vertex determines (the root owns none: it takes the mean of its children). Given the
rotations the mesh is linear in the shape (rest vertices and heads are linear in the betas), so shape and rotations
alternate. The normal matrix depends only on the shape: it is factorised once per shape and cached.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import sparse
from scipy.linalg import cho_factor, cho_solve

from realtime_hmr.body import kinematics as kin


def vertex_subset(weights: sparse.csr_matrix, stride: int = 6, per_bone: int = 12) -> np.ndarray:
    """Vertices the solve uses: every ``stride``-th one, plus each bone's ``per_bone`` most strongly bound ones.

    The model is exact on any subset that pins every bone, so this only trades noise averaging for speed.
    """
    W = weights.tocsc()
    keep = set(range(0, W.shape[0], stride))
    for b in range(W.shape[1]):
        col = W[:, b]
        if col.nnz:
            keep.update(col.indices[np.argsort(col.data)[::-1][:per_bone]].tolist())
    return np.array(sorted(keep))


class InverseKinematics:
    def __init__(self, body, lam: float = 1e-7, noise_m: float = 0.003, cache: int = 16, stride: int = 6):
        self.body = body
        self.lam = lam
        self.noise_m = noise_m
        self.subset = vertex_subset(body.weights, stride)
        self._weights = body.weights[self.subset]
        self._template = body.template[self.subset]
        self._shape_dirs = body.shape_dirs[:, self.subset]
        B = body.n_bones
        rows = []
        for c in range(B):
            child, a = c, body.bone_parents[c]
            while a >= 0:
                rows.append((c, a, child))
                child, a = a, body.bone_parents[a]
        self._c, self._a, self._next = (np.array(r) for r in zip(*rows))
        L = np.zeros((B, B))
        for c in range(1, B):
            p = body.bone_parents[c]
            L[[c, p], [c, p]] += 1.0
            L[c, p] -= 1.0
            L[p, c] -= 1.0
        self._laplacian = np.zeros((3 * B + 1, 3 * B + 1))
        for j in range(3):
            self._laplacian[j * B:(j + 1) * B, j * B:(j + 1) * B] = L
        self._mean = self._factor(np.zeros(body.n_betas))
        # Phi is linear in the rest vertices and heads: the part each shape direction adds (root column dropped)
        self._shape_designs = [self.design(self._shape_dirs[k], body.heads_dirs[k])[:, :-1] for k in range(body.n_betas)]
        self._solver_for = lru_cache(maxsize=cache)(self._solver_for_key)

    def design(self, X: np.ndarray, heads: np.ndarray) -> sparse.csr_matrix:
        """Phi (S, 3B + 1) such that Y = Phi Z on the subset, with Z[j*B + a, i] = G_a[i, j] and Z[3B] = p_root."""
        B = self.body.n_bones
        W = self._weights
        blocks = []
        for j in range(3):
            own = W.multiply(X[:, j:j + 1]) - W.multiply(heads[None, :, j])
            O = sparse.csr_matrix((heads[self._next, j] - heads[self._a, j], (self._c, self._a)), shape=(B, B))
            blocks.append(own + W @ O)
        blocks.append(sparse.csr_matrix(np.ones((len(X), 1))))
        return sparse.hstack(blocks).tocsr()

    def _factor(self, betas: np.ndarray):
        """Everything the solve needs for one shape: Phi, its factorised normal matrix, subset rest vertices, heads
        and rest orientations."""
        b = self.body
        X = self._template + np.einsum("k,kvd->vd", betas, self._shape_dirs)
        heads, R = b.rest_frame(betas[None])
        Phi = self.design(X, heads[0])
        N = (Phi.T @ Phi).toarray()
        scale = np.trace(N) / len(N)
        N += self.lam * scale * self._laplacian
        N[np.diag_indices_from(N)] += 1e-12 * scale
        return Phi, cho_factor(N), X, heads[0], R[0]

    def _solver_for_key(self, key: bytes):
        return self._factor(np.frombuffer(key, dtype=np.float64))

    def solver(self, betas: np.ndarray):
        return self._mean if not np.any(betas) else self._solver_for(np.ascontiguousarray(betas, np.float64).tobytes())

    def rotations(self, Y: np.ndarray, solver) -> tuple[np.ndarray, np.ndarray]:
        """Skinning rotations G (B, 3, 3) of one mesh's subset (S, 3), and the same as solve unknowns Z (3B, 3)."""
        Phi, fac = solver[:2]
        B = self.body.n_bones
        Z = cho_solve(fac, Phi.T @ Y)
        G = kin.special_procrustes(Z[: 3 * B].reshape(3, B, 3).transpose(1, 2, 0))
        return G, G.transpose(2, 0, 1).reshape(-1, 3)

    def shape(self, Y: np.ndarray, Zg: np.ndarray) -> np.ndarray:
        """Betas (k,) that best explain one mesh's subset Y (S, 3) with the rotations fixed (and the root point)."""
        k = self.body.n_betas
        base = self._mean[0][:, :-1] @ Zg
        A = np.stack([(P @ Zg).ravel() for P in self._shape_designs], 1)
        A = np.concatenate([A, np.tile(np.eye(3), (len(Y), 1))], 1)
        N = A.T @ A
        N[np.diag_indices(k)] += self.noise_m**2  # MAP: betas ~ N(0, 1), vertex noise ~ N(0, noise_m^2) per axis
        return np.linalg.solve(N, A.T @ (Y - base).ravel())[:k]

    def __call__(self, Y: np.ndarray, betas: np.ndarray | None, fit_shape: bool, iterations: int):
        from realtime_hmr.body.model import IKResult

        b = self.body
        n = len(Y)
        Ys = Y[:, self.subset]
        betas = np.zeros((n, b.n_betas)) if betas is None else np.array(betas, np.float64)
        G = np.empty((n, b.n_bones, 3, 3))
        X = np.empty((n, len(self.subset), 3))
        heads = np.empty((n, b.n_bones, 3))
        R = np.empty((n, b.n_bones, 3, 3))
        for i in range(n):
            solver = self.solver(betas[i])
            G[i], Zg = self.rotations(Ys[i], solver)
            for _ in range(iterations if fit_shape else 0):
                betas[i] = self.shape(Ys[i], Zg)
                solver = self.solver(betas[i])
                G[i], Zg = self.rotations(Ys[i], solver)
            X[i], heads[i], R[i] = solver[2:]
        D = kin.deltas_from_global(G, R, b.reference, b.bone_parents)
        W, T = kin.forward(D, np.zeros((n, 3)), R, heads, b.reference, b.bone_parents, b.levels)
        shift = (Ys - kin.blend(T, self._weights, X)).mean(1)  # every transform moves with the root's translation
        W[..., 3] += shift[:, None]
        d0 = np.einsum("ij,nj->ni", b.reference[0], shift)  # W_0's translation is U_0^T d_0
        return IKResult(rotations=D, translation=d0, betas=betas, bone_poses=W)
