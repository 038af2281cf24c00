"""Perception benchmark: parity with MediaPipe's legacy Pose, speed side by side, batching, multi-person tracking.

    python benchmarks/bench_perception.py [--sections parity,parity_video,speed,batch,multi,flip] [--threads 2]
        [--out benchmarks/results/perception_cpu.json]

Needs mediapipe (the [train] extra) for the parity and speed baselines and ../shared/data/video for the clips.
Everything runs in one process so the two pipelines see the same machine load; speed runs alternate frame by frame.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from realtime_hmr.detect import DetectorConfig, PoseDetector
from realtime_hmr.landmarks import PoseLandmarker
from realtime_hmr.runtime import load
from realtime_hmr.track import PoseTracker, TrackerConfig

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "realtime_hmr" / "assets" / "blazepose"
DATA = REPO.parent / "shared" / "data" / "video"


def video(path: Path, size: tuple[int, int] | None = None, every: int = 1, limit: int | None = None) -> list:
    cap, out, k = cv2.VideoCapture(str(path)), [], 0
    while limit is None or len(out) < limit:
        ok, f = cap.read()
        if not ok:
            break
        if k % every == 0:
            out.append(cv2.resize(f, size) if size else f)
        k += 1
    return out


def parts(threads: int, tiles=(1, 1), mask: bool = False):
    lmk = "pose_landmark_full.onnx" if mask else "pose_landmark_full_nomask.onnx"
    return (PoseDetector(load(str(ASSETS / "pose_detection.onnx"), threads=threads), DetectorConfig(tiles=tiles)),
            PoseLandmarker(load(str(ASSETS / lmk), threads=threads)))


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"mean": round(float(a.mean()), 2), "p50": round(float(np.median(a)), 2),
            "p95": round(float(np.percentile(a, 95)), 2), "n": len(a)}


def mp_pose(static: bool, smooth: bool = False):
    import mediapipe as mp

    return mp.solutions.pose.Pose(static_image_mode=static, model_complexity=1, smooth_landmarks=smooth)


def synthetic_renders(n: int, seed: int = 7) -> list[np.ndarray]:
    """Single rendered Anny people at 640x480 (the synthetic-data worker's renderer, evaluation domain), BGR."""
    from realtime_hmr.train.synth import EVAL, SceneMaker, SynthConfig, shard_rng

    maker = SceneMaker(SynthConfig(size=(640, 480), p_multi=0.0), domain=EVAL, labeler=False)
    rng = shard_rng(seed, EVAL, 0)
    P = maker.cfg.max_persons
    rot, betas, src = maker.draw_people(n * P, rng)
    out = []
    for i in range(n):
        s = maker.sample(rng, (rot[i * P:(i + 1) * P], betas[i * P:(i + 1) * P], src[i * P:(i + 1) * P]))
        out.append(cv2.cvtColor(s["rgb"], cv2.COLOR_RGB2BGR))
    return out


def parity(threads: int) -> dict:
    """Static-image mode on both sides: every frame is detector + landmarks, no smoothing, no tracking."""
    from mediapipe.python.solution_base import SolutionBase
    from mediapipe.python.solutions import pose as mp_pose_mod

    from realtime_hmr.crop import Roi

    skd = __import__("skimage.data", fromlist=["astronaut"])
    sets = {"astronaut": [cv2.resize(cv2.cvtColor(skd.astronaut(), cv2.COLOR_RGB2BGR), (640, 480))],
            "runner": video(DATA / "runner_side.mp4", (640, 480))}
    sets["synthetic"] = synthetic_renders(60)
    det, lmk = parts(threads)
    graph = SolutionBase(binary_graph_path=mp_pose_mod._BINARYPB_FILE_PATH, outputs=[
        "pose_landmarks", "pose_world_landmarks", "pose_rect_from_detection"], side_inputs={
        "model_complexity": 1, "smooth_landmarks": False, "enable_segmentation": False,
        "smooth_segmentation": False, "use_prev_landmarks": False})
    out = {}
    for name, imgs in sets.items():
        px, mm, px_roi, mm_roi, frame_px, agree, mp_found = [], [], [], [], [], 0, 0
        for img in imgs:
            h, w = img.shape[:2]
            r = graph.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            mp_found += r.pose_landmarks is not None
            d = det(img)
            ours = lmk(img, [d[0].roi]) if d else None
            # "found", as MediaPipe's graph has it: a detection whose landmarks have pose presence >= 0.5
            found = ours is not None and ours.score[0] >= 0.5
            agree += (r.pose_landmarks is not None) == found
            if r.pose_landmarks is None or not found:
                continue
            ref = np.array([[p.x * w, p.y * h] for p in r.pose_landmarks.landmark])
            ref_w = np.array([[p.x, p.y, p.z] for p in r.pose_world_landmarks.landmark])
            rr = r.pose_rect_from_detection
            mp_roi = Roi(rr.x_center * w, rr.y_center * h, rr.width * w, rr.height * h, rr.rotation)
            for roi, e_px, e_mm in ((d[0].roi, px, mm), (mp_roi, px_roi, mm_roi)):
                lm = lmk(img, [roi])
                e_px.append(np.linalg.norm(lm.image[0, :33, :2] - ref, axis=1))
                e_mm.append(1000 * np.linalg.norm(lm.world[0, :33] - ref_w, axis=1))
            frame_px.append(float(np.median(px[-1])))
        if not px:
            out[name] = {"frames": len(imgs), "detection_agreement": agree / len(imgs), "compared": 0,
                         "mediapipe_found": mp_found}
            continue
        px, mm = np.concatenate(px), np.concatenate(mm)
        out[name] = {"compared": len(frame_px), "mediapipe_found": mp_found,
            "frames": len(imgs), "size": "640x480", "detection_agreement": agree / len(imgs),
            "landmark_px": {"median": float(np.median(px)), "p90": float(np.percentile(px, 90)),
                            "per_frame_median_max": float(np.max(frame_px))},
            "world_mm": {"median": float(np.median(mm)), "p90": float(np.percentile(mm, 90))},
            "given_mediapipe_roi": {"landmark_px_median": float(np.median(np.concatenate(px_roi))),
                                    "world_mm_median": float(np.median(np.concatenate(mm_roi)))},
        }
        print(name, json.dumps(out[name]))
    return out


def parity_video(threads: int) -> dict:
    """Tracking mode on both sides on the runner clip: MediaPipe legacy video mode (landmarks unsmoothed, its ROI
    filter on) vs our tracker with the detector once (ROIs from landmarks, same one-euro ROI filter)."""
    imgs = video(DATA / "runner_side.mp4", (640, 480))
    det, lmk = parts(threads)
    res = {}
    for smooth in (True, False):
        ours = PoseTracker(det, lmk, TrackerConfig(detect_every=10**9, max_persons=1, smooth_roi=smooth))
        theirs = mp_pose(static=False, smooth=False)
        px, mm = [], []
        for img in imgs:
            p = ours(img)
            r = theirs.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            if not p or r.pose_landmarks is None:
                continue
            ref = np.array([[q.x * 640, q.y * 480] for q in r.pose_landmarks.landmark])
            ref_w = np.array([[q.x, q.y, q.z] for q in r.pose_world_landmarks.landmark])
            px.append(np.linalg.norm(p[0].landmarks_2d[:, :2] - ref, axis=1))
            mm.append(1000 * np.linalg.norm(p[0].landmarks_world - ref_w, axis=1))
        res["ours_roi_filter_on" if smooth else "ours_roi_filter_off"] = {
            "compared": len(px), "landmark_px_median": float(np.median(np.concatenate(px))),
            "world_mm_median": float(np.median(np.concatenate(mm))), "detector_runs": ours.stats["detector_runs"]}
    res["clip"] = "runner_side.mp4 at 640x480, 180 frames"
    print("parity_video", json.dumps(res))
    return res


def speed(threads: int, n_frames: int = 180) -> dict:
    """One person, video mode: MediaPipe legacy (tracking, its default smoothing) vs our tracker (detector every 10
    frames), alternating frame by frame on the runner clip at 640x480."""
    imgs = video(DATA / "runner_side.mp4", (640, 480), limit=n_frames)
    det, lmk = parts(threads)
    ours = PoseTracker(det, lmk, TrackerConfig(detect_every=10, max_persons=1))
    theirs = mp_pose(static=False, smooth=True)
    for img in imgs[:5]:
        ours(img), theirs.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    ours.reset()
    t_ours, t_mp, found = [], [], [0, 0]
    for img in imgs:
        t0 = time.perf_counter()
        p = ours(img)
        t1 = time.perf_counter()
        r = theirs.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))  # the colour conversion counts for them
        t2 = time.perf_counter()
        t_ours.append((t1 - t0) * 1e3)
        t_mp.append((t2 - t1) * 1e3)
        found[0] += len(p) > 0
        found[1] += r.pose_landmarks is not None
    res = {"clip": "runner_side.mp4 at 640x480", "ours_ms": stats(t_ours), "mediapipe_legacy_ms": stats(t_mp),
           "ratio_mean": round(float(np.mean(t_ours) / np.mean(t_mp)), 3),
           "ratio_p50": round(float(np.median(t_ours) / np.median(t_mp)), 3),
           "frames_with_person": {"ours": found[0], "mediapipe": found[1]},
           "ours_config": "onnxruntime CPU, detect_every=10, max_persons=1",
           "detector_runs": ours.stats["detector_runs"]}
    print("speed", json.dumps(res))
    return res


