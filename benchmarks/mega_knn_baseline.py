"""What the landmarks alone tell about the canonical body: a nearest-neighbour baseline for the MEGA decoder.

    python benchmarks/mega_knn_baseline.py DIR [--held-out 500]

DIR holds `realtime-hmr data synth` shards (as for `train mega --rendered`). The last ``--held-out`` rendered people
(the same split as `train mega --rendered-val`) are looked up among the others by their decoder inputs (MediaPipe's
image landmarks relative to their box, its world landmarks, or both; Euclidean); the neighbours' tokens are decoded
by the shipped Mesh-VQ-VAE and compared with the decoded true tokens: canonical PVE (mm) of the nearest neighbour
and of the mean of the 10 nearest. Writes ``benchmarks/results/mega_knn_rendered.json``.
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
    a = ap.parse_args(argv)
    enc = ort.InferenceSession(str(ASSETS / "vqvae" / "vqvae_encoder.onnx"), providers=["CPUExecutionProvider"])
    name = enc.get_inputs()[0].name
    r = load_rendered([a.dir], lambda v: enc.run(None, {name: v})[0].astype(np.int64))
    n = a.held_out
    train, val = ({k: v[:-n] for k, v in r.items()}, {k: v[-n:] for k, v in r.items()})
    tk = frozen_tokenizer(ASSETS / "vqvae" / "vqvae.safetensors")

    def decode(tokens):
        with torch.no_grad():
            return torch.cat([tk.decode(torch.as_tensor(tokens[i:i + 50])) for i in range(0, len(tokens), 50)])

    def feats(d, image, world):
        return np.concatenate([image * d["lm2d"][..., :3].reshape(len(d["lm2d"]), -1),
                               world * d["lmw"].reshape(len(d["lmw"]), -1)], 1)

    true = decode(val["tokens"])
    res = {"what": __doc__.splitlines()[0], "command": "python benchmarks/mega_knn_baseline.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "database": len(train["tokens"]), "held_out": n, "results": {}}
    for label, image, world in (("image + world landmarks", 1.0, 1.0), ("image landmarks", 1.0, 0.0),
                                ("world landmarks", 0.0, 1.0)):
        _, idx = cKDTree(feats(train, image, world)).query(feats(val, image, world), k=10)
        nn = [decode(train["tokens"][idx[:, j]]) for j in range(10)]
        res["results"][label] = {
            "nearest_canonical_pve_mm": round(float((nn[0] - true).norm(dim=-1).mean()) * 1e3, 1),
            "mean_of_10_nearest_canonical_pve_mm": round(float((torch.stack(nn).mean(0) - true).norm(dim=-1).mean())
                                                         * 1e3, 1)}
        print(label, res["results"][label], flush=True)
    print(f"written to {write('mega_knn_rendered', res)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
