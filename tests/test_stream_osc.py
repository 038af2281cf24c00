"""OSC joints and VMC, decoded by a real python-osc server on 127.0.0.1; frame conversion; datagram sizes."""

import socket
import struct
import threading
import time

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_server import ThreadingOSCUDPServer

from realtime_hmr.filters import quat_mul
from realtime_hmr.stream.osc_out import (
    HUMAN_BODY_BONES,
    OscJointSender,
    VMCPose,
    VMCSender,
    body_to_unity_position,
    body_to_unity_rotation,
    bundles,
    message,
)
from realtime_hmr.types import BodyResult, Frame, Person


def quat_to_mat(q):
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def random_quat(rng):
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def test_body_to_unity_axes():
    np.testing.assert_array_equal(body_to_unity_position([1, 0, 0]), [-1, 0, 0])  # subject's left -> Unity -X
    np.testing.assert_array_equal(body_to_unity_position([0, 0, 1]), [0, 1, 0])  # up -> +Y
    np.testing.assert_array_equal(body_to_unity_position([0, -1, 0]), [0, 0, 1])  # front -> +Z


def test_rotation_conversion_commutes_with_points():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q, v = random_quat(rng), rng.normal(size=3)
        qu = body_to_unity_rotation(q)
        assert np.linalg.det(quat_to_mat(qu)) == pytest.approx(1)
        # rotating then converting == converting then rotating (Unity applies the matrix of q the same way)
        np.testing.assert_allclose(body_to_unity_position(quat_to_mat(q) @ v),
                                   quat_to_mat(qu) @ body_to_unity_position(v), atol=1e-12)
        q2 = random_quat(rng)
        np.testing.assert_allclose(body_to_unity_rotation(quat_mul(q, q2)),
                                   quat_mul(qu, body_to_unity_rotation(q2)), atol=1e-12)


