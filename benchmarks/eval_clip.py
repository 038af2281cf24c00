"""Accuracy over time on the bundled demo clip, whose ground truth ships beside it.

    python benchmarks/eval_clip.py                 # writes benchmarks/results/eval_clip.json

The demo clip (``realtime_hmr/assets/demo``: two rendered Anny bodies, one walking and one hopping, seen from the
side, 150 frames at 30 fps, 640x480) goes through the live loop's stages as ``realtime-hmr demo`` runs them: the
tracker with its tracks, the mesh model per frame, then the One Euro smoother (default settings). Each variant runs
the clip from its start. The camera is the product's default guess (as for a webcam); ``--true-camera`` gives the
clip's own. The tracker is the live loop's default (detector every 10 frames; ``--tiles`` as ``run --tiles``).

Each frame's bodies are matched to the true people by their pelvis in the image (within 10 % of the image width).
Scored per matched person and frame, then averaged over all of them (mm):
- ``mpjpe``, ``pa_mpjpe``, ``pve``: as ``realtime-hmr eval synthetic`` scores still images (SMPL-24 joints, pelvis
  aligned; Procrustes for PA);
- ``accel``: the error of the joints' acceleration, |(p[t+1] - 2 p[t] + p[t-1]) - (the same of the truth)|, on
  pelvis-aligned joints (mm/frame^2; the usual measure of jitter against ground truth), over runs of three matched
  frames in a row; ``accel_camera``: the same in camera space (the root's motion included);
- ``swapped_legs``/``swapped_arms``: the fraction of frames where the left and right leg (arm) joints, pelvis-
  aligned, are nearer to the truth's other side than to their own side: a body with its limbs mixed up;
- ``found``: the fraction of the true people's frames matched by a body.
- ``limb12`` and ``mediapipe_world``: our body's MediaPipe-33 landmarks (regressed from its mesh) and MediaPipe's own
  world landmarks for the same people and frames, both scored on the 12 limb landmarks (shoulders to ankles, hip-
  midpoint centred, camera axes) against the landmarks regressed from the true mesh; ``pa_mpjpe_vs_mediapipe`` is
  the ratio of the two PA-MPJPEs.
``smoothing_sweep``: the point filter's min_cutoff and beta over a grid, applied to the joints of the unsmoothed run
(the trade-off between following the motion and jitter, against the truth).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from common import write  # noqa: E402

DEMO = REPO / "realtime_hmr" / "assets" / "demo"
# SMPL-24: left/right legs (hip, knee, ankle, foot) and arms (shoulder, elbow, wrist, hand)
LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))
ARMS = ((16, 18, 20, 22), (17, 19, 21, 23))


def truth(body, gt: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame and person, from the pose: vertices (F, P, V, 3) and MediaPipe-33 landmarks in camera space, and the
    pelvis in the image (F, P, 2)."""
    R, t = gt["camera_R"], gt["camera_t"]
    F, P = gt["translation"].shape[:2]
    verts = np.empty((F, P, body.template.shape[0], 3), np.float32)
    for f in range(F):
        for p in range(P):
            v = body.skin(gt["rotations"][f, p], gt["translation"][f, p], gt["betas"][p])
            verts[f, p] = v @ R.T + t
    return verts, body.joints(verts.astype(np.float64), "mediapipe33"), gt["joints24_2d"][:, :, 0]


def swapped(pred: np.ndarray, gt: np.ndarray, sides) -> np.ndarray:
    """(n,) True where the left and right chains of ``pred`` (n, 24, 3), pelvis-aligned, match the truth's other side
    better than their own."""
    p, g = pred - pred[:, :1], gt - gt[:, :1]
    left, right = list(sides[0]), list(sides[1])
    own = np.linalg.norm(p[:, left] - g[:, left], axis=-1).mean(1) + np.linalg.norm(p[:, right] - g[:, right],
                                                                                    axis=-1).mean(1)
    other = np.linalg.norm(p[:, left] - g[:, right], axis=-1).mean(1) + np.linalg.norm(p[:, right] - g[:, left],
                                                                                      axis=-1).mean(1)
    return other < own


