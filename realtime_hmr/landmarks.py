"""BlazePose landmark network on rotated crops, all persons in one batch, projected back to the image.

Follows MediaPipe's ``pose_landmark_by_roi_cpu`` graph (mediapipe 0.10.21): a 256x256 RGB crop in [0, 1] cut from
the ROI with replicated borders; 39 landmarks (33 body + 6 auxiliary) as x, y, z in crop pixels, visibility and
presence logits (sigmoid); x, y refined from the 64x64 heatmap (9x9 sigmoid-weighted mean where its peak >= 0.5);
projection by the ROI's rotation and size; world landmarks (metres, hip-centred) turned by the ROI's rotation;
optional segmentation (sigmoid) warped back onto the image. Where the model gives them (the shipped ONNX files do),
the net's last feature maps come along as 20 tokens of 288 channels per person (``features``), in the crop's frame:
image evidence for the mesh decoder.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from realtime_hmr.crop import Roi, crop_to_image, crops, roi_from_alignment, uncrop_mask
from realtime_hmr.runtime import run_batches

SIZE = 256
N_BODY = 33
BORDER = cv2.BORDER_REPLICATE  # MediaPipe's default for the landmark crop (the detector pads with zeros)


@dataclass
class LandmarkConfig:
    refine_kernel: int = 9  # pose_landmark_by_roi sets kernel_size 9 (checked against mediapipe 0.10.21 output)
    refine_min_confidence: float = 0.5
    roi_scale: float = 1.25
    flip_test: bool = False  # also run each crop mirrored and average the two (twice the network cost)


@dataclass
class Landmarks:
    """N persons' results. ``image`` (N, 39, 3): x, y pixels and z in pixels at the ROI's scale (smaller = nearer
    the camera, relative to the hips); ``world`` (N, 39, 3) metres; ``score`` (N,) pose presence in [0, 1]."""

    image: np.ndarray
    world: np.ndarray
    visibility: np.ndarray  # (N, 39)
    presence: np.ndarray  # (N, 39)
    score: np.ndarray  # (N,)
    rois: list[Roi]
    image_size: tuple[int, int] | None = None  # (W, H) of the frame, where the model segmented
    crop_masks: np.ndarray | None = None  # (N, h, w) float32 in [0, 1]: each person's mask in its ROI's crop
    features: np.ndarray | None = None  # (N, 20, 288) the net's last feature maps, where the model gives them

    @functools.cached_property
    def mask(self) -> np.ndarray | None:
        """(H, W) float32 in [0, 1]: the persons' masks pasted into the frame (their maximum), made on first use
        (each person's own mask, ``crop_masks``, is what the mesh fit reads)."""
        if self.image_size is None or self.crop_masks is None:
            return None
        w, h = self.image_size
        seg = np.zeros((h, w), np.float32)
        for probs, roi in zip(self.crop_masks, self.rois, strict=True):
            np.maximum(seg, uncrop_mask(probs, roi, (w, h)), out=seg)
        return seg

    def next_rois(self, scale: float = 1.25) -> list[Roi]:
        """The ROI for the next frame from the two auxiliary landmarks (33: hip centre, 34: scale point)."""
        return [roi_from_alignment(lm[33, :2], lm[34, :2], scale) for lm in self.image]

    def boxes(self) -> np.ndarray:
        """(N, 4) boxes around the 33 body landmarks."""
        xy = self.image[:, :N_BODY, :2]
        return np.concatenate([xy.min(1), xy.max(1)], -1) if len(xy) else np.zeros((0, 4))


# BlazePose's 33 body landmarks with left and right swapped (the mirror image of landmark i is landmark MIRROR[i]);
# the 6 auxiliary ones (alignment points and their like) are not left/right pairs
MIRROR = np.array([0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, *[j for i in range(11, 33, 2) for j in (i + 1, i)],
                   *range(33, 39)])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel: int = 9, min_conf: float = 0.5) -> np.ndarray:
    """MediaPipe's RefineLandmarksFromHeatmapCalculator, vectorised. xy (N, L, 2) in [0, 1] of the crop; heatmap
    (N, h, w, L) logits; the window is cut at the heatmap's edge.

    Kept as MediaPipe has it, quirks included, so that the results agree: the centre cell is the float32 position
    times the heatmap size truncated toward zero (so x in (-1/w, 0) still lands in column 0), and a point is skipped
    when its column is outside or its row is negative, but a row past the bottom edge is not skipped (MediaPipe's
    check compares the column with the height there); such a window is cut to the rows that exist."""
    n, hh, hw, nl = heatmap.shape
    off = (kernel - 1) // 2
    col = np.trunc(xy[..., 0].astype(np.float32) * np.float32(hw)).astype(np.int64)
    row = np.trunc(xy[..., 1].astype(np.float32) * np.float32(hh)).astype(np.int64)
    inside = (col >= 0) & (col < hw) & (row >= 0) & (col < hh)
    d = np.arange(-off, off + 1)
    rr, cc = row[..., None, None] + d[:, None], col[..., None, None] + d[None, :]  # (N, L, k, k)
    valid = (rr >= 0) & (rr < hh) & (cc >= 0) & (cc < hw) & inside[..., None, None]
    bi = np.arange(n)[:, None, None, None]
    li = np.arange(nl)[None, :, None, None]
    conf = sigmoid(heatmap[bi, np.clip(rr, 0, hh - 1), np.clip(cc, 0, hw - 1), li].astype(np.float32)) * valid
    s = conf.sum((-1, -2))
    ok = inside & (conf.max((-1, -2)) >= min_conf) & (s > 0)
    s = np.where(s > 0, s, 1.0)
    refined = np.stack([(conf * cc).sum((-1, -2)) / hw / s, (conf * rr).sum((-1, -2)) / hh / s], -1)
    return np.where(ok[..., None], refined, xy)


