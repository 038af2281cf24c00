"""Humanoid (VRM-normalised) rotations: the T-pose, invariances, and one joint moving one local rotation."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from realtime_hmr.body import SMPL24
from realtime_hmr.body.humanoid import NAMES, PARENT, Humanoid
from realtime_hmr.body.names import HUMANOID


@pytest.fixture(scope="module")
def hum(body):
    return Humanoid(body)


def angle(R):
    return np.degrees(Rotation.from_matrix(R).magnitude())


def test_tpose_geometry(body, hum):
    v, W = body.pose(hum.tpose_deltas()[None])
    j = dict(zip(SMPL24, body.joints(v)[0]))
    for side, s in (("left", 1), ("right", -1)):
        sh, el, wr = j[f"{side}_shoulder"], j[f"{side}_elbow"], j[f"{side}_wrist"]
        assert s * (wr[0] - el[0]) > 0.15 and s * (el[0] - sh[0]) > 0.15  # arms out sideways
        assert abs(wr[2] - sh[2]) < 0.02 and abs(wr[1] - sh[1]) < 0.02  # level, not forward
        hip, knee, ankle = j[f"{side}_hip"], j[f"{side}_knee"], j[f"{side}_ankle"]
        assert np.linalg.norm((ankle - hip)[:2]) < 0.02 and hip[2] - knee[2] > 0.3  # legs straight down
        assert j[f"{side}_foot"][1] < ankle[1] - 0.08  # feet forward (-Y)
    Q = hum.global_rotations(W[0])
    assert max(angle(Q[h]) for h in NAMES) < 0.01  # every humanoid bone at identity in the T-pose


def test_hierarchy_and_offsets(hum):
    assert NAMES[0] == "Hips" and all(NAMES.index(PARENT[h]) < NAMES.index(h) for h in NAMES[1:])
    assert set(NAMES) == set(HUMANOID) and len(NAMES) == 54
    off = hum.rest_offsets
    assert off["LeftUpperArm"][0] > 0.05 and off["RightUpperArm"][0] < -0.05
    assert off["LeftLowerLeg"][2] < -0.3 and off["Spine"][2] > 0


def test_turning_the_whole_body_only_turns_the_hips(body, hum):
    rng = np.random.default_rng(0)
    D = hum.tpose_deltas() @ np.eye(3)
    rv = rng.normal(0, 0.3, (body.n_bones, 3))
    rv[0] = 0
    D = Rotation.from_rotvec(rv).as_matrix() @ D  # some pose
    turn = Rotation.from_euler("zx", [100, 20], degrees=True).as_matrix()
    D2 = D.copy()
    D2[0] = body.reference[0] @ turn @ body.reference[0].T @ D[0]
    L1 = hum.local_rotations(body.pose(D[None])[1][0])
    L2 = hum.local_rotations(body.pose(D2[None])[1][0])
    for h in NAMES[1:]:
        assert angle(L1[h].T @ L2[h]) < 1e-3, h
    assert angle((turn @ L1["Hips"]).T @ L2["Hips"]) < 1e-3


def test_bending_an_elbow_moves_only_the_lower_arm(body, hum):
    T = hum.tpose_deltas()
    bent = T.copy()
    b = body.bone_names.index("lowerarm01.L")
    bend = Rotation.from_euler("z", 50, degrees=True).as_matrix()  # in world-aligned axes at the T-pose
    bent[b] = bend @ T[b]
    L = hum.local_rotations(body.pose(bent[None])[1][0])
    for h in NAMES:
        expect = 50.0 if h in ("LeftLowerArm",) else 0.0
        assert abs(angle(L[h]) - expect) < 0.05, (h, angle(L[h]))
