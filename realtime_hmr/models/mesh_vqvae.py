"""Mesh-VQ-VAE on the Anny body: a canonical, centred mesh (B, V, 3) <-> 54 discrete tokens (B, 54).

Encoder (mesh hierarchy, all fixed gathers): vertices -> 1024 pooled points (means of graph cells) -> 54 regions
of points, each flattened through its own linear layer (a locally connected layer, like a mesh convolution with
per-vertex weights) -> a small transformer over the 54 region vectors -> one ``code_dim`` vector per region.
Quantiser: one shared codebook (``codebook_size`` x ``code_dim``) learned by EMA, with dead-code restarts from
the batch's encodings; straight-through gradients; the loss adds ``commitment`` * |z - sg(q)|^2.
Decoder: token embeddings -> transformer -> per-bone features (a learned mix of the 54 tokens) -> one affine
transform (3x4) per bone and 20 shape coefficients -> a skinning layer: the rest mesh (template + coefficients x
shape directions) moved by the skin-weighted blend of the bone transforms. The skinning layer holds the body's
template, shape directions and skin weights (fixed buffers), so every output is a full-resolution mesh of the same
topology; the result is re-centred on its vertex mean.

Buffers come from the constructor (``Topology``); nothing here reads files. Any batch size works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class VQVAEConfig:
    n_vertices: int = 13718
    n_points: int = 1024
    n_tokens: int = 54
    codebook_size: int = 512
    code_dim: int = 9
    d_model: int = 128
    n_heads: int = 4
    enc_layers: int = 1
    dec_layers: int = 2
    n_bones: int = 104
    n_betas: int = 20
    input_scale: float = 3.0  # metres -> network units
    ema_decay: float = 0.99
    commitment: float = 0.25
    dead_threshold: float = 0.5  # EMA count (assignments per step) below which a code is restarted
    # 'fk': a rotation per bone relative to its parent (6D), composed down the rig, heads carried along (exact
    # kinematics of the skinning transforms); 'heads': a free rotation + posed head per bone; 'affine': free [R | t]
    bone_param: str = "fk"


@dataclass
class Topology:
    """Fixed arrays: hierarchy gathers and the body's skinning layer (numpy, as built by the training code)."""

    cell_idx: np.ndarray  # (P, K) vertex indices padded with V
    cell_w: np.ndarray  # (P, K)
    region_idx: np.ndarray  # (T, M) point indices padded with P
    template: np.ndarray  # (V, 3) mean rest vertices
    shape_dirs: np.ndarray  # (S, V, 3)
    skin_idx: np.ndarray  # (V, J) bone indices
    skin_w: np.ndarray  # (V, J) weights, rows sum to 1
    heads: np.ndarray | None = None  # (NB, 3) rest bone heads of the mean shape (bone_param 'heads')
    heads_dirs: np.ndarray | None = None  # (S, NB, 3) their change per shape coefficient
    parents: np.ndarray | None = None  # (NB,) parent bone (root -1; parents first), for bone_param 'fk'


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) * (C // self.heads) ** -0.5, dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.ln2(x))


class Quantizer(nn.Module):
    """Nearest-code VQ with an EMA codebook and dead-code restarts (state updated only in training mode)."""

    def __init__(self, K: int, D: int, decay: float, dead_threshold: float):
        super().__init__()
        self.decay, self.dead_threshold = decay, dead_threshold
        self.register_buffer("codebook", torch.randn(K, D))
        self.register_buffer("ema_count", torch.ones(K))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.restarts = 0

    def indices(self, z: Tensor) -> Tensor:
        d = (z * z).sum(-1, keepdim=True) - 2 * z @ self.codebook.t() + (self.codebook * self.codebook).sum(-1)
        return d.argmin(-1)

    @torch.no_grad()
    def _update(self, flat: Tensor, idx: Tensor) -> None:
        K = len(self.codebook)
        if not bool(self.initialised):  # start from the data: random batch encodings
            self.codebook.copy_(flat[torch.randint(len(flat), (K,), device=flat.device)])
            self.ema_sum.copy_(self.codebook)
            self.ema_count.fill_(1.0)
            self.initialised.fill_(True)
            idx = self.indices(flat)
        onehot = F.one_hot(idx, K).type_as(flat)
        self.ema_count.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        dead = self.ema_count < self.dead_threshold
        if dead.any():
            pick = flat[torch.randint(len(flat), (int(dead.sum()),), device=flat.device)]
            self.ema_sum[dead] = pick
            self.ema_count[dead] = 1.0
            self.restarts += int(dead.sum())
        self.codebook.copy_(self.ema_sum / self.ema_count.clamp_min(1e-5)[:, None])

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """z (..., D) -> straight-through quantised z, indices (...), commitment MSE."""
        flat = z.reshape(-1, z.shape[-1])
        idx = self.indices(flat)
        if self.training:
            self._update(flat.detach(), idx)
        q = self.codebook[idx].view_as(z)
        commit = F.mse_loss(z, q.detach())
        return z + (q - z).detach(), idx.view(z.shape[:-1]), commit


class MeshVQVAE(nn.Module):
    def __init__(self, cfg: VQVAEConfig, topo: Topology):
        super().__init__()
        self.cfg = cfg
        c, d = cfg, cfg.d_model
        buf = lambda name, a, dt=torch.float32: self.register_buffer(name, torch.as_tensor(np.asarray(a), dtype=dt))  # noqa: E731
        buf("cell_idx", topo.cell_idx, torch.long)
        buf("cell_w", topo.cell_w)
        buf("region_idx", topo.region_idx, torch.long)
        buf("template", topo.template)
        buf("shape_dirs", topo.shape_dirs)
        buf("skin_idx", topo.skin_idx, torch.long)
        buf("skin_w", topo.skin_w)
        dense = np.zeros((c.n_vertices, c.n_bones), np.float32)  # for inference: one matmul, no (B, V, J, 12) gather
        np.add.at(dense, (np.arange(c.n_vertices)[:, None], np.asarray(topo.skin_idx)), np.asarray(topo.skin_w))
        self.register_buffer("skin_dense", torch.from_numpy(dense), persistent=False)
        T, M = self.region_idx.shape
        if (T, len(self.cell_idx), len(self.template)) != (c.n_tokens, c.n_points, c.n_vertices):
            raise ValueError("topology does not match the config's n_tokens / n_points / n_vertices")
        self.region_in = nn.Parameter(torch.randn(T, 3 * M, d) / (3 * M) ** 0.5)
        self.region_b = nn.Parameter(torch.zeros(T, d))
        self.enc = nn.Sequential(*[Block(d, c.n_heads) for _ in range(c.enc_layers)])
        self.enc_out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, c.code_dim))
        self.vq = Quantizer(c.codebook_size, c.code_dim, c.ema_decay, c.dead_threshold)
        self.dec_in = nn.Linear(c.code_dim, d)
        self.dec_pos = nn.Parameter(torch.randn(T, d) * 0.02)
        self.dec = nn.Sequential(*[Block(d, c.n_heads) for _ in range(c.dec_layers)])
        self.dec_ln = nn.LayerNorm(d)
        self.bone_mix = nn.Parameter(torch.full((c.n_bones, T), 1.0 / T))
        self.bone_mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU())
        self.bone_out = nn.Parameter(torch.zeros(c.n_bones, d, 12))
        if c.bone_param in ("heads", "fk"):
            if topo.heads is None or topo.heads_dirs is None:
                raise ValueError(f"bone_param {c.bone_param!r} needs the topology's heads and heads_dirs")
            buf("heads", topo.heads)
            buf("heads_dirs", topo.heads_dirs)
            init = torch.cat([torch.eye(3).reshape(9), torch.zeros(3)])
        if c.bone_param == "fk":
            if topo.parents is None:
                raise ValueError("bone_param 'fk' needs the topology's parents")
            self._fk_plan(np.asarray(topo.parents, np.int64))
            init = torch.tensor([1.0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])  # 6D identity, no root offset
        elif c.bone_param == "affine":
            init = torch.eye(3, 4).reshape(12)
        else:
            raise ValueError(f"bone_param must be 'fk', 'heads' or 'affine', not {c.bone_param!r}")
        self.bone_b = nn.Parameter(init.repeat(c.n_bones, 1))
        self.betas_out = nn.Linear(d, c.n_betas)
        nn.init.zeros_(self.betas_out.weight)
        nn.init.zeros_(self.betas_out.bias)

    # -- encoder ---------------------------------------------------------------------------------------------------
    def pool(self, verts: Tensor) -> Tensor:
        """(B, V, 3) -> centred, scaled level-1 points (B, P, 3) (no parameters)."""
        x = (verts - verts.mean(1, keepdim=True)) * self.cfg.input_scale
        if torch.onnx.is_in_onnx_export() or torch.is_grad_enabled():
            x = torch.cat([x, x.new_zeros(x.shape[0], 1, 3)], 1)
            return (x[:, self.cell_idx] * self.cell_w[..., None]).sum(2)
        B, V, _ = x.shape
        P = self._sparse("_pool_sparse", self.cell_idx, self.cell_w, V, x.device)
        return torch.sparse.mm(P, x.transpose(0, 1).reshape(V, B * 3)).view(-1, B, 3).transpose(0, 1)

    def encode_points(self, pts: Tensor) -> Tensor:
        """Level-1 points (B, P, 3) -> continuous latent (B, T, code_dim)."""
        pts = torch.cat([pts, pts.new_zeros(pts.shape[0], 1, 3)], 1)
        reg = pts[:, self.region_idx].flatten(2)  # (B, T, 3M)
        h = torch.einsum("btm,tmd->btd", reg, self.region_in) + self.region_b
        return self.enc_out(self.enc(F.gelu(h)))

    def encode_latent(self, verts: Tensor) -> Tensor:
        return self.encode_points(self.pool(verts))

    def encode(self, verts: Tensor) -> Tensor:
        """(B, V, 3) -> tokens (B, T) int64."""
        return self.vq.indices(self.encode_latent(verts))

    # -- decoder ---------------------------------------------------------------------------------------------------
    def bone_params(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Quantised latent (B, T, code_dim) -> raw per-bone outputs (B, NB, 12) and shape coefficients (B, S)."""
        h = self.dec_ln(self.dec(self.dec_in(q) + self.dec_pos))
        bones = self.bone_mlp(torch.einsum("bt,ntd->nbd", self.bone_mix, h))
        return torch.einsum("nbd,bdk->nbk", bones, self.bone_out) + self.bone_b, self.betas_out(h.mean(1))

    def _fk_plan(self, parents: np.ndarray) -> None:
        """Bones grouped by depth; each level's parents as positions in the running (level-ordered) list."""
        self.register_buffer("parents", torch.as_tensor(parents), persistent=True)
        depth = np.zeros(len(parents), np.int64)
        for b in range(1, len(parents)):
            if not 0 <= parents[b] < b:
                raise ValueError("bones must be ordered parents first, with one root")
            depth[b] = depth[parents[b]] + 1
        levels = [np.flatnonzero(depth == k) for k in range(depth.max() + 1)]
        order = np.concatenate(levels)
        pos = np.empty(len(parents), np.int64)
        pos[order] = np.arange(len(parents))
        self.fk_levels = [torch.as_tensor(lv) for lv in levels]
        self.fk_parent_pos = [torch.as_tensor(pos[parents[lv]]) for lv in levels[1:]]
        self.fk_unorder = torch.as_tensor(pos)

    @staticmethod
    def rot6d(x: Tensor) -> Tensor:
        """(..., 6): two columns -> rotation matrix (..., 3, 3) by Gram-Schmidt (Zhou et al. 2019)."""
        a = F.normalize(x[..., :3], dim=-1)
        b = F.normalize(x[..., 3:6] - (a * x[..., 3:6]).sum(-1, keepdim=True) * a, dim=-1)
        return torch.stack([a, b, torch.cross(a, b, dim=-1)], -1)

    def forward_kinematics(self, out: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """Relative rotations (6D in ``out[..., :6]``) + rest heads h (B, NB, 3) -> skinning rotations G (B, NB, 3, 3)
        and posed heads (B, NB, 3): G_c = G_p L_c, p_c = p_p + G_p (h_c - h_p) (root head at h_0 + out[0, 9:])."""
        L = self.rot6d(out[..., :6])
        dev = out.device
        lv0 = self.fk_levels[0].to(dev)
        Gs, ps = [L[:, lv0]], [h[:, lv0] + out[:, lv0, 9:]]
        for lv, par in zip(self.fk_levels[1:], self.fk_parent_pos, strict=True):
            lv, par = lv.to(dev), par.to(dev)
            G_all, p_all = torch.cat(Gs, 1), torch.cat(ps, 1)
            Gp = G_all[:, par]
            off = h[:, lv] - h[:, self.parents[lv]]
            Gs.append(Gp @ L[:, lv])
            ps.append(p_all[:, par] + (Gp * off[:, :, None, :]).sum(-1))
        un = self.fk_unorder.to(dev)
        return torch.cat(Gs, 1)[:, un], torch.cat(ps, 1)[:, un]

    def transforms(self, out: Tensor, betas: Tensor) -> Tensor:
        """Raw bone outputs -> skinning transforms [R | t] (B, NB, 12). 'heads': out = (R, p) with p the posed head,
        t = p + (rest head offset) - R rest head, the rest head being the body's (linear in the coefficients) plus
        its offset from the mean body's; a bone then turns about its own head (well conditioned). 'fk': see
        :meth:`forward_kinematics`."""
        if self.cfg.bone_param == "affine":
            return out
        B = out.shape[0]
        h = self.heads + (betas @ self.heads_dirs.reshape(len(self.heads_dirs), -1)).view(B, -1, 3)
        if self.cfg.bone_param == "fk":
            R, p = self.forward_kinematics(out, h)
        else:
            R, p = out[..., :9].reshape(B, -1, 3, 3), out[..., 9:] + h
        t = p - (R * h[:, :, None, :]).sum(-1)
        return torch.cat([R, t[..., None]], -1).reshape(B, -1, 12)

    def decode_latent(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Quantised latent (B, T, code_dim) -> skinning transforms (B, NB, 12) and shape coefficients (B, S)."""
        out, betas = self.bone_params(q)
        return self.transforms(out, betas), betas

    def _sparse(self, name: str, idx: Tensor, w: Tensor, n_cols: int, device) -> Tensor:
        """Cached sparse (rows, n_cols) matrix of a padded gather table (padding columns >= n_cols dropped)."""
        m = self.__dict__.get(name)
        if m is None or m.device != device:
            rows = torch.arange(len(idx), device=device).repeat_interleave(idx.shape[1])
            keep = idx.reshape(-1) < n_cols
            m = torch.sparse_coo_tensor(torch.stack([rows[keep], idx.reshape(-1)[keep]]), w.reshape(-1)[keep],
                                        (len(idx), n_cols), check_invariants=False).coalesce()
            self.__dict__[name] = m
        return m

    def skin(self, A: Tensor, betas: Tensor, subset: Tensor | None = None) -> Tensor:
        """Bone transforms (B, NB, 12) + shape coefficients (B, S) -> vertices (B, V, 3) centred on their mean.

        ``subset`` (training only): skin just these vertex indices, centred on their own mean."""
        B = A.shape[0]
        tmpl, dirs = self.template, self.shape_dirs
        if subset is not None:
            tmpl, dirs = tmpl[subset], dirs[:, subset]
        rest = tmpl + (betas @ dirs.reshape(dirs.shape[0], -1)).view(B, -1, 3)
        At = A.transpose(0, 1).reshape(self.cfg.n_bones, B * 12)  # every body's transforms side by side: one product
        if subset is None and (torch.onnx.is_in_onnx_export() or not torch.is_grad_enabled()):
            M = self.skin_dense @ At  # (V, B * 12)
        else:  # training: a sparse product (a dense one would cost V x NB per body, a gather (B, V, J, 12) memory)
            W = self._sparse("_skin_sparse", self.skin_idx, self.skin_w, self.cfg.n_bones, A.device)
            if subset is not None:
                W = torch.index_select(W, 0, subset)
            M = torch.sparse.mm(W, At)
        rest_h = torch.cat([rest, torch.ones_like(rest[..., :1])], -1).transpose(0, 1)  # (V, B, 4)
        rest_h = rest_h.repeat(1, 1, 3).view(-1, B, 3, 4)  # explicit copies: ONNX Runtime's broadcast Mul is slower
        v = (M.view(-1, B, 3, 4) * rest_h).sum(-1).transpose(0, 1)  # (B, V, 3)
        return v - v.mean(1, keepdim=True)

    def decode(self, tokens: Tensor) -> Tensor:
        """Tokens (B, T) int64 -> centred vertices (B, V, 3)."""
        return self.skin(*self.decode_latent(self.vq.codebook[tokens]))

    def forward(self, pts: Tensor, subset: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Training pass on pooled points (``pool(verts)``): (reconstruction (B, V or len(subset), 3), tokens (B, T),
        commitment loss)."""
        q, idx, commit = self.vq(self.encode_points(pts))
        return self.skin(*self.decode_latent(q), subset), idx, commit


class Encoder(nn.Module):
    """Export wrapper: vertices (B, V, 3) -> tokens (B, T)."""

    def __init__(self, m: MeshVQVAE):
        super().__init__()
        self.m = m

    def forward(self, vertices: Tensor) -> Tensor:
        return self.m.encode(vertices)


class Decoder(nn.Module):
    """Export wrapper: tokens (B, T) -> vertices (B, V, 3)."""

    def __init__(self, m: MeshVQVAE):
        super().__init__()
        self.m = m

    def forward(self, tokens: Tensor) -> Tensor:
        return self.m.decode(tokens)


def v2v(pred: Tensor, target: Tensor) -> Tensor:
    """Mean per-vertex Euclidean distance after centring both on their vertex means (metres)."""
    pred = pred - pred.mean(1, keepdim=True)
    target = target - target.mean(1, keepdim=True)
    return (pred - target).norm(dim=-1).mean()


class PointsVQVAE(MeshVQVAE):
    """Ablation without the skinning prior: the same encoder, quantiser and decoder transformer, then a generic
    mesh decoder: per-region linear layers give each level-1 point a position and ``point_channels`` features;
    every vertex is its 4 nearest rest points' positions plus per-vertex learned linear maps of their features,
    blended with fixed inverse-distance weights (a locally connected up-sampling, as in Zhou et al.'s decoder)."""

    point_channels = 8

    def __init__(self, cfg: VQVAEConfig, topo: Topology):
        super().__init__(cfg, topo)
        T, M = self.region_idx.shape
        C, P, V = self.point_channels, cfg.n_points, cfg.n_vertices
        cells = np.asarray(topo.cell_idx)
        tp = np.concatenate([np.asarray(topo.template), np.zeros((1, 3), np.float32)])
        rest_pts = (tp[cells] * np.asarray(topo.cell_w)[..., None]).sum(1)  # (P, 3)
        d2 = ((np.asarray(topo.template)[:, None] - rest_pts[None]) ** 2).sum(-1)
        up_idx = np.argsort(d2, axis=1)[:, :4]
        w = 1.0 / (np.sqrt(np.take_along_axis(d2, up_idx, 1)) + 1e-3)
        self.register_buffer("up_idx", torch.as_tensor(up_idx, dtype=torch.long))
        self.register_buffer("up_w", torch.as_tensor(w / w.sum(1, keepdims=True), dtype=torch.float32))
        slot = np.zeros(P, np.int64)
        for r in range(T):
            for m, p in enumerate(np.asarray(topo.region_idx)[r]):
                if p < P:
                    slot[p] = r * M + m
        self.register_buffer("point_slot", torch.as_tensor(slot))
        self.point_out = nn.Parameter(torch.zeros(T, cfg.d_model, M * (3 + C)))
        self.point_b = nn.Parameter(torch.zeros(T, M * (3 + C)))
        with torch.no_grad():  # start at the rest points
            rp = torch.cat([torch.as_tensor(rest_pts), torch.zeros(1, 3)])[self.region_idx.clamp_max(P)]  # (T, M, 3)
            self.point_b.view(T, M, 3 + C)[..., :3] = rp
        self.vert_lin = nn.Parameter(torch.zeros(V, 4, C, 3))
        for k in ("bone_mix", "bone_out", "bone_b"):
            delattr(self, k)
        del self.bone_mlp, self.betas_out

    def points(self, q: Tensor) -> tuple[Tensor, Tensor]:
        h = self.dec_ln(self.dec(self.dec_in(q) + self.dec_pos))
        o = torch.einsum("btd,tdk->btk", h, self.point_out) + self.point_b
        o = o.reshape(o.shape[0], -1, 3 + self.point_channels)[:, self.point_slot]  # (B, P, 3 + C)
        return o[..., :3], o[..., 3:]

    def mesh(self, pos: Tensor, feat: Tensor, subset: Tensor | None = None) -> Tensor:
        idx, w, lin = self.up_idx, self.up_w, self.vert_lin
        if subset is not None:
            idx, w, lin = idx[subset], w[subset], lin[subset]
        v = pos[:, idx] + torch.einsum("bvkc,vkcd->bvkd", feat[:, idx], lin)
        v = (v * w[..., None]).sum(2)
        return v - v.mean(1, keepdim=True)

    def decode(self, tokens: Tensor) -> Tensor:
        return self.mesh(*self.points(self.vq.codebook[tokens]))

    def forward(self, pts: Tensor, subset: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        q, idx, commit = self.vq(self.encode_points(pts))
        return self.mesh(*self.points(q), subset), idx, commit
