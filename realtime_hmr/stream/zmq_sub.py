"""ZeroMQ subscriber helper: the newest frame only, and the latest meta message (faces, names) on the side.

Frames arrive on a socket with ``ZMQ_CONFLATE`` (possible because every message is a single ZeroMQ frame): its
queue holds one message, the newest, and it keeps reading from TCP, so the publisher never queues or drops for it.
The meta topic goes to a second, ordinary socket, so conflation never throws a meta message away.
``conflate=False`` instead queues frames (``rcvhwm``) and ``recv_latest`` drains them with ``NOBLOCK``, keeping
the newest queued one; ``recv`` then hands out every frame in order (for recording or counting).
"""

from __future__ import annotations

import logging
import time

from realtime_hmr.stream import schema

log = logging.getLogger(__name__)


class ZmqSubscriber:
    def __init__(self, address: str = "tcp://127.0.0.1:5555", topic: str = schema.TOPIC_POSE, *,
                 meta: bool = True, conflate: bool = True, rcvhwm: int = 100, context=None):
        import zmq

        self._zmq = zmq
        ctx = context or zmq.Context.instance()
        self.socket = ctx.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        if conflate:
            self.socket.setsockopt(zmq.CONFLATE, 1)
        else:
            self.socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self.socket.setsockopt(zmq.SUBSCRIBE, schema.topic_prefix(topic))
        self.socket.connect(address)
        self.meta_socket = None
        if meta:
            self.meta_socket = ctx.socket(zmq.SUB)
            self.meta_socket.setsockopt(zmq.LINGER, 0)
            self.meta_socket.setsockopt(zmq.RCVHWM, 2)
            self.meta_socket.setsockopt(zmq.SUBSCRIBE, schema.topic_prefix(schema.TOPIC_META))
            self.meta_socket.connect(address)
        self.meta: schema.Message | None = None
        self.meta_id: int | None = None
        self.received = 0
        self.skipped = 0  # frames drained without being returned (conflate=False: a newer one was queued)
        self.bad = 0

    def _decode(self, raw) -> schema.Message | None:
        try:
            return schema.decode(raw)
        except schema.WireError as e:
            self.bad += 1
            log.warning("ignoring a malformed message: %s", e)
            return None

    def poll_meta(self, timeout: float = 0.0) -> schema.Message | None:
        """Take the newest meta message if one is waiting (up to ``timeout`` s); returns the current meta."""
        zmq = self._zmq
        if self.meta_socket is None or not self.meta_socket.poll(int(timeout * 1000)):
            return self.meta
        while True:
            try:
                raw = self.meta_socket.recv(zmq.NOBLOCK, copy=False).buffer
            except zmq.Again:
                return self.meta
            msg = self._decode(raw)
            if msg is not None:
                self.meta, self.meta_id = msg, schema.meta_id(raw)

    def recv(self, timeout: float | None = 1.0) -> schema.Message | None:
        """The next frame message (the newest one with conflate), or None after ``timeout`` s (None: no limit)."""
        self.poll_meta()
        if not self.socket.poll(None if timeout is None else int(timeout * 1000)):
            return None
        msg = self._decode(self.socket.recv(copy=False).buffer)
        self.received += msg is not None
        return msg

    def recv_latest(self, timeout: float | None = 1.0) -> schema.Message | None:
        """The newest frame message available, waiting up to ``timeout`` s for one; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        latest = None
        while latest is None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            latest = self.recv(left)
            if latest is None and left is not None and left <= 0:
                return None
            while latest is not None and self.socket.poll(0):  # drain (only conflate=False ever queues)
                newer = self.recv(0)
                if newer is not None:
                    self.skipped += 1
                    latest = newer
        self.poll_meta()
        return latest

    def close(self) -> None:
        self.socket.close(linger=0)
        if self.meta_socket is not None:
            self.meta_socket.close(linger=0)
