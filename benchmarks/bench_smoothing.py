"""Jitter with and without the One Euro filters on a real clip.

    python benchmarks/bench_smoothing.py [--clip ../shared/data/video/runner_side.mp4] [--out results/smoothing.json]

Until the mesh model is wired in, the signal is MediaPipe Pose's own per-frame output on the clip (legacy
``mp.solutions.pose``, its internal smoothing OFF): 33 world landmarks (metres, hip-centred) as the points, and as
rotations the torso frame (from hips and shoulders, 3 DOF) and the swing of 8 limb segments. MediaPipe is a
``[train]`` extra, so this benchmark needs it installed.

Metrics (over frames with a pose; lower jitter = smoother, lower lag = more faithful):
- ``accel_mm``: mean norm of the second difference of each landmark (mm / frame^2), the usual jitter measure;
- ``ang_accel_deg``: the same for rotations: mean angle of d_t+1 d_t^-1 with d_t = q_t q_t-1^-1 (deg / frame^2);
- ``lag_frames``: the shift k minimising the distance between the filtered signal at t and the raw one at t - k;
- ``dev_mm``: mean distance between filtered and raw landmarks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from realtime_hmr.filters import PointFilter, RotationFilter, quat_angle, quat_conj, quat_mul  # noqa: E402

LIMBS = ((11, 13), (13, 15), (12, 14), (14, 16), (23, 25), (25, 27), (24, 26), (26, 28))


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(m).as_quat()  # x y z w


def swing(v: np.ndarray) -> np.ndarray:
    """Shortest-arc quaternion turning +Y into the direction of ``v``."""
    ref = np.array([0.0, 1.0, 0.0])
    v = v / np.linalg.norm(v)
    axis = np.cross(ref, v)
    q = np.array([*axis, 1.0 + float(ref @ v)])
    return q / np.linalg.norm(q)


def rotations(world: np.ndarray) -> np.ndarray:
    """(9, 4): torso frame, then the 8 limb segments."""
    x = world[23] - world[24]  # right hip -> left hip
    up = (world[11] + world[12]) / 2 - (world[23] + world[24]) / 2
    x /= np.linalg.norm(x)
    z = np.cross(x, up)
    z /= np.linalg.norm(z)
    y = np.cross(z, x)
    qs = [mat_to_quat(np.stack([x, y, z], 1))]
    qs += [swing(world[b] - world[a]) for a, b in LIMBS]
    return np.array(qs)


def extract(clip: str, max_frames: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    import mediapipe as mp

    pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=False)
    cap = cv2.VideoCapture(clip)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    ts, pts = [], []
    while max_frames is None or len(ts) < max_frames:
        ok, image = cap.read()
        if not ok:
            break
        r = pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        ts.append(len(ts) / fps)
        pts.append(np.array([[lm.x, lm.y, lm.z] for lm in r.pose_world_landmarks.landmark])
                   if r.pose_world_landmarks else np.full((33, 3), np.nan))
    return np.array(ts), np.array(pts), fps


def metrics(raw: np.ndarray, out: np.ndarray, q_raw: np.ndarray, q_out: np.ndarray) -> dict:
    def accel(x):
        return float(np.nanmean(np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1)) * 1e3)

    def ang_accel(q):
        d = quat_mul(q[1:], quat_conj(q[:-1]))
        return float(np.degrees(np.nanmean(quat_angle(quat_mul(d[1:], quat_conj(d[:-1]))))))

    lags = [float(np.nanmean(np.linalg.norm(out[k:] - raw[:len(raw) - k], axis=-1))) for k in range(6)]
    return {"accel_mm": accel(out), "ang_accel_deg": ang_accel(q_out), "lag_frames": int(np.argmin(lags)),
            "dev_mm": float(np.nanmean(np.linalg.norm(out - raw, axis=-1)) * 1e3)}


def run_filters(ts, pts, qs, min_cutoff, beta, rot_min_cutoff, rot_beta, d_cutoff=1.0):
    pf = PointFilter(min_cutoff, beta, d_cutoff)
    rf = RotationFilter(rot_min_cutoff, rot_beta, d_cutoff)
    out = np.array([pf(t, p) for t, p in zip(ts, pts, strict=True)])
    q_out = np.array([rf(t, q) for t, q in zip(ts, qs, strict=True)])
    return out, q_out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=str(Path(__file__).resolve().parents[2] / "shared/data/video/runner_side.mp4"))
    ap.add_argument("--max-frames", type=int)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "smoothing.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    ts, pts, fps = extract(args.clip, args.max_frames)
    keep = np.isfinite(pts).all((1, 2))
    first_gap = np.argmin(keep) if not keep.all() else len(keep)
    ts, pts = ts[:first_gap], pts[:first_gap]  # one continuous track
    qs = np.array([rotations(p) for p in pts])
    extract_s = time.perf_counter() - t0

    from realtime_hmr.config import SmoothingConfig

    c = SmoothingConfig()
    settings = {"config_default": (c.min_cutoff, c.beta, c.rot_min_cutoff, c.rot_beta)}
    for mc in (0.5, 1.0, 2.0):
        for beta in (0.1, 1.0, 5.0):
            settings[f"min_cutoff={mc},beta={beta}"] = (mc, beta, mc, beta / 5)
    results = {"raw": metrics(pts, pts, qs, qs)}
    for name, s in settings.items():
        out, q_out = run_filters(ts, pts, qs, *s)
        results[name] = {"params": dict(zip(("min_cutoff", "beta", "rot_min_cutoff", "rot_beta"), s, strict=True)),
                         **metrics(pts, out, qs, q_out)}
    report = {"command": " ".join(["python", *sys.argv]), "clip": Path(args.clip).name, "fps": fps,
              "frames": int(len(ts)), "signal": "MediaPipe Pose world landmarks (33, m), smooth_landmarks=False",
              "extract_s": extract_s, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name:28s} accel {r['accel_mm']:6.2f} mm/f²  ang {r['ang_accel_deg']:6.2f} °/f²  "
              f"lag {r['lag_frames']} f  dev {r['dev_mm']:5.1f} mm")


if __name__ == "__main__":
    main()