def batch(threads: int, reps: int = 15) -> dict:
    """The landmark stage (crops + one batched network run + projection) for N persons, and the detector."""
    img = video(DATA / "runner_side.mp4", (640, 480), limit=1)[0]
    det, lmk = parts(threads)
    roi = det(img)[0].roi
    res = {}
    for n in (1, 2, 4, 8):
        rois = [roi] * n
        lmk(img, rois)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            lmk(img, rois)
            ts.append((time.perf_counter() - t0) * 1e3)
        res[f"landmarks_{n}"] = {**stats(ts), "per_person_ms": round(float(np.median(ts)) / n, 2)}
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        det(img)
        ts.append((time.perf_counter() - t0) * 1e3)
    res["detector_full_frame"] = stats(ts)
    for n in (1, 2, 4, 8):  # a tracked frame with n persons, detector every 10 frames
        est = res[f"landmarks_{n}"]["p50"] + res["detector_full_frame"]["p50"] / 10
        res[f"tracked_frame_{n}_persons_est_ms"] = round(est, 2)
    print("batch", json.dumps(res))
    return res


def track_metrics(history: list[dict[int, np.ndarray]], gap: int = 10) -> dict:
    """Proxies without ground truth. ``history``: per frame {id: box}. A jump: a track's box centre moves more than
    half its height between consecutive frames (likely an id switch). A fragment: a new id starting within ``gap``
    frames of another id's end, overlapping its last box (IoU > 0.3) -- the same person re-acquired."""
    from realtime_hmr.crop import iou

    spans: dict[int, list] = {}
    jumps = 0
    for k, frame in enumerate(history):
        for i, box in frame.items():
            if i in spans and spans[i][1] == k - 1:
                prev = spans[i][2]
                dc = np.hypot(*((box[:2] + box[2:]) / 2 - (prev[:2] + prev[2:]) / 2))
                jumps += dc > 0.5 * max(prev[3] - prev[1], 1.0)
            spans.setdefault(i, [k, k, box, box])
            spans[i][1], spans[i][2] = k, box
    frags = 0
    for i, (start, _, _, first) in spans.items():
        for j, (_, end, last, _) in spans.items():
            if j != i and 0 < start - end <= gap and iou(first[None], last[None])[0, 0] > 0.3:
                frags += 1
                break
    lengths = [e - s + 1 for s, e, _, _ in spans.values()]
    return {"ids": len(spans), "track_length_median": float(np.median(lengths)) if lengths else 0,
            "tracks_over_20_frames": int(sum(n > 20 for n in lengths)), "box_jumps": int(jumps),
            "fragments": frags}


