"""Train the MEGA decoder: ``realtime-hmr train mega`` (or ``python -m realtime_hmr.train.mega``).

Data, two kinds, mixed in every batch (``--rendered-frac``):

- MediaPipe-on-render labels (``--rendered DIR``: shards of ``realtime-hmr data synth``): what MediaPipe really
  reported for a rendered person (image landmarks, world landmarks, visibility), with that person's targets. This is
  the distribution the decoder meets at run time; its world landmarks are far noisier than any simple model of them.
- Simulated people (no rendering): the same pose, shape and camera sources as ``data synth``, their clean
  camera-space BlazePose landmarks (the body's ``mediapipe33`` regressor), and for each batch a fresh draw of what
  the tracker would see, from the measured MediaPipe error model (``assets/mediapipe_noise.json``: image and world
  landmarks), relative depth and visibility. Cheap and endlessly varied.

Targets for both: the canonical mesh (root rotation removed, centred) tokenised by the shipped Mesh-VQ-VAE encoder,
and the rotation from that canonical mesh to camera space (the orientation). Inputs go through the runtime's own
:func:`realtime_hmr.mesh.condition`.

Image tokens (``--image-tokens``): the decoder also reads the BlazePose landmark net's last feature maps (20 tokens x
288, the ``features`` output of the shipped landmark ONNX), which rendered shards made with ``data synth --labeler
port`` store; simulated people have none and get the model's null image tokens.

Schedule: ``--pretrain`` steps with the condition dropped (the unconditional prior: random bodies), then
conditional training where 10 % of the conditions are still dropped (so the prior stays usable). Loss: cross-entropy
on the masked positions (cos schedule, never an empty mask) + the orientation's squared Frobenius error.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parents[1] / "assets"
SIZE = (640, 480)
DET_TOKENS = "expected code (tokens); argmax (tokens_argmax)"  # what mega_det.onnx outputs, for the metadata


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=int, default=20000, help="synthetic people generated for training")
    p.add_argument("--val", type=int, default=300, help="held-out people (eval pose clips, another seed)")
    p.add_argument("--steps", type=int, default=11000, help="0: only re-export the --init decoder")
    p.add_argument("--pretrain", type=int, default=300, help="unconditional steps first")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--d", type=int, default=128, help="width (128 x 4 layers: real time on a 2-core CPU)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vqvae", default=str(ASSETS / "vqvae"), help="directory of the Mesh-VQ-VAE files")
    p.add_argument("--aux-vertex", type=float, default=0.0,
                   help="weight (per metre) of the vertex loss: the expected code of every masked position (softmax "
                        "of the logits x codebook) decoded by the frozen Mesh-VQ-VAE, against the decoded true tokens")
    p.add_argument("--aux-vertices", type=int, default=1000, help="vertices per step in that loss (random subset)")
    p.add_argument("--rendered", nargs="*", default=[],
                   help="directories of `realtime-hmr data synth` shards: MediaPipe-on-render training labels")
    p.add_argument("--rendered-frac", type=float, default=0.5, help="share of each batch drawn from --rendered")
    p.add_argument("--rendered-val", type=int, default=500, help="rendered people held out for validation")
    p.add_argument("--image-tokens", action="store_true",
                   help="condition on the landmark net's image features too (needs --rendered shards made with "
                        "`data synth --labeler port`)")
    p.add_argument("--init", default=None,
                   help="start from this trained decoder (a `train mega --out` directory; same size and inputs, or a "
                        "landmarks-only one when this run adds --image-tokens: its image slot then starts fresh)")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CPUs with AVX-512 BF16, CUDA GPUs)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--out", default=str(ASSETS / "mega"))


def simulate_people(n: int, seed: int, domain: int, encoder, batch: int = 64) -> dict[str, np.ndarray]:
    """Clean targets for n people: tokens (n, 54), R (n, 3, 3) canonical -> camera, mp33 (n, 33, 3) camera space
    (metres), K (n, 3, 3), pose sources."""
    from realtime_hmr.train import camera as C
    from realtime_hmr.train.synth import SceneMaker, SynthConfig, shard_rng

    maker = SceneMaker(SynthConfig(size=SIZE), domain, labeler=False)
    body = maker.body
    rng = shard_rng(seed, domain, 0)
    out = {k: [] for k in ("tokens", "R", "mp33", "K", "source")}
    done = 0
    while done < n:
        k = min(batch, n - done)
        rot, betas, src = maker.draw_people(k, rng)
        canon_rot = rot.copy()
        canon_rot[:, 0] = np.eye(3)
        canon, _ = body.pose(canon_rot, None, betas)
        canon -= canon.mean(1, keepdims=True)
        out["tokens"].append(encoder(canon.astype(np.float32)))
        for i in range(k):
            v, _ = maker.place(rot[i], betas[i], (0.0, 0.0))
            cam, _ = C.sample_camera(rng, SIZE, v.min(0), v.max(0))
            Xc = cam.to_camera(v)
            out["R"].append(_kabsch(canon[i], Xc))
            out["mp33"].append(cam.to_camera(body.joints(v, "mediapipe33")))
            out["K"].append(cam.K)
        out["source"] += list(src)
        done += k
        log.info("simulated %d/%d people", done, n)
    return {k: np.asarray(v) if k == "source" else np.concatenate(v) if k == "tokens" else np.stack(v)
            for k, v in out.items()}


def load_rendered(dirs, encoder, batch: int = 64, max_match: float = 0.25,
                  features: bool = False) -> dict[str, np.ndarray]:
    """MediaPipe-on-render training pairs from ``data synth`` shards: for every image where MediaPipe found a person,
    its decoder inputs (lm2d, lmw, geom, from MediaPipe's landmarks), and that person's targets (tokens, R) and
    pose source. Person order is the shards' (sorted file names) order. Skipped: gross mismatches, where the median
    distance of MediaPipe's landmarks to the matched person's exceeds ``max_match`` of that person's height in the
    image (a skeleton stitched from two people, or the wrong one: about 4 % of detections). ``features``: also the
    landmark net's image features (``image``, float16), which the shards must hold (``data synth --labeler port``)."""
    from realtime_hmr.body import Body
    from realtime_hmr.mesh import condition

    files = sorted(f for d in dirs for f in Path(d).glob("shard_*.npz"))
    if not files:
        raise FileNotFoundError(f"no data synth shards (shard_*.npz) under {', '.join(map(str, dirs))}")
    body = Body.load()
    out = {k: [] for k in ("lm2d", "lmw", "geom", "tokens", "R", "source", *(("image",) if features else ()))}
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            if features and "mp_features" not in z.files:
                raise ValueError(f"{f} has no image features: make the shards with `data synth --labeler port`")
            d = {k: z[k] for k in ("mp_features",) if features}
            d |= {k: z[k] for k in ("mp_detected", "mp_person", "mp_match_px", "mp_image", "mp_world", "mp_visibility",
                                   "mp33_2d", "camera_K", "camera_R", "camera_t", "rotations", "translation", "betas",
                                   "pose_source")}
        idx = np.flatnonzero(d["mp_detected"])
        height = np.ptp(d["mp33_2d"][idx, d["mp_person"][idx], :, 1], -1)
        idx = idx[d["mp_match_px"][idx] <= max_match * height]
        p = d["mp_person"][idx]
        lm2d, lmw, geom = condition(d["mp_image"][idx], d["mp_world"][idx], d["mp_visibility"][idx],
                                    d["camera_K"][idx].astype(np.float64))
        out["lm2d"].append(lm2d)
        out["lmw"].append(lmw)
        out["geom"].append(geom)
        out["source"].append(d["pose_source"][idx, p])
        if features:
            out["image"].append(d["mp_features"][idx])
        for a in range(0, len(idx), batch):
            i, q = idx[a:a + batch], p[a:a + batch]
            rot = d["rotations"][i, q].astype(np.float64)
            betas = d["betas"][i, q].astype(np.float64)
            posed, _ = body.pose(rot, d["translation"][i, q].astype(np.float64), betas)
            cam = np.einsum("nvj,nij->nvi", posed, d["camera_R"][i].astype(np.float64)) + d["camera_t"][i, None]
            rot[:, 0] = np.eye(3)
            canon, _ = body.pose(rot, None, betas)
            canon -= canon.mean(1, keepdims=True)
            out["tokens"].append(encoder(canon.astype(np.float32)))
            out["R"] += [_kabsch(canon[k], cam[k]) for k in range(len(i))]
        log.info("rendered labels: %s, %d people", f.name, len(idx))
    return {k: np.stack(v) if k == "R" else np.concatenate(v) for k, v in out.items()}


def _recorded_command(directory, name: str = "manifest.json") -> str | None:
    """The command recorded in a directory's JSON (``data synth``'s manifest.json, or a decoder's mega.json for
    --init), for the decoder's metadata: the chain of commands that made it."""
    f = Path(directory or "") / name
    return json.loads(f.read_text()).get("command") if directory and f.is_file() else None


def _kabsch(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The rotation R with B ~ R A + t (both (V, 3)): the rotation nearest to their cross-covariance."""
    from realtime_hmr.body.kinematics import special_procrustes

    return special_procrustes((B - B.mean(0)).T @ (A - A.mean(0)))


def observe(mp33: np.ndarray, K: np.ndarray, rng: np.random.Generator, noise) -> tuple:
    """What the tracker would report for camera-space landmarks (n, 33, 3): decoder inputs, and a detected mask."""
    from realtime_hmr.mesh import condition
    from realtime_hmr.train.camera import project

    n = len(mp33)
    xy_gt = np.stack([project(mp33[i], K[i]) for i in range(n)])
    hip = mp33[:, 23:25].mean(1)
    depth = hip[:, 2]
    f = K[:, 0, 0]
    xy, detected = noise.sample(xy_gt, depth, f, depth, rng)
    xy = np.where(np.isfinite(xy), xy, xy_gt)
    z = (mp33[..., 2] - depth[:, None]) * (f / depth)[:, None]
    z = z + rng.normal(0, 0.05, z.shape) * np.ptp(xy_gt[..., 1], 1)[:, None]
    world = noise.sample_world(mp33 - hip[:, None], rng)
    inside = (xy_gt[..., 0] >= 0) & (xy_gt[..., 0] < SIZE[0]) & (xy_gt[..., 1] >= 0) & (xy_gt[..., 1] < SIZE[1])
    vis = np.where(inside, rng.uniform(0.5, 1.0, inside.shape), rng.uniform(0.0, 0.3, inside.shape))
    vis = np.where(rng.random(vis.shape) < 0.1, rng.uniform(0.0, 0.5, vis.shape), vis)  # self-occlusion
    lm2d, lmw, geom = condition(np.concatenate([xy, z[..., None]], -1), world, vis, K)
    return lm2d, lmw, geom, detected


def train(args) -> dict:
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from realtime_hmr.models.mega import MEGA, MEGAConfig, rotation_6d_to_matrix, training_mask
    from realtime_hmr.train.noise_stats import NoiseModel
    from realtime_hmr.train.synth import EVAL, TRAIN

    if args.steps == 0:
        if not args.init:
            raise ValueError("--steps 0 re-exports the --init decoder: give --init DIR")
        return reexport(Path(args.init), Path(args.out), Path(args.vqvae))
    if args.image_tokens and not args.rendered:  # before minutes of data preparation
        raise ValueError("--image-tokens needs --rendered shards with image features (data synth --labeler port)")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    vq = Path(args.vqvae)
    enc = ort.InferenceSession(str(vq / "vqvae_encoder.onnx"), providers=["CPUExecutionProvider"])
    enc_in = enc.get_inputs()[0].name
    encoder = lambda v: enc.run(None, {enc_in: v})[0].astype(np.int64)  # noqa: E731
    t0 = time.time()
    data = simulate_people(args.samples, args.seed, TRAIN, encoder)
    val = simulate_people(args.val, args.seed + 1, EVAL, encoder)
    rendered = rendered_val = None
    if args.rendered:
        rendered = load_rendered(args.rendered, encoder, features=args.image_tokens)
        n_val = min(args.rendered_val, len(rendered["tokens"]) // 5)
        if n_val:
            rendered_val = {k: v[-n_val:] for k, v in rendered.items()}
            rendered = {k: v[:-n_val] for k, v in rendered.items()}
    n_r = round(args.batch * args.rendered_frac) if rendered is not None else 0
    log.info("data: %d simulated + %d rendered training people, %d + %d held out, in %.0f s", args.samples,
             0 if rendered is None else len(rendered["tokens"]), args.val,
             0 if rendered_val is None else len(rendered_val["tokens"]), time.time() - t0)
    noise = NoiseModel.load()
    tokenizer = frozen_tokenizer(vq / "vqvae.safetensors").to(dev)
    cfg = MEGAConfig(d=args.d, layers=args.layers, heads=max(4, args.d // 64),
                     image_tokens=rendered["image"].shape[1] if args.image_tokens else 0,
                     image_dim=rendered["image"].shape[2] if args.image_tokens else 0)
    model = MEGA(cfg)
    if args.init:
        from safetensors.torch import load_file

        init_cfg = json.loads((Path(args.init) / "mega.json").read_text())["config"]
        adds_image = cfg.image_tokens and init_cfg == {**cfg.__dict__, "image_tokens": 0, "image_dim": 0}
        if init_cfg != cfg.__dict__ and not adds_image:
            raise ValueError(f"--init {args.init}: its decoder is {init_cfg}, this run's is {cfg.__dict__}")
        # a landmarks-only decoder may start an --image-tokens run: everything but the new image slot is loaded
        missing, unexpected = model.load_state_dict(load_file(str(Path(args.init) / "mega.safetensors")), strict=False)
        if unexpected or any(not k.startswith("img") for k in missing):
            raise ValueError(f"--init {args.init}: weights do not fit (missing {missing}, unexpected {unexpected})")
    model = model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    rng = np.random.default_rng(args.seed)
    T = lambda a: torch.as_tensor(a, device=dev)  # noqa: E731
    history = []
    for step in range(1, args.steps + 1):
        lr = args.lr * min(1.0, step / 200) * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.integers(0, args.samples, args.batch - n_r)
        if len(idx):
            lm2d, lmw, geom, _ = observe(data["mp33"][idx], data["K"][idx], rng, noise)
        else:  # --rendered-frac 1: rendered people only
            lm2d, lmw, geom = (np.zeros((0, *shape), np.float32) for shape in ((33, 4), (33, 3), (3,)))
        tokens, R_true = data["tokens"][idx], data["R"][idx]
        image = has_image = None
        if n_r:
            j = rng.integers(0, len(rendered["tokens"]), n_r)
            if cfg.image_tokens:
                image = np.zeros((args.batch, cfg.image_tokens, cfg.image_dim), np.float32)
                image[args.batch - n_r:] = rendered["image"][j]
                image, has_image = T(image), T(np.arange(args.batch) >= args.batch - n_r)
            lm2d, lmw, geom = (np.concatenate([a, rendered[k][j]]) for a, k in
                               ((lm2d, "lm2d"), (lmw, "lmw"), (geom, "geom")))
            tokens, R_true = np.concatenate([tokens, rendered["tokens"][j]]), np.concatenate([R_true, rendered["R"][j]])
        tokens = T(tokens)
        drop = (torch.ones(args.batch, dtype=torch.bool) if step <= args.pretrain
                else torch.as_tensor(rng.random(args.batch) < 0.1)).to(dev)
        mask = training_mask(args.batch, cfg.n_tokens).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.amp):
            logits, rot6 = model(torch.where(mask, torch.full_like(tokens, model.mask_id), tokens),
                                 model.condition(T(lm2d), T(lmw), T(geom), image, drop=drop, has_image=has_image))
        logits, rot6 = logits.float(), rot6.float()
        loss_tok = F.cross_entropy(logits[mask], tokens[mask])
        R = rotation_6d_to_matrix(rot6)
        err = ((R - T(R_true).float()) ** 2).sum((-1, -2))
        loss_rot = err[~drop].mean() if (~drop).any() else 0.0 * err.sum()
        loss_v = vertex_loss(tokenizer, logits, tokens, mask, args.aux_vertices) if args.aux_vertex > 0 else None
        loss = loss_tok + loss_rot + (args.aux_vertex * loss_v if loss_v is not None else 0.0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps:
            h = {"step": step, "loss_tokens": float(loss_tok.detach()), "loss_rot": float(loss_rot.detach()),
                 "loss_vertex_mm": None if loss_v is None else float(loss_v.detach()) * 1e3, "lr": float(lr),
                 "time_s": round(time.time() - t0, 1)}
            if step % 500 == 0 or step == args.steps:
                h.update(validate(model, val, noise, args.seed, tokenizer))
                if rendered_val is not None:
                    h.update({k.replace("val_", "val_rendered_"): v
                              for k, v in validate(model, rendered_val, None, args.seed, tokenizer).items()})
            history.append(h)
            log.info("%s", h)
    model = model.cpu()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "mega.safetensors"))
    meta = {"what": "MEGA decoder (realtime_hmr): 54 mesh tokens + orientation from BlazePose landmarks",
            "command": getattr(args, "command", "python -m realtime_hmr.train.mega"), "config": cfg.__dict__,
            "vqvae": str(vq), "samples": args.samples, "steps": args.steps, "pretrain": args.pretrain,
            "batch": args.batch, "lr": args.lr, "seed": args.seed, "init": args.init,
            "init_command": _recorded_command(args.init, "mega.json"), "aux_vertex": args.aux_vertex,
            "image_tokens": "BlazePose landmark net features (landmark ONNX output 'features')"
                            if cfg.image_tokens else None,
            "aux_vertices": args.aux_vertices, "history": history,
            "train_time_s": round(time.time() - t0, 1), "device": str(dev), "amp_bf16": bool(args.amp),
            "rendered": {"dirs": [str(d) for d in args.rendered],
                         "made_by": [_recorded_command(d) for d in args.rendered],
                         "fraction": args.rendered_frac if n_r else 0.0,
                         "people": 0 if rendered is None else int(len(rendered["tokens"])),
                         "held_out": 0 if rendered_val is None else int(len(rendered_val["tokens"]))},
            "data": "simulated landmarks (mediapipe_noise.json) on ROM + mocap poses, Anny shapes, data-synth cameras"
                    + (", plus MediaPipe-on-render labels (data synth shards)" if n_r else "")}
    meta["deterministic_tokens"] = DET_TOKENS
    meta["onnx"] = export(model, out, tokenizer.vq.codebook.detach().float().cpu())
    (out / "mega.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def reexport(src: Path, out: Path, vq: Path) -> dict:
    """A trained decoder's weights written again with this version's ONNX exports (``--init DIR --steps 0``): its
    metadata is kept, with the re-export recorded."""
    import shutil

    from safetensors.torch import load_file

    from realtime_hmr.models.mega import MEGA, MEGAConfig

    meta = json.loads((src / "mega.json").read_text())
    model = MEGA(MEGAConfig(**meta["config"]))
    model.load_state_dict(load_file(str(src / "mega.safetensors")))
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() != src.resolve():
        shutil.copyfile(src / "mega.safetensors", out / "mega.safetensors")
    meta["deterministic_tokens"] = DET_TOKENS
    meta["onnx"] = export(model, out, frozen_tokenizer(vq / "vqvae.safetensors").vq.codebook.detach().float())
    meta["reexported_from"] = str(src)
    (out / "mega.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def export(model, out: Path, codebook) -> dict:
    """ONNX of the deterministic pass (all positions masked inside the graph: inputs are the conditioning only;
    outputs the expected-code tokens, which need the tokenizer's ``codebook`` (K, D), and the argmax tokens) and
    of one decoding step (tokens + conditioning -> logits, orientation), and of one unconditional step (the prior:
    tokens -> logits), each checked against torch."""
    import onnxruntime as ort
    import torch

    from realtime_hmr.models.mega import N_LANDMARKS, expected_tokens

    class Deterministic(torch.nn.Module):
        """tokens: the expected-code tokens (with the tokenizer's codebook), tokens_argmax: MEGA's argmax."""

        def __init__(self, m, book):
            super().__init__()
            self.m = m
            self.register_buffer("book", book)

        def forward(self, lm2d, lmw, geom, image=None):
            c = self.m.condition(lm2d, lmw, geom, image)
            logits, rot6 = self.m(self.m.masked_like(c), c)
            return expected_tokens(logits, self.book), rot6, logits.argmax(-1)

    class Step(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, tokens, lm2d, lmw, geom, image=None):
            return self.m(tokens, self.m.condition(lm2d, lmw, geom, image))

    class Prior(torch.nn.Module):
        """One step of unconditional decoding: the learned null condition, built from the tokens' batch."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, tokens):
            c = self.m.unconditional(1) + torch.zeros_like(tokens[:, :1, None], dtype=torch.float32)
            return self.m(tokens, c)[0]

    model = model.eval()
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, N_LANDMARKS, 4, generator=g), torch.randn(2, N_LANDMARKS, 3, generator=g),
         torch.randn(2, 3, generator=g))
    names = ("lm2d", "lmw", "geom")
    if model.cfg.image_tokens:
        x, names = (*x, torch.randn(2, model.cfg.image_tokens, model.cfg.image_dim, generator=g)), (*names, "image")
    tok = torch.randint(0, model.cfg.codebook + 1, (2, model.cfg.n_tokens), generator=g)
    result = {}
    for fname, net, args, inputs, outputs in (
            ("mega_det.onnx", Deterministic(model, codebook), x, names, ("tokens", "rot6", "tokens_argmax")),
            ("mega_step.onnx", Step(model), (tok, *x), ("tokens", *names), ("logits", "rot6")),
            ("mega_prior.onnx", Prior(model), (tok,), ("tokens",), ("logits",))):
        net.eval()  # a fresh wrapper is in training mode, and train(True) would reach the model (dropout)
        path = out / fname
        torch.onnx.export(net, args, str(path), input_names=list(inputs), output_names=list(outputs), opset_version=17,
                          dynamic_axes={k: {0: "batch"} for k in (*inputs, *outputs)}, dynamo=False)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        if isinstance(sess.get_inputs()[0].shape[0], int):
            raise RuntimeError(f"{fname}: the batch axis was frozen")
        with torch.no_grad():
            o = net(*args)
            ref = [r.numpy() for r in (o if isinstance(o, tuple) else (o,))]
        got = sess.run(None, {k: a.numpy() for k, a in zip(inputs, args)})
        diff = max(float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) for a, b in zip(ref, got)
                   if a.dtype.kind == "f")
        agree = min((float(np.mean(a == b)) for a, b in zip(ref, got) if a.dtype.kind == "i"), default=None)
        result[fname] = {"max_abs_diff_vs_torch": diff, "token_agreement_vs_torch": agree,
                         "inputs": list(inputs), "outputs": list(outputs)}
    return result


def frozen_tokenizer(path: Path):
    """The Mesh-VQ-VAE (torch, weights frozen) for the vertex loss and the validation PVE."""
    from realtime_hmr.train.vqvae import load_model

    m = load_model(path)
    for q in m.parameters():
        q.requires_grad_(False)
    return m


def vertex_loss(tokenizer, logits, tokens, mask, n_vertices: int):
    """Mean vertex distance (metres) between the decoded expected codes (masked positions: softmax(logits) @
    codebook; the others: their given code) and the decoded true tokens, on a random vertex subset."""
    import torch

    book = tokenizer.vq.codebook
    q = torch.where(mask[..., None], logits.softmax(-1) @ book, book[tokens])
    sub = torch.randperm(tokenizer.cfg.n_vertices)[:n_vertices]
    with torch.no_grad():
        target = tokenizer.skin(*tokenizer.decode_latent(book[tokens]), sub)
    return (tokenizer.skin(*tokenizer.decode_latent(q), sub) - target).norm(dim=-1).mean()


def validate(model, val: dict, noise, seed: int, tokenizer=None) -> dict:
    """Token accuracy, orientation error and (with the tokenizer) the canonical-mesh PVE of the deterministic
    tokens (argmax, and expected-code: val_expected_canonical_pve_mm) against the decoded true tokens, on held-out
    people: simulated (``val`` has mp33 and K; one noise draw) or rendered (``val`` has the inputs lm2d, lmw, geom;
    ``noise`` None)."""
    import torch

    from realtime_hmr.mesh import rotation_angle_deg
    from realtime_hmr.models.mega import expected_tokens, rotation_6d_to_matrix

    model.eval()
    dev = next(model.parameters()).device
    if noise is None:
        lm2d, lmw, geom = val["lm2d"], val["lmw"], val["geom"]
    else:
        lm2d, lmw, geom, _ = observe(val["mp33"], val["K"], np.random.default_rng(seed + 7), noise)
    T = lambda a: torch.as_tensor(a, device=dev)  # noqa: E731
    image = None
    if noise is None and model.img is not None:
        image = T(val["image"].astype(np.float32))
    with torch.no_grad():
        c = model.condition(T(lm2d), T(lmw), T(geom), image)
        logits, rot6 = model(model.masked_like(c), c)
        R = rotation_6d_to_matrix(rot6).double().cpu().numpy()
        tok = logits.argmax(-1)
        pve = {}
        if tokenizer is not None:
            t_true = T(val["tokens"])
            for name, t_pred in (("val_canonical_pve_mm", tok),
                                 ("val_expected_canonical_pve_mm", expected_tokens(logits, tokenizer.vq.codebook))):
                errs = [(tokenizer.decode(t_pred[a:a + 64]) - tokenizer.decode(t_true[a:a + 64])).norm(dim=-1).mean(-1)
                        for a in range(0, len(tok), 64)]
                pve[name] = float(torch.cat(errs).mean()) * 1e3
        tok = tok.cpu()
    model.train()
    ang = rotation_angle_deg(R, val["R"])
    return {"val_token_accuracy": float((tok.numpy() == val["tokens"]).mean()),
            "val_orientation_err_deg_median": float(np.median(ang)), "val_canonical_pve_mm": None, **pve}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(p)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    train(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
