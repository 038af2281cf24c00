"""Mocap retargeting onto Anny (needs anny, bvhio and ../shared/data/mocap; skips cleanly without them)."""

import re

import numpy as np
import pytest

pytest.importorskip("anny")
pytest.importorskip("torch")
pytest.importorskip("bvhio")

from realtime_hmr.train import mocap as M  # noqa: E402
from realtime_hmr.train import mocap_check as MC  # noqa: E402
from realtime_hmr.train import rig as R  # noqa: E402

MOCAP = M.data_root() / "mocap"
if not (MOCAP / "cmu" / "131_01.bvh").exists() or not (MOCAP / "deepmimic" / "humanoid3d_walk.txt").exists():
    pytest.skip(f"mocap data not found under {MOCAP}", allow_module_level=True)

TOL_MEDIAN, TOL_P95 = 1.0, 2.0  # degrees, retargeted Anny limb vs source segment


def _anny_heads(rotations):
    import torch

    P = torch.zeros(len(rotations), rotations.shape[1], 4, 4)
    P[:, :, :3, :3] = torch.as_tensor(rotations, dtype=torch.float32)
    P[:, :, 3, 3] = 1
    with torch.no_grad():
        return R.anny_model()(pose_parameters=P)["bone_poses"][:, :, :3, 3].double().numpy()


@pytest.mark.parametrize("source,name", [("cmu", "cmu/131_01.bvh"), ("deepmimic", "deepmimic/humanoid3d_kick.txt"),
                                         ("deepmimic", "deepmimic/humanoid3d_cartwheel.txt")])
def test_limb_directions_follow_the_source(source, name):
    clip = M.read_clip(source, MOCAP / name)
    ps = M.retarget(clip, R.load_rig())
    sel = np.arange(0, len(ps), 3)
    ps_sel, clip.pos = ps.subset(sel), clip.pos[sel]
    err = MC.bone_direction_errors(ps_sel, clip, _anny_heads(ps_sel.rotations))
    for limb, e in err.items():
        assert np.median(e) < TOL_MEDIAN and np.percentile(e, 95) < TOL_P95, (limb, np.median(e), e.max())


@pytest.mark.parametrize("source,name", [("cmu", "cmu/131_02.bvh"), ("deepmimic", "deepmimic/humanoid3d_punch.txt"),
                                         ("deepmimic", "deepmimic/humanoid3d_getup_faceup.txt")])
def test_elbows_and_knees_stay_hinges(source, name):
    """Both sources' elbows and knees are 1-DOF hinges; retargeted, Anny's must turn about its own hinge only
    (aligning each segment by its smallest rotation alone left them 15-35 degrees off)."""
    ps, rig = M.retarget(M.read_clip(source, MOCAP / name), R.load_rig()), R.load_rig()
    for bone in ("upperarm01.L", "upperarm01.R", "upperleg01.L", "upperleg01.R"):
        off = MC.off_hinge(ps, rig, bone)
        assert np.median(off) < 1.0 and off.max() < 2.0, (bone, np.median(off), off.max())


@pytest.mark.parametrize("source,name", [("cmu", "cmu/131_01.bvh"), ("deepmimic", "deepmimic/humanoid3d_walk.txt"),
                                         ("deepmimic", "deepmimic/humanoid3d_run.txt")])
def test_axes_walkers_face_where_they_go_and_stand_up(source, name):
    ps = M.retarget(M.read_clip(source, MOCAP / name), R.load_rig())
    v = np.diff(ps.trans[:, :2], axis=0)
    front = (ps.rotations[:-1, 0] @ np.array([0, -1.0, 0]))[:, :2]
    moving = np.linalg.norm(v, axis=1) > 0.005
    cos = np.sum(v * front, 1)[moving] / np.linalg.norm(v[moving], axis=1) / np.linalg.norm(front[moving], axis=1)
    assert moving.sum() > 5 and np.median(cos) > 0.85  # Anny's front is -Y: they walk forwards
    heads = _anny_heads(ps.rotations[::4])
    rig = R.load_rig()
    lower_foot = np.minimum(heads[:, rig.index("foot.L"), 2], heads[:, rig.index("foot.R"), 2])
    assert np.median(heads[:, 0, 2] - lower_foot) > 0.6  # Z up: the standing foot is well below the pelvis
    assert 0.7 < np.median(ps.trans[:, 2]) < 1.1  # pelvis height in metres