def test_osc_message_golden_bytes():
    m = message("/VMC/Ext/Bone/Pos", "Hips", 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    expected = (b"/VMC/Ext/Bone/Pos\0\0\0" + b",sfffffff\0\0\0" + b"Hips\0\0\0\0"
                + struct.pack(">7f", 0, 1, 0, 0, 0, 0, 1))
    assert m == expected
    b = bundles([m, message("/VMC/Ext/OK", 1)])
    assert b == [b"#bundle\0" + b"\0\0\0\0\0\0\0\1" + struct.pack(">i", len(m)) + m
                 + struct.pack(">i", 20) + b"/VMC/Ext/OK\0,i\0\0\0\0\0\1"]


class Server:
    """A python-osc ThreadingOSCUDPServer on 127.0.0.1 collecting (address, args)."""

    def __init__(self, port=0):
        self.got = []
        d = Dispatcher()
        d.set_default_handler(lambda addr, *args: self.got.append((addr, args)))
        self.srv = ThreadingOSCUDPServer(("127.0.0.1", port), d)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.got

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def consecutive_servers(n):
    for _ in range(50):
        first = Server()
        servers = [first]
        try:
            for k in range(1, n):
                servers.append(Server(first.port + k))
            return servers
        except OSError:
            for s in servers:
                s.close()
    raise RuntimeError("no consecutive free UDP ports")


def pose(rng, n_bones=22):
    bones = {name: random_quat(rng) for name in HUMAN_BODY_BONES[:n_bones]}
    return VMCPose(root_position=np.array([0.1, -2.0, 0.0]), root_rotation=random_quat(rng), bones=bones,
                   bone_positions={"Hips": np.array([0.0, 0.0, 0.95])})


def test_vmc_two_persons_two_ports_decoded_by_python_osc():
    rng = np.random.default_rng(1)
    servers = consecutive_servers(2)
    try:
        sender = VMCSender("127.0.0.1", servers[0].port, max_persons=2,
                           rest_offsets={"Spine": np.array([0, 0, 0.1])})
        poses = {7: pose(rng), 9: pose(rng)}
        sender.send(poses, t=1.5)
        for s in servers:
            s.wait(1 + 22 + 2)
        for s, pid in zip(servers, (7, 9), strict=True):
            got = dict((a, args) for a, args in s.got if a != "/VMC/Ext/Bone/Pos")
            bones = {args[0]: args[1:] for a, args in s.got if a == "/VMC/Ext/Bone/Pos"}
            p = poses[pid]
            assert got["/VMC/Ext/Root/Pos"][0] == "root"
            np.testing.assert_allclose(got["/VMC/Ext/Root/Pos"][1:4], [-0.1, 0.0, 2.0], atol=1e-6)
            np.testing.assert_allclose(got["/VMC/Ext/Root/Pos"][4:], body_to_unity_rotation(p.root_rotation), atol=1e-6)
            assert set(bones) == set(HUMAN_BODY_BONES[:22])
            for name, q in p.bones.items():
                np.testing.assert_allclose(bones[name][3:], body_to_unity_rotation(q), atol=1e-6)
            np.testing.assert_allclose(bones["Hips"][:3], [0, 0.95, 0], atol=1e-6)  # per-frame position
            np.testing.assert_allclose(bones["Spine"][:3], [0, 0.1, 0], atol=1e-6)  # rest offset
            np.testing.assert_allclose(bones["Chest"][:3], [0, 0, 0])
            assert got["/VMC/Ext/T"] == (1.5,) and got["/VMC/Ext/OK"] == (1, 3, 0, 1)
        assert sender.slots == {7: 0, 9: 1}
        # person 7 leaves: one 'tracking lost' on its port; a newcomer takes the free slot 0
        servers[0].got.clear()
        sender.send({9: poses[9], 11: pose(rng)}, t=2.0)
        got = servers[0].wait(2 + 1 + 22 + 2)
        assert ("/VMC/Ext/OK", (1, 3, 0, 0)) in got
        assert sender.slots == {9: 1, 11: 0}
        sender.close()
    finally:
        for s in servers:
            s.close()


def test_vmc_full_skeleton_datagrams_fit():
    rng = np.random.default_rng(2)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    sender = VMCSender("127.0.0.1", rx.getsockname()[1], max_datagram=1400)
    sender.send({1: pose(rng, n_bones=len(HUMAN_BODY_BONES))}, t=0.0)
    sizes, names = [], []
    try:
        while True:
            d = rx.recv(65536)
            sizes.append(len(d))
            names += [m.params[0] for m in OscBundle(d) if m.address == "/VMC/Ext/Bone/Pos"]
    except TimeoutError:
        pass
    rx.close()
    assert len(sizes) >= 4 and max(sizes) <= 1400
    assert names == list(HUMAN_BODY_BONES)  # all 55, in order, none lost across bundles


def test_vmc_rejects_unknown_bone_and_skips_nan():
    s = VMCSender("127.0.0.1", 9)
    with pytest.raises(ValueError, match="HumanBodyBones"):
        s.datagrams(VMCPose(np.zeros(3), np.array([0, 0, 0, 1.0]), {"pelvis": np.array([0, 0, 0, 1.0])}), 0)
    d = s.datagrams(VMCPose(np.zeros(3), np.array([0, 0, 0, 1.0]), {"Hips": np.full(4, np.nan)}), 0)
    assert b"Bone/Pos" not in b"".join(d)


def test_osc_joints_decoded_by_python_osc():
    srv = Server()
    try:
        names = [f"joint{i}" for i in range(24)]
        sender = OscJointSender("127.0.0.1", srv.port, joint_names=names)
        joints = np.arange(72, dtype=float).reshape(24, 3) / 100
        persons = [Person(id=k, box=np.zeros(4), score=0.5, body=BodyResult(joints=joints + k)) for k in range(5)]
        persons.append(Person(id=99, box=np.zeros(4), score=0.5))  # no body: not sent
        sender(Frame(image=None, t=time.perf_counter(), seq=42), persons)
        got = srv.wait(1 + 1 + 5)
        by = {}
        for a, args in got:
            by.setdefault(a, []).append(args)
        assert by["/hmr/names"] == [tuple(names)]
        assert by["/hmr/frame"][0][:2] == (42, 5)
        rows = sorted(by["/hmr/joints"])
        assert [r[0] for r in rows] == [0, 1, 2, 3, 4]
        np.testing.assert_allclose(np.array(rows[3][2:]).reshape(24, 3), joints + 3, atol=1e-6)
        assert all(len(d) <= 1400 for d in sender.datagrams(Frame(None, 0.0, 1), persons))
        sender.close()
    finally:
        srv.close()


def test_sending_to_nobody_does_not_raise():
    sender = VMCSender("127.0.0.1", 9, pose_of=lambda p: None)
    for _ in range(3):
        sender(Frame(None, 0.0, 0), [Person(id=1, box=np.zeros(4), score=1.0)])
    OscJointSender("127.0.0.1", 9)(Frame(None, 0.0, 0), [])


def test_mat_to_quat_and_matrix_bones():
    from realtime_hmr.stream.osc_out import mat_to_quat

    rng = np.random.default_rng(3)
    qs = np.array([random_quat(rng) for _ in range(200)] + [[1, 0, 0, 0.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    back = mat_to_quat(np.array([quat_to_mat(q) for q in qs]))
    np.testing.assert_allclose(np.abs(np.sum(back * qs, -1)), 1, atol=1e-9)  # same rotation (sign free)
    s = VMCSender("127.0.0.1", 9)
    q = random_quat(rng)
    by_q = s.datagrams(VMCPose(np.zeros(3), q, {"Hips": q}), 0)
    by_m = s.datagrams(VMCPose(np.zeros(3), quat_to_mat(q), {"Hips": quat_to_mat(q)}), 0)
    a = [m.params for d in by_q for m in OscBundle(d) if m.address == "/VMC/Ext/Bone/Pos"][0]
    b = [m.params for d in by_m for m in OscBundle(d) if m.address == "/VMC/Ext/Bone/Pos"][0]
    qa, qb = np.array(a[4:]), np.array(b[4:])
    assert abs(abs(qa @ qb) - 1) < 1e-6


def test_raising_left_arm_raises_unity_left_arm():
    """Body frame: the left arm points +X in the T-pose; turning it 90 deg about the front axis (-Y) lifts it to +Z.
    In Unity the avatar's left arm points -X; the converted rotation must lift it to +Y (Unity applies the usual
    quaternion-matrix formula to its own coordinates)."""
    s = np.sin(np.pi / 4)
    q = np.array([0, -s, 0, s])  # 90 deg about -Y (right-hand rule)
    np.testing.assert_allclose(quat_to_mat(q) @ [1, 0, 0], [0, 0, 1], atol=1e-12)
    qu = body_to_unity_rotation(q)
    np.testing.assert_allclose(quat_to_mat(qu) @ body_to_unity_position([1, 0, 0]), [0, 1, 0], atol=1e-12)