def unflip_average(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    """The mean of results ``a`` (N, 39, C) on crops and ``b`` on the same crops mirrored: ``b`` is mapped back
    (left and right swapped; x = ``width`` - x, or x = -x for ``width`` 0: world metres). The 6 auxiliary landmarks,
    which steer tracking, are kept from ``a``; columns past x are averaged as they are (z, visibility logits)."""
    b = b[:, MIRROR].copy()
    b[..., 0] = width - b[..., 0]
    out = a.copy()
    out[:, :N_BODY] = 0.5 * (a[:, :N_BODY] + b[:, :N_BODY])
    return out


class PoseLandmarker:
    """``(image_bgr, rois, mask) -> Landmarks``: one batched network run for all ROIs.

    ``backend`` runs ``pose_landmark_full_nomask.onnx`` (faster) or ``pose_landmark_full.onnx`` (needed for masks)."""

    def __init__(self, backend, config: LandmarkConfig | None = None):
        self.backend, self.cfg = backend, config or LandmarkConfig()
        self.input_name = backend.input_names[0]
        self.has_mask = "segmentation" in backend.output_names

    def __call__(self, image_bgr: np.ndarray, rois: list[Roi], mask: bool = False) -> Landmarks:
        if mask and not self.has_mask:
            raise ValueError("this landmark model has no segmentation output: load pose_landmark_full.onnx for masks")
        if not rois:
            z = np.zeros((0, 39, 3), np.float32)
            size = (image_bgr.shape[1], image_bgr.shape[0]) if mask else None
            return Landmarks(z, z.copy(), np.zeros((0, 39), np.float32), np.zeros((0, 39), np.float32),
                             np.zeros(0, np.float32), [], size, np.zeros((0, 1, 1), np.float32) if mask else None)
        n = len(rois)
        x = crops(image_bgr, rois, (SIZE, SIZE), border=BORDER)[..., ::-1].astype(np.float32) * (1.0 / 255.0)
        if self.cfg.flip_test:
            x = np.concatenate([x, x[:, :, ::-1]])
        out = run_batches(self.backend, {self.input_name: x})
        raw = out["landmarks"].reshape(len(x), 39, 5)
        xy = refine_from_heatmap(raw[..., :2] / SIZE, out["heatmap"], self.cfg.refine_kernel,
                                 self.cfg.refine_min_confidence)
        world = out["world"].reshape(len(x), 39, 3).copy()
        if self.cfg.flip_test:
            raw, xy, world = (unflip_average(a[:n], a[n:], k) for a, k in ((raw, SIZE), (xy, 1.0), (world, 0.0)))
            if out.get("features") is not None:
                out["features"] = out["features"][:n]  # the image evidence as seen unmirrored
        image = np.empty((n, 39, 3), np.float32)
        for i, roi in enumerate(rois):
            image[i, :, :2] = crop_to_image(roi, xy[i])
            image[i, :, 2] = raw[i, :, 2] / SIZE * roi.w
            c, s = np.cos(roi.rotation), np.sin(roi.rotation)
            wx, wy = world[i, :, 0].copy(), world[i, :, 1].copy()
            world[i, :, 0], world[i, :, 1] = c * wx - s * wy, s * wx + c * wy
        size = probs = None
        if mask:
            size = (image_bgr.shape[1], image_bgr.shape[0])
            probs = sigmoid(out["segmentation"][:n, ..., 0].astype(np.float32))
        feats = out.get("features")
        return Landmarks(image=image, world=world, visibility=sigmoid(raw[..., 3]), presence=sigmoid(raw[..., 4]),
                         score=out["presence"].reshape(-1)[:n].astype(np.float32), rois=list(rois),
                         image_size=size, crop_masks=probs,
                         features=None if feats is None else np.asarray(feats, np.float32))


def torch_backend(root, onnx_name: str, weights: str, device: str | None):
    """The torch backend for one shipped network: the module rebuilt from its fp16 safetensors (the graph spec
    travels in their metadata), with the inputs and outputs of the ONNX variant of the same name."""
    import json

    from realtime_hmr.models.blazepose import TfliteNet
    from realtime_hmr.runtime.torch_backend import Torch

    meta = json.loads((root / onnx_name.replace(".onnx", ".json")).read_text())
    net = TfliteNet.from_safetensors(str(root / f"{weights}.safetensors"))
    return Torch(net, list(meta["inputs"]), list(meta["outputs"]), device=device or "cuda")


def load_pose_tracker(backend: str = "auto", device: str | None = None, threads: int | None = None,
                      detect_every: int = 10, max_persons: int = 8, tiles: tuple[int, int] = (1, 1),
                      mask: bool = False, flip_test: bool = False, min_score: float = 0.5,
                      min_presence: float = 0.5):
    """The shipped BlazePose ONNX models behind a :class:`realtime_hmr.track.PoseTracker` (the live loop's entry).
    ``flip_test``: landmarks averaged over each crop and its mirror image (see :class:`LandmarkConfig`);
    ``min_score``: the detector's threshold; ``min_presence``: pose presence below this ends a track."""
    from importlib.resources import files

    from realtime_hmr.detect import DetectorConfig, PoseDetector
    from realtime_hmr.runtime import load
    from realtime_hmr.track import PoseTracker, TrackerConfig

    root = files("realtime_hmr") / "assets" / "blazepose"
    lmk_file = "pose_landmark_full.onnx" if mask else "pose_landmark_full_nomask.onnx"
    if backend == "torch":
        det_backend = torch_backend(root, "pose_detection.onnx", "pose_detection", device)
        lmk_backend = torch_backend(root, lmk_file, "pose_landmark_full", device)
    else:
        det_backend = load(str(root / "pose_detection.onnx"), backend, device, threads)
        lmk_backend = load(str(root / lmk_file), backend, device, threads)
    det = PoseDetector(det_backend, DetectorConfig(min_score=min_score, tiles=tiles))
    lmk = PoseLandmarker(lmk_backend, LandmarkConfig(flip_test=flip_test))
    return PoseTracker(det, lmk, TrackerConfig(detect_every=detect_every, max_persons=max_persons, mask=mask,
                                               min_presence=min_presence))
