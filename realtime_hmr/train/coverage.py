"""What a pose set covers: anatomical angles measured back from posed joints, and the share of poses that look like
each activity users perform (sitting, crouching, kicking, striding, throwing, arms overhead, torso twist, bending).

    python -m realtime_hmr.train.coverage [--n 2000]     # prints the table for the ROM sampler and for mocap

Angles are read from the bone heads of the neutral body (``rig.joint_positions``) in the pelvis frame (legs) and
the thorax frame (arms), with the right side mirrored onto the left, so they do not depend on how a pose was made.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from realtime_hmr.train import rig as R

log = logging.getLogger(__name__)


def anatomical_angles(D: np.ndarray, rig: R.Rig, side: str) -> dict[str, np.ndarray]:
    """Degrees: hip flexion / abduction, knee and elbow flexion, shoulder elevation and plane of elevation, the
    forearm's upward component in the thorax frame, trunk flexion and twist (pelvis to thorax)."""
    D = D.astype(np.float64)
    p, G = R.joint_positions(D, rig), R.world_deltas(D, rig.parents)
    mx = np.array([1.0, 1.0, 1.0]) if side == "L" else np.array([-1.0, 1.0, 1.0])

    def seg(name, frame):
        a, b = rig.segment(f"{name}.{side}")
        d = np.einsum("nji,nj->ni", frame, p[:, b] - p[:, a]) * mx
        return d / np.linalg.norm(d, axis=1, keepdims=True)

    pelvis, thorax = G[:, 0], G[:, rig.index("spine01")]
    th, sh, ua, fa = seg("thigh", pelvis), seg("shin", pelvis), seg("upperarm", thorax), seg("forearm", thorax)
    rel = np.swapaxes(pelvis, -1, -2) @ thorax  # thorax relative to pelvis
    up, front = rel @ np.array([0, 0, 1.0]), rel @ np.array([0, -1.0, 0])
    return {
        "hip.flex": np.degrees(np.arctan2(-th[:, 1], -th[:, 2])),
        "hip.abd": np.degrees(np.arcsin(np.clip(th[:, 0], -1, 1))),
        "knee.flex": R.angle_between(th, sh),
        "elbow.flex": R.angle_between(ua, fa),
        "shoulder.elev": np.degrees(np.arccos(np.clip(-ua[:, 2], -1, 1))),
        "shoulder.plane": np.degrees(np.arctan2(-ua[:, 1], ua[:, 0])),
        "forearm.up": fa[:, 2],
        "trunk.flex": np.degrees(np.arctan2(-up[:, 1], up[:, 2])),
        "trunk.twist": np.degrees(np.arctan2(front[:, 0], -front[:, 1])),
    }


def activities(D: np.ndarray, rig: R.Rig | None = None) -> dict[str, np.ndarray]:
    """Boolean masks (N,) of poses that look like each activity."""
    rig = rig or R.load_rig()
    L, Rr = anatomical_angles(D, rig, "L"), anatomical_angles(D, rig, "R")

    def both(f):
        return f(L) & f(Rr)

    def either(f):
        return f(L) | f(Rr)

    def stride(a, b):
        return (a["hip.flex"] > 25) & (b["hip.flex"] < -5) & (b["knee.flex"] > 40)

    def kick(a, b):
        return (a["hip.flex"] > 60) & (a["knee.flex"] < 40) & (b["hip.flex"] < 30)

    return {
        "sit": both(lambda a: (a["hip.flex"] > 60) & (a["hip.flex"] < 115) & (a["knee.flex"] > 60) & (
            a["knee.flex"] < 120)),
        "crouch": both(lambda a: (a["hip.flex"] > 95) & (a["knee.flex"] > 110)),
        "kick": kick(L, Rr) | kick(Rr, L),
        "stride": stride(L, Rr) | stride(Rr, L),
        "throw": either(lambda a: (a["shoulder.elev"] > 60) & (a["shoulder.elev"] < 120) & (a["forearm.up"] > 0.6)
                        & (a["elbow.flex"] > 60) & (a["elbow.flex"] < 130)),
        "arm_overhead": either(lambda a: a["shoulder.elev"] > 140),
        "both_overhead": both(lambda a: a["shoulder.elev"] > 140),
        "twist": np.abs(L["trunk.twist"]) > 25,
        "bend": L["trunk.flex"] > 45,
    }


def fractions(D: np.ndarray) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in activities(D).items()}


def mesh_collisions(D: np.ndarray, shapes: np.ndarray | None = None) -> np.ndarray:
    """Number of self-intersecting triangles of each posed Anny mesh (anny's SelfInterpenetrationModule, which
    ignores triangles sharing a bone; skin contact counts too). About 70 ms a mesh on one CPU core."""
    import torch
    from anny.utils.collision import SelfInterpenetrationModule

    from realtime_hmr.train.sheet import pose_meshes

    module = SelfInterpenetrationModule(R.anny_model())
    verts = pose_meshes(D, shapes)
    return np.array([int((module.detect_self_intersections(torch.as_tensor(v)) >= 0).sum()) for v in verts])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Share of poses looking like each activity, ROM sampler vs mocap.")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mesh", type=int, default=0, help="also count mesh self-intersections on this many poses")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from realtime_hmr.train.mocap import load_mocap
    from realtime_hmr.train.poses import sample_rom

    rng = np.random.default_rng(args.seed)
    rom, mocap = sample_rom(args.n, rng).rotations, load_mocap("all")
    rows = {"rom": fractions(rom)}
    for src in ("cmu", "deepmimic"):
        rows[src] = fractions(mocap.rotations[mocap.source == src])
    if args.mesh:
        for name, D in (("rom", rom[: args.mesh]), ("mocap", mocap.rotations[rng.choice(len(mocap), args.mesh)])):
            c = mesh_collisions(D)
            log.info("%s: %d poses, mesh self-intersection in %.0f%% (> 50 triangles in %.0f%%), median %d triangles",
                     name, len(c), 100 * (c > 0).mean(), 100 * (c > 50).mean(), np.median(c))
    keys = list(rows["rom"])
    log.info("%-10s %s", "source", " ".join(f"{k:>13s}" for k in keys))
    for name, f in rows.items():
        log.info("%-10s %s", name, " ".join(f"{100 * f[k]:12.1f}%" for k in keys))
