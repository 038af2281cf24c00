"""ZeroMQ PUB sink: every processed frame out as ``hmr.pose`` (no vertices) and ``hmr.frame`` (with vertices).

Publishing never blocks the pipeline: sends are ``NOBLOCK``, the send high-water mark is small (10 messages) and
``LINGER`` is 0, so a subscriber that reads slowly or never reads only loses frames (ZeroMQ drops them per
subscriber once its queue is full) and costs the producer nothing but the encoding.
The meta message (names, faces) goes out on ``hmr.meta`` with the first frame and then every ``meta_interval_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from realtime_hmr.stream import schema

log = logging.getLogger(__name__)


class ZmqPublisher:
    """A PUB socket bound to ``address`` (default ``tcp://127.0.0.1:5555``). Use as a pipeline sink or directly."""

    def __init__(self, address: str = "tcp://127.0.0.1:5555", *, joint_names: Sequence[str] = (),
                 bone_names: Sequence[str] | None = None, faces: np.ndarray | None = None,
                 send_vertices: bool = True, vertex_dtype: str = "<f4", sndhwm: int = 10,
                 meta_interval_s: float = 1.0, meta_extra: dict | None = None, context=None):
        import zmq

        from realtime_hmr.version import __version__

        self._zmq = zmq
        self._ctx = context or zmq.Context.instance()
        self.socket = self._ctx.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, sndhwm)
        self.socket.setsockopt(zmq.LINGER, 0)
        try:
            self.socket.bind(address)
        except zmq.ZMQError as e:
            self.socket.close()
            raise RuntimeError(f"cannot bind ZeroMQ publisher to {address}: {e}") from e
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.send_vertices = send_vertices
        self.vertex_dtype = vertex_dtype
        self.meta_interval_s = meta_interval_s
        self.sent = 0
        self.dropped = 0  # sends refused by ZeroMQ (PUB drops for slow subscribers silently, per subscriber)
        self._clock_offset = time.time() - time.perf_counter()
        self._last_meta = -float("inf")
        self.set_meta(joint_names, bone_names=bone_names, faces=faces, extra=meta_extra,
                      producer=f"realtime_hmr {__version__}")
        log.info("ZeroMQ publisher on %s", self.address)

    def set_meta(self, joint_names: Sequence[str], *, bone_names=None, faces=None, extra=None, producer=""):
        """Replace the meta message (sent at once and then periodically); frames carry its id."""
        n_vertices = None if faces is None else int(np.max(faces)) + 1
        self._meta = schema.encode_meta(joint_names, bone_names=bone_names, faces=faces, n_vertices=n_vertices,
                                        producer=producer, extra=extra)
        self.meta_id = schema.meta_id(self._meta)
        self._last_meta = -float("inf")

    def _send(self, msg: bytes) -> bool:
        try:
            self.socket.send(msg, self._zmq.NOBLOCK, copy=False)
        except self._zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def __call__(self, frame, persons) -> None:
        """Publish one frame (a :class:`realtime_hmr.types.Frame` and its persons)."""
        t = time.perf_counter()
        if t - self._last_meta >= self.meta_interval_s:
            self._send(self._meta)
            self._last_meta = t
        h, w = frame.image.shape[:2] if frame.image is not None else (0, 0)
        common = dict(t_capture_wall=frame.t + self._clock_offset, t_send=t, t_send_wall=t + self._clock_offset,
                      source_t=frame.source_t, image_size=(w, h), meta_id=self.meta_id)
        self._send(schema.encode_frame(frame.seq, frame.t, persons, vertices=False, **common))
        if self.send_vertices:
            self._send(schema.encode_frame(frame.seq, frame.t, persons, vertices=True,
                                           vertex_dtype=self.vertex_dtype, **common))

    def close(self) -> None:
        self.socket.close(linger=0)
