"""ZeroMQ publishing: cost per frame, and what slow or absent subscribers do to the producer's FPS and memory.

    python benchmarks/bench_stream.py [--seconds 3 --rounds 3] [--vertices 13718] [--out benchmarks/results/stream.json]

1. ``publish``: time of one ``ZmqPublisher.__call__`` (encode + non-blocking send of hmr.pose and hmr.frame) for
   1 and 4 persons, with and without vertices, no subscriber.
2. ``subscribers``: a producer doing a fixed ~25 ms of numpy work per frame (standing in for inference) and
   publishing 1 person with vertices, under four conditions - no subscriber, a subscriber that never reads, a
   subscriber reading one frame every 200 ms without conflation, a conflating subscriber reading everything -
   interleaved over several rounds (other load on the machine then hits every condition alike). Subscribers are
   separate processes. Reports the median FPS, the producer's CPU time per frame (all its threads, ZeroMQ's I/O
   thread included), publish-call time and the producer's RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from realtime_hmr.stream.zmq_pub import ZmqPublisher  # noqa: E402
from realtime_hmr.timing import percentiles  # noqa: E402
from realtime_hmr.types import BodyResult, Frame, Person  # noqa: E402

SUBSCRIBER = """
import sys, time, zmq
addr, mode = sys.argv[1], sys.argv[2]
s = zmq.Context().socket(zmq.SUB)
if mode == "conflate":
    s.setsockopt(zmq.CONFLATE, 1)
s.setsockopt(zmq.SUBSCRIBE, b"hmr.frame\\0")
s.connect(addr)
while True:
    if mode == "never":
        time.sleep(1)
    elif mode == "slow":
        s.recv(); time.sleep(0.2)
    else:
        s.recv()
