"""Throughput of ``data synth`` on one core: labelled samples per second, where the time goes, bytes per sample.

    LP_NUM_THREADS=1 python benchmarks/bench_synth.py [--n 64]     # writes benchmarks/results/synth_cpu.json

One process, one llvmpipe render thread, torch on one thread; MediaPipe runs its own graph threads, so the
honest per-core figure is samples per CPU-second of the process (all its threads), reported beside wall-clock
samples per second (which depends on how busy the shared machine is: see machine.load_avg_1m).
Target (synthetic-data issue): >= 15 labelled samples/s/core.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LP_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402

STAGES = ("scene", "render", "composite_encode", "mediapipe")


def run(maker, n: int, seed: int) -> dict:
    from realtime_hmr.train.synth import make_shard

    make_shard(maker, seed + 1000, 0, 2)  # warm up (first MediaPipe call, shader compile, mocap load)
    t0, c0 = time.perf_counter(), time.process_time()
    shard = make_shard(maker, seed, 0, n)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.npz"
        np.savez_compressed(p, **shard)
        size = p.stat().st_size
    stage, stage_cpu = shard["time_ms"], shard["cpu_ms"]
    det = shard["mp_detected"] & (shard["mp_person"] == 0)  # all False without MediaPipe
    return {"n": n, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "samples_per_s_wall": round(n / wall, 2), "samples_per_cpu_s": round(n / cpu, 2),
            "stage_ms_mean": {k: round(float(v), 1) for k, v in zip(STAGES, stage.mean(0), strict=True)},
            "stage_ms_p50": {k: round(float(v), 1) for k, v in zip(STAGES, np.median(stage, 0), strict=True)},
            "stage_cpu_ms_mean": {k: round(float(v), 1) for k, v in zip(STAGES, stage_cpu.mean(0), strict=True)},
            "pose_and_shape_draw_ms_per_sample": round(1e3 * wall / n - float(shard["time_total_ms"].mean()), 1),
            "bytes_per_sample": int(size / n), "detection_rate": round(float(det.mean()), 3)}


def main() -> None:
    import torch

    from realtime_hmr.train.synth import SceneMaker, SynthConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = {"what": "data synth in one process (one shard); per core = samples per CPU-second", "cases": {}}
    cases = (("default_384x288", SynthConfig(), True), ("msaa4_384x288", SynthConfig(samples=4), True),
             ("render_only_no_mediapipe_384x288", SynthConfig(), False))
    for name, cfg, label in cases:
        maker = SceneMaker(cfg, labeler=label)
        out["gl_renderer"] = maker.renderer.gl_renderer
        out["cases"][name] = run(maker, a.n, a.seed)
        print(name, out["cases"][name])
        if maker.labeler is not None:
            maker.labeler.close()
        maker.renderer.release()
    out["command"] = f"LP_NUM_THREADS=1 python benchmarks/bench_synth.py --n {a.n} --seed {a.seed}"
    print(write("synth_cpu", out))


if __name__ == "__main__":
    main()
