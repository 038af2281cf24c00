"""What the landmarks alone tell about the canonical body: a nearest-neighbour baseline for the MEGA decoder.

    python benchmarks/mega_knn_baseline.py DIR [--held-out 500] [--features] [--name mega_knn_rendered]

DIR holds `realtime-hmr data synth` shards (as for `train mega --rendered`). The last ``--held-out`` rendered people
(the same split as `train mega --rendered-val`) are looked up among the others by their decoder inputs (MediaPipe's
image landmarks relative to their box, its world landmarks, or both; Euclidean); the neighbours' tokens are decoded
by the shipped Mesh-VQ-VAE and compared with the decoded true tokens: canonical PVE (mm) of the nearest neighbour
and of the mean of the 10 nearest. ``--features`` (shards made with ``data synth --labeler port``) also looks people
up by the landmark net's image features (each channel standardised on the database). Writes
``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from common import write  # noqa: E402


def main(argv=None) -> int:
    import onnxruntime as ort
    import torch
    from scipy.spatial import cKDTree

    from realtime_hmr.train.mega import ASSETS, frozen_tokenizer, load_rendered

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--held-out", type=int, default=500)
    ap.add_argument("--features", action="store_true", help="also by the landmark net's image features")
    ap.add_argument("--name", default="mega_knn_rendered")
    a = ap.parse_args(argv)
    enc = ort.InferenceSession(str(ASSETS / "vqvae" / "vqvae_encoder.onnx"), providers=["CPUExecutionProvider"])
    name = enc.get_inputs()[0].name
    r = load_rendered([a.dir], lambda v: enc.run(None, {name: v})[0].astype(np.int64), features=a.features)
    n = a.held_out
    train, val = ({k: v[:-n] for k, v in r.items()}, {k: v[-n:] for k, v in r.items()})
    tk = frozen_tokenizer(ASSETS / "vqvae" / "vqvae.safetensors")

    def decode(tokens):
        with torch.no_grad():
            return torch.cat([tk.decode(torch.as_tensor(tokens[i:i + 50])) for i in range(0, len(tokens), 50)])

    def feats(d, image, world, net=0.0):
        parts = [image * d["lm2d"][..., :3].reshape(len(d["lm2d"]), -1), world * d["lmw"].reshape(len(d["lmw"]), -1)]
        if net:
            f = d["image"].astype(np.float32).reshape(len(d["image"]), -1)
            parts.append(net * (f - mu) / sd)
        return np.concatenate(parts, 1)

    if a.features:
        f = train["image"].astype(np.float32).reshape(len(train["image"]), -1)
        mu, sd = f.mean(0), f.std(0) + 1e-3

    true = decode(val["tokens"])
    res = {"what": __doc__.splitlines()[0], "command": "python benchmarks/mega_knn_baseline.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "database": len(train["tokens"]), "held_out": n, "results": {}}
    ways = [("image + world landmarks", 1.0, 1.0, 0.0), ("image landmarks", 1.0, 0.0, 0.0),
            ("world landmarks", 0.0, 1.0, 0.0)]
    if a.features:  # 5,760 standardised numbers: brute force (a k-d tree is no help in that many dimensions)
        ways += [("landmark-net image features", 0.0, 0.0, 1.0)]
    for label, image, world, net in ways:
        if net:
            q, db = feats(val, image, world, net), feats(train, image, world, net)
            d2 = (q ** 2).sum(1)[:, None] - 2 * q @ db.T + (db ** 2).sum(1)[None]
            idx = np.argsort(d2, 1)[:, :10]
        else:
            _, idx = cKDTree(feats(train, image, world)).query(feats(val, image, world), k=10)
        nn = [decode(train["tokens"][idx[:, j]]) for j in range(10)]
        res["results"][label] = {
            "nearest_canonical_pve_mm": round(float((nn[0] - true).norm(dim=-1).mean()) * 1e3, 1),
            "mean_of_10_nearest_canonical_pve_mm": round(float((torch.stack(nn).mean(0) - true).norm(dim=-1).mean())
                                                         * 1e3, 1)}
        print(label, res["results"][label], flush=True)
    print(f"written to {write(a.name, res)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
