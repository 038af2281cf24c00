"""A synthetic pitch with known events, and its rendered high-frame-rate clip.

    python -m realtime_hmr.train.pitch_clip --out pitch_clip/      # pitch.mp4 (240 fps) + pitch_gt.npz + pitch.json

No pitching motion capture ships with the project's data, so the pitch is authored: anatomical joint angles
(``train.poses``: the ROM sampler's angle conventions) at the delivery's phases (set, leg lift, foot contact,
maximum external rotation, release, follow-through), interpolated by monotone cubics, on the body asset's rig. The
feet are pinned to the ground where they bear the body: the pivot foot until leg lift, the lead foot from foot
contact on, with the stride between (``stride`` along +X, the target). So the ground truth is known by construction:
the frame the lead foot lands, the stride, and every joint at every frame. A right-handed delivery; ``left=True``
mirrors it. Timing as measured in professional deliveries (foot contact to release about 145 ms, maximum external
rotation about 30 ms before release). The keyframes are deliberately plain; they exercise the analysis, they are not
a model of good mechanics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# phase -> time (s)
TIMES = {"set": 0.0, "lift": 0.42, "drive": 0.70, "contact": 0.86, "turn": 0.92, "mer": 0.975, "release": 1.005,
         "follow": 1.20, "end": 1.40}
# Keyframes, degrees. Root: heading about +Z (0 = the glove side towards the target, +X). Spine and neck: poses.py's
# axial angles. Lead = glove side = the left side of a right-hander; arm and leg angles as poses.LIMITS.
KEYS = {
    "root.heading": {"set": 0, "lift": -12, "drive": 0, "contact": 35, "turn": 65, "mer": 82, "release": 88,
                     "follow": 105, "end": 108},
    "spine.twist": {"set": 0, "lift": -8, "drive": -25, "contact": -40, "turn": -35, "mer": -2, "release": 2,
                    "follow": 10, "end": 10},
    "spine.flex": {"set": 3, "lift": 5, "drive": 5, "contact": 5, "mer": 15, "release": 28, "follow": 45, "end": 40},
    "spine.lat": {"set": 0, "lift": -5, "drive": -8, "contact": -5, "mer": 15, "release": 25, "follow": 20, "end": 15},
    "lead.hip.flex": {"set": 0, "lift": 95, "drive": 60, "contact": 45, "mer": 45, "release": 50, "follow": 65,
                      "end": 60},
    "lead.hip.abd": {"set": 5, "lift": 5, "drive": 25, "contact": 30, "mer": 25, "release": 20, "follow": 15,
                     "end": 15},
    "lead.knee.flex": {"set": 5, "lift": 95, "drive": 60, "contact": 40, "mer": 35, "release": 30, "follow": 25,
                       "end": 25},
    "pivot.hip.flex": {"set": 0, "lift": 5, "drive": -5, "contact": -20, "mer": -25, "release": -25, "follow": -15,
                       "end": -10},
    "pivot.hip.abd": {"set": 5, "lift": 5, "drive": 20, "contact": 25, "mer": 15, "release": 10, "follow": 5,
                      "end": 5},
    "pivot.knee.flex": {"set": 10, "lift": 15, "drive": 35, "contact": 40, "mer": 50, "release": 60, "follow": 75,
                        "end": 70},
    "pivot.ankle.flex": {"set": 0, "lift": 0, "drive": 10, "contact": 25, "mer": 35, "release": 40, "follow": 40,
                         "end": 30},
    "throw.shoulder.elev": {"set": 25, "lift": 25, "drive": 60, "contact": 90, "mer": 95, "release": 95,
                            "follow": 55, "end": 40},
    "throw.shoulder.plane": {"set": 75, "lift": 75, "drive": 10, "contact": -25, "mer": 5, "release": 35,
                             "follow": 120, "end": 110},
    "throw.shoulder.rot": {"set": 0, "lift": 0, "drive": 30, "contact": 70, "mer": 165, "release": 95, "follow": -20,
                           "end": -10},
    "throw.elbow.flex": {"set": 100, "lift": 100, "drive": 80, "contact": 95, "mer": 95, "release": 25, "follow": 35,
                         "end": 60},
    "glove.shoulder.elev": {"set": 25, "lift": 25, "drive": 70, "contact": 90, "mer": 70, "release": 45,
                            "follow": 30, "end": 25},
    "glove.shoulder.plane": {"set": 75, "lift": 75, "drive": 70, "contact": 60, "mer": 45, "release": 30,
                             "follow": 20, "end": 20},
    "glove.elbow.flex": {"set": 100, "lift": 100, "drive": 40, "contact": 30, "mer": 60, "release": 90,
                         "follow": 100, "end": 100},
}


@dataclass
class PitchMotion:
    """A pitch on the body asset's rig: ``Body.pose`` parameters per frame, world frame (Z up, +X the target)."""

    rotations: np.ndarray  # (T, 104, 3, 3)
    translation: np.ndarray  # (T, 3)
    betas: np.ndarray  # (20,)
    fps: float
    events: dict  # phase -> frame index (by construction)
    stride: float  # metres from the pivot ankle at leg lift to the lead ankle at contact, along +X
    hand: str


