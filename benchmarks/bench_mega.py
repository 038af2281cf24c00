"""Cost per person of the mesh decoder: MEGA deterministic pass + Mesh-VQ-VAE decode, ONNX Runtime on this CPU.

    python benchmarks/bench_mega.py [--model-dir DIR] [--d 256 --layers 6] [--threads 1,2]

With ``--model-dir`` (a `train mega` output, or the shipped `realtime_hmr/assets/mega`) the trained files are
timed. Without one (none ships yet) a decoder of the given size is exported with freshly initialised weights: the
cost of a forward pass depends on the architecture, not on the weight values, so the figures stand for a trained
model of the same size. Decoders with image-feature tokens (``--image-tokens N``, or ``train mega --image-tokens``)
get random features of the right shape (the landmark net computes them anyway: no extra cost there). The weights'
size on disk is reported (target <= 50 MB). Writes ``benchmarks/results/mega_cpu.json``; the machine's load average
is recorded (a shared 2-core CPU is noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from common import timed, write  # noqa: E402

from realtime_hmr.runtime.ort import OnnxRuntime  # noqa: E402

TARGET_MS = 8.0


def fresh_export(d: int, layers: int, out: Path, vqvae: Path, image_tokens: int = 0) -> dict:
    import torch
    from safetensors.torch import save_file

    from realtime_hmr.models.mega import MEGA, MEGAConfig
    from realtime_hmr.train.mega import export, frozen_tokenizer

    torch.manual_seed(0)
    cfg = MEGAConfig(d=d, layers=layers, heads=max(4, d // 64), image_tokens=image_tokens,
                     image_dim=288 if image_tokens else 0)
    m = MEGA(cfg).eval()
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(out / "mega.safetensors"))
    export(m, out, frozen_tokenizer(vqvae / "vqvae.safetensors").vq.codebook.detach().float())
    return {**cfg.__dict__, "weights": "freshly initialised (timing only)"}


_STEP = {}


def stochastic(d: Path, vq, feeds: dict, threads: int, samples: int = 10, steps: int = 5):
    """Stochastic mode's decoder work for one person: ``steps`` passes of mega_step over ``samples`` sequences, then
    the VQ decode of every sample (as MeshRecovery does)."""
    from realtime_hmr.mesh import iterative_decode

    net = _STEP.get(threads) or _STEP.setdefault(threads, OnnxRuntime(d / "mega_step.onnx", threads=threads))
    f = {k: np.repeat(v, samples, 0) for k, v in feeds.items()}
    tok, _ = iterative_decode(lambda t: (net.run({"tokens": t, **f})["logits"], None), samples, 54, 512, steps, 1.0,
                              np.random.default_rng(0))
    return vq.run({"tokens": tok})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", help="trained decoder files (default: a fresh export of --d/--layers)")
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--image-tokens", type=int, default=0, help="fresh export: image-feature tokens (20 in the port)")
    ap.add_argument("--vqvae", default=str(REPO / "realtime_hmr" / "assets" / "vqvae"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--name", default="mega_cpu")
    args = ap.parse_args(argv)
    from realtime_hmr.mesh import condition

    with tempfile.TemporaryDirectory() as tmp:
        if args.model_dir:
            d = Path(args.model_dir)
            cfg = json.loads((d / "mega.json").read_text()).get("config", {})
        else:
            d = Path(tmp)
            cfg = fresh_export(args.d, args.layers, d, Path(args.vqvae), args.image_tokens)
        weights_mb = (d / "mega.safetensors").stat().st_size / 2**20 if (d / "mega.safetensors").is_file() else None
        rng = np.random.default_rng(0)
        res = {"what": "MEGA deterministic pass + Mesh-VQ-VAE decode per person, ONNX Runtime CPU",
               "command": "python benchmarks/bench_mega.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "decoder": cfg, "model_dir": args.model_dir, "weights_mb": weights_mb,
               "load_average_before": os.getloadavg(), "runs": {}}
        for th in (int(t) for t in args.threads.split(",")):
            mega = OnnxRuntime(d / "mega_det.onnx", threads=th)
            vq = OnnxRuntime(Path(args.vqvae) / "vqvae_decoder.onnx", threads=th)
            for B in (1, 8):
                lm = rng.uniform(100, 400, (B, 33, 3))
                world = rng.normal(0, 0.3, (B, 33, 3))
                feeds = dict(zip(("lm2d", "lmw", "geom"), condition(lm, world, rng.uniform(0, 1, (B, 33)),
                                                                     np.array([[500.0, 0, 320], [0, 500, 240],
                                                                               [0, 0, 1]]))))
                if "image" in mega.input_names:
                    feeds["image"] = rng.normal(0, 0.3, (B, cfg["image_tokens"], cfg["image_dim"])).astype(np.float32)
                tok = mega.run(feeds)["tokens"].astype(np.int64)

                def both(mega=mega, vq=vq, feeds=feeds):
                    t = mega.run(feeds)["tokens"].astype(np.int64)
                    return vq.run({"tokens": t})

                r = {"mega": timed(lambda mega=mega, feeds=feeds: mega.run(feeds), args.repeat),
                     "vq_decode": timed(lambda vq=vq, tok=tok: vq.run({"tokens": tok}), args.repeat),
                     "both": timed(both, args.repeat)}
                r["per_person_p50_ms"] = r["both"]["p50"] / B
                if B == 1 and (d / "mega_step.onnx").is_file():  # stochastic mode: 10 samples, 5 steps, one person
                    r["stochastic_10x5"] = timed(lambda feeds=feeds, th=th, vq=vq: stochastic(d, vq, feeds, th), 10)
                res["runs"][f"threads{th}_batch{B}"] = r
                print(f"threads {th} batch {B}: MEGA p50 {r['mega']['p50']:.2f} ms + VQ decode "
                      f"{r['vq_decode']['p50']:.2f} ms -> {r['per_person_p50_ms']:.2f} ms per person"
                      + (f"; stochastic 10 x 5 {r['stochastic_10x5']['p50']:.1f} ms" if "stochastic_10x5" in r else ""))
        res["load_average_after"] = os.getloadavg()
        best1 = min(v["per_person_p50_ms"] for k, v in res["runs"].items() if k.endswith("batch1"))
        res["targets"] = {"per_person_batch1_le_8ms": bool(best1 <= TARGET_MS),
                          "weights_le_50mb": None if weights_mb is None else bool(weights_mb <= 50)}
    print(f"written to {write(args.name, res)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
