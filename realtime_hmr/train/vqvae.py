"""Train the Mesh-VQ-VAE on Anny bodies generated on the fly; export safetensors + ONNX + JSON.

    realtime-hmr train vqvae [--steps 6000 --batch 32 --seed 0 --out realtime_hmr/assets/vqvae]

Data: every body is a fresh (pose, shape) pair. Poses: ``posemix.training_poses`` (half range-of-motion samples,
half perturbed, mirrored CMU/DeepMimic frames from the training clips; the held-out clips never appear), with the
root rotation set to identity (canonical: no global rotation). Shapes: half from Anny's age-conditioned phenotype
distribution (ages 3-90, both genders; ``shapes.sample_shapes``) projected onto the body's 20 shape directions,
half betas ~ N(0, 1). Meshes are centred on their vertex mean. Ground truth is the body's own linear blend
skinning (``realtime_hmr.body``), evaluated with the model's skinning layer (checked against ``Body.pose``).
Loss: mean per-vertex distance (on a random subset of ``--loss-vertices`` vertices per step, centred on their own
mean) + ``commitment`` x the commitment term; Adam, linear warm-up then cosine decay.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import re
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "assets" / "vqvae"
AGE_GROUPS = (("child 3-12", 3.0, 12.0), ("teen 12-18", 12.0, 18.0), ("adult 18-60", 18.0, 60.0),
              ("elderly 60-90", 60.0, 90.01))


def skin_table(body) -> tuple[np.ndarray, np.ndarray]:
    """The body's sparse skin weights as a padded (V, J) gather table."""
    W = body.weights.tocsr()
    J = int(np.diff(W.indptr).max())
    idx = np.zeros((W.shape[0], J), np.int64)
    w = np.zeros((W.shape[0], J), np.float32)
    for v in range(W.shape[0]):
        s, e = W.indptr[v], W.indptr[v + 1]
        idx[v, : e - s], w[v, : e - s] = W.indices[s:e], W.data[s:e]
    return idx, w


def make_topology(body, n_points: int, n_tokens: int):
    from realtime_hmr.models.mesh_vqvae import Topology
    from realtime_hmr.train.hierarchy import build_hierarchy

    h = build_hierarchy(body.faces, body.template, n_points, n_tokens)
    si, sw = skin_table(body)
    return Topology(h.cell_idx, h.cell_w, h.region_idx, body.template.astype(np.float32),
                    body.shape_dirs.astype(np.float32), si, sw, body.heads0.astype(np.float32),
                    body.heads_dirs.astype(np.float32), body.bone_parents.astype(np.int64))


class ShapeSampler:
    """Betas (n, 20) and morphological ages (n,) (NaN for betas ~ N(0, 1))."""

    def __init__(self, body):
        import torch

        from realtime_hmr.train import rig as R
        from realtime_hmr.train.shapes import AnnyBetas

        self.model, self.body = R.anny_model().to(torch.float64), body
        self.to_betas = AnnyBetas(body, self.model)

    def phenotype_betas(self, params: np.ndarray) -> np.ndarray:
        import torch

        from realtime_hmr.train.shapes import PHENOTYPES

        kw = {k: torch.as_tensor(params[:, i], dtype=torch.float64) for i, k in enumerate(PHENOTYPES)}
        with torch.no_grad():
            c = self.model.get_phenotype_blendshape_coefficients(**kw).numpy()
        return self.to_betas(c)

    def sample(self, n: int, rng: np.random.Generator, phenotype_fraction: float = 0.5,
               age_years: tuple[float, float] = (3.0, 90.0)):
        from realtime_hmr.train.shapes import sample_shapes

        k = int(round(n * phenotype_fraction))
        betas = rng.standard_normal((n, self.body.n_betas))
        age = np.full(n, np.nan, np.float32)
        if k:
            sh = sample_shapes(k, rng, age_years)
            betas[:k], age[:k] = self.phenotype_betas(sh.params.astype(np.float64)), sh.age_years
        perm = rng.permutation(n)
        return betas[perm], age[perm]


def canonical(rotations: np.ndarray) -> np.ndarray:
    rot = np.array(rotations, dtype=np.float64)
    rot[:, 0] = np.eye(3)
    return rot