def multi(threads: int, tiles=(4, 3), detect_every: int = 10, limit: int | None = None) -> dict:
    imgs = video(DATA / "pedestrians_vtest.avi", limit=limit)
    det, lmk = parts(threads, tiles)
    tr = PoseTracker(det, lmk, TrackerConfig(detect_every=detect_every, max_persons=8))
    counts, hist, ms = [], [], []
    for img in imgs:
        t0 = time.perf_counter()
        ps = tr(img)
        ms.append((time.perf_counter() - t0) * 1e3)
        counts.append(len(ps))
        hist.append({p.id: p.box for p in ps})
    theirs = mp_pose(static=False, smooth=True)
    mp_found = sum(theirs.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).pose_landmarks is not None for img in imgs)
    c = np.asarray(counts)
    res = {"clip": "pedestrians_vtest.avi 768x576", "frames": len(imgs),
           "config": {"tiles": list(tiles), "detect_every": detect_every, "max_persons": 8},
           "persons_per_frame": {"mean": round(float(c.mean()), 2), "median": float(np.median(c)), "max": int(c.max()),
                                 "histogram": np.bincount(c).tolist()},
           "frames_with_ge2": int((c >= 2).sum()), "mediapipe_legacy_frames_with_person": int(mp_found),
           "mediapipe_legacy_persons_max": 1, "tracking": track_metrics(hist), "tracker_stats": tr.stats,
           "ms_per_frame": stats(ms)}
    print("multi", json.dumps(res))
    return res


