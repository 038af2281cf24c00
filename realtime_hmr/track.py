"""Multi-person pose tracking: stable ids, ROI reuse from the previous frame's landmarks, periodic detection.

As BlazePose does for one person, each tracked person's next crop comes from its own landmarks (auxiliary points 33
and 34, one-euro filtered as in MediaPipe's video mode); the detector runs every ``detect_every`` frames, when nothing
is tracked, or right after a track was lost. A detection that overlaps a tracked person's ROI is that person (no new
id); others start new tracks. A track ends when its pose presence drops below ``min_presence`` (the person left or
was occluded); a detection at a lost track's last place within ``reacquire_frames`` gets its id back; two tracks that
collapse onto one person are merged into the older id.

The detector and landmarker are passed in (duck-typed: ``detector(image) -> [Detection]`` with ``.roi``, ``.score``;
``landmarker(image, rois, mask) -> Landmarks``), so this module stays in the geometry layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from realtime_hmr.crop import Roi, crop_matrix, iou, roi_from_alignment
from realtime_hmr.types import Person, Silhouette

log = logging.getLogger(__name__)
N_BODY = 33
MIN_SIDE = 32  # frames smaller than this (either side) give no persons


class BadFrame(ValueError):
    """A frame that can't be used as an image (wrong type, shape, dtype)."""


