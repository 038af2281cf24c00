"""How well ``realtime-hmr pitch`` reads a pitch: the authored pitch rendered, run end to end, scored against truth.

    python benchmarks/eval_pitch.py                 # writes benchmarks/results/eval_pitch.json

``realtime_hmr.train.pitch_clip`` renders the authored right-handed pitch (events and stride known by construction)
at 240 fps, 640x480, from each camera view (``--views``: from the side, facing the pitcher's chest at the set; from
behind, down the target line). Each clip, and copies keeping every 2nd and 4th frame
(120 and 60 fps), go through what the command runs (the tracker, the mesh model per frame, the analysis), as is and
with ``--fit``. Each result is compared with:
- the construction: the frame the lead foot is pinned (foot contact), the highest-knee keyframe (leg lift) and the
  stride between the pinned feet;
- the same analysis on the true joints (the rendered body's SMPL-24 joints in camera space): every event and metric.
Errors: events in ms, metrics as absolute differences. The camera is the product's default guess (not the clip's).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from common import write  # noqa: E402


def subsample(src: Path, dst: Path, every: int, fps: float) -> None:
    import cv2

    cap = cv2.VideoCapture(str(src))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    k = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if k % every == 0:
            out.write(img)
        k += 1
    cap.release()
    out.release()


def compare(pred: dict, ref: dict, fps: float) -> dict:
    ev = {k: None if pred["events"][k] is None or ref["events"][k] is None else
          round(1000.0 * (pred["events"][k]["frame"] - ref["events"][k]["frame"]) / fps, 1) for k in ref["events"]}
    mt = {k: None if not isinstance(v, (int, float)) or isinstance(v, bool) or pred["metrics"][k] is None else
          round(pred["metrics"][k] - v, 2) for k, v in ref["metrics"].items()}
    mt = {k: v for k, v in mt.items() if v is not None}
    seq = {k: round(pred["kinematic_sequence"][k]["ms_from_foot_contact"] - ref["kinematic_sequence"][k][
        "ms_from_foot_contact"], 1) for k in ("pelvis", "trunk", "elbow_extension")}
    return {"event_error_ms": ev, "metric_error": mt, "sequence_peak_time_error_ms": seq,
            "hand_ok": pred["hand"] == ref["hand"], "in_order": pred["kinematic_sequence"]["in_order"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="eval_pitch", help="results file name under benchmarks/results/")
    ap.add_argument("--rates", default="240,120,60", help="frame rates to score (240 divided by an integer)")
    ap.add_argument("--views", default="side,behind", help="camera views (train.pitch_clip.VIEWS)")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)

    from realtime_hmr.mesh import MeshRecovery
    from realtime_hmr.train.pitch_clip import TIMES, make_clip

    base = MeshRecovery.load(threads=a.threads)
    results = {"clips": {}, "runs": {}}
    for view in a.views.split(","):
        work = Path(tempfile.mkdtemp(prefix="pitch_clip_"))
        meta = make_clip(work, view=view)
        results["clips"][view] = {k: meta[k] for k in ("size", "fps", "frames", "hand", "events_frame", "stride_m",
                                                       "height_m", "camera", "seed", "command")}
        run_view(a, view, work, meta, base, results["runs"])
    results["phases_s"] = TIMES
    print(write(a.name, results))


def run_view(a, view: str, work: Path, meta: dict, base, runs: dict) -> None:
    from realtime_hmr import pitch as P
    from realtime_hmr.offline import track_clip

    gt = np.load(work / "pitch_gt.npz")
    names = [str(s) for s in gt["event_names"]]
    built = dict(zip(names, gt["events"].tolist(), strict=True))
    for rate in (float(r) for r in a.rates.split(",")):
        every = int(round(240.0 / rate))
        clip = work / "pitch.mp4"
        if every > 1:
            clip = work / f"pitch_{int(rate)}.mp4"
            subsample(work / "pitch.mp4", clip, every, rate)
        truth = gt["joints24"][::every].astype(np.float64)
        ref = P.analyze(truth, gt["up"], fps=rate)
        ref_built = {"foot_contact_ms": round(1000.0 * (ref["events"]["foot_contact"]["frame"] * every
                                                        - built["contact"]) / 240.0, 1),
                     "stride_m": round(ref["metrics"]["stride_length_m"] - meta["stride_m"], 3)}
        runs[f"{view}_truth_{int(rate)}fps"] = {"vs_construction": ref_built, "report": {
            k: ref[k] for k in ("hand", "events", "metrics", "kinematic_sequence")}}
        for variant, mr in (("as_is", base), ("fit", base.variant(fit=True))):
            t0 = time.perf_counter()
            tracks = track_clip(str(clip), mr, fps=rate)
            seconds = time.perf_counter() - t0
            pid = tracks.by_coverage()[0]
            entry = {"frames_seen": tracks.seen(pid), "frames": tracks.frames,
                     "ms_per_frame": round(1000.0 * seconds / tracks.frames, 1)}
            try:
                pred = P.analyze(tracks.joints[pid], fps=rate)  # a level camera's up, as the command assumes
            except P.PitchError as e:
                entry["error"] = str(e)
            else:
                entry["vs_construction"] = {
                    "foot_contact_ms": round(1000.0 * (pred["events"]["foot_contact"]["frame"] * every
                                                       - built["contact"]) / 240.0, 1),
                    "leg_lift_ms": round(1000.0 * (pred["events"]["leg_lift"]["frame"] * every - built["lift"])
                                         / 240.0, 1),
                    "stride_m": round(pred["metrics"]["stride_length_m"] - meta["stride_m"], 3)}
                entry["vs_truth_analysed"] = compare(pred, ref, rate)
                entry["report"] = {k: pred[k] for k in ("hand", "events", "metrics", "kinematic_sequence",
                                                        "limb_swaps_undone")}
            runs[f"{view}_{variant}_{int(rate)}fps"] = entry
            print(view, variant, rate, entry.get("error") or entry["vs_construction"], flush=True)


if __name__ == "__main__":
    main()
