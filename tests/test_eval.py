"""eval synthetic: scoring helpers (hand-computed) and a 2-person end-to-end run of the report's fields."""

import numpy as np
import pytest

from realtime_hmr.train.evaluate import HIPS12, MP12, SMPL12, limb_errors, score_mesh
from tests.conftest import require_renderer


def test_joint_subsets_name_the_same_joints():
    from realtime_hmr.body import Body

    b = Body.load()
    mp = [b.landmark_names["mediapipe33"][i] for i in MP12]
    smpl = [b.joint_names[i] for i in SMPL12]
    assert mp == smpl  # both use left_shoulder ... right_ankle
    assert [mp[i] for i in HIPS12] == ["left_hip", "right_hip"]


def test_limb_errors_hand_computed():
    gt = np.zeros((1, 12, 3))
    gt[0, :, 0] = np.arange(12)
    pred = gt + [0.0, 0.0, 5.0]  # a translation: hip-midpoint alignment removes it
    e, pa = limb_errors(pred, gt)
    np.testing.assert_allclose([e[0], pa[0]], [0.0, 0.0], atol=1e-12)
    pred = gt.copy()
    pred[0, 0] += [0.0, 0.12, 0.0]  # one shoulder 12 cm off, hips untouched: 1 cm mean over 12 joints
    e, _ = limb_errors(pred, gt)
    assert e[0] == pytest.approx(0.01)


def test_score_mesh():
    rng = np.random.default_rng(0)
    j = rng.normal(size=(2, 24, 3))
    v = rng.normal(size=(2, 100, 3))
    s = score_mesh(j + 1.0, j, v + 1.0, v)  # shifted as a whole: all zero after pelvis alignment
    for k in ("mpjpe", "pa_mpjpe", "pve"):
        np.testing.assert_allclose(s[k], 0.0, atol=1e-12)
    s = score_mesh(j, j, v + [0.0, 0.0, 0.003], v)
    np.testing.assert_allclose(s["pve"], 0.003, atol=1e-12)


def test_eval_synthetic_report_fields(tmp_path):
    require_renderer()
    import json

    from realtime_hmr.cli import main

    report = tmp_path / "r.json"
    assert main(["eval", "synthetic", "--n", "2", "--seed", "11", "--width", "192", "--height", "144",
                 "--stochastic", "3", "--temperature", "1.5", "--flip-test", "--tiles", "2x1", "--no-progress",
                 "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert "flip test" in r["perception"]["name"] and r["command"].endswith("--flip-test --tiles 2x1")
    assert "detector tiles 2x1" in r["perception"]["name"]
    assert "--stochastic 3 --temperature 1.5" in r["command"]
    assert r["n"] == 2 and 0 <= r["detected"] <= 2
    for k in ("pve_mm", "mpjpe_mm", "pa_mpjpe_mm"):
        assert k in r
    if r["mpjpe_mm"] is None:
        assert r["reason"] and r["stochastic"] is None
    else:  # a mesh model ships: every scored person is scored on the limbs and in stochastic mode too
        assert 0 < r["pa_mpjpe_mm"] <= r["mpjpe_mm"] * 1.5 and 0 < r["limb12"]["pa_mpjpe_mm"]
        assert r["mesh_model"]["mirror_test"] is True
        pp = r["per_person"]  # each scored person, by index, so two reports pair up
        assert len(pp["index"]) == len(pp["pa_mpjpe_mm"]) == r["stochastic"]["n"] and set(pp["index"]) <= {0, 1}
        assert np.mean(pp["pa_mpjpe_mm"]) == pytest.approx(r["pa_mpjpe_mm"], abs=0.1)
        st = r["stochastic"]
        assert st["samples"] == 3 and st["n"] == sum(v["n"] for v in r["breakdown"]["by_source"].values())
        assert st["best_of_k_mpjpe_mm"] <= st["mean_body_mpjpe_mm"] * 3
    b = r["baseline"]["mediapipe_world"]
    assert {"mpjpe_mm", "pa_mpjpe_mm", "detected"} <= set(b)
    if b["detected"]:
        assert 0 < b["pa_mpjpe_mm"] <= b["mpjpe_mm"] * 1.5 and b["mpjpe_mm"] < 1000
        assert sum(v["n"] for v in b["by_source"].values()) == b["n"] and set(b["by_yaw"]) and set(b["by_distance"])


def test_breakdown_by_distance_yaw_and_source():
    from realtime_hmr.train.evaluate import breakdown

    err = {"mpjpe": np.array([0.1, 0.2, 0.3, 0.4])}
    b = breakdown(err, yaw=[10, -170, 90, -20], distance=[2.0, 4.0, 6.0, 2.5], source=["rom", "cmu", "rom", "cmu"])
    assert b["by_distance"]["under 3 m"] == {"n": 2, "mpjpe_mm": 250.0}
    assert b["by_distance"]["5 m and over"] == {"n": 1, "mpjpe_mm": 300.0}
    assert b["by_yaw"]["front (|yaw| < 45)"] == {"n": 2, "mpjpe_mm": 250.0}
    assert b["by_yaw"]["back (|yaw| >= 135)"] == {"n": 1, "mpjpe_mm": 200.0}
    assert b["by_source"]["cmu"] == {"n": 2, "mpjpe_mm": 300.0}
    assert b["by_yaw"]["side (45-135)"]["n"] == 1 and b["by_distance"]["3-5 m"]["mpjpe_mm"] == 200.0


def test_stochastic_summary_best_of_k_and_uncertainty_correlations():
    from realtime_hmr.train.evaluate import stochastic_summary

    rng = np.random.default_rng(0)
    vis = [rng.uniform(0, 1, 12) for _ in range(3)]
    unc = [0.1 * (1 - v) + 0.01 for v in vis]  # less visible, more uncertain
    err = [u * 2 for u in unc]
    acc = {"samples": 10, "det": [0.10, 0.20, 0.30], "det_pa": [0.05, 0.05, 0.05], "mean": [0.09, 0.2, 0.3],
           "mean_pa": [0.04, 0.05, 0.05], "best": [0.05, 0.1, 0.2], "best_pa": [0.03, 0.04, 0.04],
           "fit": [0.1, 0.1, 0.4], "fit_pa": [0.06, 0.05, 0.04], "unc": unc, "vis": vis, "err": err}
    s = stochastic_summary(acc)
    assert s["n"] == 3 and s["joints"] == 36
    assert s["deterministic_mpjpe_mm"] == 200.0 and s["best_of_k_mpjpe_mm"] == pytest.approx(116.7)
    assert s["best_fit_sample_mpjpe_mm"] == 200.0 and s["best_fit_sample_pa_mpjpe_mm"] == 50.0
    assert s["uncertainty_vs_visibility_spearman"] == -1.0 and s["uncertainty_vs_error_spearman"] == 1.0
    low = np.concatenate(vis) < 0.5
    assert s["joints_visibility_below_0.5"] == int(low.sum())
    assert s["uncertainty_mm_visibility_below_0.5"] > s["uncertainty_mm_visibility_0.5_and_over"]


def test_compare_eval_pairs_people_by_index():
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("compare_eval", REPO / "benchmarks" / "compare_eval.py")
    ce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ce)
    a = {"n": 5, "seed": 0, "per_person": {"index": [0, 1, 3], "pa_mpjpe_mm": [100.0, 50.0, 80.0]}}
    b = {"n": 5, "seed": 0, "per_person": {"index": [1, 3, 4], "pa_mpjpe_mm": [40.0, 90.0, 10.0]}}
    out = ce.compare(a, b, boot=200)
    assert out["people"] == 2  # people 1 and 3: -10 and +10
    assert out["pa_mpjpe_mm"]["mean_b_minus_a"] == 0.0 and out["pa_mpjpe_mm"]["b_better_share"] == 0.5
    lo, hi = out["pa_mpjpe_mm"]["ci95"]
    assert lo <= 0.0 <= hi and "pve_mm" not in out
    with pytest.raises(SystemExit, match="same people"):
        ce.compare(a, {**b, "seed": 1})


def _eval_clip():
    import importlib.util
    import sys

    from tests.conftest import REPO

    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))  # for its `from common import write`, as when run as a script
    spec = importlib.util.spec_from_file_location("eval_clip", REPO / "benchmarks" / "eval_clip.py")
    ec = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ec)
    return ec


