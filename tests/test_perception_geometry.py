"""Perception maths without any network: ROIs and crops, anchors, decoding, weighted NMS, heatmap refinement,
frame checks and the tracker's id logic (with stand-in detector and landmarker)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime_hmr.crop import Roi, crop, crop_matrix, crop_to_image, iou, letterbox_roi, roi_from_alignment
from realtime_hmr.detect import ANCHORS, decode, tile_rois, weighted_nms
from realtime_hmr.landmarks import Landmarks, refine_from_heatmap
from realtime_hmr.track import AuxSmoother, BadFrame, PoseTracker, TrackerConfig, check_frame


def test_crop_matrix_inverts_crop_to_image():
    roi = Roi(300.0, 200.0, 180.0, 180.0, 0.7)
    uv = np.random.default_rng(0).random((20, 2))
    p = crop_to_image(roi, uv)
    m = crop_matrix(roi, (256, 256))
    back = (m[:, :2] @ p.T).T + m[:, 2]
    np.testing.assert_allclose(back / 256, uv, atol=1e-9)


def test_crop_samples_rotated_content():
    img = np.zeros((200, 200, 3), np.uint8)
    img[40:60, 90:110] = 255  # a bright square above the centre
    # rotation pi: the crop is upside down, so the square lands below the crop centre
    c = crop(img, Roi(100, 100, 120, 120, np.pi), (64, 64))
    ys, xs = np.nonzero(c[..., 0] > 128)
    assert ys.mean() > 40 and abs(xs.mean() - 31.5) < 3


def test_alignment_roi_upright_and_rotated():
    roi = roi_from_alignment(np.array([100.0, 200.0]), np.array([100.0, 100.0]), 1.25)
    assert roi.rotation == pytest.approx(0.0) and roi.w == pytest.approx(250.0) and (roi.cx, roi.cy) == (100.0, 200.0)
    lying = roi_from_alignment(np.array([100.0, 100.0]), np.array([200.0, 100.0]), 1.0)  # head to the right
    assert lying.rotation == pytest.approx(np.pi / 2)


def test_letterbox_and_tiles():
    r = letterbox_roi(640, 480)
    assert (r.cx, r.cy, r.w, r.h) == (320, 240, 640, 640)
    rois = tile_rois(768, 576, (3, 2), 0.25)
    assert len(rois) == 7
    boxes = np.array([x.box() for x in rois[1:]])
    assert boxes[:, 0].min() == pytest.approx(0) and boxes[:, 2].max() == pytest.approx(768)


def test_anchors_match_mediapipe_layout():
    assert ANCHORS.shape == (2254, 2)
    np.testing.assert_allclose(ANCHORS[:2], [[0.5 / 28, 0.5 / 28]] * 2)  # 2 anchors per cell on the 28x28 layer
    np.testing.assert_allclose(ANCHORS[1568], [0.5 / 14, 0.5 / 14])  # 14x14 layer starts after 28*28*2
    np.testing.assert_allclose(ANCHORS[-1], [6.5 / 7, 6.5 / 7])  # 7x7 cells x 6 anchors (3 layers of stride 32)


def test_decode_and_weighted_nms():
    raw = np.zeros((2254, 12), np.float32)
    scores = np.full((2254, 1), -10.0, np.float32)
    i, j = 100, 102  # two neighbouring anchors, same predicted box -> one detection after NMS
    for k, s in ((i, 3.0), (j, 1.0)):
        a = ANCHORS[k]
        raw[k, :4] = [(0.5 - a[0]) * 224, (0.5 - a[1]) * 224, 40, 60]
        raw[k, 4:6] = [(0.5 - a[0]) * 224 + 2 * (k == j), (0.6 - a[1]) * 224]
        scores[k] = s
    boxes, kps, sc = decode(raw, scores, 0.5)
    assert len(sc) == 2
    np.testing.assert_allclose(boxes[0], [0.5 - 20 / 224, 0.5 - 30 / 224, 0.5 + 20 / 224, 0.5 + 30 / 224], atol=1e-6)
    out = weighted_nms(boxes, kps, sc, 0.3)
    assert len(out) == 1
    w = sc / sc.sum()
    assert out[0][2] == pytest.approx(sc.max())
    assert out[0][1][0, 0] == pytest.approx(0.5 + w[list(sc).index(sc.min())] * 2 / 224, abs=1e-6)
    far = boxes + np.array([0.4, 0, 0.4, 0])
    assert len(weighted_nms(np.vstack([boxes, far]), np.vstack([kps, kps]), np.r_[sc, sc], 0.3)) == 2


def test_iou():
    a = np.array([[0, 0, 10, 10]])
    assert iou(a, np.array([[5, 0, 15, 10], [20, 20, 30, 30]]))[0] == pytest.approx([1 / 3, 0])


def test_heatmap_refinement():
    hm = np.full((1, 64, 64, 2), -20.0, np.float32)
    hm[0, 10, 20, 0] = 5.0  # peak at col 20, row 10 for landmark 0
    hm[0, 10, 21, 0] = 5.0
    xy = np.array([[[21.5 / 64, 10.2 / 64], [0.3, 0.3]]])
    out = refine_from_heatmap(xy, hm, 7, 0.5)
    np.testing.assert_allclose(out[0, 0], [20.5 / 64, 10 / 64], atol=1e-4)
    np.testing.assert_allclose(out[0, 1], [0.3, 0.3])  # weak heatmap: left alone
    off = refine_from_heatmap(np.array([[[1.2, 0.5], [-0.1, 0.5]]]), hm, 7, 0.5)
    np.testing.assert_allclose(off[0], [[1.2, 0.5], [-0.1, 0.5]])


def test_heatmap_refinement_keeps_mediapipes_edge_rules():
    hm = np.full((1, 64, 64, 1), -20.0, np.float32)
    hm[0, 61:64, 0:2, 0] = 5.0
    # x just left of the crop truncates to column 0 (C++ int conversion) and is refined
    out = refine_from_heatmap(np.array([[[-0.5 / 64, 62.5 / 64]]]), hm, 9, 0.5)
    np.testing.assert_allclose(out[0, 0], [0.5 / 64, 62 / 64], atol=1e-4)
    # a row just past the bottom is not skipped (MediaPipe compares the column with the height); the window is cut
    out = refine_from_heatmap(np.array([[[1.5 / 64, 65.2 / 64]]]), hm, 9, 0.5)
    np.testing.assert_allclose(out[0, 0], [0.5 / 64, 62 / 64], atol=1e-4)
    # a column past the right edge is skipped
    np.testing.assert_allclose(refine_from_heatmap(np.array([[[64.5 / 64, 0.5]]]), hm, 9, 0.5)[0, 0], [64.5 / 64, 0.5])


def bilinear_fixed_point(img: np.ndarray, roi, size) -> np.ndarray:
    """Reference for :func:`crop`, without OpenCV's remap: each crop pixel's source position from the ROI's corner
    mapping in double precision, rounded to 1/32 px, then bilinear weights in 1/32768 (replicated borders)."""
    W, H = size
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    p = crop_to_image(roi, np.stack([x / W, y / H], -1))
    q = np.rint(p * 32).astype(np.int64)
    x0, y0, fx, fy = q[..., 0] >> 5, q[..., 1] >> 5, (q[..., 0] & 31) / 32, (q[..., 1] & 31) / 32
    hh, ww = img.shape[:2]
    at = lambda yy, xx: img[np.clip(yy, 0, hh - 1), np.clip(xx, 0, ww - 1)].astype(np.int64)  # noqa: E731
    w00, w01 = np.rint((1 - fx) * (1 - fy) * 32768), np.rint(fx * (1 - fy) * 32768)
    w10 = np.rint((1 - fx) * fy * 32768)
    w11 = 32768 - w00 - w01 - w10
    v = (at(y0, x0) * w00[..., None] + at(y0, x0 + 1) * w01[..., None] + at(y0 + 1, x0) * w10[..., None]
         + at(y0 + 1, x0 + 1) * w11[..., None] + 16384) // 32768
    return v.astype(np.uint8)


@pytest.mark.parametrize("roi", [Roi(320, 240, 640, 640), Roi(211.3, 300.7, 517.9, 517.9, 0.0),
                                 Roi(150.2, 90.6, 133.3, 133.3, 0.0)])
def test_crop_resamples_like_mediapipe(roi):
    """Upright ROIs: the crop equals the fixed-point bilinear reference (MediaPipe's resampling) but for the rare
    pixel whose source position sits on a rounding boundary (the ROI's corners go through float32 there). OpenCV's
    warpAffine rounds the sub-pixel positions differently: 2.6-3.8 % of these pixels differ from the reference."""
    img = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    ours = crop(img, roi, (224, 224))
    ref = bilinear_fixed_point(img, roi, (224, 224))
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
    assert (ours != ref).mean() < 2e-3


@pytest.mark.parametrize("bad", [None, "frame", np.zeros((10, 10, 3, 2), np.uint8), np.zeros((64, 64, 5), np.uint8),
                                 np.zeros((64, 64, 3), np.float32), np.zeros((64, 64, 3), np.complex64)])
def test_check_frame_rejects_clearly(bad):
    with pytest.raises(BadFrame):
        check_frame(bad)


def test_check_frame_converts_or_empties():
    assert check_frame(np.zeros((0, 0, 3), np.uint8)) is None
    assert check_frame(np.zeros((8, 640, 3), np.uint8)) is None
    assert check_frame(np.zeros((48, 64), np.uint8)).shape == (48, 64, 3)
    assert check_frame(np.zeros((48, 64, 4), np.uint8)).shape == (48, 64, 3)
    g16 = check_frame(np.full((48, 64, 3), 65535, np.uint16))
    assert g16.dtype == np.uint8 and g16.max() == 255


class FakeDet:
    """Returns a detection per 'person' position; counts its calls."""

    def __init__(self, people):
        self.people, self.calls = people, 0

    def __call__(self, image):
        self.calls += 1
        return [type("D", (), {"roi": Roi(x, y, 100, 100), "score": 0.9})() for x, y in self.people]


class FakeLmk:
    """Landmarks: a box at each ROI centre; presence 0 for ROIs centred where nobody is."""

    def __init__(self, people):
        self.people = people

    def __call__(self, image, rois, mask=False):
        n = len(rois)
        img = np.zeros((n, 39, 3), np.float32)
        score = np.zeros(n, np.float32)
        for i, r in enumerate(rois):
            img[i, :, 0] = r.cx + np.linspace(-20, 20, 39)
            img[i, :, 1] = r.cy + np.linspace(-40, 40, 39)
            img[i, 33, :2] = [r.cx, r.cy]
            img[i, 34, :2] = [r.cx, r.cy - 40]
            score[i] = float(any(abs(r.cx - x) < 30 and abs(r.cy - y) < 30 for x, y in self.people))
        z = np.zeros((n, 39), np.float32)
        return Landmarks(img, np.zeros_like(img), z, z, score, list(rois))


def test_tracker_ids_reuse_and_loss():
    people = [(100.0, 100.0), (400.0, 100.0)]
    det, lmk = FakeDet(people), FakeLmk(people)
    tr = PoseTracker(det, lmk, TrackerConfig(detect_every=5))
    frame = np.zeros((240, 640, 3), np.uint8)
    first = tr(frame)
    assert [p.id for p in first] == [0, 1] and det.calls == 1
    for _ in range(3):
        assert [p.id for p in tr(frame)] == [0, 1]
    assert det.calls == 1  # tracked from landmarks, no detector
    for _ in range(2):
        tr(frame)
    assert det.calls == 2  # every 5 frames; the detections match the tracks: no new ids
    assert [p.id for p in tr(frame)] == [0, 1] and tr.stats["tracks_started"] == 2
    people.pop(1)  # person 1 leaves
    assert [p.id for p in tr(frame)] == [0]
    assert tr.stats["tracks_ended"] == 1
    calls = det.calls
    tr(frame)
    assert det.calls == calls + 1  # a lost track triggers detection on the next frame
    people.append((400.0, 100.0))  # back at the same place soon after: the same id again
    tr.since_detect = 99
    assert [p.id for p in tr(frame)] == [0, 1] and tr.stats["tracks_reacquired"] == 1
    people.pop(1)
    tr(frame)
    for _ in range(20):  # gone for longer than reacquire_frames
        tr(frame)
    people.append((400.0, 100.0))
    tr.since_detect = 99
    assert [p.id for p in tr(frame)] == [0, 2]
    people.append((250.0, 100.0))  # someone new elsewhere: a new id
    tr.since_detect = 99
    assert [p.id for p in tr(frame)] == [0, 2, 3]


def test_tracker_bad_frames_do_not_break_state():
    people = [(100.0, 100.0)]
    tr = PoseTracker(FakeDet(people), FakeLmk(people))
    frame = np.zeros((240, 320, 3), np.uint8)
    assert [p.id for p in tr(frame)] == [0]
    assert tr(np.zeros((0, 0, 3), np.uint8)) == []
    with pytest.raises(BadFrame):
        tr(np.zeros((240, 320, 3), np.float64))
    assert [p.id for p in tr(frame)] == [0] and tr.stats["bad_frames"] == 2
    from realtime_hmr.types import Frame

    assert [p.id for p in tr.stage(Frame(image=frame, t=0.0, seq=7), [])] == [0]


def test_tracker_merges_duplicates_and_caps():
    people = [(100.0, 100.0)]
    det = FakeDet([(100.0, 100.0), (105.0, 102.0)])  # two detections of one person
    tr = PoseTracker(det, FakeLmk(people), TrackerConfig(match_iou=0.99, max_persons=8))
    assert [p.id for p in tr(np.zeros((240, 320, 3), np.uint8))] == [0]
    many = [(50.0 + 60 * k, 100.0) for k in range(6)]
    tr = PoseTracker(FakeDet(many), FakeLmk(many), TrackerConfig(max_persons=4))
    assert len(tr(np.zeros((240, 480, 3), np.uint8))) == 4


def test_aux_smoother_holds_still_points_and_follows_fast_ones():
    f = AuxSmoother()
    pts = np.array([[100.0, 200.0], [100.0, 100.0]])
    assert np.array_equal(f(1 / 30, pts), pts)  # the first call passes through
    jitter = pts + [[0.5, 0.0], [0.0, 0.5]]
    out = f(2 / 30, jitter)
    assert np.abs(out - pts).max() < 0.1  # sub-pixel jitter is held (alpha ~0.002 at rest)
    jump = pts + 60.0
    out = f(3 / 30, jump)
    assert 10 < (out - pts)[0, 0] < 60  # a fast move is followed at once, part of the way
    for k in range(4, 40):
        out = f(k / 30, jump)
    np.testing.assert_allclose(out, jump, atol=2.0)
    assert np.array_equal(f(1 / 30, pts), pts)  # an old timestamp: the raw points, state untouched
