"""OSC output: joints as plain OSC, and bones over the VMC protocol (https://protocol.vmc.info, V2.7 subset).

Everything goes out as OSC bundles of at most ``max_datagram`` bytes (default 1400, under a 1500-byte MTU with
IP/UDP headers), one UDP socket, non-blocking: a missing receiver costs nothing.

Plain OSC (``OscJointSender``, one port), per frame (documented in docs/wire-format.md):
    /hmr/frame   i seq, i n_persons, f t          t: capture time, s since the sender started
    /hmr/joints  i person_id, f score, f x0 y0 z0 ... x23 y23 z23      camera space (OpenCV axes), metres
    /hmr/names   s joint_name ...                 every ``names_interval_s``

VMC (``VMCSender``): person slot k (the k-th tracked person, stable while its id lives) goes to ``base_port + k``
(VMC has no person field), default 39539. Per frame and person: ``/VMC/Ext/Root/Pos``, one ``/VMC/Ext/Bone/Pos``
per bone (Unity ``HumanBodyBones`` names, local rotations, Unity space), ``/VMC/Ext/T``, ``/VMC/Ext/OK``.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

log = logging.getLogger(__name__)

VMC_PORT = 39539
_SIDES = ("Left", "Right")
HUMAN_BODY_BONES = (
    "Hips", "Spine", "Chest", "UpperChest", "Neck", "Head",
    *(s + b for s in _SIDES for b in ("Shoulder", "UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot",
                                       "Toes")),
    "LeftEye", "RightEye", "Jaw",
    *(s + f + p for s in _SIDES for f in ("Thumb", "Index", "Middle", "Ring", "Little")
      for p in ("Proximal", "Intermediate", "Distal")),
)

# Our body frame (Anny): right-handed, Z up, +X = subject's left, -Y = subject's front.
# Unity (VRM humanoid facing +Z): left-handed, Y up, +X = subject's right, +Z = subject's front.
BODY_TO_UNITY = np.array([[-1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)  # det = -1: a handedness flip


def body_to_unity_position(p: np.ndarray) -> np.ndarray:
    """Points (..., 3) from our body frame to Unity: (x, y, z) -> (-x, z, -y)."""
    return np.asarray(p, np.float64) @ BODY_TO_UNITY.T


def body_to_unity_rotation(q: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) x y z w from our body frame to Unity: R -> M R M^T with M = BODY_TO_UNITY.

    For a reflection M (det -1) the rotation axis maps to -M·axis with the same angle, so the vector part becomes
    -M·v: (x, y, z, w) -> (x, -z, y, w). The same formula converts LOCAL rotations when the bones' rest frames are
    parallel to the body frame (a T-pose-normalised rest, as VMC receivers assume).
    """
    q = np.asarray(q, np.float64)
    return np.concatenate([-(q[..., :3] @ BODY_TO_UNITY.T), q[..., 3:]], -1)


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) to unit quaternions (..., 4) x, y, z, w (Shepperd's method, w >= 0)."""
    m = np.asarray(m, np.float64)
    t = np.trace(m, axis1=-2, axis2=-1)
    d = np.diagonal(m, axis1=-2, axis2=-1)
    cands = np.stack([  # row k = 4 q_k * (x, y, z, w): use the row with the largest |q_k|
        np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1], 1 + t], -1),
        np.stack([1 + 2 * d[..., 0] - t, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0],
                  m[..., 2, 1] - m[..., 1, 2]], -1),
        np.stack([m[..., 0, 1] + m[..., 1, 0], 1 + 2 * d[..., 1] - t, m[..., 1, 2] + m[..., 2, 1],
                  m[..., 0, 2] - m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 + 2 * d[..., 2] - t,
                  m[..., 1, 0] - m[..., 0, 1]], -1)], -2)
    pivot = np.argmax(np.stack([1 + t, 1 + 2 * d[..., 0] - t, 1 + 2 * d[..., 1] - t, 1 + 2 * d[..., 2] - t], -1), -1)
    q = np.take_along_axis(cands, pivot[..., None, None], -2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:] < 0, -q, q)


