"""Mesh-VQ-VAE decoder (tokens -> 13,718 vertices) and encoder latency under ONNX Runtime on this machine's CPU.

    python benchmarks/bench_vqvae.py [--model-dir realtime_hmr/assets/vqvae] [--out benchmarks/results/vqvae_cpu.json]

Random valid tokens; after warm-up, ``--iters`` timed runs per setting; reports p50/p95/mean ms per call and per
body. The machine's load average is recorded: this box is shared, and timings on a busy 2-core CPU are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from realtime_hmr.runtime.ort import OnnxRuntime  # noqa: E402


def bench(run, feeds: dict, iters: int, warmup: int = 10) -> dict:
    for _ in range(warmup):
        run(feeds)
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        run(feeds)
        ms.append((time.perf_counter() - t) * 1e3)
    ms = np.asarray(ms)
    return {"p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(ms.mean()),
            "min_ms": float(ms.min()), "iters": iters}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default=str(REPO / "realtime_hmr" / "assets" / "vqvae"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "vqvae_cpu.json"))
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--threads", default="1,2", help="comma-separated ONNX Runtime intra-op thread counts")
    ap.add_argument("--update-meta", action="store_true", help="record the decoder figures in the model's vqvae.json")
    args = ap.parse_args(argv)
    d = Path(args.model_dir)
    meta = json.loads((d / "vqvae.json").read_text())
    K, T, V = meta["config"]["codebook_size"], meta["config"]["n_tokens"], meta["config"]["n_vertices"]
    rng = np.random.default_rng(0)
    where = d.resolve().relative_to(REPO) if d.resolve().is_relative_to(REPO) else d
    res = {"what": "Mesh-VQ-VAE ONNX Runtime CPU latency", "model_dir": str(where),
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "load_average_before": os.getloadavg(), "decoder": {}, "encoder": {}}
    import onnxruntime

    res["onnxruntime"] = onnxruntime.__version__
    for th in (int(t) for t in args.threads.split(",")):
        dec = OnnxRuntime(d / "vqvae_decoder.onnx", threads=th)
        enc = OnnxRuntime(d / "vqvae_encoder.onnx", threads=th)
        for B in (1, 8):
            tok = rng.integers(0, K, (B, T)).astype(np.int64)
            r = bench(dec.run, {"tokens": tok}, args.iters)
            r["per_body_p50_ms"] = r["p50_ms"] / B
            res["decoder"][f"threads{th}_batch{B}"] = r
            verts = dec.run({"tokens": tok})["vertices"]
            assert verts.shape == (B, V, 3)
            r = bench(enc.run, {"vertices": verts}, args.iters // 2)
            r["per_body_p50_ms"] = r["p50_ms"] / B
            res["encoder"][f"threads{th}_batch{B}"] = r
            print(f"threads {th} batch {B}: decoder p50 {res['decoder'][f'threads{th}_batch{B}']['p50_ms']:.2f} ms, "
                  f"encoder p50 {r['p50_ms']:.2f} ms")
    res["load_average_after"] = os.getloadavg()
    res["target"] = {"decoder_batch1_le_3ms": bool(min(v["p50_ms"] for k, v in res["decoder"].items()
                                                      if k.endswith("batch1")) <= 3.0)}
    if args.update_meta:
        meta["cpu_latency_ms"] = {"onnxruntime_decoder": {k: round(v["p50_ms"], 3) for k, v in res["decoder"].items()},
                                  "onnxruntime_encoder": {k: round(v["p50_ms"], 3) for k, v in res["encoder"].items()},
                                  "note": "p50 on a shared 2-core CPU; see benchmarks/results/vqvae_cpu.json",
                                  "load_average": res["load_average_before"]}
        (d / "vqvae.json").write_text(json.dumps(meta, indent=2) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
