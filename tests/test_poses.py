"""ROM pose sampler and the Anny rig kinematics it relies on (needs anny; set ANNY_CACHE_DIR to a built cache)."""

import numpy as np
import pytest

pytest.importorskip("anny")
pytest.importorskip("torch")

from realtime_hmr.train import rig as R  # noqa: E402
from realtime_hmr.train.coverage import anatomical_angles, fractions  # noqa: E402
from realtime_hmr.train.poses import LIMITS, LimbFrames, build, collisions, sample_rom  # noqa: E402

EPS = 0.5  # degrees


@pytest.fixture(scope="module")
def rig():
    return R.load_rig()


@pytest.fixture(scope="module")
def rom():
    return sample_rom(600, np.random.default_rng(0))


def _one(rig, spine=None, left=None, right=None):
    D = np.broadcast_to(np.eye(3), (1, len(rig.labels), 3, 3)).copy()

    def f(d):
        return {k: np.array([v], float) for k, v in (d or {}).items()}

    return build(D, f(spine), f(left), f(left if right is None else right), rig, LimbFrames.of(rig))


def test_kinematics_match_anny(rig, rom):
    import torch

    D = rom.rotations[:4].astype(np.float64)
    P = torch.zeros(4, len(rig.labels), 4, 4)
    P[:, :, :3, :3] = torch.as_tensor(D, dtype=torch.float32)
    P[:, :, 3, 3] = 1
    with torch.no_grad():
        out = R.anny_model()(pose_parameters=P)["bone_poses"].double().numpy()
    assert np.abs(R.joint_positions(D, rig) - out[:, :, :3, 3]).max() < 1e-4
    G_rest = R.anny_model()(pose_parameters=torch.eye(4).expand(1, len(rig.labels), 4, 4))["bone_poses"][0, :, :3, :3]
    G = out[:, :, :3, :3] @ np.swapaxes(G_rest.double().numpy(), -1, -2)  # world delta = W U^T
    assert np.abs(R.world_deltas(D, rig.parents) - G).max() < 1e-4
    assert np.allclose(R.local_deltas(R.world_deltas(D, rig.parents), rig.parents), D, atol=1e-6)


@pytest.mark.parametrize("side", ["L", "R"])
def test_rom_respects_limits(rig, rom, side):
    a = anatomical_angles(rom.rotations, rig, side)
    for k in ("hip.flex", "hip.abd", "knee.flex", "elbow.flex"):
        lo, hi = LIMITS[k]
        assert a[k].min() >= lo - EPS and a[k].max() <= hi + EPS, (k, a[k].min(), a[k].max())
        assert a[k].max() - a[k].min() > 0.6 * (hi - lo), f"{k} does not cover its range"
    # hamstrings: a straight knee caps hip flexion
    assert np.all(a["hip.flex"] <= 80 + 45 * np.minimum(1, a["knee.flex"] / 90) + EPS)
    # the arm only goes far behind the body when low (the plane is undefined near the poles)
    behind = (a["shoulder.plane"] < -20 - EPS) & (a["shoulder.elev"] > 10) & (a["shoulder.elev"] < 170)
    assert np.all(a["shoulder.elev"][behind] <= 60 + EPS)
    assert a["shoulder.elev"].max() > 160 and a["hip.flex"].max() > 110 and a["knee.flex"].max() > 140


def test_rom_covers_what_users_do(rom):
    f = fractions(rom.rotations)
    for activity in ("sit", "crouch", "kick", "stride", "throw", "arm_overhead", "both_overhead", "twist", "bend"):
        assert f[activity] > 0.01, (activity, f)


def test_named_poses_point_the_right_way(rig):
    i = rig.index
    sit = R.joint_positions(_one(rig, left={"hip.flex": 90, "knee.flex": 90}), rig)[0]
    assert sit[i("lowerleg01.L"), 1] < -0.3 and abs(sit[i("lowerleg01.L"), 2]) < 0.1  # knees forward, hip height
    assert sit[i("foot.L"), 2] < sit[i("lowerleg01.L"), 2] - 0.35  # shins hang down
    throw = R.joint_positions(_one(rig, left={"shoulder.elev": 90, "shoulder.rot": 90, "elbow.flex": 90}), rig)[0]
    assert throw[i("lowerarm01.L"), 0] > 0.35  # elbow out to the left, at shoulder height
    assert throw[i("wrist.L"), 2] > throw[i("lowerarm01.L"), 2] + 0.2  # externally rotated: forearm up
    up = R.joint_positions(_one(rig, left={"shoulder.elev": 175}), rig)[0]
    assert up[i("wrist.L"), 2] > up[i("head"), 2] + 0.2
    kick = R.joint_positions(_one(rig, left={"hip.flex": 80}, right={}), rig)[0]
    assert kick[i("foot.L"), 1] < -0.6 and kick[i("foot.R"), 1] > -0.1
    ext = R.joint_positions(_one(rig, left={"hip.rot": 45, "hip.flex": 90, "knee.flex": 90}), rig)[0]
    assert ext[i("foot.L"), 0] < sit[i("foot.L"), 0] - 0.15  # external hip rotation swings the foot inwards
    bend = R.joint_positions(_one(rig, spine={"spine.flex": 60}), rig)[0]
    assert bend[i("head"), 1] < -0.3


def test_rom_has_no_gross_self_intersection(rig, rom):
    assert not collisions(rom.rotations.astype(np.float64), rig).any()
    crossed = _one(rig, left={"hip.abd": -25, "hip.flex": 10}, right={"hip.abd": -25, "hip.flex": -10})
    into_chest = _one(rig, left={"shoulder.elev": 40, "shoulder.plane": 135, "elbow.flex": 150})
    assert collisions(crossed, rig).all() and collisions(into_chest, rig).all()


def test_mirror(rig, rom):
    D, t = rom.rotations[:50], np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    D2, t2 = R.mirror_poses(*R.mirror_poses(D, t, rig), rig)
    assert np.allclose(D2, D, atol=1e-6) and np.allclose(t2, t)
    Dm, _ = R.mirror_poses(D, t, rig)
    p, pm = R.joint_positions(D.astype(np.float64), rig), R.joint_positions(Dm.astype(np.float64), rig)
    for a, b in (("wrist.L", "wrist.R"), ("foot.L", "foot.R"), ("lowerleg01.R", "lowerleg01.L")):
        assert np.abs(pm[:, rig.index(a), 2] - p[:, rig.index(b), 2]).max() < 0.005  # heights swap sides
        assert np.abs(pm[:, rig.index(a), 0] + p[:, rig.index(b), 0]).max() < 0.005  # X reflected
    assert np.allclose(np.linalg.det(Dm), 1.0, atol=1e-5)


def test_rom_deterministic_and_format(rig):
    a, b = sample_rom(20, np.random.default_rng(5)), sample_rom(20, np.random.default_rng(5))
    assert np.array_equal(a.rotations, b.rotations)
    assert a.rotations.shape == (20, len(rig.labels), 3, 3) and a.rotations.dtype == np.float32
    assert a.trans.shape == (20, 3) and set(a.source) == {"rom"}
    assert np.allclose(a.rotations @ np.swapaxes(a.rotations, -1, -2), np.eye(3), atol=1e-5)