def _quat(r: np.ndarray) -> np.ndarray:
    """A rotation given as a quaternion (4,) x y z w or a matrix (3, 3), as a quaternion."""
    r = np.asarray(r, np.float64)
    return mat_to_quat(r) if r.shape[-2:] == (3, 3) else r


def message(address: str, *args) -> bytes:
    """One OSC message: ints as ``i``, floats as ``f``, strings as ``s``."""
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a, "s" if isinstance(a, str) else "i" if isinstance(a, (int, np.integer)) else "f")
    return b.build().dgram


def bundles(messages: Sequence[bytes], max_datagram: int = 1400) -> list[bytes]:
    """Pack OSC messages, in order, into as few bundles of at most ``max_datagram`` bytes as possible."""
    out, current, size = [], [], 16  # "#bundle\0" + time tag
    for m in messages:
        if 16 + 4 + len(m) > max_datagram:
            raise ValueError(f"an OSC message of {len(m)} bytes does not fit a {max_datagram}-byte datagram")
        if size + 4 + len(m) > max_datagram:
            out.append(current)
            current, size = [], 16
        current.append(m)
        size += 4 + len(m)
    if current:
        out.append(current)
    head = b"#bundle\0" + osc_types.write_date(IMMEDIATELY)
    return [head + b"".join(struct.pack(">i", len(m)) + m for m in group) for group in out]


class _Udp:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sent = self.errors = 0

    def send(self, datagrams: Sequence[bytes], address: tuple[str, int]) -> None:
        for d in datagrams:
            try:
                self.sock.sendto(d, address)
                self.sent += 1
            except OSError as e:  # full buffer, unreachable port: drop this datagram, never stall the loop
                self.errors += 1
                log.debug("OSC send to %s failed: %s", address, e)

    def close(self) -> None:
        self.sock.close()


class OscJointSender:
    """Pipeline sink: ``/hmr/frame`` and one ``/hmr/joints`` per person with a body, to ``host:port``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, joint_names: Sequence[str] = (),
                 max_datagram: int = 1400, names_interval_s: float = 1.0):
        self.address = (host, port)
        self.joint_names = list(joint_names)
        self.max_datagram, self.names_interval_s = max_datagram, names_interval_s
        self._udp = _Udp()
        self._t0 = time.perf_counter()
        self._last_names = -float("inf")

    def datagrams(self, frame, persons) -> list[bytes]:
        msgs = []
        if self.joint_names and frame.t - self._last_names >= self.names_interval_s:
            msgs.append(message("/hmr/names", *self.joint_names))
            self._last_names = frame.t
        bodies = [p for p in persons if p.body is not None and np.isfinite(p.body.joints).all()]
        msgs.append(message("/hmr/frame", int(frame.seq), len(bodies), float(frame.t - self._t0)))
        for p in bodies:
            msgs.append(message("/hmr/joints", int(p.id), float(p.score),
                                *np.asarray(p.body.joints, np.float64).ravel().tolist()))
        return bundles(msgs, self.max_datagram)

    def __call__(self, frame, persons) -> None:
        self._udp.send(self.datagrams(frame, persons), self.address)

    def close(self) -> None:
        self._udp.close()


@dataclass
class VMCPose:
    """One person for VMC, in OUR body frame (metres, Z up, +X left, -Y front).

    ``bones``: HumanBodyBones name -> local rotation, a quaternion (x, y, z, w) or a 3x3 matrix, relative to a
    T-pose rest whose bone frames are parallel to the body frame (``realtime_hmr.body.humanoid.Humanoid``'s
    ``local_rotations``). ``root_position``/``root_rotation``: the avatar root in the world (body frame).
    ``bone_positions``: local positions (body frame) per bone for this frame, e.g. ``Hips``; bones missing here
    use the sender's ``rest_offsets``, else zero.
    """

    root_position: np.ndarray
    root_rotation: np.ndarray
    bones: Mapping[str, np.ndarray]
    bone_positions: Mapping[str, np.ndarray] = field(default_factory=dict)


class VMCSender:
    """Pipeline sink sending each tracked person to its own VMC receiver port (``base_port + slot``).

    ``pose_of`` turns a :class:`realtime_hmr.types.Person` into a :class:`VMCPose` (or None to skip it); it comes
    from the body module. ``rest_offsets``: local bone offsets of the rest skeleton (body frame, metres).
    """

    def __init__(self, host: str = "127.0.0.1", base_port: int = VMC_PORT, *, max_persons: int = 4,
                 pose_of: Callable | None = None, rest_offsets: Mapping[str, np.ndarray] | None = None,
                 max_datagram: int = 1400):
        self.host, self.base_port, self.max_persons = host, base_port, max_persons
        self.pose_of = pose_of
        self.rest_offsets = dict(rest_offsets or {})
        self.max_datagram = max_datagram
        self.slots: dict[int, int] = {}  # person id -> slot
        self._udp = _Udp()
        self._t0 = time.perf_counter()

    def port(self, slot: int) -> int:
        return self.base_port + slot

    def datagrams(self, pose: VMCPose | None, t: float) -> list[bytes]:
        """The bundles for one person at time ``t`` (s since start); ``pose=None`` says 'tracking lost'."""
        msgs = []
        if pose is not None:
            unknown = set(pose.bones) - set(HUMAN_BODY_BONES)
            if unknown:
                raise ValueError(f"not Unity HumanBodyBones names: {sorted(unknown)}")
            p = body_to_unity_position(pose.root_position)
            q = body_to_unity_rotation(_quat(pose.root_rotation))
            if np.isfinite(p).all() and np.isfinite(q).all():
                msgs.append(message("/VMC/Ext/Root/Pos", "root", *p.tolist(), *q.tolist()))
            for name in HUMAN_BODY_BONES:  # a fixed order: parents before children
                if name not in pose.bones:
                    continue
                q = body_to_unity_rotation(_quat(pose.bones[name]))
                off = pose.bone_positions.get(name, self.rest_offsets.get(name, np.zeros(3)))
                p = body_to_unity_position(off)
                if np.isfinite(q).all() and np.isfinite(p).all():
                    msgs.append(message("/VMC/Ext/Bone/Pos", name, *p.tolist(), *q.tolist()))
        msgs.append(message("/VMC/Ext/T", float(t)))
        msgs.append(message("/VMC/Ext/OK", 1, 3, 0, int(pose is not None)))  # loaded, calibrated, normal, tracking
        return bundles(msgs, self.max_datagram)

    def send(self, poses: Mapping[int, VMCPose | None], t: float | None = None) -> None:
        """Send person id -> pose. New ids take the lowest free slot; ids not given lose theirs (after one
        'tracking lost' message); ids beyond ``max_persons`` are skipped."""
        t = time.perf_counter() - self._t0 if t is None else t
        for pid in [i for i in self.slots if i not in poses]:
            self._udp.send(self.datagrams(None, t), (self.host, self.port(self.slots.pop(pid))))
        for pid, pose in poses.items():
            if pid not in self.slots:
                free = sorted(set(range(self.max_persons)) - set(self.slots.values()))
                if not free:
                    log.debug("VMC: no free slot for person %d (max_persons=%d)", pid, self.max_persons)
                    continue
                self.slots[pid] = free[0]
            self._udp.send(self.datagrams(pose, t), (self.host, self.port(self.slots[pid])))

    def __call__(self, frame, persons) -> None:
        if self.pose_of is None:
            raise RuntimeError("VMCSender used as a sink needs pose_of (Person -> VMCPose)")
        poses = {}
        for p in persons:
            pose = self.pose_of(p)
            if pose is not None:
                poses[p.id] = pose
        self.send(poses, frame.t - self._t0)

    def close(self) -> None:
        t = time.perf_counter() - self._t0
        for slot in self.slots.values():
            self._udp.send(self.datagrams(None, t), (self.host, self.port(slot)))
        self.slots.clear()
        self._udp.close()
