"""BlazePose person detector: letterbox, SSD anchors, box/keypoint decoding, weighted NMS, alignment ROI.

Follows MediaPipe's ``pose_detection_cpu`` and ``pose_detection_to_roi`` graphs (mediapipe 0.10.21): a 224x224
letterboxed RGB input in [-1, 1] (zero padding, i.e. -1), 2254 fixed-size anchors, sigmoid scores clipped at +-100
with a 0.5 threshold, weighted NMS at IoU 0.3, and a square ROI from keypoint 0 (hip centre) and keypoint 1
(full-body scale point) turned upright and scaled 1.25. Everything after the network is in image pixels.

Small people: ``tiles=(cols, rows)`` adds overlapping tiles to the full frame; all regions go through the network as
one batch and their detections are merged by the same weighted NMS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from realtime_hmr.crop import Roi, crops, iou, letterbox_roi, roi_from_alignment
from realtime_hmr.runtime import run_batches

log = logging.getLogger(__name__)
SIZE = 224


@dataclass
class DetectorConfig:
    min_score: float = 0.5
    nms_iou: float = 0.3
    roi_scale: float = 1.25
    tiles: tuple[int, int] = (1, 1)  # (cols, rows); (1, 1): the full frame only, as MediaPipe
    tile_overlap: float = 0.25


@dataclass
class Detection:
    box: np.ndarray  # (4,) x0, y0, x1, y1 pixels (the detector's box: around the head/upper body)
    score: float
    keypoints: np.ndarray  # (4, 2) pixels: hip centre, full-body scale point, shoulder centre, upper-body point
    roi: Roi  # rotated square crop for the landmark network


def ssd_anchors(size: int = SIZE, strides: tuple[int, ...] = (8, 16, 32, 32, 32)) -> np.ndarray:
    """Anchor centres (2254, 2) in [0, 1], in MediaPipe's SsdAnchorsCalculator order for pose_detection.

    Options there: 5 layers, aspect ratio 1 plus the interpolated scale (2 anchors per cell and layer), fixed anchor
    size (w = h = 1), offset 0.5."""
    out, layer = [], 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        n_per_cell = 2 * (last - layer)
        fm = int(np.ceil(size / strides[layer]))
        y, x = np.mgrid[0:fm, 0:fm]
        c = np.stack([(x + 0.5) / fm, (y + 0.5) / fm], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, n_per_cell, axis=1).reshape(-1, 2))
        layer = last
    return np.concatenate(out).astype(np.float32)


ANCHORS = ssd_anchors()


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, min_score: float = 0.5) -> tuple[np.ndarray, ...]:
    """One image's raw outputs (2254, 12), (2254, 1) -> boxes (K, 4) x0 y0 x1 y1, keypoints (K, 4, 2) in [0, 1] of
    the network input, and scores (K,) above ``min_score``."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[:, 0].astype(np.float64), -100.0, 100.0)))
    keep = scores >= min_score
    r, a, scores = raw_boxes[keep] / SIZE, ANCHORS[keep], scores[keep]
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    kps = r[:, 4:12].reshape(-1, 4, 2) + a[:, None, :]
    return boxes, kps, scores


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, thresh: float = 0.3):
    """MediaPipe's WEIGHTED non-max suppression: each kept detection is the score-weighted mean of the detections
    overlapping it by IoU > thresh (itself included); its score stays the highest one."""
    order = np.argsort(-scores, kind="stable")
    out = []
    while order.size:
        ov = iou(boxes[order[:1]], boxes[order])[0]
        group, order_next = order[ov > thresh], order[ov <= thresh]
        if group.size == 0:  # a degenerate box overlaps nothing, itself included
            group, order_next = order[:1], order[1:]
        wgt = scores[group][:, None]
        out.append(((boxes[group] * wgt).sum(0) / wgt.sum(), (kps[group] * wgt[:, :, None]).sum(0) / wgt.sum(),
                    float(scores[group[0]])))
        order = order_next
    return out


def tile_rois(width: int, height: int, tiles: tuple[int, int], overlap: float) -> list[Roi]:
    """The full-frame letterbox plus a cols x rows grid of square tiles overlapping by ``overlap``."""
    rois = [letterbox_roi(width, height)]
    cols, rows = tiles
    if cols * rows > 1:
        side = max(width / (cols - (cols - 1) * overlap), height / (rows - (rows - 1) * overlap))
        for j in range(rows):
            for i in range(cols):
                cx = side / 2 + i * (width - side) / max(cols - 1, 1) if cols > 1 else width / 2
                cy = side / 2 + j * (height - side) / max(rows - 1, 1) if rows > 1 else height / 2
                rois.append(Roi(cx, cy, side, side, 0.0))
    return rois


class PoseDetector:
    """Persons in a BGR frame -> list of :class:`Detection`, best first. ``backend`` runs ``pose_detection.onnx``."""

    def __init__(self, backend, config: DetectorConfig | None = None):
        self.backend, self.cfg = backend, config or DetectorConfig()
        self.input_name = backend.input_names[0]

    def preprocess(self, image_bgr: np.ndarray, rois: list[Roi]) -> np.ndarray:
        x = crops(image_bgr, rois, (SIZE, SIZE), border=cv2.BORDER_CONSTANT)[..., ::-1]
        return x.astype(np.float32) * (2.0 / 255.0) - 1.0

    def __call__(self, image_bgr: np.ndarray) -> list[Detection]:
        h, w = image_bgr.shape[:2]
        rois = tile_rois(w, h, self.cfg.tiles, self.cfg.tile_overlap)
        out = run_batches(self.backend, {self.input_name: self.preprocess(image_bgr, rois)})
        all_boxes, all_kps, all_scores = [], [], []
        for i, roi in enumerate(rois):
            boxes, kps, scores = decode(out["boxes"][i], out["scores"][i], self.cfg.min_score)
            side = np.array([roi.w, roi.h])
            origin = np.array([roi.cx, roi.cy]) - side / 2
            all_boxes.append((boxes.reshape(-1, 2, 2) * side + origin).reshape(-1, 4))
            all_kps.append(kps * side + origin)
            all_scores.append(scores)
        boxes, kps, scores = np.concatenate(all_boxes), np.concatenate(all_kps), np.concatenate(all_scores)
        dets = []
        for box, kp, score in weighted_nms(boxes, kps, scores, self.cfg.nms_iou):
            roi = roi_from_alignment(kp[0], kp[1], self.cfg.roi_scale)
            dets.append(Detection(box=box.astype(np.float32), score=score, keypoints=kp.astype(np.float32), roi=roi))
        return dets
