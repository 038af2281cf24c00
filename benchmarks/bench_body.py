"""Body maths on CPU: skinning, joint regression and inverse kinematics, per person, batch 1 and 8.

    python benchmarks/bench_body.py            # writes benchmarks/results/body_cpu.json

Target (foundation issue): IK <= 2 ms per person on this machine (known shape, the live path; shape fitting runs
once per track and is reported separately).
"""

import sys
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed, write  # noqa: E402

from realtime_hmr.body import Body  # noqa: E402


def main() -> None:
    body = Body.load()
    rng = np.random.default_rng(0)
    out = {"what": "per-call time in ms (p50, p95); per_person_p50 = p50 / batch", "cases": {}}
    for n in (1, 8):
        rv = rng.normal(0, 0.4, (n, body.n_bones, 3))
        R = Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix().reshape(n, body.n_bones, 3, 3)
        betas = rng.normal(size=(n, body.n_betas))
        v = body.skin(R, None, betas)
        body.ik(v, betas=betas, fit_shape=False)  # factorise and cache the shapes' solvers
        cases = {  # called within this iteration: default arguments bind this batch's arrays
            "skin": lambda R=R, betas=betas: body.skin(R, None, betas),
            "joints_smpl24": lambda v=v: body.joints(v),
            "joints_mediapipe33": lambda v=v: body.joints(v, "mediapipe33"),
            "ik_known_shape": lambda v=v, betas=betas: body.ik(v, betas=betas, fit_shape=False),
            "ik_fit_shape": lambda v=v: body.ik(v),
        }
        for name, fn in cases.items():
            r = timed(fn, repeat=5 if name == "ik_fit_shape" else 30)  # milliseconds
            r["per_person_p50"] = r["p50"] / n
            out["cases"][f"{name}/batch{n}"] = r
            print(f"{name:20s} batch {n}: {r['p50']:8.2f} ms per call, {r['per_person_p50']:7.2f} ms per person")
    print("written", write("body_cpu", out))


if __name__ == "__main__":
    main()