def check_frame(image) -> np.ndarray | None:
    """A usable HxWx3 uint8 BGR view of ``image``; None for an empty or tiny frame; BadFrame for anything else.

    Accepted: uint8 BGR, BGRA (alpha dropped), grayscale (HxW or HxWx1, replicated), uint16 (scaled by 1/257)."""
    if image is None:
        raise BadFrame("frame is None (capture failed?)")
    if not isinstance(image, np.ndarray):
        raise BadFrame(f"frame must be a numpy array, got {type(image).__name__}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise BadFrame(f"frame must be HxW, HxWx1, HxWx3 or HxWx4, got shape {image.shape}")
    if image.size == 0 or min(image.shape[:2]) < MIN_SIDE:
        return None
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise BadFrame(f"frame dtype must be uint8 or uint16, got {image.dtype}")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


@dataclass
class TrackerConfig:
    detect_every: int = 10  # frames between detector runs while everyone is tracked (1: every frame)
    max_persons: int = 8
    min_presence: float = 0.5  # pose presence below this ends a track (MediaPipe's min_tracking_confidence)
    match_iou: float = 0.3  # a detection whose ROI overlaps a track's ROI this much is that track's person
    merge_iou: float = 0.5  # two tracks whose landmark boxes overlap this much are one person
    reacquire_frames: int = 15  # a lost id is given back to a detection at its last place within this many frames
    mask: bool = False  # also segment: PoseTracker.last_mask (all persons) and each Person's silhouette
    smooth_roi: bool = True  # one-euro filter on the ROI's alignment points, as MediaPipe's video mode
    roi_scale: float = 1.25


class AuxSmoother:
    """MediaPipe's one-euro filter on the auxiliary landmarks that place the next ROI (pose_landmark_filtering:
    min_cutoff 0.01, beta 10, derivative cutoff 1; per coordinate, speeds divided by the object scale, the side of
    the alignment square 2 |p1 - p0|), so a still person's crop stays put while a fast one is followed."""

    def __init__(self, min_cutoff: float = 0.01, beta: float = 10.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.t: float | None = None
        self.x = self.dx = self.raw = None

    @staticmethod
    def alpha(cutoff, freq: float):
        return 1.0 / (1.0 + freq / (2 * np.pi * cutoff))

    def __call__(self, t: float, pts: np.ndarray) -> np.ndarray:
        scale = 2.0 * float(np.hypot(*(pts[1] - pts[0])))  # object scale: side of the points' alignment square
        if scale < 1e-6 or (self.t is not None and t <= self.t):
            return pts
        freq = 30.0 if self.t is None else 1.0 / (t - self.t)
        self.t = t
        if self.x is None:
            self.x, self.dx, self.raw = pts.astype(np.float64), np.zeros(pts.shape), pts.astype(np.float64)
            return pts
        a = self.alpha(self.d_cutoff, freq)
        self.dx = a * (pts - self.raw) / scale * freq + (1 - a) * self.dx
        a = self.alpha(self.min_cutoff + self.beta * np.abs(self.dx), freq)
        self.x = a * pts + (1 - a) * self.x
        self.raw = pts.astype(np.float64)
        return self.x


@dataclass
class Track:
    id: int
    roi: Roi  # where to look in the next frame
    age: int = 0  # frames tracked
    box: np.ndarray = field(default_factory=lambda: np.zeros(4))
    smoother: AuxSmoother = field(default_factory=AuxSmoother)


class PoseTracker:
    """``tracker(frame_bgr) -> list[Person]`` for every person in view, ids stable across frames."""

    def __init__(self, detector, landmarker, config: TrackerConfig | None = None):
        self.detector, self.landmarker = detector, landmarker
        self.cfg = config or TrackerConfig()
        self.reset()

    @property
    def last_mask(self) -> np.ndarray | None:
        """The last frame's persons' masks in one full-frame image (with ``mask``), pasted only when asked for."""
        return None if self._last is None else self._last.mask

    def reset(self) -> None:
        self.tracks: list[Track] = []
        self.lost_tracks: list[tuple[int, Track]] = []  # (frame lost, track) for re-acquisition
        self.next_id, self.frame, self.since_detect, self.lost = 0, 0, 0, False
        self._last = None  # the last frame's landmarks
        self.stats = {"frames": 0, "detector_runs": 0, "tracks_started": 0, "tracks_ended": 0, "tracks_reacquired": 0,
                      "bad_frames": 0}

    def _candidates(self, image: np.ndarray) -> list[tuple[Track | None, Roi, float]]:
        cands: list[tuple[Track | None, Roi, float]] = [(t, t.roi, 1.0) for t in self.tracks]
        run = not self.tracks or self.lost or self.since_detect >= self.cfg.detect_every
        if run:
            self.stats["detector_runs"] += 1
            self.since_detect, self.lost = 0, False
            tracked = np.array([t.roi.box() for t in self.tracks]).reshape(-1, 4)
            for d in self.detector(image):
                box = d.roi.box()
                if len(tracked) and iou(box[None], tracked).max() > self.cfg.match_iou:
                    continue
                cands.append((None, d.roi, d.score))
                tracked = np.vstack([tracked, box[None]])
        return cands[: self.cfg.max_persons]

    def __call__(self, image, t: float | None = None) -> list[Person]:
        """Persons in ``image``; ``t`` is its time in seconds (default: frames at 30 fps, as MediaPipe's Python API)."""
        self.stats["frames"] += 1
        try:
            img = check_frame(image)
        except BadFrame:
            self.stats["bad_frames"] += 1
            raise
        if img is None:
            self.stats["bad_frames"] += 1
            log.debug("empty or tiny frame: no persons")
            return []
        self.frame += 1
        self.since_detect += 1
        t = self.frame / 30.0 if t is None else t
        cands = self._candidates(img)
        lm = self.landmarker(img, [roi for _, roi, _ in cands], mask=self.cfg.mask)
        self._last = lm
        boxes = lm.boxes()
        keep: list[tuple[Track, int]] = []
        for i, (track, _, _) in enumerate(cands):
            ok = lm.score[i] >= self.cfg.min_presence and np.isfinite(lm.image[i]).all()
            if not ok:
                if track is not None:
                    self.lost = True
                    self.stats["tracks_ended"] += 1
                    self.lost_tracks.append((self.frame, track))
                continue
            if track is None:
                track = self._reacquire(cands[i][1]) or self._new_track(cands[i][1])
                track.smoother = AuxSmoother()  # a new detection starts the filter afresh
            aux = lm.image[i, 33:35, :2].astype(np.float64)
            if self.cfg.smooth_roi:
                aux = track.smoother(t, aux)
            track.roi, track.box = roi_from_alignment(aux[0], aux[1], self.cfg.roi_scale), boxes[i]
            track.age += 1
            keep.append((track, i))
        keep = self._merge(keep)
        self.tracks = [t for t, _ in keep]
        size = (img.shape[1], img.shape[0])

        def silhouette(i):
            if lm.crop_masks is None:
                return None
            probs = lm.crop_masks[i]
            return Silhouette(probs, crop_matrix(lm.rois[i], (probs.shape[1], probs.shape[0])), size)

        return [Person(id=t.id, box=t.box.astype(np.float32), score=float(lm.score[i]),
                       landmarks_2d=lm.image[i, :N_BODY].copy(), landmarks_world=lm.world[i, :N_BODY].copy(),
                       visibility=lm.visibility[i, :N_BODY].copy(),
                       features=None if lm.features is None else lm.features[i].copy(), silhouette=silhouette(i))
                for t, i in sorted(keep, key=lambda k: k[0].id)]

    def stage(self, frame, persons: list) -> list[Person]:
        """The pipeline-stage form ``(Frame, persons) -> persons``: ``Pipeline(cap, [("landmarks", t.stage)])``.
        The incoming ``persons`` are ignored (this is the first stage); bad frames raise BadFrame."""
        return self(getattr(frame, "image", frame), getattr(frame, "t", None))

    def _new_track(self, roi: Roi) -> Track:
        track = Track(self.next_id, roi)
        self.next_id += 1
        self.stats["tracks_started"] += 1
        return track

    def _reacquire(self, roi: Roi) -> Track | None:
        """The most recently lost track whose last ROI overlaps ``roi`` (IoU > match_iou), if lost recently enough."""
        self.lost_tracks = [(f, t) for f, t in self.lost_tracks if self.frame - f <= self.cfg.reacquire_frames]
        live = {t.id for t in self.tracks}
        for j in range(len(self.lost_tracks) - 1, -1, -1):
            f, t = self.lost_tracks[j]
            if t.id not in live and iou(roi.box()[None], t.roi.box()[None])[0, 0] > self.cfg.match_iou:
                del self.lost_tracks[j]
                self.stats["tracks_reacquired"] += 1
                return t
        return None

    def _merge(self, keep: list[tuple[Track, int]]) -> list[tuple[Track, int]]:
        """Drop the younger of two tracks on the same person (their landmark boxes overlap > merge_iou)."""
        if len(keep) < 2:
            return keep
        keep = sorted(keep, key=lambda k: k[0].id)
        ov = iou(np.array([t.box for t, _ in keep]), np.array([t.box for t, _ in keep]))
        dead = set()
        for a in range(len(keep)):
            for b in range(a + 1, len(keep)):
                if a not in dead and b not in dead and ov[a, b] > self.cfg.merge_iou:
                    dead.add(b)
        for b in dead:
            if keep[b][0].age > 1:
                self.stats["tracks_ended"] += 1
            else:  # a fresh duplicate, never reported
                self.stats["tracks_started"] -= 1
        return [k for j, k in enumerate(keep) if j not in dead]