"""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def persons(n: int, n_vertices: int, rng) -> list[Person]:
    return [Person(id=k, box=np.array([0, 0, 100, 200.0]), score=0.9,
                   body=BodyResult(joints=rng.normal(size=(24, 3)), rotations=rng.normal(size=(24, 4)),
                                   translation=rng.normal(size=3), confidence=np.ones(24),
                                   vertices=rng.normal(size=(n_vertices, 3)).astype(np.float32)))
            for k in range(n)]


def bench_publish(n_vertices: int, rng) -> dict:
    out = {}
    image = np.zeros((480, 640, 3), np.uint8)
    faces = np.zeros((2 * n_vertices, 3), np.int32)
    for send_vertices in (False, True):
        pub = ZmqPublisher("tcp://127.0.0.1:*", joint_names=[f"j{i}" for i in range(24)], faces=faces,
                           send_vertices=send_vertices)
        for n in (1, 4):
            ps = persons(n, n_vertices, rng)
            times = []
            for seq in range(300):
                frame = Frame(image, time.perf_counter(), seq)
                t0 = time.perf_counter()
                pub(frame, ps)
                times.append((time.perf_counter() - t0) * 1e3)
            out[f"{n}_person{'s' if n > 1 else ''}_{'with' if send_vertices else 'without'}_vertices_ms"] = \
                percentiles(times[20:])
        pub.close()
    return out


def work(a: np.ndarray, reps: int) -> None:
    for _ in range(reps):
        a @ a


def bench_subscribers(seconds: float, rounds: int, n_vertices: int, rng) -> dict:
    a = rng.normal(size=(256, 256)).astype(np.float32)
    t0 = time.perf_counter()
    work(a, 50)
    reps = max(1, int(50 * 0.025 / (time.perf_counter() - t0)))  # ~25 ms of work per frame on an idle core
    pub = ZmqPublisher("tcp://127.0.0.1:*", joint_names=[f"j{i}" for i in range(24)],
                       faces=np.zeros((2 * n_vertices, 3), np.int32))
    ps = persons(1, n_vertices, rng)
    image = np.zeros((480, 640, 3), np.uint8)
    modes = ("none", "never", "slow", "conflate")
    runs: dict[str, list] = {m: [] for m in modes}
    rss_first = rss_mb()
    for _ in range(rounds):  # interleaved, so that the machine's other load hits every condition alike
        for mode in modes:
            proc = None
            if mode != "none":
                proc = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, pub.address, mode])
                time.sleep(1.0)  # let it connect (and, for 'never', its queues start filling at once)
            n, pub_ms, cpu0, t_start = 0, [], time.process_time(), time.perf_counter()
            while time.perf_counter() - t_start < seconds:
                work(a, reps)
                t1 = time.perf_counter()
                pub(Frame(image, t1, n), ps)
                pub_ms.append((time.perf_counter() - t1) * 1e3)
                n += 1
            wall = time.perf_counter() - t_start
            runs[mode].append({"fps": n / wall, "cpu_ms_per_frame": (time.process_time() - cpu0) / n * 1e3,
                               "publish_ms": percentiles(pub_ms), "rss_mb_end": rss_mb()})
            if proc is not None:
                proc.kill()
                proc.wait()
    pub.close()
    summary = {}
    base = float(np.median([r["fps"] for r in runs["none"]]))
    base_cpu = float(np.median([r["cpu_ms_per_frame"] for r in runs["none"]]))
    for mode, rs in runs.items():
        fps = float(np.median([r["fps"] for r in rs]))
        cpu = float(np.median([r["cpu_ms_per_frame"] for r in rs]))
        summary[mode] = {"fps_median": fps, "fps_change_pct": 100 * (fps / base - 1),
                         "cpu_ms_per_frame_median": cpu, "cpu_change_pct": 100 * (cpu / base_cpu - 1),
                         "publish_ms_p95_median": float(np.median([r["publish_ms"]["p95"] for r in rs]))}
    return {"work_reps": reps, "seconds_per_run": seconds, "rounds": rounds, "summary": summary,
            "rss_mb_first": rss_first, "rss_mb_last": rss_mb(), "runs": runs}


def bench_memory(seconds: float, n_vertices: int, rng) -> dict:
    """Publish at 30 FPS for ``seconds`` with a never-reading and a slow subscriber attached; RSS every 10 s."""
    pub = ZmqPublisher("tcp://127.0.0.1:*", joint_names=[f"j{i}" for i in range(24)],
                       faces=np.zeros((2 * n_vertices, 3), np.int32))
    procs = [subprocess.Popen([sys.executable, "-c", SUBSCRIBER, pub.address, m]) for m in ("never", "slow")]
    ps = persons(2, n_vertices, rng)
    image = np.zeros((480, 640, 3), np.uint8)
    samples, n, t_start = [], 0, time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - t_start) < seconds:
            if n % 300 == 0:
                samples.append({"t_s": round(elapsed, 1), "rss_mb": rss_mb()})
            pub(Frame(image, time.perf_counter(), n), ps)
            n += 1
            time.sleep(max(0.0, t_start + n / 30 - time.perf_counter()))
    finally:
        for p in procs:
            p.kill()
            p.wait()
        pub.close()
    samples.append({"t_s": round(time.perf_counter() - t_start, 1), "rss_mb": rss_mb()})
    return {"seconds": seconds, "frames": n, "persons": 2, "subscribers": ["never", "slow"], "rss": samples}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0, help="per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory-seconds", type=float, default=0, help="also a long 30 FPS run watching memory")
    ap.add_argument("--only-memory", action="store_true")
    ap.add_argument("--vertices", type=int, default=13718, help="vertices per person (Anny default topology)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "stream.json"))
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rng = np.random.default_rng(0)
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg(), "python": platform.python_version()},
        "vertices_per_person": args.vertices,
    }
    if not args.only_memory:
        result["publish"] = bench_publish(args.vertices, rng)
        result["subscribers"] = bench_subscribers(args.seconds, args.rounds, args.vertices, rng)
    if args.memory_seconds:
        result["memory"] = bench_memory(args.memory_seconds, args.vertices, rng)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
