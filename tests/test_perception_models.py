"""The shipped BlazePose ONNX files through ONNX Runtime: metadata, dynamic batch, batch consistency, the whole
tracker on a real image, and bad input through the whole stack. No torch, no mediapipe needed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from realtime_hmr.runtime import load

ASSETS = Path(__file__).resolve().parents[1] / "realtime_hmr" / "assets" / "blazepose"
NAMES = {"pose_detection": ["boxes", "scores"],
         "pose_landmark_full": ["landmarks", "presence", "segmentation", "heatmap", "world", "features"],
         "pose_landmark_full_nomask": ["landmarks", "presence", "heatmap", "world", "features"]}


def person_image() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    import cv2

    return cv2.resize(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (640, 480))


@pytest.fixture(scope="module")
def tracker_parts():
    from realtime_hmr.detect import PoseDetector
    from realtime_hmr.landmarks import PoseLandmarker

    return (PoseDetector(load(str(ASSETS / "pose_detection.onnx"), threads=1)),
            PoseLandmarker(load(str(ASSETS / "pose_landmark_full.onnx"), threads=1)))


@pytest.mark.parametrize("name", NAMES)
def test_assets_have_metadata_and_notice(name):
    meta = json.loads((ASSETS / f"{name}.json").read_text())
    assert meta["license"].startswith("Apache-2.0") and "convert_blazepose" in meta["command"]
    assert list(meta["outputs"]) == NAMES[name] and meta["inputs"]["input"][0] == "batch"
    errs = meta["metrics"]["max_diff_vs_tflite_rel_to_range"]["onnxruntime"]
    assert max(errs.values()) < 1e-3
    assert meta["storage"].split()[0].isdigit() and int(meta["storage"].split()[0]) > 100  # fp16-stored weights
    assert "Apache License" in (ASSETS / "LICENSE").read_text() and "MediaPipe" in (ASSETS / "NOTICE").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_onnx_batch_axis_is_dynamic_and_consistent(name):
    b = load(str(ASSETS / f"{name}.onnx"), threads=1)
    assert isinstance(b.input_shapes["input"][0], str)  # symbolic, not frozen to the export batch
    assert b.output_names == NAMES[name]
    size = b.input_shapes["input"][1]
    x = np.random.default_rng(1).random((3, size, size, 3), dtype=np.float32)
    together = b.run({"input": x})
    alone = b.run({"input": x[1:2]})
    for k in NAMES[name]:
        assert together[k].shape[0] == 3
        scale = max(1.0, float(np.ptp(alone[k])))
        np.testing.assert_allclose(together[k][1:2] / scale, alone[k] / scale, atol=1e-4)


def test_explicit_unavailable_backend_fails_loudly():
    with pytest.raises(RuntimeError, match="built by the stage"):  # torch comes from the stage, not an ONNX path
        load(str(ASSETS / "pose_detection.onnx"), backend="torch")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError):  # explicit TensorRT without TensorRT installed: a loud error
            load(str(ASSETS / "pose_detection.onnx"), backend="tensorrt")
    with pytest.raises(ValueError, match="unknown backend"):
        load(str(ASSETS / "pose_detection.onnx"), backend="magic")
    with pytest.raises(FileNotFoundError):
        load(str(ASSETS / "missing.onnx"))
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match="no CUDA provider"):
            load(str(ASSETS / "pose_detection.onnx"), device="cuda")
        assert load(str(ASSETS / "pose_detection.onnx")).name == "onnxruntime:CPUExecutionProvider"


def test_detect_and_landmarks_on_a_person(tracker_parts):
    det, lmk = tracker_parts
    img = person_image()
    dets = det(img)
    assert len(dets) == 1 and dets[0].score > 0.5
    lm = lmk(img, [dets[0].roi, dets[0].roi], mask=True)
    assert lm.image.shape == (2, 39, 3) and lm.world.shape == (2, 39, 3)
    np.testing.assert_allclose(lm.image[0], lm.image[1], atol=1e-3)  # one batch, same crop, same answer
    nose, l_sh, r_sh = lm.image[0, 0, :2], lm.image[0, 11, :2], lm.image[0, 12, :2]
    assert 150 < nose[0] < 350 and 30 < nose[1] < 250 and nose[1] < min(l_sh[1], r_sh[1])  # the head is on top
    assert r_sh[0] < l_sh[0]  # image-left is the person's right shoulder
    assert np.abs(lm.world[0, :33]).max() < 1.5 and lm.score[0] > 0.5
    assert lm.mask.shape == (480, 640) and lm.mask[int(nose[1]), int(nose[0])] > 0.5 and lm.mask[470, 630] < 0.5


def test_tracker_end_to_end_and_bad_frames(tracker_parts):
    from realtime_hmr.track import BadFrame, PoseTracker, TrackerConfig

    det, lmk = tracker_parts
    tr = PoseTracker(det, lmk, TrackerConfig(detect_every=3))
    img = person_image()
    a = tr(img)
    assert len(a) == 1 and a[0].landmarks_2d.shape == (33, 3) and a[0].landmarks_world.shape == (33, 3)
    assert a[0].features.shape == (20, 288)  # the landmark net's image features travel with the person
    b = tr(img)  # tracked from its own landmarks (a different ROI): same id, the visible upper body nearly the same
    upper = slice(0, 13)  # face and shoulders; the astronaut's legs are out of the picture
    assert [p.id for p in b] == [0]
    assert np.median(np.linalg.norm(b[0].landmarks_2d[upper, :2] - a[0].landmarks_2d[upper, :2], axis=1)) < 12
    gray = tr(img.mean(2).astype(np.uint8))
    assert [p.id for p in gray] == [0]
    assert len(tr(img.astype(np.uint16) * 257)) == 1
    assert tr(np.zeros((0, 0, 3), np.uint8)) == [] and tr(np.zeros((16, 16, 3), np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)  # a corrupt frame
    tr.reset()
    assert tr(noise) == []
    for bad in (None, b"\x00" * 100, np.zeros((480, 640, 3), np.float64)):
        with pytest.raises(BadFrame):
            tr(bad)
    assert len(tr(img)) == 1  # the loop goes on


def test_nomask_model_agrees_and_refuses_masks(tracker_parts):
    from realtime_hmr.landmarks import PoseLandmarker, load_pose_tracker

    det, full = tracker_parts
    fast = PoseLandmarker(load(str(ASSETS / "pose_landmark_full_nomask.onnx"), threads=1))
    img = person_image()
    roi = det(img)[0].roi
    a, b = full(img, [roi]), fast(img, [roi])
    np.testing.assert_allclose(a.image, b.image, atol=1e-2)
    np.testing.assert_allclose(a.world, b.world, atol=1e-4)
    assert a.features.shape == (1, 20, 288) and np.isfinite(a.features).all() and a.features.std() > 0.01
    np.testing.assert_allclose(a.features, b.features, atol=1e-4)  # the image features: same in both variants
    other = fast(img[:, ::-1].copy(), [roi])  # another image, other features
    assert np.abs(other.features - b.features).mean() > 0.1 * np.abs(b.features).mean()
    with pytest.raises(ValueError, match="segmentation"):
        fast(img, [roi], mask=True)
    tr = load_pose_tracker(threads=1, mask=True)
    persons = tr(img)
    assert len(persons) == 1 and tr.last_mask.shape == img.shape[:2]
    # each person carries its own silhouette; over a window around its box it is the frame's mask
    from realtime_hmr.crop import silhouette_window

    sil = persons[0].silhouette
    assert sil is not None and sil.image_size == (img.shape[1], img.shape[0])
    mask, (x0, y0), unknown = silhouette_window(sil, persons[0].box)
    h, w = mask.shape
    frame = np.zeros((h, w), bool)
    ys, xs = slice(max(y0, 0), min(y0 + h, img.shape[0])), slice(max(x0, 0), min(x0 + w, img.shape[1]))
    frame[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = tr.last_mask[ys, xs] > 0.5
    assert mask.sum() > 1000 and (mask & frame).sum() / (mask | frame).sum() > 0.98
    assert not (mask & unknown).any()
    assert load_pose_tracker(threads=1)(img)[0].silhouette is None  # no segmentation asked for: none


def test_cli_landmarks_on_a_small_video(tmp_path):
    import cv2

    from realtime_hmr.cli import main

    img = person_image()
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for _ in range(3):
        w.write(img)
    w.release()
    report = tmp_path / "r.json"
    assert main(["landmarks", "--source", str(path), "--threads", "1", "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["frames"] == 3 and r["frames_with_person"] == 3 and r["ids"] == [0]
    assert len(r["per_frame"][2][0]["landmarks_2d"]) == 33
    assert main(["landmarks", "--source", str(tmp_path / "nothing.avi")]) == 2


def test_detector_tiles_find_the_far_person_of_the_demo_clip(tracker_parts):
    """The demo clip's first frame holds two people; the whole-frame detector (224 px for 640) scores the smaller one
    under its threshold, two tiles find both."""
    import cv2

    from realtime_hmr.detect import DetectorConfig, PoseDetector

    det, _ = tracker_parts
    cap = cv2.VideoCapture(str(ASSETS.parent / "demo" / "demo.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    full = PoseDetector(det.backend, DetectorConfig(tiles=(1, 1)))(frame)
    tiled = PoseDetector(det.backend, DetectorConfig(tiles=(2, 1)))(frame)
    assert len(full) == 1 and len(tiled) == 2
    centres = sorted(d.keypoints[0, 0] for d in tiled)  # hip centres, x: one person left, one right
    assert centres[0] < 320 < centres[1]


def test_detector_tiles_and_chunked_batches(tracker_parts):
    from realtime_hmr.detect import DetectorConfig, PoseDetector
    from realtime_hmr.runtime import run_batches

    det, _ = tracker_parts
    img = person_image()
    full = det(img)
    tiled = PoseDetector(det.backend, DetectorConfig(tiles=(3, 2)))(img)
    assert len(tiled) >= 1  # tiles see the same person again: merged by NMS, not duplicated
    assert np.linalg.norm(tiled[0].keypoints[0] - full[0].keypoints[0]) < 40

    class Capped:  # a backend with a batch limit (as a TensorRT profile): inputs go through in chunks
        max_batch = 2

        def __init__(self, b):
            self.b, self.calls = b, 0

        def run(self, feeds):
            self.calls += 1
            assert len(feeds["input"]) <= 2
            return self.b.run(feeds)

    capped = Capped(det.backend)
    x = np.random.default_rng(3).random((5, 224, 224, 3), dtype=np.float32)
    got, ref = run_batches(capped, {"input": x}), det.backend.run({"input": x})
    assert capped.calls == 3 and got["scores"].shape == ref["scores"].shape
    np.testing.assert_allclose(got["boxes"], ref["boxes"], rtol=1e-4, atol=1e-3)


def test_flip_test_averages_the_mirrored_crop(tracker_parts):
    """LandmarkConfig(flip_test=True): each crop also runs mirrored; its landmarks come back with left and right
    swapped and x mirrored, and the two are averaged (the auxiliary tracking landmarks stay the unmirrored ones)."""
    from realtime_hmr.landmarks import LandmarkConfig, PoseLandmarker, unflip_average

    pairs = {"eye inner": (1, 4), "eye": (2, 5), "eye outer": (3, 6), "ear": (7, 8), "mouth": (9, 10),
             "shoulder": (11, 12), "elbow": (13, 14), "wrist": (15, 16), "pinky": (17, 18), "index": (19, 20),
             "thumb": (21, 22), "hip": (23, 24), "knee": (25, 26), "ankle": (27, 28), "heel": (29, 30),
             "foot index": (31, 32)}

    def mirrored(x, width):  # what the net says on the mirrored crop: each side where the other side's mirror is
        m = x.copy()
        for left, right in pairs.values():
            m[:, left], m[:, right] = x[:, right], x[:, left]
        m[..., 0] = width - m[..., 0]
        m[:, 33:] = -1  # the auxiliary landmarks of the mirrored run are not used
        return m

    a = np.random.default_rng(0).uniform(0, 256, (2, 39, 5))  # crop pixels, z, visibility and presence logits
    np.testing.assert_allclose(unflip_average(a, mirrored(a, 256), 256), a)
    w = a[..., :3] / 256 - 0.5  # world metres: x = -x
    np.testing.assert_allclose(unflip_average(w, mirrored(w, 0.0), 0.0), w)
    swapped = mirrored(a, 256)[:, [0, 4, 5, 6, 1, 2, 3, *range(7, 39)]]  # eyes left as they are: caught
    assert not np.allclose(unflip_average(a, swapped, 256), a)

    det, _ = tracker_parts
    plain = PoseLandmarker(load(str(ASSETS / "pose_landmark_full_nomask.onnx"), threads=1))
    flip = PoseLandmarker(plain.backend, LandmarkConfig(flip_test=True))
    img = person_image()
    roi = det(img)[0].roi
    p, f = plain(img, [roi]), flip(img, [roi])
    assert f.image.shape == (1, 39, 3) and f.features.shape == (1, 20, 288) and f.score.shape == (1,)
    upper = slice(0, 13)  # the astronaut's face and shoulders: both runs agree to a few pixels
    assert np.median(np.linalg.norm(f.image[0, upper, :2] - p.image[0, upper, :2], axis=1)) < 4
    assert not np.allclose(f.image[0, :33], p.image[0, :33])  # yet it is another estimate
    np.testing.assert_array_equal(f.image[0, 33:], p.image[0, 33:])  # the tracking ROI is the plain run's
    np.testing.assert_allclose(f.features, p.features)
    assert (f.image[0, 12, 0] < f.image[0, 11, 0])  # still the person's right shoulder on the image left