def test_bvhio_euler_order_matches_the_file():
    """bvhio's quaternions equal the file's channels read by hand (intrinsic, in the listed channel order)."""
    from scipy.spatial.transform import Rotation

    text = (MOCAP / "cmu" / "131_01.bvh").read_text()
    chans = re.findall(r"CHANNELS \d+ ([^\n]+)", text)
    first = np.array(text.split("Frame Time:")[1].split("\n")[1].split(), dtype=float)
    clip = M.read_clip("cmu", MOCAP / "cmu" / "131_01.bvh")
    col, local = 0, []
    for ch in chans:
        names = ch.split()
        vals = first[col:col + len(names)]
        col += len(names)
        rot = [(n[0], v) for n, v in zip(names, vals, strict=True) if n.endswith("rotation")]
        local.append(Rotation.from_euler("".join(a for a, _ in rot), [v for _, v in rot], degrees=True).as_matrix())
    assert col == len(first)
    world = []
    for j, p in enumerate(clip.parents):
        world.append(local[j] if p < 0 else world[p] @ local[j])
    assert np.allclose(M.C_CMU @ np.array(world) @ M.C_CMU.T, clip.rot[0], atol=1e-5)


def test_split_mirror_and_perturb():
    train, ev = M.load_mocap("train"), M.load_mocap("eval")
    base = np.array([c.split("/")[0] for c in train.clip])
    for src, held in M.HELD_OUT.items():
        assert held not in set(base), held
        assert held in set(ev.clip) and ((ev.source == src) == np.char.startswith(ev.clip, held)).all()
    assert set(np.char.add(M.HELD_OUT["cmu"], ["", "/mirror"])) == set(ev.clip[ev.source == "cmu"])
    assert {"cmu", "deepmimic"} == set(train.source)
    assert np.char.endswith(train.clip, "/mirror").sum() == len(train) // 2
    assert train.rotations.shape[1:] == (104, 3, 3) and train.rotations.dtype == np.float32
    p = M.perturb(train.subset(np.arange(200)), np.random.default_rng(0), sigma_deg=4.0)
    rel = np.swapaxes(train.rotations[:200], -1, -2) @ p.rotations
    ang = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    rig = R.load_rig()
    assert ang[:, rig.index("finger2-2.L")].max() < 1e-2 and ang[:, rig.index("eye.L")].max() < 1e-2
    assert 3.0 < np.median(ang[:, rig.index("upperarm01.L")]) < 12.0 and ang.max() < 30


def test_training_mix_keeps_eval_clips_out():
    from realtime_hmr.train.posemix import training_poses

    ps = training_poses(400, np.random.default_rng(0), mocap_fraction=0.7)
    assert {"rom", "cmu", "deepmimic"} == set(ps.source)
    assert not set(M.HELD_OUT.values()) & {c.split("/")[0] for c in ps.clip}
    ev = training_poses(100, np.random.default_rng(1), split="eval", mocap_fraction=1.0, sigma_deg=0.0)
    assert {c.split("/")[0] for c in ev.clip} <= set(M.HELD_OUT.values()) and set(ev.source) <= {"cmu", "deepmimic"}
    # a random heading turns root rotation and translation together: the pose relative to the root is unchanged
    pool = M.load_mocap("eval")
    k = np.flatnonzero((pool.clip == ev.clip[0]) & (pool.frame == ev.frame[0]))[0]
    assert np.allclose(ev.rotations[0, 1:], pool.rotations[k, 1:], atol=1e-6)
    yaw = ev.rotations[0, 0] @ pool.rotations[k, 0].T
    assert np.allclose(yaw[2], [0, 0, 1], atol=1e-5) and np.allclose(ev.trans[0], yaw @ pool.trans[k], atol=1e-5)
