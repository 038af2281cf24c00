"""Paired comparison of two `realtime-hmr eval synthetic` reports on the people both scored (same --n and --seed).

    python benchmarks/compare_eval.py A.json B.json [--boot 10000]

Prints, per metric, the mean of B - A over the shared people (mm; negative: B is better) with a bootstrap 95 %
interval over people, and how many people B improves.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def compare(a: dict, b: dict, boot: int = 10000, seed: int = 0) -> dict:
    pa, pb = a.get("per_person"), b.get("per_person")
    if not pa or not pb:
        raise SystemExit("both reports need per-person errors (written by eval synthetic since they were added)")
    if (a["n"], a["seed"]) != (b["n"], b["seed"]):
        raise SystemExit(f"not the same people: n/seed {a['n']}/{a['seed']} vs {b['n']}/{b['seed']}")
    ia, ib = {k: j for j, k in enumerate(pa["index"])}, {k: j for j, k in enumerate(pb["index"])}
    shared = sorted(set(ia) & set(ib))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(shared), (boot, len(shared)))
    out = {"people": len(shared)}
    for m in ("pve_mm", "mpjpe_mm", "pa_mpjpe_mm"):
        if m not in pa or m not in pb:
            continue
        d = np.array([pb[m][ib[k]] - pa[m][ia[k]] for k in shared])
        means = d[draws].mean(1)
        out[m] = {"mean_b_minus_a": round(float(d.mean()), 2),
                  "ci95": [round(float(np.percentile(means, 2.5)), 2), round(float(np.percentile(means, 97.5)), 2)],
                  "b_better_share": round(float((d < 0).mean()), 3)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--boot", type=int, default=10000)
    args = p.parse_args()
    with open(args.a) as fa, open(args.b) as fb:
        print(json.dumps(compare(json.load(fa), json.load(fb), args.boot), indent=2))


if __name__ == "__main__":
    main()
