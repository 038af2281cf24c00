"""ZeroMQ publisher and subscriber on 127.0.0.1 with a random port: newest-only, meta, never blocking."""

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from realtime_hmr.stream import schema  # noqa: E402
from realtime_hmr.stream.zmq_pub import ZmqPublisher  # noqa: E402
from realtime_hmr.stream.zmq_sub import ZmqSubscriber  # noqa: E402
from realtime_hmr.types import BodyResult, Frame, Person  # noqa: E402

FACES = np.array([[0, 1, 2], [2, 3, 0]])


def make(seq, n_vertices=4, n_persons=1):
    image = np.zeros((48, 64, 3), np.uint8)
    persons = [Person(id=10 + k, box=np.array([0, 0, 5, 5.0]), score=0.9,
                      body=BodyResult(joints=np.full((24, 3), seq + k, float),
                                      vertices=np.full((n_vertices, 3), 0.5)))
               for k in range(n_persons)]
    return Frame(image=image, t=time.perf_counter(), seq=seq), persons


@pytest.fixture
def pub():
    p = ZmqPublisher("tcp://127.0.0.1:*", joint_names=[f"j{i}" for i in range(24)], faces=FACES,
                     meta_interval_s=0.05)
    yield p
    p.close()


def connect(pub, **kw):
    """A subscriber that has joined (publishes until it hears something: ZeroMQ's slow joiner)."""
    sub = ZmqSubscriber(pub.address, **kw)
    for seq in range(200):
        pub(*make(seq))
        if sub.recv_latest(timeout=0.02) is not None:
            return sub
    sub.close()
    raise AssertionError("subscriber never joined")


def test_round_trip_meta_ids_latency(pub):
    sub = connect(pub)
    time.sleep(0.1)  # past meta_interval_s: the next publish re-sends the meta message
    pub(*make(1000, n_persons=2))
    msg = sub.recv_latest(timeout=2)
    while msg.header["seq"] != 1000:
        msg = sub.recv_latest(timeout=2)
    assert msg.topic == schema.TOPIC_POSE and "vertices" not in msg.names
    assert msg.header["ids"] == [10, 11]
    np.testing.assert_array_equal(msg.array("joints")[1], np.full((24, 3), 1001, np.float32))
    latency = time.time() - msg.header["t_capture_wall"]
    assert 0 <= latency < 2
    if sub.meta is None:
        sub.poll_meta(timeout=2)
    assert sub.meta is not None and sub.meta_id == msg.header["meta_id"]
    np.testing.assert_array_equal(sub.meta.array("faces"), FACES)
    assert sub.meta.header["joint_names"][0] == "j0"
    sub.close()


def test_frame_topic_carries_vertices(pub):
    sub = connect(pub, topic=schema.TOPIC_FRAME, meta=False)
    pub(*make(1))
    msg = sub.recv_latest(timeout=2)
    assert msg.topic == schema.TOPIC_FRAME and msg.array("vertices").shape == (1, 4, 3)
    assert sub.meta is None  # not subscribed to meta
    sub.close()


def test_conflate_keeps_only_newest(pub):
    sub = connect(pub)
    for seq in range(300, 400):
        pub(*make(seq))
        time.sleep(0.001)  # a 100-frame burst at full speed could overrun the publisher's own queue
    time.sleep(0.3)  # let everything arrive; the subscriber has not read any of it
    msg = sub.recv_latest(timeout=2)
    assert msg.header["seq"] == 399
    assert sub.recv_latest(timeout=0.1) is None  # nothing older is handed out afterwards
    sub.close()


def test_subscriber_that_never_reads_does_not_block(pub):
    idle = ZmqSubscriber(pub.address, topic=schema.TOPIC_FRAME, conflate=False)  # connected, never reads
    big = make(0, n_vertices=13718)
    done = threading.Event()

    def publish():
        for seq in range(500):  # ~80 MB of vertices for a reader that never reads
            big[0].seq = seq
            pub(*big)
        done.set()

    threading.Thread(target=publish, daemon=True).start()
    assert done.wait(60), "publishing blocked on a subscriber that does not read"
    assert pub.sent >= 1000
    idle.close()


def test_bind_error_is_clear(pub):
    with pytest.raises(RuntimeError, match="cannot bind"):
        ZmqPublisher(pub.address)


def test_drain_returns_newest_queued(pub):
    sub = connect(pub, conflate=False, meta=False)
    time.sleep(0.1)
    while sub.recv(timeout=0.05) is not None:  # empty the queue
        pass
    for seq in range(600, 610):
        pub(*make(seq))
        time.sleep(0.001)
    time.sleep(0.2)
    assert sub.recv_latest(timeout=2).header["seq"] == 609
    assert sub.skipped == 9
    sub.close()


def test_recv_in_order_without_conflate(pub):
    sub = connect(pub, conflate=False, meta=False)
    time.sleep(0.1)
    while sub.recv(timeout=0.05) is not None:  # empty the queue
        pass
    for seq in range(500, 506):  # fewer than the publisher's send high-water mark (10): none may be dropped
        pub(*make(seq))
        time.sleep(0.01)
    seqs = [sub.recv(timeout=2).header["seq"] for _ in range(6)]
    assert seqs == list(range(500, 506))
    sub.close()


def test_listen_command_and_example_consumer(pub, tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    from realtime_hmr.cli import main

    stop = threading.Event()

    def publish():
        seq = 0
        while not stop.is_set():
            pub(*make(seq, n_persons=2))
            seq += 1
            time.sleep(0.01)

    threading.Thread(target=publish, daemon=True).start()
    path = Path(__file__).parents[1] / "integrations" / "consumers" / "zmq_subscriber.py"
    try:
        report = tmp_path / "listen.json"
        assert main(["listen", "--zmq", pub.address, "--count", "5", "--timeout", "5", "--report", str(report)]) == 0
        r = json.loads(report.read_text())
        assert r["frames"] == 5 and r["persons_max"] == 2 and 0 <= r["latency_ms"]["p95"] < 2000
        assert "persons [10, 11]" in capsys.readouterr().out
        out = subprocess.run([sys.executable, str(path), "--zmq", pub.address, "--count", "40", "--timeout", "5"],
                             capture_output=True, text=True, timeout=60).stdout
        assert "person 11: j0 at" in out and "meta: 24 joints, 2 faces" in out
    finally:
        stop.set()
    assert main(["listen", "--zmq", "tcp://127.0.0.1:1", "--timeout", "0.2"]) == 1

    spec = importlib.util.spec_from_file_location("zmq_subscriber", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from test_stream_schema import GOLDEN_FRAME

    topic, header, data = mod.decode(GOLDEN_FRAME)
    ours = schema.decode(GOLDEN_FRAME)
    assert topic == ours.topic and header == ours.header
    np.testing.assert_array_equal(mod.array(header, data, "joints"), ours.array("joints"))
    assert mod.array(header, data, "rotations") is None
