"""Plain data passed between stages (layer 0: stdlib and numpy only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One captured image. ``t`` is the capture time in seconds on the monotonic clock of the process."""

    image: np.ndarray  # HxWx3 uint8, BGR
    t: float
    seq: int
    source_t: float | None = None  # the source's own timestamp (camera or file position), seconds


@dataclass
class Silhouette:
    """A person's segmentation by the landmark network: probabilities in its crop, and where that crop lies."""

    probs: np.ndarray  # (h, w) float32 in [0, 1], crop pixels
    crop_from_image: np.ndarray  # (2, 3) affine map: image pixel -> crop pixel
    image_size: tuple[int, int]  # (W, H) of the frame


@dataclass
class Person:
    """One person found in a frame: box, 2D/3D landmarks and, once a mesh model has run, the body."""

    id: int
    box: np.ndarray  # (4,) x0, y0, x1, y1 in pixels
    score: float
    landmarks_2d: np.ndarray | None = None  # (33, 3) x, y in pixels, relative depth
    landmarks_world: np.ndarray | None = None  # (33, 3) metres, hip-centred
    visibility: np.ndarray | None = None  # (33,)
    body: BodyResult | None = None
    features: np.ndarray | None = None  # (20, 288) the landmark net's image features (crop frame), for the mesh model
    silhouette: Silhouette | None = None  # where the tracker segments (TrackerConfig.mask): for the mesh model's fit


@dataclass
class BodyResult:
    """A recovered body in camera space (metres, OpenCV camera axes: x right, y down, z forward)."""

    joints: np.ndarray  # (24, 3)
    vertices: np.ndarray | None = None  # (V, 3)
    rotations: np.ndarray | None = None  # (n_bones, 4) local quaternions x, y, z, w
    translation: np.ndarray | None = None  # (3,) root position
    confidence: np.ndarray | None = None  # (24,)
    vertex_uncertainty: np.ndarray | None = None  # (V,) metres, stochastic mode only
    extras: dict = field(default_factory=dict)
