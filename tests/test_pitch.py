"""Pitch analysis (``realtime-hmr pitch``) on an authored pitch whose events and stride are known by construction."""

import json

import numpy as np
import pytest

from realtime_hmr import pitch as P

FPS = 240.0


def camera(eye, target=(0.6, 0.0, 0.9)):
    from realtime_hmr.train import camera as C

    R, t = C.look_at(np.asarray(eye, float), np.asarray(target, float))
    return R, t


@pytest.fixture(scope="module")
def motion(body):
    from realtime_hmr.train.pitch_clip import motion_joints, pitch_motion

    m = pitch_motion(body, FPS)
    return m, motion_joints(body, m)


def in_camera(J, eye=(0.6, -3.4, 1.1)):
    R, t = camera(eye)
    return J @ R.T + t, R @ np.array([0.0, 0.0, 1.0])


def test_height_ratio_matches_the_body(body):
    J = body.joints(body.template, "smpl24")
    n = body.joint_names
    head_ankle = J[n.index("head"), 2] - J[n.index("right_ankle"), 2]
    assert np.ptp(body.template[:, 2]) / head_ankle == pytest.approx(P.HEIGHT_PER_HEAD_ANKLE, abs=0.005)


def test_events_and_stride_of_the_authored_pitch(body, motion):
    m, J = motion
    Jc, up = in_camera(J)
    r = P.analyze(Jc, up, fps=FPS)
    ev = {k: v["frame"] for k, v in r["events"].items()}
    assert r["hand"] == "right"
    assert abs(ev["foot_contact"] - m.events["contact"]) <= 2  # the frame the lead foot is pinned
    assert abs(ev["leg_lift"] - m.events["lift"]) <= 5  # the keyframe of the highest knee
    assert m.events["contact"] < ev["max_external_rotation"] < ev["release"] <= m.events["release"] + 2
    mt = r["metrics"]
    assert mt["stride_length_m"] == pytest.approx(m.stride, abs=0.03)  # the feet are pinned m.stride apart
    height = np.ptp(body.rest(m.betas[None])[0][0][:, 2])
    assert mt["height_m"] == pytest.approx(height, rel=0.03)
    # the spine is twisted 40 degrees against the pelvis at contact (shoulders closed)
    assert mt["hip_shoulder_separation_foot_contact_deg"] == pytest.approx(40.0, abs=6.0)
    assert mt["max_external_rotation_deg"] > 120.0  # laid back (the rig turns the humerus 165 degrees there)
    assert 10.0 < mt["trunk_lateral_tilt_release_deg"] < 40.0  # bent 25 degrees towards the glove side
    seq = r["kinematic_sequence"]
    assert seq["in_order"]
    assert seq["pelvis"]["peak_deg_s"] < seq["trunk"]["peak_deg_s"] < seq["elbow_extension"]["peak_deg_s"]
    text = P.summary(r)
    assert "right-handed" in text and "Hip-shoulder separation" in text


def test_mirrored_pitch_is_left_handed_with_the_same_numbers(body, motion):
    from realtime_hmr.train.pitch_clip import motion_joints, pitch_motion

    m, J = motion
    ml = pitch_motion(body, FPS, left=True)
    Jc, up = in_camera(J)
    a = P.analyze(Jc, up, fps=FPS)
    Jl, up = in_camera(motion_joints(body, ml), eye=(-0.6, -3.4, 1.1))
    b = P.analyze(Jl, up, fps=FPS)
    assert b["hand"] == "left"
    assert {k: v["frame"] for k, v in a["events"].items()} == {k: v["frame"] for k, v in b["events"].items()}
    for k in ("stride_length_m", "hip_shoulder_separation_foot_contact_deg", "max_external_rotation_deg",
              "lead_knee_flexion_foot_contact_deg", "arm_slot_release_deg"):
        assert b["metrics"][k] == pytest.approx(a["metrics"][k], abs=1.0), k


def test_any_camera_gives_the_same_pitch(motion):
    _, J = motion
    a = P.analyze(*in_camera(J, eye=(0.6, -3.4, 1.1)), fps=FPS)
    b = P.analyze(*in_camera(J, eye=(3.0, -2.5, 1.6)), fps=FPS)  # further round and higher
    assert abs(a["events"]["foot_contact"]["frame"] - b["events"]["foot_contact"]["frame"]) <= 1
    for k in ("stride_length_m", "hip_shoulder_separation_foot_contact_deg", "lead_knee_flexion_release_deg"):
        assert b["metrics"][k] == pytest.approx(a["metrics"][k], abs=1.0), k


def test_noise_and_jumps_are_filtered(motion):
    m, J = motion
    Jc, up = in_camera(J)
    rng = np.random.default_rng(0)
    noisy = Jc + rng.normal(0, 0.01, Jc.shape)  # 1 cm per joint and frame
    jump = rng.random(len(Jc)) < 0.03  # and 3 % of the frames thrown 30 cm off as a whole
    noisy[jump] += rng.normal(0, 0.3, (jump.sum(), 1, 3))
    noisy[150:153] = np.nan  # a short gap
    r = P.analyze(noisy, up, fps=FPS)
    clean = P.analyze(Jc, up, fps=FPS)
    assert r["hand"] == "right"
    for k in ("leg_lift", "foot_contact", "release"):
        assert abs(r["events"][k]["frame"] - clean["events"][k]["frame"]) <= 4, k
    assert r["metrics"]["stride_length_m"] == pytest.approx(m.stride, abs=0.05)
    assert r["metrics"]["wrist_speed_release_m_s"] == pytest.approx(clean["metrics"]["wrist_speed_release_m_s"],
                                                                   rel=0.15)


