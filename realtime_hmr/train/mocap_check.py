"""Checks of the mocap retargeting against its sources, and the report behind the numbers in docs/poses.md.

    python -m realtime_hmr.train.mocap_check [--report FILE.json]

For every clip: the angle between each retargeted Anny limb (thigh, shin, upper arm, forearm; bone heads from anny's
own forward pass, neutral body) and the source segment it follows (from the source's joint positions); how far
Anny's elbows and knees turn off their hinge axis (both sources' elbows and knees are 1-DOF hinges); and whether
clips that travel move towards the body's front (Anny's -Y), which catches a wrong axis conversion.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from realtime_hmr.train import rig as R
from realtime_hmr.train.mocap import HELD_OUT, Clip, anny_hinge, clip_paths, read_clip, retarget
from realtime_hmr.train.poses import PoseSet

log = logging.getLogger(__name__)


def off_hinge(ps: PoseSet, rig: R.Rig, bone: str) -> np.ndarray:
    """Degrees by which the elbow / knee below ``bone`` (upperarm01.* or upperleg01.*) turns about anything other
    than its hinge axis: the swing left after taking out the twist about the hinge (swing-twist split)."""
    child = bone.replace("upperarm01", "lowerarm01").replace("upperleg01", "lowerleg01")
    G = R.world_deltas(ps.rotations.astype(np.float64), rig.parents)
    q = Rotation.from_matrix(np.swapaxes(G[:, rig.index(bone)], -1, -2) @ G[:, rig.index(child)]).as_quat()
    e = anny_hinge(rig, bone)
    twist = np.concatenate([(q[:, :3] @ e)[:, None] * e, q[:, 3:]], axis=1)
    twist /= np.linalg.norm(twist, axis=1, keepdims=True)
    return np.degrees((Rotation.from_quat(q) * Rotation.from_quat(twist).inv()).magnitude())


def bone_direction_errors(ps: PoseSet, clip: Clip, heads: np.ndarray) -> dict[str, np.ndarray]:
    """Angle (degrees) per frame between each retargeted Anny limb and the source segment it follows.

    ``heads``: posed Anny bone heads (T, 104, 3) of ``ps`` (from anny's forward); source directions come from the
    source's own joint positions."""
    rig = R.load_rig()
    limbs = {"thigh": ("{Side}Hip", "{Side}Knee", "{side}_hip", "{side}_knee"),
             "shin": ("{Side}Knee", "{Side}Ankle", "{side}_knee", "{side}_ankle"),
             "upperarm": ("{Side}Shoulder", "{Side}Elbow", "{side}_shoulder", "{side}_elbow"),
             "forearm": ("{Side}Elbow", "{Side}Wrist", "{side}_elbow", "{side}_wrist")}
    out = {}
    for limb, names in limbs.items():
        for s, side in (("L", "Left"), ("R", "Right")):
            a, b = (n.format(Side=side, side=side.lower()) for n in (names[:2] if clip.source == "cmu" else names[2:]))
            src = clip.pos[:, clip.j(b)] - clip.pos[:, clip.j(a)]
            i, k = rig.segment(f"{limb}.{s}")
            out[f"{limb}.{s}"] = R.angle_between(heads[:, k] - heads[:, i], src)
    return out


def check(out: Path | None = None) -> dict:
    """Retarget every clip and measure it against its source: per-limb direction error (anny's own forward,
    neutral body) and whether moving clips travel towards the body's front."""
    import torch

    rig, model = R.load_rig(), R.anny_model()
    report: dict = {"clips": {}, "held_out": HELD_OUT}
    per_source: dict = {}
    for source, path in clip_paths():
        clip = read_clip(source, path)
        ps = retarget(clip, rig)
        P = torch.zeros(len(ps), len(rig.labels), 4, 4)
        P[:, :, :3, :3] = torch.as_tensor(ps.rotations)
        P[:, :, 3, 3] = 1
        with torch.no_grad():
            heads = model(pose_parameters=P)["bone_poses"][:, :, :3, 3].double().numpy()
        err = bone_direction_errors(ps, clip, heads)
        v = np.diff(ps.trans[:, :2], axis=0)
        front = (ps.rotations[:-1, 0] @ np.array([0, -1.0, 0]))[:, :2]
        mv = np.linalg.norm(v, axis=1) > 0.005
        cos = np.sum(v[mv] * front[mv], 1) / np.linalg.norm(v[mv], axis=1) / np.linalg.norm(front[mv], axis=1)
        report["clips"][path.stem] = {"source": source, "frames": len(ps),
                                      "median_move_facing_cos": float(np.median(cos)) if mv.any() else None}
        for side in "LR":
            err[f"elbow_off_hinge.{side}"] = off_hinge(ps, rig, f"upperarm01.{side}")
            err[f"knee_off_hinge.{side}"] = off_hinge(ps, rig, f"upperleg01.{side}")
        for k, e in err.items():
            per_source.setdefault(source, {}).setdefault(k.split(".")[0], []).append(e)
    report["limb_direction_error_deg"] = {
        s: {k: {"median": float(np.median(np.concatenate(v))), "p95": float(np.percentile(np.concatenate(v), 95)),
                "max": float(np.concatenate(v).max())} for k, v in limbs.items()} for s, limbs in per_source.items()}
    if out:
        Path(out).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Retarget all mocap clips and report how well they follow the source.")
    ap.add_argument("--report", type=Path, help="write the JSON report here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rep = check(args.report)
    for s, limbs in rep["limb_direction_error_deg"].items():
        log.info("%s: %s", s, ", ".join(f"{k} median {v['median']:.2g} p95 {v['p95']:.2g} max {v['max']:.2g} deg"
                                        for k, v in limbs.items()))
    for name, c in rep["clips"].items():
        log.info("%-28s %-9s %4d frames, move/facing cos %s", name, c["source"], c["frames"],
                 "-" if c["median_move_facing_cos"] is None else f"{c['median_move_facing_cos']:.2f}")
