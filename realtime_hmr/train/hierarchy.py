"""A vertex hierarchy on the body mesh for the Mesh-VQ-VAE: pooling cells and token regions (deterministic).

    from realtime_hmr.train.hierarchy import build_hierarchy
    h = build_hierarchy(body.faces, body.template, n_points=1024, n_tokens=54)

As MeshConvolution does (BFS sampling on the mesh graph), centres are picked by farthest-point sampling in *hop*
distance on the full 13,718-vertex mesh graph, starting from vertex 0; ties break on the lowest index. Hop
distance follows the mesh's vertex density, so hands and face (dense in Anny) get more points than the legs.

- level 1 (``n_points`` points): each vertex belongs to its nearest centre (hops, ties to the earlier centre);
  a point is the mean of its cell. Stored as a padded gather table ``cell_idx`` (P, K) with weights ``cell_w``
  (padding points at vertex index V, weight 0);
- tokens (``n_tokens`` regions): a second FPS, restricted to the level-1 points, in hop distance on the full mesh
  graph; each level-1 point joins its nearest token centre. Detached pieces (eyes, teeth) are joined to the body
  by one edge to their nearest body vertex. Stored as ``region_idx`` (T, M), padded with P.
Token order = the order the token centres were picked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

log = logging.getLogger(__name__)


@dataclass
class Hierarchy:
    centres: np.ndarray  # (P,) vertex index of each level-1 point
    cell_idx: np.ndarray  # (P, K) int64 vertex indices, padded with V
    cell_w: np.ndarray  # (P, K) float32, rows sum to 1
    token_centres: np.ndarray  # (T,) vertex index of each token's centre
    region_idx: np.ndarray  # (T, M) int64 level-1 point indices, padded with P

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("centres", "cell_idx", "cell_w", "token_centres", "region_idx")}


def mesh_graph(faces: np.ndarray, n_vertices: int) -> sparse.csr_matrix:
    f = np.asarray(faces, np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    g = sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(n_vertices, n_vertices)).tocsr()
    g = ((g + g.T) > 0).astype(np.float64)
    return g.tocsr()


def connect_components(graph: sparse.csr_matrix, vertices: np.ndarray) -> sparse.csr_matrix:
    """Join each detached piece (Anny's eyes, teeth and tongue) to the largest one by an edge between their
    closest vertex pair, so that hop distances are finite and detached pieces pool with their neighbourhood."""
    n, label = csgraph.connected_components(graph, directed=False)
    if n == 1:
        return graph
    main = np.argmax(np.bincount(label))
    mi = np.flatnonzero(label == main)
    rows, cols = [], []
    for c in range(n):
        if c == main:
            continue
        ci = np.flatnonzero(label == c)
        d = ((vertices[ci, None, :] - vertices[None, mi, :]) ** 2).sum(-1)
        a, b = np.unravel_index(np.argmin(d), d.shape)
        rows += [ci[a], mi[b]]
        cols += [mi[b], ci[a]]
    extra = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=graph.shape)
    return ((graph + extra) > 0).astype(np.float64).tocsr()


def hop_fps(graph: sparse.csr_matrix, n: int, candidates: np.ndarray | None = None, start: int | None = None):
    """Farthest-point sampling in hop distance. Returns centres (n,) and the (n, V) hop-distance matrix."""
    V = graph.shape[0]
    cand = np.arange(V) if candidates is None else np.asarray(candidates)
    first = int(cand[0] if start is None else start)
    centres, dists = [first], []
    mind = np.full(V, np.inf)
    for _ in range(n):
        d = csgraph.shortest_path(graph, unweighted=True, indices=centres[-1])
        dists.append(d)
        mind = np.minimum(mind, d)
        if len(centres) == n:
            break
        centres.append(int(cand[np.argmax(mind[cand])]))  # argmax returns the first (lowest) index on ties
    return np.asarray(centres, np.int64), np.stack(dists)


def _padded(groups: list[np.ndarray], pad: int) -> np.ndarray:
    width = max(len(g) for g in groups)
    out = np.full((len(groups), width), pad, np.int64)
    for r, g in enumerate(groups):
        out[r, : len(g)] = g
    return out


def build_hierarchy(faces: np.ndarray, vertices: np.ndarray, n_points: int = 1024, n_tokens: int = 54) -> Hierarchy:
    V = len(vertices)
    if not 0 < n_tokens <= n_points <= V:
        raise ValueError(f"need 0 < n_tokens <= n_points <= {V}, got {n_tokens}, {n_points}")
    g = connect_components(mesh_graph(faces, V), np.asarray(vertices, np.float64))
    centres, d = hop_fps(g, n_points)
    owner = np.argmin(d, axis=0)  # (V,) nearest centre, ties to the earlier one
    cells = [np.flatnonzero(owner == p) for p in range(n_points)]
    cell_idx = _padded(cells, V)
    cell_w = (cell_idx < V) / np.array([len(c) for c in cells], np.float64)[:, None]
    tok, dt = hop_fps(g, n_tokens, candidates=centres)
    towner = np.argmin(dt[:, centres], axis=0)  # (P,)
    regions = [np.flatnonzero(towner == t) for t in range(n_tokens)]
    if min(len(r) for r in regions) == 0:
        raise RuntimeError("an empty token region: lower n_tokens")
    h = Hierarchy(centres, cell_idx, cell_w.astype(np.float32), tok, _padded(regions, n_points))
    log.info("hierarchy: %d -> %d points (cell size %d..%d) -> %d tokens (region size %d..%d)", V, n_points,
             min(map(len, cells)), max(map(len, cells)), n_tokens, min(map(len, regions)), max(map(len, regions)))
    return h