def _curve(keys: dict, t: np.ndarray) -> np.ndarray:
    from scipy.interpolate import PchipInterpolator

    phases = [p for p in TIMES if p in keys]
    return PchipInterpolator([TIMES[p] for p in phases], [keys[p] for p in phases])(t)


def _rig(body):
    from realtime_hmr.train.rig import Rig, mirror_index

    return Rig(tuple(body.bone_names), body.bone_parents, np.asarray(body.heads0, np.float64),
               mirror_index(body.bone_names))


def pitch_motion(body, fps: float = 240.0, stride: float = 1.25, betas=None, left: bool = False) -> PitchMotion:
    """The authored pitch at ``fps`` (see the module's docstring)."""
    from realtime_hmr.train import poses as P
    from realtime_hmr.train import rig as R

    t = np.arange(int(round(TIMES["end"] * fps)) + 1) / fps
    n = len(t)
    a = {k: _curve(v, t) for k, v in KEYS.items()}
    rig = _rig(body)
    lf = P.LimbFrames.of(rig)
    D = np.broadcast_to(np.eye(3), (n, len(rig.labels), 3, 3)).copy()
    D[:, 0] = P._rot(P.Z, a["root.heading"])
    spine = {k: a[k] for k in ("spine.flex", "spine.lat", "spine.twist")}
    side = {s: {k.split(".", 1)[1]: v for k, v in a.items() if k.startswith(s + ".")} for s in
            ("lead", "pivot", "throw", "glove")}
    # a right-hander: lead leg and glove arm on the left
    D = P.build(D, spine, {**side["lead"], **side["glove"]}, {**side["pivot"], **side["throw"]}, rig, lf)
    betas = np.zeros(body.n_betas) if betas is None else np.asarray(betas, np.float64)
    ev = {p: int(round(TIMES[p] * fps)) for p in TIMES}
    joints = body.joints(body.skin(D, np.zeros(3), betas), "smpl24")
    names = body.joint_names
    pivot, lead = joints[:, names.index("right_ankle")], joints[:, names.index("left_ankle")]
    # translations pinning the pivot ankle (to leg lift) and the lead ankle (from contact), easing in between
    lift, contact = ev["lift"], ev["contact"]
    ground = pivot[0].copy()
    ground[:2] = 0.0
    tr = np.zeros((n, 3))
    tr[: lift + 1] = ground - pivot[: lift + 1]
    land = ground + np.array([stride, 0.0, 0.0]) + (pivot[lift] + tr[lift] - ground) * np.array([1.0, 1.0, 0.0])
    land[2] = ground[2]
    tr[contact:] = land - lead[contact:]
    u = (np.arange(lift, contact + 1) - lift) / (contact - lift)
    s = (1.0 - np.cos(0.5 * np.pi * u))[:, None]  # starts at rest, lands moving: a foot strike
    tr[lift:contact + 1] = tr[lift] * (1 - s) + tr[contact] * s
    hand = "right"
    if left:
        D, tr = R.mirror_poses(D, tr, rig)
        hand = "left"
    return PitchMotion(D, tr, betas, fps, ev, float(stride), hand)


def motion_joints(body, m: PitchMotion) -> np.ndarray:
    """SMPL-24 joints (T, 24, 3) of a motion, world frame."""
    return body.joints(body.skin(m.rotations, m.translation, m.betas), "smpl24")


