"""Training poses: ROM samples and perturbed, mirrored mocap frames mixed in one PoseSet.

    from realtime_hmr.train.posemix import training_poses
    ps = training_poses(10_000, np.random.default_rng(0))            # split='train': held-out clips never appear
    ev = training_poses(500, np.random.default_rng(1), split="eval", mocap_fraction=1.0, sigma_deg=0.0)

Mocap frames are drawn uniformly (with replacement) from ``load_mocap(split)`` (mirrored copies included), given a
uniform random heading (root rotation and translation turned about Z) and ``perturb``'ed. ROM poses already have
a random heading. ``trans`` is zero for ROM and the source's pelvis position (metres, clip start at the XY origin)
for mocap: place bodies on the ground by their lowest vertex rather than trusting it, since body sizes differ.
"""

from __future__ import annotations

import functools

import numpy as np

from realtime_hmr.train import rig as R
from realtime_hmr.train.mocap import load_mocap_or_none, perturb
from realtime_hmr.train.poses import PoseSet, sample_rom


@functools.lru_cache(maxsize=2)
def _mocap(split: str) -> PoseSet | None:
    return load_mocap_or_none(split)


def training_poses(n: int, rng: np.random.Generator, split: str = "train", mocap_fraction: float = 0.5,
                   sigma_deg: float = 4.0) -> PoseSet:
    if mocap_fraction > 0 and _mocap(split) is None:
        mocap_fraction = 0.0  # no clips installed here
    n_mocap = int(rng.binomial(n, mocap_fraction)) if 0 < mocap_fraction < 1 else int(round(n * mocap_fraction))
    sets = []
    if n - n_mocap:
        sets.append(sample_rom(n - n_mocap, rng))
    if n_mocap:
        pool = _mocap(split)
        ps = pool.subset(rng.integers(0, len(pool), n_mocap))
        yaw = R.axis_angle(np.array([0.0, 0.0, 1.0]), rng.uniform(-np.pi, np.pi, n_mocap))
        ps.rotations[:, 0] = (yaw @ ps.rotations[:, 0]).astype(np.float32)
        ps.trans = np.einsum("nij,nj->ni", yaw, ps.trans).astype(np.float32)
        sets.append(perturb(ps, rng, sigma_deg) if sigma_deg > 0 else ps)
    out = PoseSet.concat(sets)
    return out.subset(rng.permutation(len(out)))
