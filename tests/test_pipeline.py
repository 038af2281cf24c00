"""The loop with fake stages (tests only): order, batching, timing, errors, drops, clean shutdown + recording."""

import sys
import threading
import time
from pathlib import Path

import numpy as np

from realtime_hmr import record
from realtime_hmr.capture import Capture
from realtime_hmr.config import CaptureConfig
from realtime_hmr.pipeline import Pipeline
from realtime_hmr.record import Recorder
from realtime_hmr.types import BodyResult, Person

sys.path.insert(0, str(Path(__file__).parent))
from test_capture import FakeLive, write_video  # noqa: E402


def detect(frame, persons):
    assert persons == []
    return [Person(id=k, box=np.array([0, 0, 1, 1.0]), score=0.9) for k in range(3)]


class Mesh:
    def __init__(self):
        self.batches = []

    def __call__(self, frame, persons):
        self.batches.append(len(persons))
        return [Person(p.id, p.box, p.score, body=BodyResult(joints=np.full((24, 3), frame.seq, float)))
                for p in persons]


class Collect:
    def __init__(self):
        self.got, self.closed = [], False

    def __call__(self, frame, persons):
        self.got.append((frame.seq, [p.id for p in persons]))

    def close(self):
        self.closed = True


def test_file_end_to_end_with_recording(tmp_path):
    mesh, sink = Mesh(), Collect()
    rec = Recorder(tmp_path / "r.npz", joint_names=[f"j{i}" for i in range(24)])
    cap = Capture(str(write_video(tmp_path / "c.mp4", n=30)))
    report = Pipeline(cap, [("detect", detect), ("mesh", mesh)], [("collect", sink), ("record", rec)]).run()
    assert [s for s, _ in sink.got] == list(range(30)) and all(ids == [0, 1, 2] for _, ids in sink.got)
    assert mesh.batches == [3] * 30  # every person of a frame in one call
    assert report["frames"] == 30 and report["frames_with_person"] == 30 and report["persons_max"] == 3
    assert report["dropped_frames"] == 0 and report["errors"] == {} and not report["interrupted"]
    assert set(report["latency_ms"]["per_stage"]) == {"detect", "mesh", "collect", "record"}
    since = report["latency_ms"]["since_capture"]
    assert since["detect"]["p50"] <= since["mesh"]["p50"] <= since["record"]["p50"]
    assert report["latency_ms"]["p95"] >= since["mesh"]["p95"] > 0 and report["fps"] > 0
    assert sink.closed
    d = record.load(tmp_path / "r.npz")
    assert d["joints"].shape == (90, 24, 3) and d["frame_seq"].tolist() == list(range(30))


def test_failing_stage_and_sink_do_not_stop_the_loop(tmp_path):
    def flaky(frame, persons):
        if frame.seq % 3 == 0:
            raise ValueError("bad frame")
        return persons

    def bad_sink(frame, persons):
        raise RuntimeError("receiver gone")

    sink = Collect()
    report = Pipeline(Capture(str(write_video(tmp_path / "c.mp4", n=12))), [("detect", detect), ("flaky", flaky)],
                      [("bad", bad_sink), ("collect", sink)]).run()
    assert report["frames"] == 12 and report["errors"] == {"flaky": 4, "bad": 12}
    assert [ids for _, ids in sink.got][:2] == [[], [0, 1, 2]]


def test_max_frames(tmp_path):
    sink = Collect()
    report = Pipeline(Capture(str(write_video(tmp_path / "c.mp4", n=20))), [detect], [sink], max_frames=5,
                      progress=True).run()
    assert report["frames"] == 5 and len(sink.got) == 5


def test_ctrl_c_closes_sinks_and_keeps_recording(tmp_path):
    rec = Recorder(tmp_path / "r.npz", joint_names=["a"], chunk_frames=4)

    def interrupt_at_10(frame, persons):
        if frame.seq == 10:
            raise KeyboardInterrupt

    report = Pipeline(Capture(str(write_video(tmp_path / "c.mp4", n=40))), [detect], [rec, interrupt_at_10]).run()
    assert report["interrupted"] and 10 <= report["frames"] < 40
    d = record.load(tmp_path / "r.npz")
    assert d["frame_seq"].tolist()[:11] == list(range(11))


def test_live_source_slow_stage_drops_only_at_capture():
    def slow(frame, persons):
        time.sleep(0.02)
        return persons

    sink = Collect()
    cap = Capture(FakeLive(period=0.002))
    report = Pipeline(cap, [("slow", slow)], [sink], max_frames=15).run()
    seqs = [s for s, _ in sink.got]
    assert report["frames"] == 15 and seqs == sorted(seqs) and report["dropped_frames"] > 15
    assert report["latency_ms"]["p95"] < 200  # newest frames, not a growing backlog


def test_stream_disappears_run_ends_cleanly_with_recording(tmp_path):
    rec = Recorder(tmp_path / "r.npz", joint_names=["a"])
    cap = Capture(FakeLive(stop_after=8, fail_opens=100), CaptureConfig(reconnect_attempts=2, reconnect_delay_s=0.01))
    report = Pipeline(cap, [detect], [rec]).run()
    assert "gave up" in report["capture_error"] and 1 <= report["frames"] <= 8
    assert len(record.load(tmp_path / "r.npz")["frame_seq"]) == report["frames"]


def test_stop_from_another_thread():
    sink = Collect()
    p = Pipeline(Capture(FakeLive(period=0.005)), [detect], [sink])
    threading.Timer(0.3, p.stop).start()
    report = p.run()
    assert report["frames"] > 0 and sink.closed and not report["interrupted"]
