"""Evaluate the shipped Mesh-VQ-VAE (ONNX encoder + decoder under ONNX Runtime) on freshly sampled held-out bodies.

    realtime-hmr eval vqvae --n 512 --seed 7 --report benchmarks/results/vqvae_eval.json

Bodies: half fresh range-of-motion poses, half frames of the held-out mocap clips (``mocap.HELD_OUT``, never seen
in training), root rotation identity, on shapes from Anny's phenotype distribution (ages 3-90, both genders).
Ground truth comes from ``Body.pose`` (numpy), centred on the vertex mean. PVE = mean per-vertex distance in mm
after centring both meshes. Reported per pose source and age group (mean, median, p95), with codebook usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from realtime_hmr.train.vqvae import AGE_GROUPS, DEFAULT_OUT, ShapeSampler, eval_set, summary

log = logging.getLogger(__name__)
TARGETS_MM = {"rom": 5.0, "mocap": 6.0}


def ground_truth(body, rot: np.ndarray, betas: np.ndarray, chunk: int = 64) -> np.ndarray:
    out = []
    for s in range(0, len(rot), chunk):
        v, _ = body.pose(rot[s : s + chunk], None, betas[s : s + chunk])
        out.append((v - v.mean(1, keepdims=True)).astype(np.float32))
    return np.concatenate(out)


def run_onnx(model_dir: Path, verts: np.ndarray, chunk: int = 16, threads: int | None = None):
    from realtime_hmr.runtime.ort import OnnxRuntime

    enc = OnnxRuntime(model_dir / "vqvae_encoder.onnx", threads=threads)
    dec = OnnxRuntime(model_dir / "vqvae_decoder.onnx", threads=threads)
    toks, recs = [], []
    for s in range(0, len(verts), chunk):
        t = enc.run({"vertices": verts[s : s + chunk]})["tokens"]
        toks.append(t)
        recs.append(dec.run({"tokens": t})["vertices"])
    return np.concatenate(toks), np.concatenate(recs)


def codebook_usage(tokens: np.ndarray, K: int) -> dict:
    counts = np.bincount(tokens.ravel(), minlength=K)
    p = counts / counts.sum()
    nz = p[p > 0]
    return {"codes_used": int((counts > 0).sum()), "codebook_size": K, "fraction_used": float((counts > 0).mean()),
            "perplexity": float(np.exp(-(nz * np.log(nz)).sum())), "tokens_seen": int(counts.sum())}


def evaluate(n: int, seed: int, model_dir: Path, threads: int | None = None) -> dict:
    from realtime_hmr.body import Body

    body = Body.load()
    meta = json.loads((model_dir / "vqvae.json").read_text())
    t0 = time.time()
    rot, betas, age, src = eval_set(n, seed, ShapeSampler(body))
    gt = ground_truth(body, rot, betas)
    t1 = time.time()
    tokens, rec = run_onnx(model_dir, gt, threads=threads)
    t2 = time.time()
    rec = rec - rec.mean(1, keepdims=True)
    err = np.linalg.norm(rec - gt, axis=-1).mean(1)  # metres per body
    rep = {"n": n, "seed": seed, "model_dir": str(model_dir), "model_command": meta.get("command"),
           "backend": "onnxruntime CPU", "pve_mm": {"all": summary(err)}, "by_age_mm": {}, "by_source_and_age_mm": {}}
    groups = {s: src == s for s in np.unique(src)}
    groups["mocap (held-out clips)"] = src != "rom"
    for name, sel in groups.items():
        rep["pve_mm"][str(name)] = summary(err[sel])
    for label, lo, hi in AGE_GROUPS:
        sel = (age >= lo) & (age < hi)
        if sel.any():
            rep["by_age_mm"][label] = summary(err[sel])
            for s, ssel in (("rom", src == "rom"), ("mocap", src != "rom")):
                if (sel & ssel).any():
                    rep["by_source_and_age_mm"][f"{s} / {label}"] = summary(err[sel & ssel])
    rep["codebook"] = codebook_usage(tokens, meta["config"]["codebook_size"])
    rom, moc = rep["pve_mm"].get("rom"), rep["pve_mm"]["mocap (held-out clips)"]
    rep["targets"] = {"rom_mean_le_5mm": bool(rom and rom["mean"] <= TARGETS_MM["rom"]),
                      "mocap_mean_le_6mm": bool(moc["n"] and moc["mean"] <= TARGETS_MM["mocap"])}
    rep["seconds"] = {"data": round(t1 - t0, 1), "onnx_encode_decode": round(t2 - t1, 1)}
    return rep


def front_view(ax, v: np.ndarray, faces: np.ndarray, face_rgb: np.ndarray, title: str) -> None:
    from matplotlib.collections import PolyCollection

    tri = v[faces]  # (F, 3, 3); front view: image x = +X, image y = +Z, camera on -Y
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    shade = 0.35 + 0.65 * np.abs(n[:, 1])
    order = np.argsort(-tri[:, :, 1].mean(1))  # far (large y) first
    rgb = np.clip(face_rgb[order] * shade[order, None], 0, 1)
    ax.add_collection(PolyCollection(tri[order][:, :, [0, 2]], facecolors=rgb, edgecolors="none"))
    ax.set_xlim(v[:, 0].min() - 0.05, v[:, 0].max() + 0.05)
    ax.set_ylim(v[:, 2].min() - 0.05, v[:, 2].max() + 0.05)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=8)


def figure(model_dir: Path, path: Path, seed: int = 3, vmax_mm: float | None = None) -> dict:
    """PNG: original (grey) above reconstruction (coloured by per-vertex error) for bodies of each source and age."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from realtime_hmr.body import Body

    body = Body.load()
    rot, betas, age, src = eval_set(64, seed, ShapeSampler(body))
    picks = []
    for want_src, (lo, hi) in (("rom", (3, 12)), ("rom", (60, 91)), ("cmu", (18, 60)), ("deepmimic", (12, 60)),
                               ("deepmimic", (60, 91)), ("cmu", (3, 18))):
        sel = np.flatnonzero((src == want_src) & (age >= lo) & (age < hi) & ~np.isin(np.arange(len(src)), picks))
        if len(sel):
            picks.append(int(sel[0]))
    gt = ground_truth(body, rot[picks], betas[picks])
    _, rec = run_onnx(model_dir, gt)
    rec = rec - rec.mean(1, keepdims=True)
    err = np.linalg.norm(rec - gt, axis=-1) * 1e3  # (n, V) mm
    if vmax_mm is None:  # colour scale: the 95th percentile of the per-vertex errors, rounded up to 10 mm
        vmax_mm = float(max(10.0, np.ceil(np.percentile(err, 95) / 10) * 10))
    cmap = plt.get_cmap("turbo")
    fig, axes = plt.subplots(2, len(picks), figsize=(2.1 * len(picks), 6.4))
    for k, i in enumerate(picks):
        grey = np.full((len(body.faces), 3), 0.78)
        front_view(axes[0, k], gt[k], body.faces, grey, f"{src[i]}, {age[i]:.0f} y\noriginal")
        fe = err[k][body.faces].mean(1) / vmax_mm
        front_view(axes[1, k], rec[k], body.faces, cmap(np.clip(fe, 0, 1))[:, :3],
               f"reconstruction\nPVE {err[k].mean():.1f} mm (max {err[k].max():.0f})")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, vmax_mm))
    fig.colorbar(sm, ax=axes[1, :].tolist(), orientation="horizontal", fraction=0.04, pad=0.02,
                 label="per-vertex error (mm)")
    fig.suptitle("Mesh-VQ-VAE (54 tokens): held-out bodies, canonical pose, front view", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"png": str(path), "pve_mm": [float(e.mean()) for e in err]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_args(ap)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, default=512, help="bodies (half ROM, half held-out mocap)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--model-dir", default=str(DEFAULT_OUT))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--report", metavar="FILE")
    ap.add_argument("--png", metavar="FILE", help="also draw originals vs reconstructions, coloured by error")
    ap.add_argument("--update-meta", action="store_true", help="record the results in the model's vqvae.json")


