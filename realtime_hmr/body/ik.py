"""Inverse kinematics: posed vertices -> the rig's rotations, root translation and shape.

With the skinning rotations G_a of every bone as unknowns (G_a = posed orientation x rest orientation^T), a posed
vertex is linear in them:

    y_v = p_root + sum_a G_a r_va,   r_va = w_va (x_v - h_a) + sum_{c below a} w_vc (h_next(a,c) - h_a)

(x_v rest vertex, h rest heads, w skin weights, next(a, c) the child of a on the way to c): each bone turns its own
vertices about its head and carries every head below it. So all rotations come from ONE linear least-squares solve,
with the chain of heads built in; each solution is then projected on the nearest rotation. A tree-Laplacian of
weight 1e-7 settles what no vertex determines (the root owns none: it takes the mean of its children). The normal
matrix depends only on the shape: it is factorised once per shape and cached, which makes a known shape the fast
path. When the shape is unknown, Gauss-Newton refines rotations, shape and root point jointly from that start.
Everything runs on a fixed vertex subset that pins every bone.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import sparse
from scipy.linalg import cho_factor, cho_solve
from scipy.spatial.transform import Rotation

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
        self.noise_m = noise_m  # vertex noise per axis assumed by the shape prior (betas ~ N(0, 1))
        self.subset = vertex_subset(body.weights, stride)
        self._weights = sparse.csr_matrix(body.weights[self.subset])
        self._template = body.template[self.subset]
        self._shape_dirs = body.shape_dirs[:, self.subset]
        B = body.n_bones
        self._build_pattern()
        L = np.zeros((B, B))
        for c in range(1, B):
            p = body.bone_parents[c]
            L[[c, p], [c, p]] += 1.0
            L[c, p] -= 1.0
            L[p, c] -= 1.0
        self._laplacian = np.zeros((3 * B + 1, 3 * B + 1))
        for j in range(3):
            self._laplacian[j * B:(j + 1) * B, j * B:(j + 1) * B] = L
        # design values of each shape direction (they are linear in the rest vertices and heads): (k, 3, nnz)
        self._shape_values = np.stack([self.values(self._shape_dirs[k], body.heads_dirs[k])
                                       for k in range(body.n_betas)])
        self._mean = self._factor(np.zeros(body.n_betas))
        self._solver_for = lru_cache(maxsize=cache)(self._solver_for_key)

    # -- the linear model ------------------------------------------------------------------------------------------
    def _build_pattern(self) -> None:
        """The fixed sparsity of Phi's blocks, and its values as a linear map of (rest vertices, heads).

        Entry (v, a) is non-zero when bone a or one of its descendants moves vertex v. Its value along axis j is
        w_va (x_vj - h_aj) + sum_c w_vc (h_next(a,c),j - h_aj) = w_e x_vj + (M_h h_j)_e.
        """
        parents = self.body.bone_parents
        W = self._weights.tocoo()
        S, B = self._weights.shape
        anc = []  # (vertex, weight, ancestor, next) for every skin weight and every strict ancestor of its bone
        for v, c, w in zip(W.row, W.col, W.data):
            child, a = c, parents[c]
            while a >= 0:
                anc.append((v, w, a, child))
                child, a = a, parents[a]
        anc = np.array(anc)
        av, aw, aa, an = anc[:, 0].astype(int), anc[:, 1], anc[:, 2].astype(int), anc[:, 3].astype(int)
        mask = np.zeros((S, B), bool)
        mask[W.row, W.col] = True
        mask[av, aa] = True
        rows, cols = np.nonzero(mask)  # row-major, i.e. CSR order
        entry = np.full((S, B), -1)
        entry[rows, cols] = np.arange(len(rows))
        self._rows, self._cols = rows, cols
        self._indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=S))])
        self._w = np.zeros(len(rows))
        self._w[entry[W.row, W.col]] = W.data
        e_own, e_anc = entry[W.row, W.col], entry[av, aa]
        self._M_h = sparse.csr_matrix((np.concatenate([-W.data, aw, -aw]),
                                       (np.concatenate([e_own, e_anc, e_anc]), np.concatenate([W.col, an, aa]))),
                                      shape=(len(rows), B))
        self._rowsum = sparse.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(S, len(rows)))

    def values(self, X: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """Phi's block values (3, nnz) for rest vertices X (S, 3) and heads (B, 3)."""
        return self._w * X[self._rows].T + (self._M_h @ heads).T

    def design(self, X: np.ndarray, heads: np.ndarray) -> sparse.csr_matrix:
        """Phi (S, 3B + 1) such that Y = Phi Z on the subset, with Z[j*B + a, i] = G_a[i, j] and Z[3B] = p_root."""
        S, B = self._weights.shape
        blocks = [sparse.csr_matrix((d, self._cols, self._indptr), shape=(S, B)) for d in self.values(X, heads)]
        blocks.append(sparse.csr_matrix(np.ones((S, 1))))
        return sparse.hstack(blocks).tocsr()

    # -- per-shape solvers -----------------------------------------------------------------------------------------
    def _factor(self, betas: np.ndarray):
        """What the linear solve needs for one shape: Phi, its factorised normal matrix, and the shape's subset rest
        vertices, heads and rest orientations."""
        X = self._template + np.einsum("k,kvd->vd", betas, self._shape_dirs)
        heads, R = self.body.rest_frame(betas[None])
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

    def rotations(self, Y: np.ndarray, solver) -> np.ndarray:
        """Skinning rotations G (B, 3, 3) of one mesh's subset Y (S, 3): linear solve, then nearest rotations."""
        Phi, fac = solver[:2]
        B = self.body.n_bones
        Z = cho_solve(fac, Phi.T @ Y)
        return kin.special_procrustes(Z[: 3 * B].reshape(3, B, 3).transpose(1, 2, 0))  # G[a, i, j] = Z[j*B + a, i]

    # -- joint refinement ------------------------------------------------------------------------------------------
    def refine(self, Y: np.ndarray, G: np.ndarray, betas: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Gauss-Newton (lightly damped) on rotations, shape and root point jointly, for one mesh subset Y (S, 3).

        Residual r_v = y_v - p - sum_a G_a r_va(betas). The update G_a <- exp(w_a) G_a moves the prediction by
        -[q_va]x w_a with q_va = G_a r_va; beta_k by sum_a G_a r_va(dir_k); p by itself. Betas have a N(0, 1) prior.
        """
        b = self.body
        S, B = self._weights.shape
        k = b.n_betas
        nw = 3 * B
        G, betas, p = G.copy(), betas.copy(), None
        for _ in range(steps):
            X = self._template + np.einsum("k,kvd->vd", betas, self._shape_dirs)
            h = b.heads0 + np.einsum("k,kbd->bd", betas, b.heads_dirs)
            Gc = G[self._cols]  # (nnz, 3, 3)
            q = np.einsum("eij,je->ei", Gc, self.values(X, h))  # (nnz, 3)
            pred = self._rowsum @ q
            p = (Y - pred).mean(0) if p is None else p
            r = Y - pred - p
            sk = (self._rowsum @ np.einsum("eij,kje->eik", Gc, self._shape_values).reshape(len(q), 3 * k))
            sk = sk.reshape(S, 3, k)  # d y_v / d beta_k
            Q = [sparse.csr_matrix((q[:, i], self._cols, self._indptr), shape=(S, B)) for i in range(3)]
            QT = [m.T.tocsr() for m in Q]

            def cross_sum(E, QT=QT):  # sum_v q_va x E_v for E (S, 3, m) -> (B, 3, m)
                c = {(x, y): QT[x] @ E[:, y] for x in range(3) for y in range(3) if x != y}
                return np.stack([c[1, 2] - c[2, 1], c[2, 0] - c[0, 2], c[0, 1] - c[1, 0]], 1)

            P = [[(QT[x] @ Q[y]).toarray() for y in range(3)] for x in range(3)]  # P[x][y][a, b] = sum q_va[x] q_vb[y]
            tr = P[0][0] + P[1][1] + P[2][2]
            H_ww = np.zeros((B, 3, B, 3))
            for i in range(3):
                for j in range(3):
                    H_ww[:, i, :, j] = (tr if i == j else 0.0) - P[j][i]
            u = np.stack([np.asarray(Q[i].sum(0)).ravel() for i in range(3)], 1)  # sum_v q_va, (B, 3)
            H_wp = np.zeros((B, 3, 3))  # [u_a]x
            H_wp[:, 0, 1], H_wp[:, 0, 2], H_wp[:, 1, 2] = -u[:, 2], u[:, 1], -u[:, 0]
            H_wp[:, 1, 0], H_wp[:, 2, 0], H_wp[:, 2, 1] = u[:, 2], -u[:, 1], u[:, 0]
            H = np.zeros((nw + k + 3, nw + k + 3))
            H[:nw, :nw] = H_ww.reshape(nw, nw)
            H[:nw, nw:nw + k] = cross_sum(sk).reshape(nw, k)
            H[:nw, nw + k:] = H_wp.reshape(nw, 3)
            H[nw:nw + k, nw:nw + k] = np.einsum("vik,vil->kl", sk, sk) + self.noise_m**2 * np.eye(k)
            H[nw:nw + k, nw + k:] = sk.sum(0).T
            H[nw + k:, nw + k:] = S * np.eye(3)
            H = np.triu(H) + np.triu(H, 1).T
            g = np.concatenate([cross_sum(r[..., None])[..., 0].ravel(),
                                np.einsum("vik,vi->k", sk, r) - self.noise_m**2 * betas, r.sum(0)])
            H[np.diag_indices(nw)] += 1e-6 * np.trace(H[:nw, :nw]) / nw
            d = np.linalg.solve(H, g)
            G = Rotation.from_rotvec(d[:nw].reshape(B, 3)).as_matrix() @ G
            betas = betas + d[nw:nw + k]
            p = p + d[nw + k:]
        return G, betas

    # -- the whole solve -------------------------------------------------------------------------------------------
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
            G[i] = self.rotations(Ys[i], solver)
            if fit_shape and iterations:
                G[i], betas[i] = self.refine(Ys[i], G[i], betas[i], iterations)
                X[i] = self._template + np.einsum("k,kvd->vd", betas[i], self._shape_dirs)
                h, Ri = b.rest_frame(betas[i][None])
                heads[i], R[i] = h[0], Ri[0]
            else:
                X[i], heads[i], R[i] = solver[2:]
        D = kin.deltas_from_global(G, R, b.reference, b.bone_parents)
        W, T = kin.forward(D, np.zeros((n, 3)), R, heads, b.reference, b.bone_parents, b.levels)
        shift = (Ys - kin.blend(T, self._weights, X)).mean(1)  # every transform moves with the root's translation
        W[..., 3] += shift[:, None]
        d0 = np.einsum("ij,nj->ni", b.reference[0], shift)  # W_0's translation is U_0^T d_0
        return IKResult(rotations=D, translation=d0, betas=betas, bone_poses=W)