def accel_error(pred: np.ndarray, gt: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per triple of consecutive matched frames: mean joint norm of the difference of second differences (m)."""
    trip = ok[:-2] & ok[1:-1] & ok[2:]
    a = pred[2:] - 2 * pred[1:-1] + pred[:-2]
    b = gt[2:] - 2 * gt[1:-1] + gt[:-2]
    return np.linalg.norm(a - b, axis=-1).mean(-1)[trip]


def run_variant(mr, frames: list, K, smooth: bool, gt: dict, pelvis_2d: np.ndarray) -> dict:
    """Per true person: predicted joints (F, 24, 3), vertices, MediaPipe world landmarks and a matched mask."""
    from types import SimpleNamespace

    from scipy.optimize import linear_sum_assignment

    from realtime_hmr.filters import Smoother

    F, P = pelvis_2d.shape[:2]
    out = {"joints": np.full((F, P, 24, 3), np.nan), "verts": [[None] * P for _ in range(F)],
           "mpw": np.full((F, P, 33, 3), np.nan), "mp_ours": np.full((F, P, 33, 3), np.nan),
           "ok": np.zeros((F, P), bool)}
    mr.reset()
    smoother = Smoother()
    width = frames[0].shape[1]
    t0 = time.perf_counter()
    for f, img in enumerate(frames):
        frame = SimpleNamespace(image=img, t=f / 30.0)
        persons = mr.stage(frame, mr.tracker(img, frame.t))
        if smooth:
            persons = smoother(frame, persons)
        bodies = [p for p in persons if p.body is not None]
        if not bodies:
            continue
        uv = np.stack([(K @ p.body.joints[0]) for p in bodies])
        uv = uv[:, :2] / uv[:, 2:]
        d = np.linalg.norm(uv[:, None] - pelvis_2d[f][None], axis=-1)  # (bodies, true people)
        rows, cols = linear_sum_assignment(d)
        for r, c in zip(rows, cols):
            if d[r, c] <= 0.1 * width:
                p = bodies[r]
                out["joints"][f, c] = p.body.joints
                out["verts"][f][c] = p.body.vertices
                out["mpw"][f, c] = p.landmarks_world
                out["mp_ours"][f, c] = mr.body.joints(p.body.vertices.astype(np.float64), "mediapipe33")
                out["ok"][f, c] = True
    out["seconds"] = time.perf_counter() - t0
    return out


def score(res: dict, gt: dict, gt_verts: np.ndarray, gt_mp33: np.ndarray) -> dict:
    from realtime_hmr.train.evaluate import MP12, limb_errors, score_mesh

    ok, J, G = res["ok"], res["joints"], gt["joints24"].astype(np.float64)
    per, acc, acc_cam, sw_l, sw_a, mp, ours = [], [], [], [], [], [], []
    for p in range(ok.shape[1]):
        m = ok[:, p]
        if not m.any():
            continue
        pv = np.stack([res["verts"][f][p] for f in np.flatnonzero(m)]).astype(np.float64)
        s = score_mesh(J[m, p], G[m, p], pv, gt_verts[m, p].astype(np.float64))
        per.append(np.stack([s["mpjpe"], s["pa_mpjpe"], s["pve"]], 1))
        acc.append(accel_error(J[:, p] - J[:, p, :1], G[:, p] - G[:, p, :1], m))
        acc_cam.append(accel_error(J[:, p], G[:, p], m))
        sw_l.append(swapped(J[m, p], G[m, p], LEGS))
        sw_a.append(swapped(J[m, p], G[m, p], ARMS))
        for key, acc12 in (("mpw", mp), ("mp_ours", ours)):
            acc12.append(np.stack(limb_errors(res[key][m, p][:, MP12], gt_mp33[m, p][:, MP12]), 1))
    per, mp, ours = np.concatenate(per), np.concatenate(mp), np.concatenate(ours)
    mm = lambda x: round(float(np.mean(x)) * 1e3, 1)  # noqa: E731
    return {"found": round(float(ok.mean()), 3), "mpjpe_mm": mm(per[:, 0]), "pa_mpjpe_mm": mm(per[:, 1]),
            "pve_mm": mm(per[:, 2]), "accel_mm": mm(np.concatenate(acc)),
            "accel_camera_mm": mm(np.concatenate(acc_cam)),
            "swapped_legs": round(float(np.concatenate(sw_l).mean()), 3),
            "swapped_arms": round(float(np.concatenate(sw_a).mean()), 3),
            "limb12": {"mpjpe_mm": mm(ours[:, 0]), "pa_mpjpe_mm": mm(ours[:, 1])},
            "mediapipe_world": {"mpjpe_mm": mm(mp[:, 0]), "pa_mpjpe_mm": mm(mp[:, 1])},
            "pa_mpjpe_vs_mediapipe": round(float(ours[:, 1].mean() / mp[:, 1].mean()), 2),
            "per_person_pa_mpjpe_mm": [mm(x[:, 1]) for x in np.split(per, np.cumsum(ok.sum(0))[:-1]) if len(x)]}


VARIANTS = {"as is": ({}, False), "as is, smoothed": ({}, True), "--fit": ({"fit": True}, False),
            "--fit, smoothed": ({"fit": True}, True)}


def evaluate(base, frames: list, gt: dict, variants: dict) -> dict:
    """Scores of each variant (name -> (MeshRecovery options, smoothed)) on ``frames`` against ``gt``."""
    K = base.camera(frames[0])
    gt_verts, gt_mp33, pelvis_2d = truth(base.body, gt)
    results = {}
    for name, (opts, smooth) in variants.items():
        res = run_variant(base.variant(**opts), frames, K, smooth, gt, pelvis_2d)
        results[name] = {**score(res, gt, gt_verts, gt_mp33), "seconds": round(res["seconds"], 1)}
        print(name, {k: v for k, v in results[name].items() if k != "per_person_pa_mpjpe_mm"}, flush=True)
    return results


def smoothing_sweep(res: dict, gt: dict, grid=((0.5, 1.0, 2.0, 4.0), (0.1, 0.3, 1.0, 3.0))) -> list[dict]:
    """The One Euro point filter's trade-off on the joints of one unsmoothed run: each (min_cutoff, beta) of the grid
    applied along each true person's matched frames, scored as above (joints only)."""
    from realtime_hmr.filters import PointFilter
    from realtime_hmr.train.evaluate import score_mesh

    ok, J, G = res["ok"], res["joints"], gt["joints24"].astype(np.float64)
    rows = []
    for min_cutoff in grid[0]:
        for beta in grid[1]:
            Jf = J.copy()
            for p in range(ok.shape[1]):
                flt = PointFilter(min_cutoff, beta, 1.0)
                for f in np.flatnonzero(ok[:, p]):
                    Jf[f, p] = flt(f / 30.0, J[f, p])
            errs = [[], [], [], []]
            for p in range(ok.shape[1]):
                m = ok[:, p]
                s = score_mesh(Jf[m, p], G[m, p])
                for e, x in zip(errs, (s["mpjpe"], s["pa_mpjpe"], accel_error(Jf[:, p] - Jf[:, p, :1],
                                                                             G[:, p] - G[:, p, :1], m),
                                        accel_error(Jf[:, p], G[:, p], m))):
                    e.append(x)
            rows.append({"min_cutoff": min_cutoff, "beta": beta,
                         **{k: round(float(np.concatenate(e).mean()) * 1e3, 1)
                            for k, e in zip(("mpjpe_mm", "pa_mpjpe_mm", "accel_mm", "accel_camera_mm"), errs)}})
    return rows


def load_clip(clip, truth_npz, n: int = 0) -> tuple[list, dict]:
    """The clip's frames (the first ``n``; 0: all) and its ground truth cut to them."""
    import cv2

    cap = cv2.VideoCapture(str(clip))
    frames = []
    while not n or len(frames) < n:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    if not frames:
        raise SystemExit(f"cannot read frames from {clip}")
    with np.load(truth_npz) as z:
        gt = {k: z[k] for k in z.files}
    if len(frames) > len(gt["joints24"]) or (not n and len(frames) != len(gt["joints24"])):
        raise SystemExit(f"{len(frames)} frames but ground truth for {len(gt['joints24'])}")
    per_frame = ("joints24", "joints24_2d", "rotations", "translation")
    return frames, {k: v[:len(frames)] if k in per_frame else v for k, v in gt.items()}


def main(argv=None) -> int:
    from realtime_hmr.config import parse_tiles
    from realtime_hmr.landmarks import load_pose_tracker
    from realtime_hmr.mesh import MeshRecovery

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default=str(DEMO / "demo.mp4"), help="a clip with a ground-truth npz beside it")
    ap.add_argument("--truth", default=str(DEMO / "demo_gt.npz"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=0, help="only the first N frames (0: all)")
    ap.add_argument("--true-camera", action="store_true", help="give the mesh model the clip's own camera matrix")
    ap.add_argument("--tiles", default="1x1", help="the person detector's tiles (as run --tiles)")
    ap.add_argument("--silhouette", action="store_true",
                    help="the tracker segments, and --silhouette (the fit on the silhouettes too) joins the variants")
    ap.add_argument("--name", default=None, help="results name (default eval_clip, eval_clip_true_camera)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    frames, gt = load_clip(args.clip, args.truth, args.frames)
    K = gt["camera_K"].astype(np.float64) if args.true_camera else None
    tracker = load_pose_tracker("onnxruntime", None, args.threads, 10, 4, parse_tiles(args.tiles),
                                mask=args.silhouette)
    base = MeshRecovery.load(backend="onnxruntime", threads=args.threads, camera_matrix=K, tracker=tracker)
    variants = dict(VARIANTS)
    if args.silhouette:
        variants.update({"--silhouette": ({"fit": True, "silhouette": True}, False),
                         "--silhouette, smoothed": ({"fit": True, "silhouette": True}, True)})
    results = evaluate(base, frames, gt, variants)
    gt_verts, gt_mp33, pelvis_2d = truth(base.body, gt)
    sweep = smoothing_sweep(run_variant(base, frames, base.camera(frames[0]), False, gt, pelvis_2d), gt)
    name = args.name or "eval_clip" + ("_true_camera" if args.true_camera else "") + (
        f"_tiles{args.tiles}" if parse_tiles(args.tiles) != (1, 1) else "") + ("_silhouette" if args.silhouette else "")
    path = write(name, {"command": " ".join(["python benchmarks/eval_clip.py", *(argv or sys.argv[1:])]),
                        "clip": Path(args.clip).name,
                        "frames": len(frames), "persons": int(gt["joints24"].shape[1]),
                        "camera": "the clip's own" if args.true_camera else "default guess (f = image width)",
                        "smoothing": "the live loop's Smoother with default settings",
                        "detector_tiles": list(parse_tiles(args.tiles)), "tracker_segments": args.silhouette,
                        "results": results, "smoothing_sweep": sweep, "wall_s": round(time.perf_counter() - t0, 1)})
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