def flip(threads: int, reps: int = 30) -> dict:
    """The landmark stage with and without the flip test (each crop also run mirrored), alternating call by call on
    the same ROIs, for 1 and 4 persons; the ratio is the cost of the option."""
    from realtime_hmr.landmarks import LandmarkConfig

    img = video(DATA / "runner_side.mp4", (640, 480), limit=1)[0]
    det, plain = parts(threads)
    mirrored = PoseLandmarker(plain.backend, LandmarkConfig(flip_test=True))
    roi = det(img)[0].roi
    res = {}
    for n in (1, 4):
        ts = {"plain": [], "flip": []}
        for lmk in (plain, mirrored):
            lmk(img, [roi] * n)
        for _ in range(reps):
            for name, lmk in (("plain", plain), ("flip", mirrored)):
                t0 = time.perf_counter()
                lmk(img, [roi] * n)
                ts[name].append((time.perf_counter() - t0) * 1e3)
        res[f"persons_{n}"] = {k: stats(v) for k, v in ts.items()}
        res[f"persons_{n}"]["flip_over_plain_p50"] = round(float(np.median(ts["flip"]) / np.median(ts["plain"])), 2)
    print("flip", json.dumps(res))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sections", default="parity,parity_video,speed,batch,multi")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--multi-frames", type=int, default=None, help="limit the pedestrians clip (default: all 795)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "perception_cpu.json"))
    args = p.parse_args()
    import onnxruntime

    out_path = Path(args.out)
    report = json.loads(out_path.read_text()) if out_path.is_file() else {}
    report.setdefault("machine", {})[args.sections] = {
                         "cpu": platform.processor() or platform.machine(), "threads": args.threads,
                         "onnxruntime": onnxruntime.__version__, "gpu": None, "cores": os.cpu_count(),
                         "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
                         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    report.pop("command", None)
    for s in args.sections.split(","):
        report.setdefault("commands", {})[s] = f"python benchmarks/bench_perception.py --sections {s} " \
            f"--threads {args.threads}" + (f" --multi-frames {args.multi_frames}" if args.multi_frames else "")
        report[s] = {"parity": lambda: parity(args.threads), "parity_video": lambda: parity_video(args.threads),
                     "speed": lambda: speed(args.threads),
                     "batch": lambda: batch(args.threads), "flip": lambda: flip(args.threads),
                     "multi": lambda: multi(args.threads, limit=args.multi_frames)}[s]()
        out_path.parent.mkdir(parents=True, exist_ok=True)
        report.setdefault("load_average_after", {})[s] = [round(v, 2) for v in os.getloadavg()]
        out_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
