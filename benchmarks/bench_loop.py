"""The live loop without models: what capture, smoothing and the sinks cost, and whether memory stays flat.

    python benchmarks/bench_loop.py --source ../shared/data/video/runner_side.mp4      # a real clip, all sinks
    python benchmarks/bench_loop.py --synthetic-seconds 600                             # 10 min at 30 FPS, memory

The perception and mesh stages are replaced by ONE synthetic stage that attaches a fixed body (24 joints, 13,688
vertices, 22 bone rotations, small noise) to one person per frame, so the numbers are the loop's own overhead:
decode, queues, One Euro smoothing, ZeroMQ (with vertices), OSC joints, VMC, recording (vertices float16 for the
clip, none for the long run) and, for the clip, the preview mp4. End-to-end FPS with the models is measured by
``realtime-hmr bench`` once they exist. Results: JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from realtime_hmr.capture import Capture  # noqa: E402
from realtime_hmr.filters import Smoother  # noqa: E402
from realtime_hmr.pipeline import Pipeline  # noqa: E402
from realtime_hmr.preview import Preview  # noqa: E402
from realtime_hmr.record import Recorder  # noqa: E402
from realtime_hmr.stream.osc_out import HUMAN_BODY_BONES, OscJointSender, VMCPose, VMCSender  # noqa: E402
from realtime_hmr.stream.zmq_pub import ZmqPublisher  # noqa: E402
from realtime_hmr.types import BodyResult, Person  # noqa: E402

ROWS, COLS = 118, 116  # a 13,688-vertex cylinder grid: close to Anny's 13,718 vertices / 27,420 faces


def cylinder_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A body-sized cylinder (radius 0.2 m, 1.7 m tall, 3 m from the camera) with small triangles like a real mesh."""
    a = np.linspace(0, 2 * np.pi, COLS, endpoint=False)
    y = np.linspace(-0.85, 0.85, ROWS)
    v = np.stack([0.2 * np.cos(a)[None].repeat(ROWS, 0), y[:, None].repeat(COLS, 1),
                  3.0 + 0.2 * np.sin(a)[None].repeat(ROWS, 0)], -1).reshape(-1, 3)
    i = np.arange(ROWS - 1)[:, None] * COLS
    j = np.arange(COLS)[None]
    q0, q1, q2, q3 = i + j, i + (j + 1) % COLS, i + COLS + j, i + COLS + (j + 1) % COLS
    faces = np.concatenate([np.stack([q0, q1, q2], -1).reshape(-1, 3), np.stack([q1, q3, q2], -1).reshape(-1, 3)])
    return v.astype(np.float32), faces.astype(np.int32)


VERTICES, FACES = cylinder_mesh()


class SyntheticBody:
    """Stands in for detect..mesh: one person with a fixed body plus noise (benchmark payload, not a model)."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.joints = self.rng.normal(0, 0.3, (24, 3)) + [0, 0, 3.0]
        self.vertices = VERTICES

    def __call__(self, frame, persons):
        h, w = frame.image.shape[:2]
        n = self.rng.normal(0, 0.005, 3)
        rot = np.tile([0, 0, 0, 1.0], (22, 1)) + self.rng.normal(0, 0.01, (22, 4))
        body = BodyResult(joints=self.joints + n, vertices=self.vertices + n.astype(np.float32), rotations=rot,
                          translation=np.array([0, 0, 3.0]) + n, confidence=np.ones(24))
        return [Person(id=1, box=np.array([w * 0.3, h * 0.1, w * 0.7, h * 0.9]), score=0.9, body=body)]


def pose_of(p: Person) -> VMCPose:
    return VMCPose(root_position=p.body.translation, root_rotation=np.array([0, 0, 0, 1.0]),
                   bones=dict(zip(HUMAN_BODY_BONES[:22], p.body.rotations, strict=True)))


class SyntheticCamera:
    """640x480 frames at ``fps`` for ``seconds`` (a file-like source: paced by itself, never dropped)."""

    live = False

    def __init__(self, seconds: float, fps: float = 30.0):
        self.seconds, self.fps, self.n, self.t0 = seconds, fps, 0, None
        self.image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
        self.frame_count = int(seconds * fps)

    def __str__(self):
        return "synthetic camera"

    def open(self):
        pass

    def read(self):
        self.t0 = self.t0 or time.perf_counter()
        if self.n >= self.frame_count:
            return None
        time.sleep(max(0.0, self.t0 + self.n / self.fps - time.perf_counter()))
        self.n += 1
        return self.image.copy(), time.perf_counter(), self.n / self.fps

    def release(self):
        pass


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class MemoryProbe:
    """A sink sampling RSS every ``every_s`` seconds."""

    def __init__(self, every_s: float = 10.0):
        self.every_s, self.samples, self.t0 = every_s, [], None

    def __call__(self, frame, persons):
        now = time.perf_counter()
        self.t0 = self.t0 or now
        if not self.samples or now - self.t0 >= len(self.samples) * self.every_s:
            self.samples.append({"t_s": round(now - self.t0, 1), "rss_mb": round(rss_mb(), 2)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", help="a video file")
    ap.add_argument("--synthetic-seconds", type=float, help="instead: a synthetic 30 FPS camera for this long")
    ap.add_argument("--out")
    args = ap.parse_args()
    if not args.source and not args.synthetic_seconds:
        ap.error("give --source FILE or --synthetic-seconds N")
    tmp = Path(tempfile.mkdtemp(prefix="bench_loop_"))
    faces = FACES
    names = [f"j{i}" for i in range(24)]
    long_run = args.source is None
    source = SyntheticCamera(args.synthetic_seconds) if long_run else args.source
    probe = MemoryProbe()
    sinks = [("zmq", ZmqPublisher("tcp://127.0.0.1:*", joint_names=names, faces=faces)),
             ("osc", OscJointSender("127.0.0.1", 9, joint_names=names)),
             ("vmc", VMCSender("127.0.0.1", 39539, pose_of=pose_of)),
             ("record", Recorder(tmp / "rec.npz", joint_names=names, faces=faces, vertices=not long_run))]
    if not long_run:
        sinks.append(("preview", Preview(out=tmp / "preview.mp4", faces=faces)))
    sinks.append(("memory", probe))
    pipe = Pipeline(Capture(source), [("synthetic_body", SyntheticBody()), ("smooth", Smoother())], sinks)
    report = pipe.run()
    rec_size = (tmp / "rec.npz").stat().st_size
    result = {"command": " ".join(["python", *sys.argv]), "cpus": os.cpu_count(), "load_avg_end": os.getloadavg(),
              "source": Path(args.source).name if args.source else f"synthetic 640x480, {args.synthetic_seconds} s",
              "report": report, "recording_mb": rec_size / 1e6, "rss": probe.samples}
    out = args.out or str(Path(__file__).parent / "results" / ("loop_memory.json" if long_run else "loop_clip.json"))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss"}, indent=2))
    print("rss first/last:", probe.samples[0], probe.samples[-1])


if __name__ == "__main__":
    main()
