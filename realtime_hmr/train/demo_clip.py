"""The bundled demo clip: two Anny bodies performing retargeted CMU mocap in front of a photograph.

    python -m realtime_hmr.train.demo_clip            # -> realtime_hmr/assets/demo/demo.mp4 (+ demo.json, demo_gt.npz)

Person 0 walks (CMU 131_01, Subject 131 walk), person 1 hops (CMU 131_02); both retargeted by
``realtime_hmr.train.mocap.retarget`` at 30 fps, 150 frames (5 s), 640x480, fixed camera (50 degree horizontal field
of view, 4 m away, 1.4 m high, looking across the walking direction), MSAA x4, clothing/skin/hair and light as
``data synth`` draws them (fixed seed), background: scikit-image's ``brick`` photograph. Beside the clip:
``demo.json`` (how it was made, camera, sizes, sha256) and ``demo_gt.npz`` (per frame and person: SMPL-24 joints in
camera space and in pixels, ``Body.pose`` parameters in world space; camera K, R, t) — numpy only, no pickles.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
OUT = Path(__file__).resolve().parents[1] / "assets" / "demo"
CLIPS = ("131_01", "131_02")
SIZE, FPS, FRAMES, HFOV = (640, 480), 30, 150, 50.0


def _poses(name: str, frames: int):
    from realtime_hmr.train import mocap
    from realtime_hmr.train.rig import load_rig

    path = next(p for s, p in mocap.clip_paths() if p.stem == name)
    ps = mocap.retarget(mocap.read_clip("cmu", path), load_rig())
    if len(ps) < frames:
        raise RuntimeError(f"clip {name} has {len(ps)} frames, fewer than {frames}")
    return ps.rotations[:frames].astype(np.float64), ps.trans[:frames].astype(np.float64)


def make_demo(out: Path = OUT, seed: int = 3, frames: int = FRAMES) -> dict:
    import cv2
    import skimage.data

    from realtime_hmr.body import Body
    from realtime_hmr.train import camera as C
    from realtime_hmr.train import render as R

    body = Body.load()
    rng = np.random.default_rng(seed)
    betas = np.clip(rng.normal(0, 0.8, (2, body.n_betas)), -2, 2)
    people, params = [], []
    path = None
    for k, name in enumerate(CLIPS):
        rot, trans = _poses(name, frames)
        v, _ = body.pose(rot, trans, betas[k])
        mid = (v[0, :, :2].mean(0) + v[-1, :, :2].mean(0)) / 2  # centre each path at the origin
        if path is None:  # person 0's walking direction, and the camera's side of it
            d = v[-1, :, :2].mean(0) - v[0, :, :2].mean(0)
            path = d / np.linalg.norm(d)
            away = np.array([path[1], -path[0]])
        # person 1: 1.5 m further from the camera and 1.5 m ahead along the walk, so the two rarely overlap
        offset = np.zeros(2) if k == 0 else 1.5 * away + 1.5 * path
        ground = np.percentile(v[:, :, 2].min(1), 5)
        shift = np.array([*(offset - mid), -ground])
        people.append(v + shift)
        params.append((rot, trans + shift))
    eye = np.array([*(-4.0 * away + 0.4 * path), 1.4])
    Rc, t = C.look_at(eye, np.array([*(0.4 * path), 0.9]))
    cam = C.Camera(C.intrinsics(HFOV, SIZE), Rc, t, SIZE)
    renderer = R.Renderer(body, SIZE, samples=4)
    apps = [R.sample_appearance(rng, renderer.parts) for _ in people]
    light = R.sample_light(rng)
    light.ambient = np.full(3, 0.45)
    light.key_col = np.full(3, 0.8)
    bg = cv2.resize(np.repeat(skimage.data.brick()[..., None], 3, -1), SIZE, interpolation=cv2.INTER_AREA)
    bg = (bg.astype(np.float32) * np.array([1.0, 0.85, 0.7]) * 0.9).astype(np.uint8)  # warm tint
    out.mkdir(parents=True, exist_ok=True)
    mp4 = out / "demo.mp4"
    writer = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v video here")
    joints = np.zeros((frames, 2, 24, 3), np.float32)
    for f in range(frames):
        rgba, _ = renderer.draw([p[f] for p in people], apps, cam, light)
        writer.write(cv2.cvtColor(R.composite(rgba, bg), cv2.COLOR_RGB2BGR))
        joints[f] = cam.to_camera(body.joints(np.stack([p[f] for p in people]), "smpl24"))
    writer.release()
    gt = {"joints24": joints, "joints24_2d": C.project(joints, cam.K).astype(np.float32),
          "rotations": np.stack([r for r, _ in params], 1).astype(np.float32),
          "translation": np.stack([t for _, t in params], 1).astype(np.float32), "betas": betas.astype(np.float32),
          "camera_K": cam.K, "camera_R": cam.R, "camera_t": cam.t, "joint_names": np.asarray(body.joint_names)}
    np.savez_compressed(out / "demo_gt.npz", **gt)
    meta = {"file": "demo.mp4", "size": list(SIZE), "fps": FPS, "frames": frames, "persons": 2,
            "motions": {"0": f"CMU {CLIPS[0]} (walk)", "1": f"CMU {CLIPS[1]} (hop)"},
            "sources": "CMU Graphics Lab Motion Capture Database subject 131 (free for research and commercial use); "
                       "Anny body (CC0 data); scikit-image brick photograph (public domain)",
            "camera": {"hfov_deg": HFOV, "K": cam.K.round(3).tolist(), "R": cam.R.round(6).tolist(),
                       "t": cam.t.round(6).tolist()},
            "ground_truth": "demo_gt.npz: joints24 (frames, persons, 24, 3) camera space m; joints24_2d pixels; "
                            "rotations/translation/betas = Body.pose parameters (world, Z up)",
            "bytes": mp4.stat().st_size, "sha256": hashlib.sha256(mp4.read_bytes()).hexdigest(),
            "seed": seed, "command": "python -m realtime_hmr.train.demo_clip"}
    (out / "demo.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="render the bundled demo clip")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    m = make_demo(Path(a.out), a.seed)
    log.info("wrote %s/demo.mp4: %d frames, %.2f MB", a.out, m["frames"], m["bytes"] / 1e6)


if __name__ == "__main__":
    main()
