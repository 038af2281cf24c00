"""The assembled live loop: ``realtime-hmr demo`` and ``run`` end to end on the bundled clip, and their errors."""

import json
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.conftest import REPO

DEMO = REPO / "realtime_hmr" / "assets" / "demo" / "demo.mp4"
pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="no demo clip shipped")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, cwd, **env):
    env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "realtime_hmr", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_demo_writes_preview_recording_report_and_streams(tmp_path):
    import zmq

    from realtime_hmr.stream import schema

    addr = f"tcp://127.0.0.1:{free_port()}"
    got = []
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 200)
    sub.connect(addr)
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            try:
                got.append(schema.decode(sub.recv()))
            except zmq.Again:
                pass

    th = threading.Thread(target=listen, daemon=True)
    th.start()
    out = cli("demo", "--max-frames", "40", "--zmq", addr, "--no-progress", "--report", "r.json", cwd=tmp_path)
    stop.set()
    th.join(2)
    sub.close()
    assert out.returncode == 0, out.stderr
    d = tmp_path / "realtime_hmr_demo"
    assert (d / "preview.mp4").stat().st_size > 10_000
    rep = json.loads((d / "report.json").read_text())
    for k in ("frames", "frames_with_person", "persons_max", "fps", "latency_ms", "dropped_frames", "backend",
              "device"):
        assert k in rep, k
    assert rep["frames"] == 40 and rep["frames_with_person"] >= 30 and rep["persons_max"] >= 1
    assert {"p50", "p95", "per_stage"} <= set(rep["latency_ms"]) and "perception" in rep["latency_ms"]["per_stage"]
    with np.load(d / "recording.npz", allow_pickle=False) as z:
        assert len(np.unique(z["frame_seq"])) == 40 and len(z["person_id"]) >= 30
    frames = [m for m in got if m.topic.startswith("hmr.frame") or m.topic.startswith("hmr.pose")]
    assert frames, f"no frames received on {addr}"
    m = frames[-1]
    lm = m.array("landmarks_2d")
    assert m.header["ids"] and lm.shape[0] == len(m.header["ids"]) and lm.shape[1] == 33
    assert np.isfinite(lm).all() and (lm[..., 0] >= -50).all() and (lm[..., 0] <= 690).all()  # pixels of 640 wide
    # the shipped mesh model joins the loop: every person goes out with a body (24 joints, metres, camera space)
    assert rep["mesh"] == "mesh recovered for every person" and "mesh" in rep["latency_ms"]["per_stage"]
    joints = m.array("joints")
    assert joints.shape == (len(m.header["ids"]), 24, 3) and np.isfinite(joints).all()
    assert (joints[..., 2] > 0.5).all() and (joints[..., 2] < 30).all()  # in front of the camera, at a sane depth


