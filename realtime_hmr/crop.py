"""Rotated regions of interest and the crops cut from them, in pixels (pure numpy + OpenCV).

A :class:`Roi` is a rectangle centred at ``(cx, cy)`` of size ``(w, h)`` rotated by ``rotation`` radians (clockwise on
screen, as MediaPipe's ``NormalizedRect.rotation`` with y down). A crop of ``size`` pixels maps crop point ``(u, v)`` to
``centre + (u/W - 1/2) w e_x + (v/H - 1/2) h e_y`` with ``e_x = (cos r, sin r)``, ``e_y = (-sin r, cos r)``: the same
corner mapping as MediaPipe's ``ImageToTensorCalculator`` (crop corners at 0 and W, not W-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np


@dataclass(frozen=True)
class Roi:
    cx: float
    cy: float
    w: float
    h: float
    rotation: float = 0.0

    def corners(self) -> np.ndarray:
        """(4, 2) corners: top-left, top-right, bottom-right, bottom-left in crop order."""
        return crop_to_image(self, np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64))

    def box(self) -> np.ndarray:
        """Axis-aligned (x0, y0, x1, y1) around the rotated rectangle."""
        c = self.corners()
        return np.array([*c.min(0), *c.max(0)])


def normalize_radians(a: float) -> float:
    return a - 2 * np.pi * np.floor((a + np.pi) / (2 * np.pi))


def roi_from_alignment(center: np.ndarray, scale_point: np.ndarray, scale: float = 1.25,
                       target_angle: float = np.pi / 2) -> Roi:
    """MediaPipe's AlignmentPointsRectsCalculator + RectTransformation(scale, square_long), in pixels.

    The box is a square of side ``2 |scale_point - center| * scale``, turned so that ``center -> scale_point``
    points at ``target_angle`` (90 degrees: up on screen)."""
    (x0, y0), (x1, y1) = center, scale_point
    size = 2.0 * float(np.hypot(x1 - x0, y1 - y0)) * scale
    rotation = normalize_radians(target_angle - np.arctan2(-(y1 - y0), x1 - x0))
    return Roi(float(x0), float(y0), size, size, float(rotation))


def crop_matrix(roi: Roi, size: tuple[int, int]) -> np.ndarray:
    """2x3 affine matrix taking image pixels to crop pixels (for ``cv2.warpAffine``)."""
    W, H = size
    c, s = np.cos(roi.rotation), np.sin(roi.rotation)
    a = np.array([[roi.w / W * c, -roi.h / H * s], [roi.w / W * s, roi.h / H * c]])  # crop -> image, linear part
    t = np.array([roi.cx, roi.cy]) - a @ np.array([W / 2, H / 2])
    inv = np.linalg.inv(a)
    return np.hstack([inv, (-inv @ t)[:, None]])


def crop_to_image(roi: Roi, uv: np.ndarray) -> np.ndarray:
    """Normalized crop coordinates (..., 2) in [0, 1] -> image pixels (..., 2)."""
    c, s = np.cos(roi.rotation), np.sin(roi.rotation)
    x = (uv[..., 0] - 0.5) * roi.w
    y = (uv[..., 1] - 0.5) * roi.h
    return np.stack([roi.cx + c * x - s * y, roi.cy + s * x + c * y], -1)


@lru_cache(maxsize=8)
def _axes(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(w, dtype=np.float64)[None, :], np.arange(h, dtype=np.float64)[:, None]


def sample_maps(roi: Roi, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point source coordinates of every crop pixel, computed as MediaPipe's ``ImageToTensorCalculator`` (CPU)
    does: the perspective matrix from ``cv2.boxPoints`` of the ROI (float32) to the crop corners, inverted, each
    pixel's source position rounded to 1/32 pixel (OpenCV's INTER_BITS) in double precision. Returns ``cv2.remap``'s
    (H, W, 2) int16 integer part and (H, W) uint16 sub-pixel table index.

    The BlazePose networks are sensitive to the last bit of their input: resampling the same ROI with a different
    rounding of the sub-pixel positions (OpenCV's own ``warpAffine`` rounds differently from its scalar
    ``warpPerspective`` path) moves the detector's keypoints by up to half a pixel. Doing it this way makes our crops
    equal to MediaPipe's, pixel for pixel."""
    W, H = size
    src = cv2.boxPoints(((roi.cx, roi.cy), (roi.w, roi.h), roi.rotation * 180.0 / np.pi)).astype(np.float32)
    dst = np.array([[0, H], [0, 0], [W, 0], [W, H]], np.float32)
    m = np.linalg.inv(cv2.getPerspectiveTransform(src, dst))
    x, y = _axes(W, H)  # broadcast (1, W) and (H, 1): the same double arithmetic as OpenCV's per-pixel loop
    w = (m[2, 1] * y + m[2, 2]) + m[2, 0] * x
    w = np.divide(32.0, w, out=np.zeros_like(w), where=w != 0)
    X = ((m[0, 1] * y + m[0, 2]) + m[0, 0] * x) * w
    Y = ((m[1, 1] * y + m[1, 2]) + m[1, 0] * x) * w
    lim = 2**20 - 64  # keeps X >> 5 within int16 (ROIs over 32,000 px away from the image)
    if max(np.abs(X).max(), np.abs(Y).max()) > lim:
        X, Y = np.clip(X, -lim, lim), np.clip(Y, -lim, lim)
    X, Y = np.rint(X, out=X).astype(np.int32), np.rint(Y, out=Y).astype(np.int32)
    map1 = np.empty((H, W, 2), np.int16)
    map1[..., 0], map1[..., 1] = X >> 5, Y >> 5
    X &= 31
    Y &= 31
    Y <<= 5
    Y += X
    return map1, Y.astype(np.uint16)


