"""Frame sources (webcam index, video file, image folder, stream URL) and a capture thread.

- Live sources (cameras, stream URLs) keep only the newest frame: a slow consumer sees fresh frames, and every
  frame it never took counts in ``dropped``. A live source that stops delivering is reopened
  ``reconnect_attempts`` times, ``reconnect_delay_s`` apart, then the capture ends cleanly with ``error`` set.
- Files and image folders never drop: the thread waits for the consumer (bounded queue). With
  ``realtime=True`` a file is played at its own frame rate and behaves like a live source.
- ``Frame.t`` is ``time.perf_counter()`` taken right after the grab; ``Frame.source_t`` is the source's own
  timestamp in seconds (file position, image index / fps, or the camera driver's timestamp when it gives one).
- A source that cannot be opened, or gives no first frame, raises :class:`SourceError` with the reason.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from realtime_hmr.config import CaptureConfig
from realtime_hmr.types import Frame

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class SourceError(RuntimeError):
    """A source that cannot be opened or read."""


class VideoSource:
    """A webcam index, a video file or a stream URL, through ``cv2.VideoCapture``."""

    def __init__(self, spec: str | int):
        self.spec = spec
        if isinstance(spec, int) or str(spec).isdigit():
            self.kind, self.target = "camera", int(spec)
        elif "://" in str(spec):
            self.kind, self.target = "stream", str(spec)
        else:
            path = Path(spec)
            if not path.is_file():
                raise SourceError(f"video file not found: {spec}")
            self.kind, self.target = "file", str(path)
        self.live = self.kind != "file"
        self.cap = None
        self.open()
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 0.0
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.kind == "file" else 0
        self.frame_count = n if n > 0 else None  # None: unknown (live, or a container that does not say)

    def __str__(self) -> str:
        return f"{self.kind} {self.spec}"

    def open(self) -> None:
        self.release()
        cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG) if self.kind == "stream" else cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self}")
        self.cap = cap

    def read(self) -> tuple[np.ndarray, float, float | None] | None:
        """(image, perf_counter time, source time) or None when the source gives nothing."""
        if self.cap is None or not self.cap.grab():
            return None
        t = time.perf_counter()
        ok, image = self.cap.retrieve()
        if not ok or image is None:
            return None
        ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
        return image, t, (ms / 1000.0 if ms and ms > 0 or self.kind == "file" else None)

    def release(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class FolderSource:
    """Images of a folder in name order, timed at ``fps``. Unreadable images are skipped with a warning."""

    live = False

    def __init__(self, path: str | Path, fps: float = 30.0):
        self.path = Path(path)
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {path}")
        self.fps, self.index = fps, 0
        self.frame_count = len(self.files)

    def __str__(self) -> str:
        return f"image folder {self.path}"

    def open(self) -> None:
        self.index = 0

    def read(self):
        while self.index < len(self.files):
            f = self.files[self.index]
            self.index += 1
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if image is not None:
                return image, time.perf_counter(), (self.index - 1) / self.fps
            log.warning("skipping unreadable image %s", f)
        return None

    def release(self) -> None:
        pass


def open_source(spec) -> VideoSource | FolderSource:
    """A source from a command-line string: ``"0"`` (camera), ``"clip.mp4"``, ``"frames/"``, ``"rtsp://…"``."""
    if not isinstance(spec, int) and not str(spec).isdigit() and "://" not in str(spec):
        path = Path(spec)
        if path.is_dir():
            return FolderSource(path)
        if not path.exists():
            raise SourceError(f"source not found: {spec} (expected a camera index, a video file, an image folder "
                              "or a stream URL)")
    return VideoSource(spec)


class Capture:
    """Reads a source in a thread. ``read()`` returns the next :class:`Frame`, or None once the source ended."""

    def __init__(self, source, config: CaptureConfig | None = None, queue_size: int = 4):
        self.source = open_source(source) if isinstance(source, (str, int, Path)) else source
        self.config = config = config or CaptureConfig()
        first = self.source.read()
        if first is None:
            self.source.release()
            raise SourceError(f"cannot read a frame from {self.source}")
        self._first = first
        self.latest_only = self.source.live or config.realtime
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._slot: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ended = False
        self.frames = 0  # frames read from the source
        self.dropped = 0  # live frames overwritten before anyone took them
        self.reconnects = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._started = False

    def start(self) -> Capture:
        """Start the reading thread (once; later calls do nothing)."""
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def _next(self):
        if self._first is not None:
            item, self._first = self._first, None
            return item
        item = self.source.read()
        if item is None and self.source.live and not self._stop.is_set():
            item = self._reconnect()
        return item

    def _reconnect(self):
        for attempt in range(1, self.config.reconnect_attempts + 1):
            log.warning("%s stopped delivering frames; reconnect attempt %d/%d", self.source, attempt,
                        self.config.reconnect_attempts)
            if self._stop.wait(self.config.reconnect_delay_s):
                return None
            self.reconnects += 1
            try:
                self.source.open()
            except SourceError as e:
                log.warning("%s", e)
                continue
            item = self.source.read()
            if item is not None:
                log.info("%s is back", self.source)
                return item
        self.error = f"{self.source} disappeared; gave up after {self.config.reconnect_attempts} reconnect attempts"
        log.error("%s", self.error)
        return None

    def _run(self) -> None:
        t0_wall = t0_src = None
        try:
            while not self._stop.is_set():
                item = self._next()
                if item is None:
                    break
                image, t, source_t = item
                if self.config.realtime and not self.source.live and source_t is not None:  # play at file speed
                    if t0_wall is None:
                        t0_wall, t0_src = t, source_t
                    wait = t0_wall + (source_t - t0_src) - time.perf_counter()
                    if wait > 0 and self._stop.wait(wait):
                        break
                    t = time.perf_counter()
                frame = Frame(image=image, t=t, seq=self.frames, source_t=source_t)
                self.frames += 1
                if self.latest_only:
                    with self._cond:
                        self.dropped += self._slot is not None
                        self._slot = frame
                        self._cond.notify_all()
                else:
                    while not self._stop.is_set():
                        try:
                            self._queue.put(frame, timeout=0.1)
                            break
                        except queue.Full:
                            continue
        except Exception as e:  # a decoder error must end the capture cleanly, not kill it silently
            self.error = f"{self.source}: {type(e).__name__}: {e}"
            log.exception("capture failed")
        finally:
            self.source.release()
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None when the source has ended (or after ``timeout`` s with nothing new)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.latest_only:
            with self._cond:
                while self._slot is None and not self._ended:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return None
                    self._cond.wait(left if left is not None else 0.5)
                frame, self._slot = self._slot, None
                return frame
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._ended and self._queue.empty():
                    return None
                if deadline is not None and time.monotonic() > deadline:
                    return None

    @property
    def ended(self) -> bool:
        return self._ended

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        elif not self._ended:
            self.source.release()

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame
