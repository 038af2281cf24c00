"""Cost of ``--fit`` (each body's pose refined on its 2D landmarks) in the mesh stage, on the shipped demo clip.

    python benchmarks/bench_fit.py [--frames 40] [--threads 1] [--name fit_cpu]

The tracker runs once over the clip; then, frame by frame and alternating, the mesh stage (``MeshRecovery.stage``:
decoder, VQ decode, placement, IK and, with ``fit``, the 2D fit) runs on the same persons without and with the fit.
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
    plain = MeshRecovery.load("onnxruntime", threads=args.threads)
    fitted = plain.variant(fit=True)
    cap = cv2.VideoCapture(str(DEMO))
    frames = []
    while len(frames) < args.frames:
        ok, img = cap.read()
        if not ok:
            break
        persons = [p for p in plain.tracker(img) if p.landmarks_2d is not None]
        if persons:
            frames.append((type("Frame", (), {"image": img})(), persons))
    if not frames:
        raise SystemExit(f"no person found in {DEMO}")
    for mr in (plain, fitted):  # warm-up, and each track's shape fitted once (as in the live loop)
        mr.stage(*frames[0])
    ms = {"without_fit": [], "with_fit": []}
    joints = {k: [] for k in ms}  # per frame: {track id: (24, 3) joints}
    px = []
    for i, (frame, persons) in enumerate(frames):
        order = ((plain, "without_fit"), (fitted, "with_fit"))
        for mr, key in order if i % 2 == 0 else order[::-1]:
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
        "what": "mesh stage ms per person (decoder, VQ decode, placement, IK; with_fit adds the 2D fit), "
                "alternating frame by frame on the same persons",
        "clip": str(DEMO.relative_to(REPO)), "frames": len(frames),
        "persons_per_frame": round(float(np.mean([len(p) for _, p in frames])), 2), "threads": args.threads,
        "ms_per_person": res, "ratio_p50": round(res["with_fit"]["p50"] / res["without_fit"]["p50"], 2),
        "fit_added_ms_p50": round(res["with_fit"]["p50"] - res["without_fit"]["p50"], 2),
        "jitter_accel_mm": {k: {"camera": jitter(v, False), "pelvis_relative": jitter(v, True)}
                            for k, v in joints.items()},
        "reprojection_px_median": {"before_fit": round(float(np.median(px[:, 0])), 2),
                                   "after_fit": round(float(np.median(px[:, 1])), 2)},
        "load_average": os.getloadavg(),
        "command": "python benchmarks/bench_fit.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(write(args.name, result))
    print(result["ms_per_person"], "ratio", result["ratio_p50"], result["reprojection_px_median"],
          result["jitter_accel_mm"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