def crop(image: np.ndarray, roi: Roi, size: tuple[int, int], border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """The ROI resampled (bilinear) to ``size`` = (W, H); outside the image: replicate or zero (``border``).
    Pixel-identical to MediaPipe's CPU crops (see :func:`sample_maps`)."""
    map1, map2 = sample_maps(roi, size)
    return cv2.remap(image, map1, map2, cv2.INTER_LINEAR, borderMode=border, borderValue=0)


def crops(image: np.ndarray, rois: list[Roi], size: tuple[int, int], border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """All ROIs of one image as one (N, H, W, C) batch."""
    out = np.empty((len(rois), size[1], size[0], image.shape[2]), image.dtype)
    for i, roi in enumerate(rois):
        out[i] = crop(image, roi, size, border)
    return out


def letterbox_roi(width: int, height: int) -> Roi:
    """The whole image padded (centred) to a square: MediaPipe's ``keep_aspect_ratio`` on a full frame."""
    side = float(max(width, height))
    return Roi(width / 2.0, height / 2.0, side, side, 0.0)


def uncrop_mask(mask: np.ndarray, roi: Roi, image_size: tuple[int, int]) -> np.ndarray:
    """A crop-space map (h, w) float back onto the image (H, W), zero outside the ROI."""
    m = crop_matrix(roi, (mask.shape[1], mask.shape[0]))
    return cv2.warpAffine(mask, m, image_size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def silhouette_window(silhouette, box: np.ndarray, margin: float = 0.2,
                      threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A person's silhouette (:class:`realtime_hmr.types.Silhouette`) over a window around ``box`` (x0, y0, x1, y1,
    grown by ``margin`` of its size on each side): the mask (h, w) bool, the window's top-left pixel (x, y), and the
    pixels nothing is known about (outside the frame or the crop the network saw), (h, w) bool."""
    box = np.asarray(box, np.float64)
    grow = margin * max(box[2] - box[0], box[3] - box[1])
    x0, y0 = np.floor(box[:2] - grow).astype(int)
    x1, y1 = np.ceil(box[2:] + grow).astype(int)
    w, h = max(x1 - x0, 1), max(y1 - y0, 1)
    m = np.asarray(silhouette.crop_from_image, np.float64).copy()
    m[:, 2] += m[:, :2] @ (x0, y0)  # window pixel -> crop pixel
    probs = np.asarray(silhouette.probs, np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    mask = cv2.warpAffine(probs, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0) > threshold
    seen = cv2.warpAffine(np.ones_like(probs), m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0) > 0.5
    xs, ys = np.arange(x0, x0 + w), np.arange(y0, y0 + h)
    W, H = silhouette.image_size
    inside = ((ys >= 0) & (ys < H))[:, None] & ((xs >= 0) & (xs < W))[None, :]
    return mask & inside, np.array([x0, y0]), ~(seen & inside)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between boxes a (N, 4) and b (M, 4) as x0, y0, x1, y1 -> (N, M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), -1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
