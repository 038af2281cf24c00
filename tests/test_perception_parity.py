"""Our BlazePose pipeline against MediaPipe's own: the converted torch graph against the tflite interpreter, and the
whole detector + landmark pipeline against MediaPipe's legacy ``Pose`` (static image mode, no smoothing) on real
single-person frames at 640x480. Skips where mediapipe / torch / ai-edge-litert / the shared data are missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime_hmr.runtime import load

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "realtime_hmr" / "assets" / "blazepose"
RUNNER = REPO.parent / "shared" / "data" / "video" / "runner_side.mp4"


def mediapipe_root() -> Path:
    mp = pytest.importorskip("mediapipe")
    return Path(mp.__file__).parent


@pytest.mark.parametrize("name", ["pose_detection", "pose_landmark_full"])
def test_torch_graph_matches_tflite(name, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("tflite")
    from realtime_hmr.models.blazepose import TfliteNet
    from realtime_hmr.train.convert_blazepose import MODELS, graph_spec, tflite_interpreter

    src = mediapipe_root() / MODELS[name][0]
    spec, consts = graph_spec(src, MODELS[name][1])
    net = TfliteNet(spec, {k: torch.from_numpy(v) for k, v in consts.items()}).eval()
    size = spec["shapes"][str(spec["input"])][1]
    x = np.random.default_rng(2).random((1, size, size, 3), dtype=np.float32)
    it = tflite_interpreter(src)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    with torch.no_grad():
        ours = net(torch.from_numpy(x))
    for k, t in spec["outputs"].items():
        ref = it.get_tensor(t)
        assert np.abs(ours[k].numpy() - ref).max() <= 1e-3 * max(1.0, float(np.ptp(ref))), k  # as the converter gates


def frames() -> list[tuple[str, np.ndarray]]:
    import cv2

    out = []
    skd = pytest.importorskip("skimage.data")
    out.append(("astronaut", cv2.resize(cv2.cvtColor(skd.astronaut(), cv2.COLOR_RGB2BGR), (640, 480))))
    if RUNNER.is_file():
        cap = cv2.VideoCapture(str(RUNNER))
        for k in range(180):
            ok, f = cap.read()
            if not ok:
                break
            if k % 30 == 15:
                out.append((f"runner{k}", cv2.resize(f, (640, 480))))
    return out


def test_pipeline_matches_mediapipe_legacy():
    mediapipe_root()
    import cv2
    import mediapipe as mp

    from realtime_hmr.detect import PoseDetector
    from realtime_hmr.landmarks import PoseLandmarker

    det = PoseDetector(load(str(ASSETS / "pose_detection.onnx"), threads=1))
    lmk = PoseLandmarker(load(str(ASSETS / "pose_landmark_full.onnx"), threads=1))
    px, mm, agree = {}, {}, []
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, smooth_landmarks=False) as pose:
        for name, img in frames():
            r = pose.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            d = det(img)
            lm = lmk(img, [d[0].roi]) if d else None
            found = lm is not None and lm.score[0] >= 0.5  # MediaPipe's rule: a detection + pose presence >= 0.5
            agree.append((r.pose_landmarks is not None) == found)
            if r.pose_landmarks is None or not found:
                continue
            ref = np.array([[p.x * 640, p.y * 480] for p in r.pose_landmarks.landmark])
            ref_w = np.array([[p.x, p.y, p.z] for p in r.pose_world_landmarks.landmark])
            src = "runner" if name.startswith("runner") else name
            px.setdefault(src, []).append(np.linalg.norm(lm.image[0, :33, :2] - ref, axis=1))
            mm.setdefault(src, []).append(1000 * np.linalg.norm(lm.world[0, :33] - ref_w, axis=1))
    assert all(agree) and px
    med_px = {k: float(np.median(np.concatenate(v))) for k, v in px.items()}
    med_mm = {k: float(np.median(np.concatenate(v))) for k, v in mm.items()}
    # Targets: <= 1.5 px and <= 5 mm. With crops resampled as MediaPipe does (fixed-point source positions) and
    # its 9x9 heatmap refinement the pipelines agree to the last bits: measured 0.001 px / 0.03 mm (runner),
    # 0.02 px / 0.09 mm (astronaut, upper body only, ROI 1.7x the image). Guarded well under the targets.
    for k in med_px:
        assert med_px[k] <= 0.1 and med_mm[k] <= 1.0, (med_px, med_mm)
    assert {"astronaut"} <= set(med_px)


def test_tracking_mode_matches_mediapipe_video_mode():
    """Our tracker (ROIs from its own landmarks, one-euro ROI filter) against MediaPipe's video mode."""
    mediapipe_root()
    if not RUNNER.is_file():
        pytest.skip(f"{RUNNER} not found")
    import cv2
    import mediapipe as mp

    from realtime_hmr.detect import PoseDetector
    from realtime_hmr.landmarks import PoseLandmarker
    from realtime_hmr.track import PoseTracker, TrackerConfig

    tracker = PoseTracker(PoseDetector(load(str(ASSETS / "pose_detection.onnx"), threads=1)),
                          PoseLandmarker(load(str(ASSETS / "pose_landmark_full_nomask.onnx"), threads=1)),
                          TrackerConfig(detect_every=10**9, max_persons=1))
    cap = cv2.VideoCapture(str(RUNNER))
    px, mm = [], []
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=False) as pose:
        for _ in range(45):
            ok, f = cap.read()
            img = cv2.resize(f, (640, 480))
            ours, r = tracker(img), pose.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            assert len(ours) == 1 and r.pose_landmarks is not None
            ref = np.array([[p.x * 640, p.y * 480] for p in r.pose_landmarks.landmark])
            ref_w = np.array([[p.x, p.y, p.z] for p in r.pose_world_landmarks.landmark])
            px.append(np.linalg.norm(ours[0].landmarks_2d[:, :2] - ref, axis=1))
            mm.append(1000 * np.linalg.norm(ours[0].landmarks_world - ref_w, axis=1))
    assert tracker.stats["detector_runs"] == 1
    # Measured over the 180 frames: 0.04 px and 0.8 mm (without the ROI filter: 0.98 px, 18.7 mm).
    assert np.median(np.concatenate(px)) <= 0.3
    assert np.median(np.concatenate(mm)) <= 3.0
