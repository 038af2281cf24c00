#!/usr/bin/env python3
"""Example subscriber for the realtime_hmr ZeroMQ stream (wire format v1, docs/wire-format.md).

Needs only numpy and pyzmq - not realtime_hmr itself - so it is a template for any consumer. It keeps only the
newest frame (ZMQ_CONFLATE), reads joints without touching vertices, tells persons apart by id, measures latency
from the capture timestamp, and keeps the latest meta message (joint names, mesh faces) from a second socket.

    python zmq_subscriber.py --zmq tcp://127.0.0.1:5555 --count 100
"""

from __future__ import annotations

import argparse
import json
import struct
import time

import numpy as np
import zmq

VERSION = 1


def decode(raw) -> tuple[str, dict, memoryview]:
    """(topic, header, data) of one message; arrays come from :func:`array`."""
    mv = memoryview(raw).cast("B")
    end = bytes(mv[:64]).index(b"\0")
    magic, version, _flags, n = struct.unpack_from("<4sHHI", mv, end + 1)
    if magic != b"RHMR" or version != VERSION:
        raise ValueError(f"not realtime_hmr wire format v{VERSION}: {magic!r} v{version}")
    start = end + 1 + 12
    return bytes(mv[:end]).decode("ascii"), json.loads(bytes(mv[start:start + n])), mv[start + n:]


def array(header: dict, data: memoryview, name: str) -> np.ndarray | None:
    """One buffer as a read-only view (no copy, nothing else parsed); None when the message has no such buffer."""
    for b in header["buffers"]:
        if b["name"] == name:
            count = int(np.prod(b["shape"]))
            return np.frombuffer(data, np.dtype(b["dtype"]), count, b["offset"]).reshape(b["shape"])
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zmq", default="tcp://127.0.0.1:5555")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()

    ctx = zmq.Context.instance()
    frames = ctx.socket(zmq.SUB)
    frames.setsockopt(zmq.CONFLATE, 1)  # set before connect: keep only the newest message
    frames.setsockopt(zmq.SUBSCRIBE, b"hmr.pose\0")  # joints, rotations, boxes; no vertices on the wire
    frames.connect(args.zmq)
    meta_sock = ctx.socket(zmq.SUB)
    meta_sock.setsockopt(zmq.SUBSCRIBE, b"hmr.meta\0")
    meta_sock.connect(args.zmq)
    joint_names = None
    for _ in range(args.count):
        if not frames.poll(int(args.timeout * 1000)):
            print("no frame within", args.timeout, "s")
            break
        topic, header, data = decode(frames.recv(copy=False).buffer)
        latency_ms = (time.time() - header["t_capture_wall"]) * 1e3
        while meta_sock.poll(0):  # names and faces, re-sent about once a second
            _, meta, meta_data = decode(meta_sock.recv())
            joint_names = meta["joint_names"]
            faces = array(meta, meta_data, "faces")
            print(f"meta: {len(joint_names)} joints, {0 if faces is None else len(faces)} faces")
        joints = array(header, data, "joints")  # (persons, 24, 3), camera space, metres
        for k, pid in enumerate(header["ids"]):
            where = "no body" if joints is None else f"{joint_names[0] if joint_names else 'joint 0'} at " \
                    f"{np.array2string(joints[k, 0], precision=2)} m"
            print(f"seq {header['seq']}  person {pid}: {where}  latency {latency_ms:.1f} ms")
    frames.close(linger=0)
    meta_sock.close(linger=0)


if __name__ == "__main__":
    main()