def test_eval_clip_swaps_and_acceleration_error():
    ec = _eval_clip()
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(6, 24, 3))
    mixed = gt.copy()
    for left, right in zip(*ec.LEGS):
        mixed[:, [left, right]] = gt[:, [right, left]]
    assert not ec.swapped(gt + 0.01, gt, ec.LEGS).any()
    assert ec.swapped(mixed, gt, ec.LEGS).all() and not ec.swapped(mixed, gt, ec.ARMS).any()
    ok = np.ones(6, bool)
    assert np.allclose(ec.accel_error(gt + 0.3, gt, ok), 0.0)  # a constant offset has no acceleration
    jitter = gt.copy()
    jitter[3] += [0.01, 0.0, 0.0]  # one frame 1 cm off: second differences of 1, -2, 1 cm around it
    err = ec.accel_error(jitter, gt, ok)
    assert np.allclose(err, [0.0, 0.01, 0.02, 0.01])
    ok[2] = False  # triples through an unmatched frame are left out
    assert np.allclose(ec.accel_error(jitter, gt, ok), [0.01])


def test_eval_synthetic_silhouette(tmp_path):
    """--silhouette: the tracker segments and the fit (which it turns on) uses the silhouettes; the report says so."""
    require_renderer()
    import json

    from realtime_hmr.cli import main

    report = tmp_path / "r.json"
    assert main(["eval", "synthetic", "--n", "2", "--seed", "12", "--width", "192", "--height", "144", "--silhouette",
                 "--no-progress", "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert "segmenting" in r["perception"]["name"] and r["command"].endswith("--seed 12 --silhouette")
    if r["mpjpe_mm"] is not None:
        assert r["mesh_model"]["fit_2d"] and r["mesh_model"]["fit_silhouette"]


def test_eval_clip_on_the_bundled_clip(tmp_path):
    """A few frames of the demo clip against its ground truth: both people found, errors in a sane range."""
    from realtime_hmr.mesh import MeshRecovery

    ec = _eval_clip()
    frames, gt = ec.load_clip(ec.DEMO / "demo.mp4", ec.DEMO / "demo_gt.npz", 30)
    assert len(frames) == 30 and gt["joints24"].shape[:2] == (30, 2)
    base = MeshRecovery.load(backend="onnxruntime", threads=1)
    r = ec.evaluate(base, frames, gt, {"as is": ({}, False)})["as is"]
    assert r["found"] > 0.6 and len(r["per_person_pa_mpjpe_mm"]) == 2  # the hopper is picked up after 20 frames
    assert 20.0 < r["pa_mpjpe_mm"] < 200.0 and r["pa_mpjpe_mm"] <= r["mpjpe_mm"]
    assert r["swapped_legs"] < 0.5 and r["mediapipe_world"]["pa_mpjpe_mm"] > 20.0
    short = tmp_path / "short_gt.npz"
    np.savez(short, **{k: v[:10] for k, v in gt.items()})
    with pytest.raises(SystemExit, match="ground truth for 10"):  # truth for fewer frames than the clip has
        ec.load_clip(ec.DEMO / "demo.mp4", short)