def test_run_with_unreadable_source_fails_clearly(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    out = cli("run", "--source", str(bad), "--zmq", "off", "--no-progress", cwd=tmp_path)
    assert out.returncode != 0 and "error" in out.stderr.lower()
    out = cli("run", "--source", str(tmp_path / "missing.mp4"), "--zmq", "off", cwd=tmp_path)
    assert out.returncode != 0 and "not found" in out.stderr


def test_stochastic_mode_is_refused_without_a_mesh_model(tmp_path):
    out = cli("run", "--source", str(DEMO), "--mode", "stochastic", "--zmq", "off", cwd=tmp_path,
              REALTIME_HMR_MEGA_DIR=str(tmp_path / "no_decoder_here"))
    assert out.returncode == 2 and "mesh model" in out.stderr and "no_decoder_here" in out.stderr


def test_vmc_carries_the_humanoid_pose_of_a_body(body):
    """A body in the T-pose, facing the camera, goes out over VMC as identity bone rotations (decoded by python-osc)."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer
    from scipy.spatial.transform import Rotation

    from realtime_hmr.body import Humanoid
    from realtime_hmr.live import CAMERA_TO_WORLD, vmc_pose
    from realtime_hmr.stream.osc_out import VMCSender
    from realtime_hmr.types import BodyResult, Frame, Person

    hum = Humanoid(body)
    _, W = body.pose(hum.tpose_deltas()[None])
    W = W[0].copy()
    W[:, :, 3] += [0.0, 2.0, 0.0]  # 2 m from the camera along the body frame's +Y (away from the camera)
    cam = CAMERA_TO_WORLD.T @ W  # the same bones in camera space
    got = {}
    disp = Dispatcher()
    disp.map("/VMC/Ext/Bone/Pos", lambda addr, name, *v: got.__setitem__(name, v))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), disp)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    sender = VMCSender("127.0.0.1", server.server_address[1], pose_of=lambda p: vmc_pose(hum, p),
                       rest_offsets=hum.rest_offsets)
    person = Person(id=7, box=np.zeros(4), score=1.0,
                    body=BodyResult(joints=np.zeros((24, 3)), extras={"bone_poses": cam}))
    frame = Frame(image=np.zeros((4, 4, 3), np.uint8), t=0.0, seq=0)
    for _ in range(50):
        sender(frame, [person])
        if len(got) >= 50:
            break
        threading.Event().wait(0.02)
    sender.close()
    server.shutdown()
    assert {"Hips", "LeftUpperArm", "RightLowerLeg", "Head"} <= set(got)
    for name, v in got.items():
        angle = np.degrees(Rotation.from_quat(v[3:7]).magnitude())
        assert angle < 0.5, (name, angle)
    # the hips' position (Unity: y up, z forward of the avatar): 2 m behind the camera's image plane, at z = -2
    hips = np.array(got["Hips"][:3])
    assert abs(hips[2] + 2.0) < 0.05 and abs(hips[0]) < 0.05


def test_perception_settings_reach_the_tracker(tmp_path):
    """The [perception] section (TOML or flags) sets the tracker the loop runs, with the mesh model on top of it;
    --flip-test mirrors both the landmark crops and the mesh decoder's input; --fit turns the 2D fit on."""
    from realtime_hmr.cli import build_parser, live_config
    from realtime_hmr.live import Outputs, build

    toml = tmp_path / "c.toml"
    toml.write_text("[perception]\ndetect_every = 3\nmin_presence = 0.7\nmin_detection_score = 0.6\ntiles = [3, 1]\n")
    args = build_parser().parse_args(["run", "--source", str(DEMO), "--config", str(toml), "--zmq", "off",
                                      "--flip-test", "--fit", "--max-persons", "2", "--tiles", "2x1"])
    pipe = build(live_config(args).replace("capture", source=args.source), Outputs())
    try:
        tracker = dict(pipe.stages)["perception"].tracker
        assert (tracker.cfg.detect_every, tracker.cfg.min_presence, tracker.cfg.max_persons) == (3, 0.7, 2)
        assert tracker.detector.cfg.min_score == 0.6 and tracker.landmarker.cfg.flip_test
        assert tracker.detector.cfg.tiles == (2, 1)  # --tiles 2x1 over the TOML's [3, 1]
        mesh = dict(pipe.stages)["mesh"].__self__
        assert mesh.tracker is tracker and mesh.mirror_test  # --flip-test mirrors the decoder's input too
        assert mesh.fit  # --fit: each body refined on its 2D landmarks
        assert not mesh.silhouette and not tracker.cfg.mask
    finally:
        pipe.capture.stop()


def test_silhouette_flag_segments_and_fits(tmp_path):
    """--silhouette: the tracker segments each person and the fit (turned on by it) matches the silhouettes; the same
    from the TOML file's [mesh] silhouette."""
    from realtime_hmr.cli import build_parser, live_config
    from realtime_hmr.config import MeshConfig, load_config
    from realtime_hmr.live import Outputs, build

    args = build_parser().parse_args(["run", "--source", str(DEMO), "--zmq", "off", "--silhouette"])
    cfg = live_config(args)
    assert cfg.mesh.silhouette and cfg.mesh.fit
    pipe = build(cfg.replace("capture", source=args.source), Outputs())
    try:
        tracker = dict(pipe.stages)["perception"].tracker
        mesh = dict(pipe.stages)["mesh"].__self__
        assert tracker.cfg.mask and mesh.fit and mesh.silhouette
    finally:
        pipe.capture.stop()
    (tmp_path / "c.toml").write_text("[mesh]\nsilhouette = true\n")
    assert load_config(tmp_path / "c.toml").mesh.fit
    assert MeshConfig(silhouette=True).fit and not MeshConfig().fit


def test_documented_config_example_loads(tmp_path):
    """The TOML example in docs/live-loop.md is a valid configuration and means what it says."""
    from realtime_hmr.config import load_config, parse_tiles

    text = (REPO / "docs" / "live-loop.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "c.toml").write_text(example)
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.perception.detect_every == 5 and cfg.perception.flip_test and cfg.mesh.mirror_test and cfg.mesh.fit
    assert parse_tiles(cfg.perception.tiles) == (2, 1)
    (tmp_path / "bad.toml").write_text("[perception]\nflip = true\n")
    with pytest.raises(ValueError, match="flip_test"):  # a misspelt key names the known ones
        load_config(tmp_path / "bad.toml")
    for bad in ('"2"', "[2, 0]", '"2xa"', "3"):
        (tmp_path / "bad.toml").write_text(f"[perception]\ntiles = {bad}\n")
        with pytest.raises(ValueError, match="tiles must look like 3x2"):
            load_config(tmp_path / "bad.toml")


def test_parse_tiles():
    from realtime_hmr.config import parse_tiles

    assert parse_tiles("2x1") == parse_tiles("2X1") == parse_tiles([2, 1]) == parse_tiles((2, 1)) == (2, 1)
    with pytest.raises(ValueError, match="got '0x1'"):
        parse_tiles("0x1")
