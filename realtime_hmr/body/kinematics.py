"""Forward kinematics and linear blend skinning of the rig, in numpy (a port of Anny's 'local-ref' convention).

Notation for a bone c with parent p, [X | t] being the rigid map x -> X x + t:
- P_c = [R_c | h_c]: the rest pose (rest orientation R_c, head h_c), both depending on the body shape;
- U_c: the reference orientation (fixed); identity deltas pose the body in its reference A-pose;
- D_c: the bone's delta rotation, in world-aligned axes of the reference pose (the pose parameters);
- W_c = W_p [U_p^T D_c U_c | U_p^T q_c], q_c = A_p (h_c - h_p), A = U R^T (A_root = I): the posed bone pose;
- W_0 = [U_0^T D_0 U_0 | U_0^T d_0] for the root, d_0 being the root translation parameter;
- T_c = W_c P_c^-1: the skinning transform; a vertex moves by the blend of its bones' T_c.
"""

from __future__ import annotations

import numpy as np


def special_procrustes(M: np.ndarray) -> np.ndarray:
    """The rotation nearest to each 3x3 matrix (batched)."""
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    U = U.copy()
    U[..., :, 2] *= d[..., None]
    return U @ Vt


def levels_of(parents: np.ndarray) -> list[np.ndarray]:
    """Bones grouped by depth (the root alone first), so that a chain product takes one step per depth."""
    depth = np.zeros(len(parents), int)
    for c in range(1, len(parents)):
        if parents[c] >= c:
            raise ValueError("bones must be ordered parents first")
        depth[c] = depth[parents[c]] + 1
    return [np.nonzero(depth == d)[0] for d in range(depth.max() + 1)]


def forward(D: np.ndarray, d0: np.ndarray, R: np.ndarray, h: np.ndarray, U: np.ndarray, parents: np.ndarray,
            levels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Posed bone poses W and skinning transforms T, both (n, B, 3, 4).

    D: (n, B, 3, 3) deltas, d0: (n, 3) root translation, R: (n, B, 3, 3) rest orientations, h: (n, B, 3) rest heads,
    U: (B, 3, 3) reference orientations.
    """
    n, B = D.shape[:2]
    Ut = np.swapaxes(U, -1, -2)
    A = U @ np.swapaxes(R, -1, -2)
    A[:, 0] = np.eye(3)
    p = parents.copy()
    p[0] = 0
    q = np.einsum("nbij,nbj->nbi", A[:, p], h - h[:, p])
    K_rot = Ut[p] @ D @ U
    K_t = np.einsum("bij,nbj->nbi", Ut[p], q)
    W_rot = np.empty((n, B, 3, 3), D.dtype)
    W_t = np.empty((n, B, 3), D.dtype)
    W_rot[:, 0] = Ut[0] @ D[:, 0] @ U[0]
    W_t[:, 0] = d0 @ U[0]  # U_0^T d_0
    for lv in levels[1:]:
        pr, pt = W_rot[:, parents[lv]], W_t[:, parents[lv]]
        W_rot[:, lv] = pr @ K_rot[:, lv]
        W_t[:, lv] = np.einsum("nbij,nbj->nbi", pr, K_t[:, lv]) + pt
    G = W_rot @ np.swapaxes(R, -1, -2)
    T_t = W_t - np.einsum("nbij,nbj->nbi", G, h)
    W = np.concatenate([W_rot, W_t[..., None]], -1)
    T = np.concatenate([G, T_t[..., None]], -1)
    return W, T


def deltas_from_global(G: np.ndarray, R: np.ndarray, U: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Inverse of the rotation part of :func:`forward`: deltas D from the skinning rotations G = W_rot R^T."""
    Wr = G @ R  # posed orientations
    p = parents.copy()
    p[0] = 0
    Ut = np.swapaxes(U, -1, -2)
    # W_c = W_p U_p^T D_c U_c  =>  D_c = U_p W_p^T W_c U_c^T
    D = U[p] @ np.swapaxes(Wr[:, p], -1, -2) @ Wr @ Ut
    D[:, 0] = U[0] @ Wr[:, 0] @ Ut[0]
    return D


def blend(T: np.ndarray, weights, rest: np.ndarray) -> np.ndarray:
    """Linear blend skinning: rest vertices (n, V, 3) moved by the blended transforms T (n, B, 3, 4).

    ``weights`` is a scipy.sparse matrix (V, B) whose rows sum to 1.
    """
    n, B = T.shape[:2]
    M = weights @ T.reshape(n, B, 12).transpose(1, 0, 2).reshape(B, n * 12)  # (V, n*12)
    M = M.reshape(-1, n, 3, 4).transpose(1, 0, 2, 3)
    return np.einsum("nvij,nvj->nvi", M[..., :3], rest) + M[..., 3]