def run(args) -> int:
    model_dir = Path(args.model_dir)
    if not (model_dir / "vqvae_decoder.onnx").exists():
        raise FileNotFoundError(f"no Mesh-VQ-VAE in {model_dir}; train one with `realtime-hmr train vqvae`")
    rep = evaluate(args.n, args.seed, model_dir, args.threads)
    for k, v in rep["pve_mm"].items():
        print(f"{k:24s} n={v['n']:4d}  PVE mean {v['mean']:.2f}  median {v['median']:.2f}  p95 {v['p95']:.2f} mm")
    for k, v in rep["by_age_mm"].items():
        print(f"{k:24s} n={v['n']:4d}  PVE mean {v['mean']:.2f}  median {v['median']:.2f}  p95 {v['p95']:.2f} mm")
    c = rep["codebook"]
    print(f"codebook: {c['codes_used']}/{c['codebook_size']} codes used, perplexity {c['perplexity']:.1f}")
    if args.png:
        rep["figure"] = figure(model_dir, Path(args.png), args.seed)
        print(f"figure written to {args.png}")
    if args.update_meta:
        mp = model_dir / "vqvae.json"
        meta = json.loads(mp.read_text())
        meta["heldout_eval"] = {"command": f"realtime-hmr eval vqvae --n {args.n} --seed {args.seed}",
                                **{k: rep[k] for k in ("pve_mm", "by_age_mm", "by_source_and_age_mm", "codebook",
                                                       "targets")}}
        mp.write_text(json.dumps(meta, indent=2) + "\n")
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(rep, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
