"""The live loop: capture -> stages (one thread each, bounded queues) -> sinks (in the caller's thread).

- A stage is a callable ``(frame, persons) -> persons`` given every person of the frame at once (so it can batch);
  the first stage gets ``[]``. Stages are passed in, so the loop runs before any model exists.
- Sinks (publisher, OSC/VMC, recorder, preview) are callables ``(frame, persons)`` with an optional ``close()``;
  they run in the thread that called :meth:`Pipeline.run` (the main thread: OpenCV windows need it, and Ctrl-C
  arrives there).
- Drop policy: only the capture drops (live sources keep the newest frame). Between stages the queues are small and
  blocking, so at most ``queue_size`` frames wait per stage and a file is processed frame by frame.
- A stage or sink that raises is logged and counted; the frame goes on with no persons (stage) or to the next
  sink: bad input never stops the loop.
- Shutdown: end of source, ``max_frames``, :meth:`stop` or Ctrl-C. Sinks are always closed (the recorder
  writes its file), and :meth:`run` returns the CONTRACT.md report.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from realtime_hmr.timing import StageTimer, percentiles

log = logging.getLogger(__name__)

Stage = Callable[[object, list], list]
_END = object()


@dataclass
class _Item:
    frame: object
    persons: list
    since_capture: dict = field(default_factory=dict)


def _named(parts) -> list[tuple[str, Callable]]:
    out = []
    for p in parts:
        name, fn = p if isinstance(p, tuple) else (getattr(p, "name", None) or type(p).__name__, p)
        out.append((str(name), fn))
    return out


class Pipeline:
    """``Pipeline(capture, stages, sinks).run()``; ``capture`` has ``read(timeout)``, ``stop()`` (e.g.
    :class:`realtime_hmr.capture.Capture`, started or not). ``stages``/``sinks``: callables or (name, callable)."""

    def __init__(self, capture, stages: Sequence = (), sinks: Sequence = (), *, queue_size: int = 2,
                 max_frames: int | None = None, progress: bool = False, window: int = 10_000):
        self.capture = capture
        self.stages = _named(stages)
        self.sinks = _named(sinks)
        self.queue_size = queue_size
        self.max_frames = max_frames
        self.progress = progress
        self.timer = StageTimer(window)
        self.errors: dict[str, int] = {}
        self._stop = threading.Event()
        self._queues = [queue.Queue(maxsize=queue_size) for _ in range(len(self.stages) + 1)]
        self._latency: deque = deque(maxlen=window)
        self._since: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))
        self.frames = self.frames_with_person = self.persons_max = 0

    def stop(self) -> None:
        """Ask the loop to finish (thread-safe); frames in flight are dropped, sinks are closed."""
        self._stop.set()

    def _put(self, q: queue.Queue, item) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _error(self, name: str, e: Exception) -> None:
        n = self.errors[name] = self.errors.get(name, 0) + 1
        if n == 1 or n % 100 == 0:
            log.error("%s failed (%d times so far): %s: %s", name, n, type(e).__name__, e, exc_info=n == 1)

    def _source(self) -> None:
        q, n = self._queues[0], 0
        try:
            while not self._stop.is_set() and (self.max_frames is None or n < self.max_frames):
                frame = self.capture.read(timeout=0.5)
                if frame is None:
                    if getattr(self.capture, "ended", True):
                        break
                    continue
                n += 1
                if not self._put(q, _Item(frame, [])):
                    return
        finally:
            self._put(q, _END)

    def _worker(self, i: int) -> None:
        name, fn = self.stages[i]
        src, dst = self._queues[i], self._queues[i + 1]
        while True:
            try:
                item = src.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is _END:
                self._put(dst, _END)
                return
            t0 = time.perf_counter()
            try:
                item.persons = list(fn(item.frame, item.persons))
            except Exception as e:  # noqa: BLE001 - one bad frame must not end the run
                self._error(name, e)
                item.persons = []
            t1 = time.perf_counter()
            self.timer.add(name, (t1 - t0) * 1e3)
            item.since_capture[name] = (t1 - item.frame.t) * 1e3
            if not self._put(dst, item):
                return

    def _sink(self, item: _Item) -> None:
        for name, fn in self.sinks:
            t0 = time.perf_counter()
            try:
                fn(item.frame, item.persons)
            except Exception as e:  # noqa: BLE001
                self._error(name, e)
            t1 = time.perf_counter()
            self.timer.add(name, (t1 - t0) * 1e3)
            item.since_capture[name] = (t1 - item.frame.t) * 1e3
        self._latency.append((time.perf_counter() - item.frame.t) * 1e3)
        for k, v in item.since_capture.items():
            self._since[k].append(v)
        self.frames += 1
        self.frames_with_person += bool(item.persons)
        self.persons_max = max(self.persons_max, len(item.persons))

    def run(self) -> dict:
        """Run to the end; returns the report (CONTRACT.md). Ctrl-C stops cleanly and sets ``interrupted``."""
        if hasattr(self.capture, "start"):
            self.capture.start()  # Capture.start is idempotent
        threads = [threading.Thread(target=self._source, name="source", daemon=True)]
        threads += [threading.Thread(target=self._worker, args=(i,), name=f"stage-{n}", daemon=True)
                    for i, (n, _) in enumerate(self.stages)]
        for t in threads:
            t.start()
        interrupted = False
        t_start = time.perf_counter()
        bar = self._progress_bar()
        try:
            last = self._queues[-1]
            while True:
                try:
                    item = last.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        break
                    continue
                if item is _END:
                    break
                self._sink(item)
                if bar is not None:
                    bar[0].update(bar[1], advance=1)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted: stopping")
        finally:
            wall = time.perf_counter() - t_start
            self._stop.set()
            self.capture.stop()
            for t in threads:
                t.join(timeout=5)
            if bar is not None:
                bar[0].stop()
            for name, fn in self.sinks:
                close = getattr(fn, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception as e:  # noqa: BLE001 - close every sink even if one fails
                        self._error(f"{name}.close", e)
        return self.report(wall, interrupted)

    def _progress_bar(self):
        total = getattr(getattr(self.capture, "source", None), "frame_count", None)
        if not self.progress or total is None:
            return None
        from rich.progress import Progress

        p = Progress(transient=False)
        task = p.add_task("frames", total=min(total, self.max_frames or total))
        p.start()
        return p, task

    def report(self, wall: float, interrupted: bool = False) -> dict:
        lat = percentiles(self._latency)
        return {
            "frames": self.frames, "frames_with_person": self.frames_with_person, "persons_max": self.persons_max,
            "fps": self.frames / wall if wall > 0 else 0.0,
            "latency_ms": {**lat, "per_stage": self.timer.summary(),
                           "since_capture": {k: percentiles(v) for k, v in self._since.items()}},
            "dropped_frames": int(getattr(self.capture, "dropped", 0)),
            "errors": dict(self.errors), "capture_error": getattr(self.capture, "error", None),
            "interrupted": interrupted,
        }
