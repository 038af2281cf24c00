"""MEGA-style masked generative decoder over the 54 mesh tokens, conditioned on BlazePose landmarks.

One bidirectional transformer sees a fixed-length sequence: conditioning tokens first (33 image landmarks, 33 world
landmarks, one crop-geometry token, and an optional slot of image-feature tokens from a backbone: the BlazePose
landmark net's last feature maps, 20 x 288, in the shipped tracker), then the 54 mesh token positions, each holding
a codebook id or [MASK] (id = codebook size). A person without image features (simulated training people) gets
learned null image tokens. Shapes never change: masked positions are kept, not dropped, so export and CUDA graphs
see one static graph.

- deterministic: every mesh position masked, one pass, argmax (the real-time path);
- stochastic: MaskGIT-style iterative decoding with Gumbel noise and a cosine schedule, K samples at once;
- unconditional: the conditioning tokens replaced by learned null tokens (trained by dropping the condition), which
  samples random bodies from the prior.
Heads: token logits, and the body's global orientation (6D, Zhou et al.) from a dedicated [ROT] token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

N_LANDMARKS = 33
COND_2D = 4  # x, y, z relative to the landmarks' own box (units of its size), visibility
COND_WORLD = 3  # metres, hip-centred
COND_GEOM = 3  # CLIFF: box centre offset from the principal point / f (2), box size / f


@dataclass
class MEGAConfig:
    n_tokens: int = 54
    codebook: int = 512
    d: int = 256
    layers: int = 6
    heads: int = 8
    mlp: int = 4
    dropout: float = 0.1
    image_tokens: int = 0  # slot for backbone features (0: landmarks only)
    image_dim: int = 0


class Block(nn.Module):
    def __init__(self, cfg: MEGAConfig):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(cfg.d), nn.LayerNorm(cfg.d)
        self.qkv = nn.Linear(cfg.d, 3 * cfg.d)
        self.proj = nn.Linear(cfg.d, cfg.d)
        self.mlp = nn.Sequential(nn.Linear(cfg.d, cfg.mlp * cfg.d), nn.GELU(), nn.Linear(cfg.mlp * cfg.d, cfg.d))
        self.heads, self.drop = cfg.heads, cfg.dropout

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(self.n1(x)).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.drop if self.training else 0.0)
        x = x + F.dropout(self.proj(a.transpose(1, 2).reshape(B, T, D)), self.drop, self.training)
        return x + F.dropout(self.mlp(self.n2(x)), self.drop, self.training)


class MEGA(nn.Module):
    def __init__(self, cfg: MEGAConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d
        self.mask_id = cfg.codebook
        self.tok = nn.Embedding(cfg.codebook + 1, d)
        self.pos = nn.Parameter(torch.zeros(cfg.n_tokens, d))
        self.lm2d = nn.Linear(COND_2D, d)
        self.lmw = nn.Linear(COND_WORLD, d)
        self.geom = nn.Linear(COND_GEOM, d)
        self.cond_pos = nn.Parameter(torch.zeros(2 * N_LANDMARKS + 1, d))  # which landmark / kind each token is
        self.null = nn.Parameter(torch.zeros(2 * N_LANDMARKS + 1, d))  # the unconditional "condition"
        self.img = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, d)) if cfg.image_tokens else None
        if cfg.image_tokens:
            self.img_pos = nn.Parameter(torch.zeros(cfg.image_tokens, d))
            self.img_null = nn.Parameter(torch.zeros(cfg.image_tokens, d))
            nn.init.normal_(self.img_pos, std=0.02)
            nn.init.normal_(self.img_null, std=0.02)
        self.rot = nn.Parameter(torch.zeros(1, d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(d)
        self.logits = nn.Linear(d, cfg.codebook)
        self.orient = nn.Linear(d, 6)
        for p in (self.pos, self.cond_pos, self.null, self.rot):
            nn.init.normal_(p, std=0.02)
        nn.init.zeros_(self.orient.weight)
        with torch.no_grad():
            self.orient.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0]))

    @property
    def n_cond(self) -> int:
        return 2 * N_LANDMARKS + 1 + self.cfg.image_tokens + 1

    def condition(self, lm2d, lmw, geom, image=None, drop=None, has_image=None):
        """Conditioning tokens (B, n_cond, d). ``drop`` (B,) bool replaces a sample's condition by the null one;
        ``image`` (B, image_tokens, image_dim) features, ``has_image`` (B,) bool says whose are real (the others,
        and every sample when ``image`` is None, get the null image tokens)."""
        c = torch.cat([self.lm2d(lm2d), self.lmw(lmw), self.geom(geom)[:, None]], 1) + self.cond_pos
        if drop is not None:
            c = torch.where(drop[:, None, None], self.null.expand_as(c), c)
        parts = [c]
        if self.img is not None:
            null = self.img_null.expand(c.shape[0], -1, -1)
            if image is None:
                parts.append(null)
            else:
                im = self.img(image) + self.img_pos
                absent = None if has_image is None else ~has_image
                if drop is not None:
                    absent = drop if absent is None else absent | drop
                parts.append(im if absent is None else torch.where(absent[:, None, None], null, im))
        parts.append(self.rot.expand(c.shape[0], -1, -1))
        return torch.cat(parts, 1)

    def unconditional(self, batch: int) -> torch.Tensor:
        parts = [self.null.expand(batch, -1, -1)]
        if self.img is not None:
            parts.append(self.img_null.expand(batch, -1, -1))
        return torch.cat([*parts, self.rot.expand(batch, -1, -1)], 1)

    def forward(self, tokens, cond):
        """tokens (B, 54) ids or [MASK]; cond (B, n_cond, d) from :meth:`condition`.
        Returns logits (B, 54, codebook) and the global orientation as 6D (B, 6)."""
        x = torch.cat([cond, self.tok(tokens) + self.pos], 1)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return self.logits(x[:, -self.cfg.n_tokens:]), self.orient(x[:, cond.shape[1] - 1])

    # -- decoding --------------------------------------------------------------------------------------------------
    def masked(self, batch: int, device=None) -> torch.Tensor:
        return torch.full((batch, self.cfg.n_tokens), self.mask_id, dtype=torch.long, device=device)

    def masked_like(self, cond: torch.Tensor) -> torch.Tensor:
        """All-[MASK] tokens for ``cond``'s batch, built from its shape (so an exported graph keeps the batch free)."""
        return torch.zeros_like(cond[:, :1, 0], dtype=torch.long).expand(-1, self.cfg.n_tokens) + self.mask_id

    @torch.no_grad()
    def deterministic(self, cond, codebook: torch.Tensor | None = None):
        """All positions masked, one pass: tokens (B, 54), 6D orientation (B, 6). The tokens are the argmax, or, given
        the tokenizer's ``codebook`` (K, D), the expected-code tokens (:func:`expected_tokens`)."""
        logits, rot6 = self(self.masked_like(cond), cond)
        return (logits.argmax(-1) if codebook is None else expected_tokens(logits, codebook)), rot6

    @torch.no_grad()
    def stochastic(self, cond, samples: int = 10, steps: int = 5, temperature: float = 1.0,
                   generator: torch.Generator | None = None):
        """K samples per condition by iterative decoding: tokens (B, K, 54), orientation 6D (B, K, 6).

        Each step predicts every masked position, samples with Gumbel noise (temperature annealed to 0), keeps the
        most confident new tokens so that cos(pi/2 * step/steps) of the positions remain masked, and repeats.
        """
        B, n = len(cond), self.cfg.n_tokens
        c = cond.repeat_interleave(samples, 0)
        tok = self.masked(len(c), cond.device)
        rot6 = None
        for s in range(steps):
            logits, rot6 = self(tok, c)
            t = temperature * (1 - (s + 1) / steps)
            u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-9, 1 - 1e-9)
            g = -torch.log(-torch.log(u))
            pick = (logits + t * g).argmax(-1) if t > 0 else logits.argmax(-1)
            conf = torch.log_softmax(logits, -1).gather(-1, pick[..., None])[..., 0]
            u2 = torch.rand(conf.shape, generator=generator, device=conf.device).clamp_(1e-9, 1 - 1e-9)
            conf = conf + t * -torch.log(-torch.log(u2))  # noisy confidence: which new tokens to keep
            still = tok == self.mask_id
            conf = torch.where(still, conf, torch.full_like(conf, float("inf")))  # decided tokens stay
            keep_masked = int(math.floor(n * math.cos(math.pi / 2 * (s + 1) / steps)))
            new = torch.where(still, pick, tok)
            if keep_masked > 0:
                order = conf.argsort(-1)  # least confident first
                remask = torch.zeros_like(still)
                remask.scatter_(1, order[:, :keep_masked], True)
                new = torch.where(remask & still, torch.full_like(new, self.mask_id), new)
            tok = new
        return tok.view(B, samples, n), rot6.view(B, samples, 6)