SIZE, HFOV = (640, 480), 60.0
# camera (eye, aim) per view, world metres: the pivot foot at the origin, the target along +X
VIEWS = {
    "side": ((0.6, -3.4, 1.1), (0.6, 0.0, 0.9)),  # across the stride, facing the pitcher's chest at the set
    "behind": ((-3.2, 0.5, 1.3), (0.8, 0.0, 0.9)),  # behind the pitcher, looking down the target line
}


def make_clip(out: Path, fps: float = 240.0, seed: int = 5, view: str = "side") -> dict:
    """Render the pitch seen from ``view`` (``VIEWS``), as a coach films it."""
    import cv2
    import skimage.data

    from realtime_hmr.body import Body
    from realtime_hmr.train import camera as C
    from realtime_hmr.train import render as RD

    body = Body.load()
    rng = np.random.default_rng(seed)
    betas = np.clip(rng.normal(0, 0.6, body.n_betas), -1.5, 1.5)
    m = pitch_motion(body, fps, betas=betas)
    verts, _ = body.pose(m.rotations, m.translation, m.betas)
    verts[..., 2] -= np.percentile(verts[:, :, 2].min(1), 5)
    if view not in VIEWS:
        raise ValueError(f"view must be one of {sorted(VIEWS)}, got {view!r}")
    eye, aim = (np.array(v, np.float64) for v in VIEWS[view])
    Rc, tc = C.look_at(eye, aim)
    cam = C.Camera(C.intrinsics(HFOV, SIZE), Rc, tc, SIZE)
    renderer = RD.Renderer(body, SIZE, samples=4)
    app = RD.sample_appearance(rng, renderer.parts)
    light = RD.sample_light(rng)
    light.ambient = np.full(3, 0.45)
    light.key_col = np.full(3, 0.8)
    bg = cv2.resize(np.repeat(skimage.data.grass()[..., None], 3, -1), SIZE, interpolation=cv2.INTER_AREA)
    bg = (cv2.GaussianBlur(bg, (0, 0), 3).astype(np.float32) * np.array([0.55, 0.8, 0.5])).astype(np.uint8)
    out.mkdir(parents=True, exist_ok=True)
    mp4 = out / "pitch.mp4"
    writer = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), fps, SIZE)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v video here")
    for f in range(len(verts)):
        rgba, _ = renderer.draw([verts[f]], [app], cam, light)
        writer.write(cv2.cvtColor(RD.composite(rgba, bg), cv2.COLOR_RGB2BGR))
    writer.release()
    renderer.release()
    joints = cam.to_camera(body.joints(verts, "smpl24"))
    height = float(np.ptp(body.rest(m.betas[None])[0][0][:, 2]))
    np.savez_compressed(out / "pitch_gt.npz", joints24=joints.astype(np.float32), camera_K=cam.K,
                        camera_R=cam.R, camera_t=cam.t, up=cam.R @ np.array([0.0, 0.0, 1.0]),
                        events=np.array([m.events[p] for p in TIMES]), event_names=np.array(list(TIMES)),
                        stride=m.stride, height=height, betas=m.betas)
    meta = {"file": "pitch.mp4", "size": list(SIZE), "fps": fps, "frames": len(verts), "hand": m.hand,
            "events_frame": m.events, "stride_m": m.stride, "height_m": round(height, 4),
            "camera": {"view": view, "hfov_deg": HFOV, "eye": eye.tolist(), "aim": aim.tolist()}, "seed": seed,
            "bytes": mp4.stat().st_size, "sha256": hashlib.sha256(mp4.read_bytes()).hexdigest(),
            "command": f"python -m realtime_hmr.train.pitch_clip --out {out} --fps {fps:g} --seed {seed} --view {view}"}
    (out / "pitch.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="render the synthetic pitch clip with its ground truth")
    ap.add_argument("--out", default="pitch_clip")
    ap.add_argument("--fps", type=float, default=240.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--view", choices=sorted(VIEWS), default="side")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    meta = make_clip(Path(a.out), a.fps, a.seed, a.view)
    log.info("wrote %s: %d frames, %.2f MB", Path(a.out) / meta["file"], meta["frames"], meta["bytes"] / 1e6)


if __name__ == "__main__":
    main()
