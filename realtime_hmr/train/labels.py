"""MediaPipe BlazePose labels for rendered images (legacy ``mp.solutions.pose``, the only offline pose model).

``MediaPipeLabeler()(rgb)`` runs ``Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True)``
and returns :class:`MPLabel` (33 image landmarks in pixels + MediaPipe's relative z, visibility, 33 world landmarks
in metres (hip-centred; x right, y down, z away from the camera, i.e. OpenCV camera axes), and the segmentation
mask as uint8), or ``None`` when nothing is detected. The legacy API finds ONE person: :func:`match_person` picks
which ground-truth person it saw.

``PortLabeler()`` gives the same labels from the product's own BlazePose port (``landmarks.load_pose_tracker``, the
detector run on every image, the highest-presence person kept, as the legacy API keeps one) plus the landmark net's
image features (20 x 288) that the mesh decoder can read: training then sees exactly what the live loop computes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)
N_LANDMARKS = 33


@dataclass
class MPLabel:
    image: np.ndarray  # (33, 3) x, y pixels, z (MediaPipe's relative depth, in pixels at the image width scale)
    visibility: np.ndarray  # (33,)
    world: np.ndarray  # (33, 3) metres, hip-centred, camera-aligned axes
    mask: np.ndarray | None  # (H, W) uint8, 255 = person
    features: np.ndarray | None = None  # (20, 288) the landmark net's image features (PortLabeler only)


class MediaPipeLabeler:
    def __init__(self, segmentation: bool = True):
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp

        self.segmentation = segmentation
        self.pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                           enable_segmentation=segmentation)

    def __call__(self, rgb: np.ndarray) -> MPLabel | None:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        r = self.pose.process(np.ascontiguousarray(rgb))
        if r.pose_landmarks is None:
            return None
        lm = np.array([(p.x * w, p.y * h, p.z * w, p.visibility) for p in r.pose_landmarks.landmark], np.float32)
        world = np.array([(p.x, p.y, p.z) for p in r.pose_world_landmarks.landmark], np.float32)
        mask = None
        if self.segmentation and r.segmentation_mask is not None:
            mask = (np.clip(r.segmentation_mask, 0, 1) * 255).astype(np.uint8)
        return MPLabel(lm[:, :3], lm[:, 3], world, mask)

    def close(self) -> None:
        self.pose.close()


class PortLabeler:
    def __init__(self, segmentation: bool = True, threads: int = 1):
        from realtime_hmr.landmarks import load_pose_tracker

        self.segmentation = segmentation
        self.tracker = load_pose_tracker("onnxruntime", None, threads, detect_every=1, max_persons=4,
                                         mask=segmentation)

    def __call__(self, rgb: np.ndarray) -> MPLabel | None:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.shape} {rgb.dtype}")
        self.tracker.reset()
        persons = self.tracker(np.ascontiguousarray(rgb[..., ::-1]))
        if not persons:
            return None
        p = max(persons, key=lambda q: q.score)
        mask = None
        if self.segmentation and self.tracker.last_mask is not None:
            mask = (np.clip(self.tracker.last_mask, 0, 1) * 255).astype(np.uint8)
        return MPLabel(p.landmarks_2d.astype(np.float32), p.visibility.astype(np.float32),
                       p.landmarks_world.astype(np.float32), mask, p.features)

    def close(self) -> None:
        pass


def match_person(landmarks_2d: np.ndarray, gt_2d: np.ndarray, valid: np.ndarray | None = None) -> tuple[int, float]:
    """Index of the ground-truth person (P, 33, 2) whose landmarks are nearest (median pixel distance) to MediaPipe's
    (33, 2); returns (index, median distance)."""
    d = np.median(np.linalg.norm(gt_2d - landmarks_2d[None, :, :2], axis=-1), axis=1)
    if valid is not None:
        d = np.where(valid, d, np.inf)
    k = int(np.argmin(d))
    return k, float(d[k])
