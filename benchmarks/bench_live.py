"""The live loop end to end with the real perception stage: one person at 640x480 on this CPU.

    python benchmarks/bench_live.py          # writes benchmarks/results/live_cpu.json

Source: the runner clip from ../shared/data (real footage, one person), resized to 640x480 into a temporary file
first (so decoding matches a 640x480 camera). Two runs through ``realtime_hmr.live`` with ZeroMQ and recording on,
preview off:
- ``throughput``: every frame processed as fast as possible (the FPS this machine sustains);
- ``paced``: the file read at its own 30 fps clock, as a camera delivers it (latest frame only, so no backlog):
  capture-to-publish latency, p50/p95, per stage.
The clip is looped to ``--frames`` frames. Stages and sinks are the product's own: perception, the shipped mesh model
(one body per person: decoder, VQ decode, placement, IK), smoothing, publishing.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import write  # noqa: E402

from realtime_hmr.config import Config  # noqa: E402
from realtime_hmr.live import Outputs, run  # noqa: E402

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "runner_side.mp4"


def resized_clip(dst: Path, frames: int, size=(640, 480)) -> Path:
    cap = cv2.VideoCapture(str(CLIP))
    imgs = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        imgs.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    if not imgs:
        raise SystemExit(f"cannot read {CLIP}")
    w = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for i in range(frames):
        k = i % (2 * len(imgs) - 2)  # back and forth: no jump at the loop point
        w.write(imgs[k if k < len(imgs) else 2 * len(imgs) - 2 - k])
    w.release()
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    a = ap.parse_args()
    out = {"what": __doc__.strip().splitlines()[0], "frames": a.frames, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clip = resized_clip(Path(tmp) / "runner_640x480.mp4", a.frames)
        for name, realtime in (("throughput", False), ("paced", True)):
            cfg = Config()
            cfg = cfg.replace("capture", source=str(clip), realtime=realtime)
            cfg = cfg.replace("stream", zmq=f"tcp://127.0.0.1:{free_port()}")
            cfg = cfg.replace("runtime", threads=a.threads)
            rep = run(cfg, Outputs(record=Path(tmp) / f"{name}.npz"))
            out["runs"][name] = rep
            lat = rep["latency_ms"]
            print(f"{name:10s}: {rep['frames']} frames, {rep['fps']:.1f} FPS, capture-to-publish p50 {lat['p50']:.1f} "
                  f"ms p95 {lat['p95']:.1f} ms, dropped {rep['dropped_frames']}, with a person "
                  f"{rep['frames_with_person']}")
    print("written", write("live_cpu", out))


if __name__ == "__main__":
    main()