def test_swapped_limbs_are_relabelled(motion):
    _, J = motion
    Jc, _ = in_camera(J)
    bad = Jc.copy()
    L, R = [18, 20, 22], [19, 21, 23]
    bad[200:204, L + R] = bad[200:204, R + L]
    fixed, undone = P.unswap(bad)
    assert undone == 4
    np.testing.assert_array_equal(fixed, Jc)
    assert P.unswap(Jc)[1] == 0


def test_what_is_not_a_pitch_is_a_clear_error(motion):
    _, J = motion
    Jc, up = in_camera(J)
    with pytest.raises(P.PitchError, match="too short"):
        P.analyze(Jc[:20], up, fps=FPS)
    still = np.repeat(Jc[:1], 200, axis=0)
    with pytest.raises(P.PitchError, match="no foot contact"):
        P.analyze(still, up, fps=FPS)
    slow = Jc.copy()
    slow[:, [20, 21, 22, 23]] = slow[:1, [20, 21, 22, 23]] + (slow[:, :1] - slow[:1, :1])  # hands carried along
    with pytest.raises(P.PitchError, match="no throw"):
        P.analyze(slow, up, fps=FPS)
    gap = Jc.copy()
    gap[100:160] = np.nan
    with pytest.raises(P.PitchError, match="missing for 60 frames"):
        P.analyze(gap, up, fps=FPS)
    with pytest.raises(P.PitchError, match="camera space"):
        P.analyze(J - np.array([0.0, 0.0, 5.0]), fps=FPS)
    with pytest.raises(P.PitchError, match="expected"):
        P.analyze(Jc[:, :10], up, fps=FPS)


def recording(path, J, fps):
    """A file as `realtime-hmr run --record` writes it (the fields the pitch command reads)."""
    n = len(J)
    np.savez(path, frame=np.arange(n), person_id=np.zeros(n, np.int64), joints=J.astype(np.float32),
             frame_seq=np.arange(n), frame_source_t=np.arange(n) / fps, t=np.arange(n) / fps)


def test_cli_on_a_recording(tmp_path, motion, capsys):
    from realtime_hmr.cli import main

    _, J = motion
    Jc, up = in_camera(J)
    rec = tmp_path / "rec.npz"
    recording(rec, Jc, FPS)
    out = tmp_path / "pitch.json"
    plot = tmp_path / "pitch.png"
    args = [str(rec), "--report", str(out), "--up", ",".join(map(str, up))]
    args += ["--plot", str(plot)] if __import__("importlib").util.find_spec("matplotlib") else []
    assert main(["pitch", *args]) == 0
    report = json.loads(out.read_text())
    assert report["person_id"] == 0 and report["hand"] == "right"
    assert report["fps"] == pytest.approx(FPS)
    assert len(report["curves"]["t_s"]) == len(J)
    assert "Kinematic sequence" in capsys.readouterr().out
    if "--plot" in args:
        assert plot.stat().st_size > 10_000
    assert main(["pitch", str(rec), "--person", "3"]) == 2  # no such person: a clear error
    assert main(["pitch", str(rec), "--up", "up"]) == 2
    assert main(["pitch", str(rec), "--frames-png", str(tmp_path / "f.png")]) == 2  # a recording holds no images


def test_cli_without_a_pitch_says_so(tmp_path, capsys):
    from realtime_hmr.cli import DEMO_CLIP, main

    out = tmp_path / "r.json"
    code = main(["pitch", str(DEMO_CLIP), "--max-frames", "40", "--report", str(out), "--no-progress"])
    assert code == 1
    assert "no pitch found" in capsys.readouterr().err
    assert json.loads(out.read_text())["error"] == "no pitch found"
    bad = tmp_path / "not_a_recording.npz"
    np.savez(bad, x=np.zeros(3))
    assert main(["pitch", str(bad)]) == 2


def test_event_sheet_draws_the_frames(tmp_path):
    import cv2

    from realtime_hmr.cli import DEMO_CLIP
    from realtime_hmr.offline import Tracks, event_sheet

    J = np.zeros((10, 24, 3))
    J[..., 2] = 4.0
    J[..., 0] = np.linspace(-0.5, 0.5, 24)
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    tracks = Tracks(30.0, 10, {0: J}, K=K, source=str(DEMO_CLIP))
    out = tmp_path / "events.png"
    event_sheet(tracks, 0, {"foot_contact": 3, "release": 7, "max_external_rotation": None}, out, width=320)
    img = cv2.imread(str(out))
    assert img.shape[1] == 640  # two frames side by side


def test_rendered_pitch_end_to_end(tmp_path):
    """The authored pitch rendered (120 fps) through the command: the events and stride it measures reliably."""
    from conftest import require_renderer

    require_renderer()
    from realtime_hmr.cli import main
    from realtime_hmr.train.pitch_clip import make_clip

    meta = make_clip(tmp_path, fps=120.0)
    out = tmp_path / "pitch.json"
    assert main(["pitch", str(tmp_path / "pitch.mp4"), "--report", str(out), "--no-progress"]) == 0
    r = json.loads(out.read_text())
    ev = meta["events_frame"]
    assert r["hand"] == "right"
    assert abs(r["events"]["foot_contact"]["frame"] - ev["contact"]) <= 3  # 25 ms; measured 0-8 ms
    assert abs(r["events"]["leg_lift"]["frame"] - ev["lift"]) <= 4  # 33 ms; measured 0-13 ms
    assert r["metrics"]["stride_length_m"] == pytest.approx(meta["stride_m"], abs=0.12)  # measured 2-6 cm