def bone_transforms(body, rotations: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Skinning transforms (n, 104, 12) of canonical poses (root rotation identity, no translation)."""
    from realtime_hmr.body import kinematics as kin

    heads, R = body.rest_frame(betas)
    _, T = kin.forward(canonical(rotations), np.zeros((len(betas), 3)), R, heads, body.reference, body.bone_parents,
                       body.levels)
    return T.reshape(len(betas), body.n_bones, 12)


def bone_targets(body, rotations: np.ndarray, betas: np.ndarray):
    """Posed bone rotations G (n, NB, 3, 3) (skinning rotations) and posed heads (n, NB, 3) of canonical poses."""
    from realtime_hmr.body import kinematics as kin

    heads, R = body.rest_frame(betas)
    W, T = kin.forward(canonical(rotations), np.zeros((len(betas), 3)), R, heads, body.reference, body.bone_parents,
                       body.levels)
    return T[..., :3], W[..., 3]


def meshes(model, body, rotations: np.ndarray, betas: np.ndarray, chunk: int = 64):
    """Centred canonical vertices (n, V, 3) float32 torch tensor, via the model's (exact) skinning layer."""
    import torch

    out = []
    with torch.no_grad():
        for s in range(0, len(betas), chunk):
            A = bone_transforms(body, rotations[s : s + chunk], betas[s : s + chunk])
            A = torch.as_tensor(A, dtype=torch.float32)
            out.append(model.skin(A, torch.as_tensor(betas[s : s + chunk], dtype=torch.float32)))
    return torch.cat(out)


def eval_set(n: int, seed: int, shapes: ShapeSampler):
    """Held-out bodies: fresh ROM poses and frames of the held-out mocap clips, on phenotype shapes of all ages.
    Returns rotations, betas, ages, pose sources."""
    from realtime_hmr.train.posemix import training_poses

    rng = np.random.default_rng(seed)
    rom = training_poses(n - n // 2, rng, split="eval", mocap_fraction=0.0)
    moc = training_poses(n // 2, rng, split="eval", mocap_fraction=1.0, sigma_deg=0.0)
    rot = np.concatenate([rom.rotations, moc.rotations])
    src = np.concatenate([rom.source, moc.source])
    betas, age = shapes.sample(n, rng, phenotype_fraction=1.0)
    return canonical(rot), betas, age, src


def state_arrays(model) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(model, path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state_arrays(model), str(path), metadata={"config": json.dumps(asdict(model.cfg)),
                                                       "meta": json.dumps(meta)})


DECODER_PARAMS = ("dec_in", "dec_pos", "dec.", "dec_ln", "bone_mix", "bone_mlp", "bone_out", "bone_b", "betas_out")


def checkpoint_meta(path) -> dict:
    """The training metadata stored in a checkpoint written by :func:`save_checkpoint`."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return json.loads((f.metadata() or {}).get("meta", "{}"))


def load_model(path: str | Path):
    """MeshVQVAE from a safetensors file written by :func:`save_checkpoint` (config + topology inside)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from realtime_hmr.models.mesh_vqvae import MeshVQVAE, Topology, VQVAEConfig

    with safe_open(str(path), "pt") as f:
        c = json.loads(f.metadata()["config"])
    cfg = VQVAEConfig(**{"bone_param": "affine", **c})  # checkpoints from before bone_param were affine
    sd = load_file(str(path))
    keys = ("cell_idx", "cell_w", "region_idx", "template", "shape_dirs", "skin_idx", "skin_w", "heads", "heads_dirs",
            "parents")
    topo = Topology(*(sd[k].numpy() if k in sd else None for k in keys))
    model = MeshVQVAE(cfg, topo)
    model.load_state_dict(sd)
    return model.eval()


def evaluate(model, verts, chunk: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per-body PVE (metres) of encode -> decode in torch, and the tokens."""
    import torch

    model.eval()
    errs, toks = [], []
    with torch.no_grad():
        for s in range(0, len(verts), chunk):
            v = verts[s : s + chunk]
            t = model.encode(v)
            r = model.decode(t)
            errs.append((r - v).norm(dim=-1).mean(1).numpy())
            toks.append(t.numpy())
    return np.concatenate(errs), np.concatenate(toks)


def export(model, out: Path, meta: dict) -> dict:
    """Write vqvae.safetensors, vqvae_encoder.onnx, vqvae_decoder.onnx and vqvae.json into ``out``."""
    import onnx
    import onnxruntime as ort
    import torch

    from realtime_hmr.models.mesh_vqvae import Decoder, Encoder

    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    save_checkpoint(model, out / "vqvae.safetensors", meta)
    V, T = model.cfg.n_vertices, model.cfg.n_tokens
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, model.cfg.codebook_size, (2, T), generator=g)
    with torch.no_grad():
        verts = model.decode(tokens)
    files = {}
    for name, net, x, iname, oname in (("encoder", Encoder(model), verts, "vertices", "tokens"),
                                       ("decoder", Decoder(model), tokens, "tokens", "vertices")):
        p = out / f"vqvae_{name}.onnx"
        torch.onnx.export(net, (x,), str(p), input_names=[iname], output_names=[oname], opset_version=17,
                          dynamic_axes={iname: {0: "batch"}, oname: {0: "batch"}}, dynamo=False)
        m = onnx.load(str(p))
        if not m.graph.input[0].type.tensor_type.shape.dim[0].dim_param:
            raise RuntimeError(f"{name}: ONNX batch axis was frozen")
        m.producer_name = "realtime_hmr"
        for k, v in dict(command=meta.get("command", ""), what=f"Mesh-VQ-VAE {name}").items():
            m.metadata_props.add(key=k, value=str(v))
        onnx.checker.check_model(m)
        onnx.save(m, str(p))
        files[name] = p
    # parity on bodies: decoder on the reference tokens, encoder on their decodings (tokens must agree)
    dec = ort.InferenceSession(str(files["decoder"]), providers=["CPUExecutionProvider"])
    enc = ort.InferenceSession(str(files["encoder"]), providers=["CPUExecutionProvider"])
    parity = {}
    for B in (1, 3, 8):
        tk = torch.randint(0, model.cfg.codebook_size, (B, T), generator=g)
        with torch.no_grad():
            ref = model.decode(tk)
            ref_tok = model.encode(ref)
        o = dec.run(None, {"tokens": tk.numpy()})[0]
        ot = enc.run(None, {"vertices": ref.numpy()})[0]
        parity[f"batch{B}"] = {"decoder_max_abs_mm": float(np.abs(o - ref.numpy()).max() * 1e3),
                               "encoder_token_agreement": float((ot == ref_tok.numpy()).mean())}
    meta = dict(meta, onnx_parity_vs_torch=parity, files={
        "weights": "vqvae.safetensors", "encoder": files["encoder"].name, "decoder": files["decoder"].name},
        io={"encoder": {"input": ["vertices", ["batch", V, 3], "float32, metres, canonical (root rotation identity); "
                                  "centred inside"], "output": ["tokens", ["batch", T], "int64 in [0, codebook_size)"]},
            "decoder": {"input": ["tokens", ["batch", T], "int64"],
                        "output": ["vertices", ["batch", V, 3], "float32, metres, centred on the vertex mean"]}},
        sha256={k: hashlib.sha256((out / v).read_bytes()).hexdigest() for k, v in
                (("weights", "vqvae.safetensors"), ("encoder", "vqvae_encoder.onnx"),
                 ("decoder", "vqvae_decoder.onnx"))})
    (out / "vqvae.json").write_text(json.dumps(meta, indent=2) + "\n")
    log.info("exported to %s; parity %s", out, parity)
    return meta


def summary(err_m: np.ndarray) -> dict:
    e = np.asarray(err_m) * 1e3
    return {"n": int(len(e)), "mean": float(e.mean()), "median": float(np.median(e)),
            "p95": float(np.percentile(e, 95))}


def train(args) -> dict:
    import torch

    from realtime_hmr.body import Body
    from realtime_hmr.models.mesh_vqvae import MeshVQVAE, PointsVQVAE, VQVAEConfig
    from realtime_hmr.train.posemix import training_poses

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    body = Body.load()
    if args.freeze_encoder and not args.init:
        raise SystemExit("--freeze-encoder fine-tunes the decoder of a trained tokenizer: give it --init CKPT")
    if args.init:  # config and topology come from the checkpoint
        model = load_model(args.init).to(device)
        cfg, topo, init_meta = model.cfg, None, checkpoint_meta(args.init)
    else:
        cfg = VQVAEConfig(n_tokens=args.tokens, codebook_size=args.codebook, code_dim=args.code_dim,
                          d_model=args.width, enc_layers=args.enc_layers, dec_layers=args.dec_layers,
                          n_points=args.points, bone_param=args.bone_param)
        topo = make_topology(body, cfg.n_points, cfg.n_tokens)
        model = (PointsVQVAE if args.head == "points" else MeshVQVAE)(cfg, topo).to(device)
    if args.freeze_encoder:  # pooling, encoder and codebook fixed: every body keeps its tokens
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(DECODER_PARAMS))
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model: %d parameters (%d trained), device %s", n_params,
             sum(p.numel() for p in model.parameters() if p.requires_grad), device)
    shapes = ShapeSampler(body)
    cpu_model = (load_model(args.init) if args.init else MeshVQVAE(cfg, topo)).eval()  # ground truth skinning
    # validation: held-out clips + fresh ROM, fixed
    vrot, vbetas, vage, vsrc = eval_set(args.val_n, args.seed + 1000, shapes)
    vverts = meshes(cpu_model, body, vrot, vbetas)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    sched = lambda s: min(1.0, (s + 1) / args.warmup) * 0.5 * (1 + np.cos(np.pi * min(s, args.steps) / args.steps))  # noqa: E731
    out = Path(args.out)
    ckpt = out / "checkpoint.safetensors"
    meta = {"what": "Mesh-VQ-VAE tokenizer on the Anny body (realtime_hmr)", "command": args.command,
            "config": asdict(cfg), "head": args.head, "parameters": n_params, "seed": args.seed, "steps": args.steps,
            "batch": args.batch, "lr": args.lr, "warmup": args.warmup, "loss_vertices": args.loss_vertices,
            "aux": args.aux, "aux_rot_m": args.aux_rot_m,
            "device": str(device), "threads": args.threads, "platform": platform.platform(), "torch": torch.__version__,
            "data": {
                "poses": "posemix.training_poses(split='train', mocap_fraction=0.5): ROM sampler + perturbed, mirrored "
                         "CMU/DeepMimic training clips; root rotation identity",
                "shapes": "half anny phenotypes (ages 3-90, both genders) projected on the 20 shape directions, half "
                          "betas ~ N(0,1)", "samples_seen": args.steps * args.batch,
                "validation": f"{args.val_n} bodies: fresh ROM draws + frames of the held-out mocap clips "
                              "(mocap.HELD_OUT), phenotype shapes, seed {args.seed + 1000}"}}
    if args.init:
        meta["init"] = {"checkpoint": str(args.init), "command": init_meta.get("command"),
                        "steps": init_meta.get("steps"), "batch": init_meta.get("batch"),
                        "train_time_s": init_meta.get("train_time_s"),
                        "validation_history": init_meta.get("validation_history"),
                        "frozen_encoder": bool(args.freeze_encoder)}
        if init_meta.get("init"):  # a fine-tune of a fine-tune: the stages before, as they were recorded
            meta["init"]["init"] = init_meta["init"]
        meta["reproduce"] = [*commands(init_meta.get("reproduce") or re.sub(r" --out \S+", "",
                                                                            init_meta.get("command") or "")),
                             re.sub(r" --out \S+", "", args.command)]
        err0, _ = evaluate(model.cpu(), vverts)
        model.to(device)
        meta["init"]["val_pve_mm"] = summary(err0)
        log.info("validation at init %s", json.dumps(meta["init"]["val_pve_mm"]))
    t0, pool, pool_pos, history = time.time(), None, 0, []
    chunk = 1024
    for step in range(args.steps):
        if pool is None or pool_pos + args.batch > chunk:
            ps = training_poses(chunk, rng, split="train", mocap_fraction=0.5)
            b, _ = shapes.sample(chunk, rng)
            pool, pool_pos = (canonical(ps.rotations), b), 0
        rot, b = pool[0][pool_pos : pool_pos + args.batch], pool[1][pool_pos : pool_pos + args.batch]
        pool_pos += args.batch
        verts = meshes(cpu_model, body, rot, b).to(device)
        for g in opt.param_groups:
            g["lr"] = args.lr * sched(step)
        model.train()
        with torch.no_grad():
            pts = model.pool(verts)
        sub = torch.randperm(cfg.n_vertices, device=device)[: args.loss_vertices]
        if args.freeze_encoder:
            with torch.no_grad():
                idx = model.encode(verts)
            rec = model.skin(*model.decode_latent(model.vq.codebook[idx]), sub)
            commit, aux = torch.zeros(()), torch.zeros(())
        elif args.aux > 0 and args.head == "skin" and cfg.bone_param in ("heads", "fk"):
            q, idx, commit = model.vq(model.encode_points(pts))
            raw, betas_p = model.bone_params(q)
            rec = model.skin(model.transforms(raw, betas_p), betas_p, sub)
            G, H = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in bone_targets(body, rot, b))
            h_rest = model.heads + (betas_p @ model.heads_dirs.flatten(1)).view(raw.shape[0], -1, 3)
            if cfg.bone_param == "fk":
                Rp, Hp = model.forward_kinematics(raw, h_rest)
            else:
                Rp, Hp = raw[..., :9].reshape(G.shape), raw[..., 9:] + h_rest  # predicted posed heads
            Hp, H = Hp - Hp.mean(1, keepdim=True), H - H.mean(1, keepdim=True)  # translation-free
            aux = (Hp - H).norm(dim=-1).mean() + args.aux_rot_m * (Rp - G).flatten(2).norm(dim=-1).mean()
        else:
            rec, idx, commit = model(pts, sub)
            aux = torch.zeros(())
        tgt = verts[:, sub]
        loss_v = (rec - (tgt - tgt.mean(1, keepdim=True))).norm(dim=-1).mean()
        loss = loss_v + cfg.commitment * commit + args.aux * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            used = int((model.vq.ema_count > 0.5).sum())
            log.info("step %d/%d  v2v %.2f mm  aux %.2f mm  commit %.2e  lr %.2e  codes>0.5 %d  restarts %d  %.0f s",
                     step, args.steps, loss_v.item() * 1e3, aux.item() * 1e3, commit.item(), args.lr * sched(step),
                     used, model.vq.restarts, time.time() - t0)
        if (step + 1) % args.val_every == 0 or step == args.steps - 1:
            err, tok = evaluate(model.cpu(), vverts)
            model.to(device)
            rec_ = {"step": step + 1, "time_s": round(time.time() - t0, 1), "val_pve_mm": summary(err),
                    "codes_used": int(len(np.unique(tok)))}
            for s in np.unique(vsrc):
                rec_[f"val_{s}_mean_mm"] = float(err[vsrc == s].mean() * 1e3)
            history.append(rec_)
            log.info("validation %s", json.dumps(rec_))
            meta.update(step=step + 1, validation_history=history, train_time_s=round(time.time() - t0, 1),
                        codebook_restarts=model.vq.restarts)
            save_checkpoint(model.cpu(), ckpt, meta)
            model.to(device)
    return export(model.cpu().eval(), out, meta)


def commands(x) -> list[str]:
    """A ``reproduce`` entry (one command, or a list of them, possibly nested) as one flat list, in order."""
    return [c for item in x for c in commands(item)] if isinstance(x, list) else [x]


def export_from(args) -> dict:
    """Export a checkpoint written by :func:`train` (its training metadata kept)."""
    meta = checkpoint_meta(args.export_from)
    meta["exported_with"] = args.command
    # the training command writes into --out; without it, it writes (and exports) straight into the package assets
    if isinstance(meta.get("reproduce"), list):  # a fine-tune (--init) keeps its list of commands
        meta["reproduce"] = commands(meta["reproduce"])
    else:
        meta["reproduce"] = re.sub(r" --out \S+", "", meta["command"])
    return export(load_model(args.export_from), Path(args.out), meta)


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--loss-vertices", type=int, default=3000, help="vertices per step in the loss (random subset)")
    ap.add_argument("--aux", type=float, default=0.5, help="weight of the bone loss (posed heads + rotations)")
    ap.add_argument("--aux-rot-m", type=float, default=0.05, help="metres per unit of rotation error in that loss")
    ap.add_argument("--bone-param", default="fk", choices=("fk", "heads", "affine"))
    ap.add_argument("--tokens", type=int, default=54)
    ap.add_argument("--codebook", type=int, default=512)
    ap.add_argument("--code-dim", type=int, default=9)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--enc-layers", type=int, default=1)
    ap.add_argument("--dec-layers", type=int, default=2)
    ap.add_argument("--head", default="skin", choices=("skin", "points"),
                    help="decoder head: skin (shipped) or points (ablation without the skinning prior)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto", help="auto (cuda when present) or cpu")
    ap.add_argument("--val-n", type=int, default=128)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--export-from", metavar="CKPT", help="only export this checkpoint (safetensors) into --out")
    ap.add_argument("--init", metavar="CKPT", help="start from this checkpoint (its config and topology)")
    ap.add_argument("--freeze-encoder", action="store_true",
                    help="with --init: train the decoder only (encoder and codebook fixed, so every body keeps its "
                         "tokens and decoders trained on them stay valid)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_args(ap)
    args = ap.parse_args(argv)
    args.command = "realtime-hmr train vqvae " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    export_from(args) if args.export_from else train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
