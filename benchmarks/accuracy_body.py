"""Accuracy of the body maths on 200 random posed meshes with random shapes (the foundation issue's measures).

    python benchmarks/accuracy_body.py      # writes benchmarks/results/body_accuracy.json

- IK round trip: mean vertex error of skin(ik(v)) vs v, per mesh (shape unknown to the IK; and shape given).
- SMPL-24 joints from the vertex regressor vs the rig's bone heads they stand for.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402

from realtime_hmr.body import SMPL24, Body  # noqa: E402
from realtime_hmr.body.names import SMPL24_BONES  # noqa: E402
from realtime_hmr.train.build_body import random_poses  # noqa: E402


def stats(a) -> dict:
    a = np.asarray(a)
    return {"mean": float(a.mean()), "median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max())}


def main(n: int = 200, seed: int = 123) -> None:
    body = Body.load()
    rng = np.random.default_rng(seed)
    rots = random_poses(body.bone_names, n, rng)
    betas = rng.normal(size=(n, body.n_betas))
    trans = rng.normal(0, 1, size=(n, 3))
    v, W = body.pose(rots, trans, betas)
    t0 = time.perf_counter()
    fit = body.ik(v)
    t_fit = (time.perf_counter() - t0) / n
    known = body.ik(v, betas=betas, fit_shape=False)
    err = {}
    for name, r in (("shape_unknown", fit), ("shape_given", known)):
        v2 = body.skin(r.rotations, r.translation, r.betas)
        err[name] = stats(np.linalg.norm(v2 - v, axis=-1).mean(1) * 1e3)
    bones = [body.bone_names.index(SMPL24_BONES[j]) for j in SMPL24]
    jerr = np.linalg.norm(body.joints(v) - W[:, bones][..., 3], axis=-1) * 1e3  # (n, 24)
    out = {
        "n_meshes": n, "seed": seed, "pose_sampler": "realtime_hmr.train.build_body.random_poses",
        "shapes": "betas ~ N(0, 1)",
        "ik_roundtrip_vertex_error_mm_per_mesh": err,
        "ik_shape_unknown_seconds_per_mesh": t_fit,
        "betas_abs_error": stats(np.abs(fit.betas - betas)),
        "smpl24_joint_vs_bone_head_mm": {j: stats(jerr[:, i]) for i, j in enumerate(SMPL24)},
        "smpl24_joint_vs_bone_head_mm_all": stats(jerr),
    }
    for k, e in err.items():
        print(f"IK round trip ({k}): mean {e['mean']:.3f} mm, median {e['median']:.3f}, p95 {e['p95']:.3f}")
    print(f"SMPL-24 regressor vs bone heads: median {np.median(jerr):.2f} mm, worst joint median "
          f"{max(np.median(jerr, 0)):.2f} mm")
    print("written", write("body_accuracy", out))


if __name__ == "__main__":
    main()
