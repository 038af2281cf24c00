"""Cost of ``--fit`` (each body's pose refined on its 2D landmarks) and ``--silhouette`` (the fit on the person's
silhouette too) in the mesh stage, on the shipped demo clip.

    python benchmarks/bench_fit.py [--frames 40] [--threads 1] [--name fit_cpu]

The tracker (segmenting, as ``--silhouette`` needs) runs once over the clip; then, frame by frame and in turn, the mesh
stage (``MeshRecovery.stage``: decoder, VQ decode, placement, IK and, with ``fit``, the 2D fit) runs on the same persons
without the fit, with it, and with it on the silhouettes too. The landmark stage's own cost with and without the
segmentation branch is timed the same way (``landmarks_ms_per_frame``).
Tracks keep their shapes as in the live loop, so the shape is fitted once per track in both. Reports ms per person
of each (p50 over frames) and their ratio; the machine's load average is recorded (a shared CPU is noisy, so the
two are measured side by side). Also the jitter of the unsmoothed 24 joints along each track (mean norm of the second
difference over consecutive frames, mm / frame^2; in camera space and relative to the pelvis): what the fit does to
a stream before the One Euro filters. Writes ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from common import write  # noqa: E402

DEMO = REPO / "realtime_hmr" / "assets" / "demo" / "demo.mp4"


def main(argv=None) -> int:
    import cv2

    from realtime_hmr.mesh import MeshRecovery

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="fit_cpu")
    args = ap.parse_args(argv)
    from realtime_hmr.landmarks import load_pose_tracker

    plain = MeshRecovery.load("onnxruntime", threads=args.threads)
    segmenting = load_pose_tracker("onnxruntime", None, args.threads, 10, 4, mask=True)
    fitted = plain.variant(fit=True)
    sil = plain.variant(fit=True, silhouette=True, tracker=segmenting)
    cap = cv2.VideoCapture(str(DEMO))
    frames = []
    lmk_ms = {"without_mask": [], "with_mask": []}
    while len(frames) < args.frames:
        ok, img = cap.read()
        if not ok:
            break
        for tr, key in ((plain.tracker, "without_mask"), (segmenting, "with_mask"))[::1 if len(frames) % 2 else -1]:
            t0 = time.perf_counter()
            out = tr(img)
            lmk_ms[key].append((time.perf_counter() - t0) * 1e3)
            if tr is segmenting:
                persons = [p for p in out if p.landmarks_2d is not None]
        if persons:
            frames.append((type("Frame", (), {"image": img})(), persons))
    if not frames:
        raise SystemExit(f"no person found in {DEMO}")
    for mr in (plain, fitted, sil):  # warm-up, and each track's shape fitted once (as in the live loop)
        mr.stage(*frames[0])
    ms = {"without_fit": [], "with_fit": [], "with_silhouette": []}
    joints = {k: [] for k in ms}  # per frame: {track id: (24, 3) joints}
    px = []
    for i, (frame, persons) in enumerate(frames):
        order = ((plain, "without_fit"), (fitted, "with_fit"), (sil, "with_silhouette"))
        for mr, key in order[i % 3:] + order[:i % 3]:
            t0 = time.perf_counter()
            out = mr.stage(frame, persons)
            ms[key].append((time.perf_counter() - t0) * 1e3 / len(persons))
            joints[key].append({p.id: p.body.joints for p in out if p.body is not None})
            if mr is fitted:
                px += [p.body.extras["fit_px"] for p in out if p.body is not None]
    res = {k: {"p50": round(float(np.median(v)), 2), "p90": round(float(np.percentile(v, 90)), 2)} for k, v in
           ms.items()}
    px = np.array(px)

    def jitter(seq: list, relative: bool) -> float:
        acc = [np.linalg.norm(a[i] - 2 * b[i] + c[i] - ((a[i][0] - 2 * b[i][0] + c[i][0]) if relative else 0), axis=-1)
               for a, b, c in zip(seq, seq[1:], seq[2:]) for i in set(a) & set(b) & set(c)]
        return round(float(np.mean(acc)) * 1e3, 2) if acc else None

    result = {
        "what": "mesh stage ms per person (decoder, VQ decode, placement, IK; with_fit adds the 2D fit, "
                "with_silhouette the fit with the silhouette terms), in turn frame by frame on the same persons; "
                "landmarks_ms_per_frame: the tracker with and without the segmentation branch, in turn",
        "clip": str(DEMO.relative_to(REPO)), "frames": len(frames),
        "persons_per_frame": round(float(np.mean([len(p) for _, p in frames])), 2), "threads": args.threads,
        "ms_per_person": res, "ratio_p50": round(res["with_fit"]["p50"] / res["without_fit"]["p50"], 2),
        "fit_added_ms_p50": round(res["with_fit"]["p50"] - res["without_fit"]["p50"], 2),
        "silhouette_ratio_p50": round(res["with_silhouette"]["p50"] / res["without_fit"]["p50"], 2),
        "silhouette_added_ms_p50": round(res["with_silhouette"]["p50"] - res["with_fit"]["p50"], 2),
        "landmarks_ms_per_frame": {k: round(float(np.median(v)), 2) for k, v in lmk_ms.items()},
        "jitter_accel_mm": {k: {"camera": jitter(v, False), "pelvis_relative": jitter(v, True)}
                            for k, v in joints.items()},
        "reprojection_px_median": {"before_fit": round(float(np.median(px[:, 0])), 2),
                                   "after_fit": round(float(np.median(px[:, 1])), 2)},
        "load_average": os.getloadavg(),
        "command": "python benchmarks/bench_fit.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(write(args.name, result))
    print(result["ms_per_person"], "ratio", result["ratio_p50"], result["silhouette_ratio_p50"],
          result["landmarks_ms_per_frame"], result["reprojection_px_median"], result["jitter_accel_mm"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
