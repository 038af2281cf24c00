"""How much of the body do the decoder's inputs tell? A probe, not a product model.

A plain MLP regresses the Mesh-VQ-VAE's continuous latent (54 x code) from chosen inputs, trained through the frozen
VQ decoder on a vertex loss, and is scored on held-out people by the canonical-mesh PVE and PA-PVE (after a similarity
alignment), against the decoded true tokens: the same target as the MEGA decoder's validation.

    # simulated people: clean world landmarks (the body's own BlazePose-33 points), or with MediaPipe's measured error
    python benchmarks/mega_input_probe.py --data simulated --world clean
    python benchmarks/mega_input_probe.py --data simulated --world measured
    # MediaPipe-on-render labels (data synth shards): which of MediaPipe's outputs carry the body
    python benchmarks/mega_input_probe.py --data rendered --rendered DIR --inputs lmw

World landmarks are expressed in the frame of their own hips and shoulders (``--frame torso``, the default) or in
camera axes (``--frame camera``). Results: ``benchmarks/results/mega_input_probe_<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def torso_frame(w: np.ndarray) -> np.ndarray:
    """World landmarks (n, 33, 3), hip-centred, in the frame of their hips (x) and hip-to-shoulder direction (y)."""
    x = w[:, 23] - w[:, 24]
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    up = w[:, 11:13].mean(1) - w[:, 23:25].mean(1)
    y = up - (up * x).sum(-1, keepdims=True) * x
    y = y / np.linalg.norm(y, axis=-1, keepdims=True)
    return w @ np.stack([x, y, np.cross(x, y)], -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("simulated", "rendered"), required=True)
    ap.add_argument("--world", choices=("clean", "measured"), default="clean", help="simulated: world landmark error")
    ap.add_argument("--frame", choices=("torso", "camera"), default="torso")
    ap.add_argument("--rendered", nargs="*", default=[], help="data synth shard directories (--data rendered)")
    ap.add_argument("--cache", default=None, help="rendered: keep the prepared labels in this .npz (reused if present)")
    ap.add_argument("--inputs", default="lmw",
                    help="rendered: comma-separated lm2d, lmw, geom, image (the landmark net's features)")
    ap.add_argument("--samples", type=int, default=12000, help="simulated training people")
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default=None)
    args = ap.parse_args()

    import onnxruntime as ort

    from realtime_hmr.metrics import pa_mpjpe
    from realtime_hmr.train.mega import frozen_tokenizer, load_rendered, simulate_people
    from realtime_hmr.train.noise_stats import NoiseModel
    from realtime_hmr.train.synth import EVAL, TRAIN

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    vq = REPO / "realtime_hmr" / "assets" / "vqvae"
    tk = frozen_tokenizer(vq / "vqvae.safetensors")
    enc = ort.InferenceSession(str(vq / "vqvae_encoder.onnx"), providers=["CPUExecutionProvider"])
    encoder = lambda v: enc.run(None, {enc.get_inputs()[0].name: v})[0].astype(np.int64)  # noqa: E731
    rng = np.random.default_rng(0)
    t0 = time.time()
    if args.data == "simulated":
        noise = NoiseModel.load() if args.world == "measured" else None
        train, val = simulate_people(args.samples, 0, TRAIN, encoder), simulate_people(args.val, 1, EVAL, encoder)

        def inputs(mp33, r):
            w = mp33 - mp33[:, 23:25].mean(1, keepdims=True)
            if noise is not None:
                w = noise.sample_world(w, r)
            w = torso_frame(w) if args.frame == "torso" else w
            return torch.as_tensor(w.reshape(len(w), -1), dtype=torch.float32)

        x_val = inputs(val["mp33"], np.random.default_rng(1))
        x_train = None if noise is not None else inputs(train["mp33"], rng)
        draw = lambda i: x_train[i] if x_train is not None else inputs(train["mp33"][i], rng)  # noqa: E731
        tok_train, tok_val = torch.as_tensor(train["tokens"]), torch.as_tensor(val["tokens"])
        what = f"simulated people, {args.world} world landmarks ({args.frame} frame)"
    else:
        if args.cache and Path(args.cache).is_file():
            with np.load(args.cache, allow_pickle=False) as f:
                z = {k: f[k] for k in f.files if k in ("lm2d", "lmw", "geom", "tokens", "image")}
        else:
            z = load_rendered(args.rendered, encoder, features="image" in args.inputs.split(","))
            if args.cache:
                np.savez(args.cache, **z)
        parts = []
        for k in args.inputs.split(","):
            if k not in z:
                raise SystemExit(f"input {k!r} is not in the prepared labels (image: shards of --labeler port)")
            a = z[k].astype(np.float64)
            a = torso_frame(a) if k == "lmw" and args.frame == "torso" else a
            parts.append(a.reshape(len(a), -1))
        X = np.concatenate(parts, 1)
        mu, sd = X[:-args.val].mean(0), X[:-args.val].std(0) + 1e-6
        X = torch.as_tensor((X - mu) / sd, dtype=torch.float32)
        x_val, tok_val = X[-args.val:], torch.as_tensor(z["tokens"][-args.val:])
        tok_train = torch.as_tensor(z["tokens"][:-args.val])
        draw = lambda i: X[i]  # noqa: E731
        what = f"MediaPipe-on-render labels, inputs {args.inputs} (lmw in the {args.frame} frame)"
    book = tk.vq.codebook
    D = book.shape[1]
    net = torch.nn.Sequential(torch.nn.Linear(x_val.shape[1], 1024), torch.nn.GELU(), torch.nn.Linear(1024, 1024),
                              torch.nn.GELU(), torch.nn.Linear(1024, 54 * D))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.01)
    for step in range(1, args.steps + 1):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        i = rng.integers(0, len(tok_train), 128)
        sub = torch.randperm(tk.cfg.n_vertices)[:1000]
        with torch.no_grad():
            target = tk.skin(*tk.decode_latent(book[tok_train[i]]), sub)
        loss = (tk.skin(*tk.decode_latent(net(draw(i)).view(-1, 54, D)), sub) - target).norm(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        true = tk.decode(tok_val)
        pred = tk.skin(*tk.decode_latent(net(x_val).view(-1, 54, D)))
    res = {"what": what, "command": "python benchmarks/mega_input_probe.py " + " ".join(
               f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items()
               if v not in (None, [])),
           "train_people": len(tok_train), "held_out": len(tok_val), "steps": args.steps,
           "canonical_pve_mm": round(float((pred - true).norm(dim=-1).mean()) * 1e3, 1),
           "canonical_pa_pve_mm": round(float(pa_mpjpe(pred.numpy(), true.numpy()).mean()) * 1e3, 1),
           "constant_mean_body_pa_pve_mm": round(float(pa_mpjpe(
               np.broadcast_to(true.mean(0).numpy(), true.shape), true.numpy()).mean()) * 1e3, 1),
           "wall_s": round(time.time() - t0, 1)}
    name = args.name or (f"{args.data}_{args.world}" if args.data == "simulated" else f"rendered_{args.inputs}")
    out = REPO / "benchmarks" / "results" / f"mega_input_probe_{name.replace(',', '_')}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