def expected_tokens(logits: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Per position, the codebook entry nearest to the probability-weighted mean code (softmax(logits) @ codebook):
    tokens (B, n) from logits (B, n, K) and the tokenizer's codebook (K, D). Where the decoder hesitates between
    codes, the argmax jumps to one of them; the expected code lands between them and its nearest entry is the body
    they agree on (on held-out rendered people: canonical PVE 173.3 against 189.7 mm for the argmax, docs/mega.md)."""
    q = logits.float().softmax(-1) @ codebook
    dist = (q * q).sum(-1, keepdim=True) - 2 * q @ codebook.T + (codebook * codebook).sum(-1)
    return dist.argmin(-1)


def rotation_6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """Zhou et al.'s continuous 6D representation (two columns) to rotation matrices (..., 3, 3)."""
    a, b = x[..., :3], x[..., 3:]
    e1 = F.normalize(a, dim=-1)
    e2 = F.normalize(b - (e1 * b).sum(-1, keepdim=True) * e1, dim=-1)
    return torch.stack([e1, e2, torch.cross(e1, e2, dim=-1)], -1)


def training_mask(batch: int, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """MaskGIT/MEGA's training mask: ratio cos(pi/2 * u), u ~ U(0, 1), at least one position masked (bool (B, n))."""
    u = torch.rand(batch, generator=generator, device=device)
    count = (torch.cos(math.pi / 2 * u) * n).ceil().clamp(1, n).long()
    scores = torch.rand(batch, n, generator=generator, device=device)
    ranks = scores.argsort(-1).argsort(-1)
    return ranks < count[:, None]
