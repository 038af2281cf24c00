"""Capture: files never drop, live sources keep the newest, reconnects, clear errors, stream URLs."""

import functools
import http.server
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_hmr.capture import Capture, FolderSource, SourceError, VideoSource, open_source
from realtime_hmr.config import CaptureConfig

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "video"


def write_video(path, n=20, fps=10):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(n):
        w.write(np.full((48, 64, 3), i * 10 % 256, np.uint8))
    w.release()
    return path


def brightness(frame):
    return int(round(frame.image.mean() / 10))


def test_file_never_drops_with_slow_consumer(tmp_path):
    cap = Capture(str(write_video(tmp_path / "clip.mp4")), queue_size=2).start()
    frames = []
    for f in cap:
        frames.append(f)
        time.sleep(0.01)
    cap.stop()
    assert [f.seq for f in frames] == list(range(20))
    assert [brightness(f) for f in frames] == list(range(20))
    np.testing.assert_allclose([f.source_t for f in frames], np.arange(20) / 10, atol=1e-6)
    assert all(b.t >= a.t for a, b in zip(frames, frames[1:], strict=False))
    assert cap.dropped == 0 and cap.error is None and cap.ended


def test_file_realtime_drops_for_slow_consumer(tmp_path):
    cap = Capture(str(write_video(tmp_path / "clip.mp4", n=12, fps=20)), CaptureConfig(realtime=True)).start()
    t0 = time.perf_counter()
    seqs = []
    for f in cap:
        seqs.append(f.seq)
        time.sleep(0.12)  # consumer at ~8 fps, file at 20 fps
    cap.stop()
    assert time.perf_counter() - t0 >= 0.5  # played at the file's speed (12 frames / 20 fps = 0.55 s)
    assert cap.dropped > 0 and len(seqs) + cap.dropped == 12
    assert seqs == sorted(seqs)


def test_image_folder_skips_unreadable(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((8, 8, 3), i * 10, np.uint8))
    (tmp_path / "001b.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    src = open_source(str(tmp_path))
    assert isinstance(src, FolderSource)
    frames = list(Capture(src).start())
    assert [brightness(f) for f in frames] == [0, 1, 2]
    assert frames[-1].source_t == pytest.approx(3 / 30)  # index 3 of the listing (the bad file counts)


@pytest.mark.parametrize("make,match", [
    (lambda p: str(p / "missing.mp4"), "not found"),
    (lambda p: (p / "bad.mp4").write_text("not a video") and str(p / "bad.mp4"), "cannot open"),
    (lambda p: (p / "empty").mkdir() or str(p / "empty"), "no images"),
    (lambda p: "99", "cannot open camera 99"),
])
def test_unreadable_sources_raise_clear_errors(tmp_path, make, match):
    with pytest.raises(SourceError, match=match):
        Capture(make(tmp_path))


class FakeLive:
    """A live source: frames every ``period`` s; goes away after ``stop_after`` frames until ``comes_back``."""

    live = True

    def __init__(self, period=0.002, stop_after=None, fail_opens=0):
        self.period, self.stop_after, self.fail_opens = period, stop_after, fail_opens
        self.n, self.opens, self.released = 0, 0, False

    def __str__(self):
        return "fake camera"

    def open(self):
        self.opens += 1
        if self.opens <= self.fail_opens:
            raise SourceError("fake camera not there")
        self.stop_after = None

    def read(self):
        if self.stop_after is not None and self.n >= self.stop_after:
            return None
        time.sleep(self.period)
        self.n += 1
        return np.full((4, 4, 3), self.n % 256, np.uint8), time.perf_counter(), None

    def release(self):
        self.released = True


def test_live_keeps_newest_and_counts_drops():
    cap = Capture(FakeLive(), CaptureConfig()).start()
    seqs = []
    for _ in range(10):
        f = cap.read(timeout=2)
        seqs.append(f.seq)
        time.sleep(0.02)  # 10x slower than the camera
        age = time.perf_counter() - f.t
        assert age < 0.1  # fresh (a queue would hand out ever older frames: ~0.2 s old by the 10th)
    cap.stop()
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    assert cap.dropped > 30 and cap.source.released


def test_live_source_that_comes_back():
    src = FakeLive(stop_after=5, fail_opens=2)
    cap = Capture(src, CaptureConfig(reconnect_attempts=5, reconnect_delay_s=0.01)).start()
    got = 0
    while got < 20 and cap.read(timeout=2) is not None:
        got += 1
    cap.stop()
    assert got == 20 and cap.reconnects == 3 and cap.error is None


def test_live_source_that_disappears_ends_cleanly():
    src = FakeLive(stop_after=5, fail_opens=100)
    cap = Capture(src, CaptureConfig(reconnect_attempts=3, reconnect_delay_s=0.01)).start()
    n = 0
    while cap.read(timeout=5) is not None:
        n += 1
    assert 1 <= n <= 5 and cap.ended and cap.reconnects == 3
    assert "gave up after 3 reconnect attempts" in cap.error


def test_stream_url_then_server_goes_away(tmp_path):
    write_video(tmp_path / "clip.mp4")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/clip.mp4"
    cap = Capture(url, CaptureConfig(reconnect_attempts=2, reconnect_delay_s=0.01))
    assert isinstance(cap.source, VideoSource) and cap.source.kind == "stream" and cap.latest_only
    srv.shutdown()
    srv.server_close()
    cap.start()
    n = 0
    while cap.read(timeout=5) is not None:
        n += 1
    assert n >= 1 and n + cap.dropped == 20  # the stream delivered what it had, then reconnects failed
    assert "gave up" in cap.error


def test_stop_while_consumer_is_slow(tmp_path):
    cap = Capture(str(write_video(tmp_path / "clip.mp4")), queue_size=1).start()
    cap.read(timeout=2)
    cap.stop()  # the thread is blocked on a full queue: it must still exit
    assert not cap._thread.is_alive()


def test_real_clip():
    path = DATA / "runner_side.mp4"
    if not path.exists():
        pytest.skip("shared test video not present")
    cap = Capture(str(path)).start()
    frames = [cap.read(timeout=5) for _ in range(5)]
    cap.stop()
    assert all(f is not None and f.image.ndim == 3 for f in frames)
    assert [f.seq for f in frames] == list(range(5))
