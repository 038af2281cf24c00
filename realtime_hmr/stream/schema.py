"""The wire format of the ZeroMQ stream, version 1 (pure: stdlib and numpy only). Spec: docs/wire-format.md.

Every message is ONE ZeroMQ frame (so ``ZMQ_CONFLATE`` works on the subscriber), laid out as::

    topic (ASCII) 0x00 | "RHMR" u16 version u16 flags u32 json_len | JSON header (space-padded) | buffers

- The topic comes first so that SUB prefix filtering works: subscribe to ``b"hmr.pose\\0"``.
- The JSON header (UTF-8, sorted keys) lists every buffer as ``{name, dtype, shape, offset, nbytes}``; offsets
  count from the end of the header, which is padded with spaces so that buffers start 8-byte aligned.
- Buffers are raw little-endian arrays, small ones first: a subscriber reads ``joints`` without touching
  ``vertices`` (and ``hmr.pose`` carries no vertices at all, so a joints-only subscriber does not receive them).
- Compatible additions (new header keys, new buffers) keep the version; a decoder must ignore unknown ones.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 1
MAGIC = b"RHMR"
TOPIC_FRAME = "hmr.frame"  # everything, vertices included
TOPIC_POSE = "hmr.pose"  # the same frame without vertices
TOPIC_META = "hmr.meta"  # names, faces, frames of reference; re-sent periodically
COORD = "opencv_camera"  # x right, y down, z forward, metres
_HEAD = struct.Struct("<4sHHI")
_ALIGN = 8
_MAX_TOPIC = 64

# Per-person arrays of a frame message: name -> (attribute path, dtype). Order = order on the wire.
PERSON_FIELDS = {
    "box": ("box", "<f4"),
    "score": ("score", "<f4"),
    "joints": ("body.joints", "<f4"),
    "joint_confidence": ("body.confidence", "<f4"),
    "translation": ("body.translation", "<f4"),
    "rotations": ("body.rotations", "<f4"),
    "landmarks_2d": ("landmarks_2d", "<f4"),
    "landmarks_world": ("landmarks_world", "<f4"),
    "visibility": ("visibility", "<f4"),
    "vertices": ("body.vertices", None),  # dtype chosen by the encoder (<f4 or <f2)
    "vertex_uncertainty": ("body.vertex_uncertainty", "<f2"),
}
_VERTEX_FIELDS = ("vertices", "vertex_uncertainty")


class WireError(ValueError):
    """A message that is not version-1 wire format (wrong magic, truncated, unsupported version)."""


def topic_prefix(topic: str) -> bytes:
    """The bytes to give ``zmq.SUBSCRIBE`` to receive exactly this topic."""
    return topic.encode("ascii") + b"\0"


def pack(topic: str, header: dict, arrays: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """One message: topic, fixed header, JSON header with a buffer table, then the little-endian buffers."""
    chunks, table, offset = [], [], 0
    for name, a in arrays:
        a = np.asarray(a)
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        pad = (-offset) % _ALIGN
        if pad:
            chunks.append(b"\0" * pad)
            offset += pad
        table.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape), "offset": offset,
                      "nbytes": a.nbytes})
        chunks.append(a.tobytes())
        offset += a.nbytes
    prefix = topic_prefix(topic)
    js = json.dumps({**header, "buffers": table}, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    js += b" " * ((-(len(prefix) + _HEAD.size + len(js))) % _ALIGN)
    return b"".join([prefix, _HEAD.pack(MAGIC, FORMAT_VERSION, 0, len(js)), js, *chunks])


@dataclass
class Message:
    """A decoded message. Arrays are read-only views into the received bytes, made only when asked for."""

    topic: str
    version: int
    header: dict
    data: memoryview

    @property
    def names(self) -> list[str]:
        return [b["name"] for b in self.header.get("buffers", [])]

    def array(self, name: str) -> np.ndarray:
        for b in self.header.get("buffers", []):
            if b["name"] == name:
                dt = np.dtype(b["dtype"])
                if b["offset"] + b["nbytes"] > len(self.data) or dt.itemsize * int(np.prod(b["shape"])) != b["nbytes"]:
                    raise WireError(f"buffer {name!r} is out of bounds or inconsistent")
                return np.frombuffer(self.data, dt, int(np.prod(b["shape"])), b["offset"]).reshape(b["shape"])
        raise KeyError(f"no buffer {name!r} in {self.topic} message (has {self.names})")

    def get(self, name: str, default=None):
        return self.array(name) if name in self.names else default


def decode(msg) -> Message:
    """Parse one message (bytes, bytearray, memoryview or a zmq.Frame's buffer) without copying the buffers."""
    mv = memoryview(msg).cast("B")
    end = bytes(mv[:_MAX_TOPIC]).find(b"\0")
    if end < 0:
        raise WireError("no topic terminator in the first 64 bytes")
    if len(mv) < end + 1 + _HEAD.size:
        raise WireError("message truncated in the fixed header")
    magic, version, _flags, n = _HEAD.unpack_from(mv, end + 1)
    if magic != MAGIC:
        raise WireError(f"bad magic {magic!r}")
    if version != FORMAT_VERSION:
        raise WireError(f"wire format version {version} is not supported (this decoder reads {FORMAT_VERSION})")
    start = end + 1 + _HEAD.size
    if len(mv) < start + n:
        raise WireError("message truncated in the JSON header")
    header = json.loads(bytes(mv[start:start + n]))
    return Message(bytes(mv[:end]).decode("ascii"), version, header, mv[start + n:])


def _attr(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None) if obj is not None else None
    return obj


def _stack(values: list, dtype: str) -> np.ndarray | None:
    """Stack per-person arrays; persons lacking the field (or with another shape) get NaN."""
    shapes = [np.shape(v) for v in values if v is not None]
    if not shapes:
        return None
    shape = max(set(shapes), key=shapes.count)
    out = np.full((len(values), *shape), np.nan, dtype=dtype)
    for i, v in enumerate(values):
        if v is not None and np.shape(v) == shape:
            out[i] = v
    return out


def encode_frame(seq: int, t_capture: float, persons: Sequence, *, t_capture_wall: float, t_send: float,
                 t_send_wall: float, source_t: float | None = None, image_size: tuple[int, int] | None = None,
                 vertices: bool = True, vertex_dtype: str = "<f4", meta_id: int = 0) -> bytes:
    """A frame message (topic ``hmr.frame``, or ``hmr.pose`` when ``vertices`` is False).

    ``persons`` are :class:`realtime_hmr.types.Person`; times are seconds: ``t_*`` on the producer's monotonic clock
    (``time.perf_counter``), ``t_*_wall`` on the Unix clock. ``meta_id`` is :func:`meta_id` of the current meta
    message, so a subscriber knows whether the faces it holds still apply.
    """
    header = {"seq": int(seq), "t_capture": float(t_capture), "t_capture_wall": float(t_capture_wall),
              "t_send": float(t_send), "t_send_wall": float(t_send_wall),
              "source_t": None if source_t is None else float(source_t),
              "image_size": None if image_size is None else [int(image_size[0]), int(image_size[1])],
              "ids": [int(p.id) for p in persons], "coord": COORD, "meta_id": int(meta_id)}
    arrays = []
    for name, (path, dtype) in PERSON_FIELDS.items():
        if name in _VERTEX_FIELDS and not vertices:
            continue
        a = _stack([_attr(p, path) for p in persons], dtype or vertex_dtype)
        if a is not None:
            arrays.append((name, a))
    return pack(TOPIC_FRAME if vertices else TOPIC_POSE, header, arrays)


def encode_meta(joint_names: Sequence[str], *, bone_names: Sequence[str] | None = None,
                faces: np.ndarray | None = None, n_vertices: int | None = None, producer: str = "",
                extra: dict | None = None) -> bytes:
    """The meta message (topic ``hmr.meta``): joint and bone names, mesh faces (int32, once per message), frames."""
    header = {"joint_names": list(joint_names), "bone_names": None if bone_names is None else list(bone_names),
              "n_vertices": None if n_vertices is None else int(n_vertices), "coord": COORD, "units": "m",
              "rotation_format": "xyzw", "producer": producer, "frame_topics": [TOPIC_FRAME, TOPIC_POSE],
              **(extra or {})}
    arrays = [] if faces is None else [("faces", np.asarray(faces, dtype="<i4"))]
    return pack(TOPIC_META, header, arrays)


def meta_id(meta_message: bytes) -> int:
    """The id frames carry to name their meta message: CRC-32 of its bytes."""
    return zlib.crc32(meta_message)
