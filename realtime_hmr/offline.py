"""Whole tracks from a recorded clip, for analyses that need a person's motion from start to end (``pitch``).

Unlike the live loop, nothing is dropped or smoothed here: every frame of the file goes through the tracker and the
mesh model in order, and each track's SMPL-24 joints (camera space, metres) are kept per frame, NaN where the track
was not seen. A recording made by ``realtime-hmr run --record`` gives the same tracks without running the models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from realtime_hmr.body.names import SMPL24_PARENTS
from realtime_hmr.capture import SourceError, open_source
from realtime_hmr.preview import draw_skeleton, project

log = logging.getLogger(__name__)
BONES = [(i, j) for i, j in enumerate(SMPL24_PARENTS) if j >= 0]


@dataclass
class Tracks:
    """Per-track joints of a clip."""

    fps: float
    frames: int
    joints: dict[int, np.ndarray] = field(default_factory=dict)  # id -> (frames, 24, 3), NaN where unseen
    K: np.ndarray | None = None  # the camera matrix the bodies were placed with (None for a recording)
    source: str = ""

    def seen(self, pid: int) -> int:
        return int(np.isfinite(self.joints[pid]).all(axis=(1, 2)).sum())

    def by_coverage(self) -> list[int]:
        return sorted(self.joints, key=self.seen, reverse=True)


def track_clip(source: str, mesh, *, fps: float | None = None, max_frames: int | None = None,
               progress: bool = False) -> Tracks:
    """Run a video file or image folder through ``mesh`` (a :class:`realtime_hmr.mesh.MeshRecovery` with its
    tracker), frame by frame. ``fps`` overrides the file's own rate (slow-motion files often declare 30)."""
    from types import SimpleNamespace

    src = open_source(source)
    if getattr(src, "live", False):
        raise SourceError(f"{source} is a live source; record it first (realtime-hmr run --record) or give a file")
    rate = float(fps or getattr(src, "fps", 0.0) or 0.0)
    if rate <= 0:
        raise SourceError(f"{source} does not say its frame rate: give it with --fps")
    total = getattr(src, "frame_count", None)
    total = min(total, max_frames) if total and max_frames else (max_frames or total)
    mesh.reset()
    rows: dict[int, dict[int, np.ndarray]] = {}
    K, n = None, 0
    bar = None
    if progress and total:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(f"tracking {Path(str(source)).name}", total=total)
    try:
        while max_frames is None or n < max_frames:
            got = src.read()
            if got is None:
                break
            image = got[0]
            K = mesh.camera(image)
            frame = SimpleNamespace(image=image, t=n / rate, seq=n)
            for p in mesh.stage(frame, mesh.tracker(image, frame.t)):
                if p.body is not None:
                    rows.setdefault(p.id, {})[n] = np.asarray(p.body.joints, np.float64)
            n += 1
            if bar is not None:
                bar.update(task, advance=1)
    finally:
        if bar is not None:
            bar.stop()
        src.release()
    if n == 0:
        raise SourceError(f"no frame could be read from {source}")
    tracks = Tracks(rate, n, K=K, source=str(source))
    for pid, per in rows.items():
        J = np.full((n, 24, 3), np.nan)
        for f, j in per.items():
            J[f] = j
        tracks.joints[pid] = J
    return tracks


def tracks_from_recording(path: str | Path, fps: float | None = None) -> Tracks:
    """The tracks of a recording (``realtime-hmr run --record FILE.npz``)."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot read recording {path}: {e}") from e
    with z:
        need = ("frame", "person_id", "joints", "frame_seq", "frame_source_t")
        missing = [k for k in need if k not in z.files]
        if missing:
            raise SourceError(f"{path} is not a realtime_hmr recording (missing {', '.join(missing)})")
        seq, src_t = z["frame_seq"], z["frame_source_t"].astype(np.float64)
        frame, pid, joints = z["frame"], z["person_id"], z["joints"].astype(np.float64)
    if len(seq) == 0:
        raise SourceError(f"{path} holds no frames")
    if fps is None:
        dt = np.diff(src_t[np.isfinite(src_t)])
        dt = dt[dt > 0]
        if dt.size == 0:
            raise SourceError(f"{path} has no source timestamps to take the frame rate from: give it with --fps")
        fps = 1.0 / float(np.median(dt))
    index = {int(s): i for i, s in enumerate(seq)}
    tracks = Tracks(float(fps), len(seq), source=str(path))
    for p in np.unique(pid[np.isfinite(joints).all(axis=(1, 2))]):
        J = np.full((len(seq), 24, 3), np.nan)
        for f, j in zip(frame[pid == p], joints[pid == p]):
            if int(f) in index:
                J[index[int(f)]] = j
        tracks.joints[int(p)] = J
    return tracks


def event_sheet(tracks: Tracks, pid: int, events: dict[str, int], out: str | Path, width: int = 480) -> None:
    """A strip of the clip's frames at ``events`` (name -> frame), the person's skeleton drawn over each."""
    if tracks.K is None:
        raise ValueError("the event frames need the video (a recording holds no images)")
    wanted = {f: name for name, f in events.items() if f is not None}
    src = open_source(tracks.source)
    tiles, n = {}, 0
    try:
        while len(tiles) < len(wanted):
            got = src.read()
            if got is None:
                break
            if n in wanted:
                img = got[0].copy()
                uv, ok = project(tracks.joints[pid][n], tracks.K)
                draw_skeleton(img, uv, BONES, (255, 220, 40), ok)
                s = width / img.shape[1]
                img = cv2.resize(img, (width, round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
                label = f"{wanted[n].replace('_', ' ')}: frame {n}, {1000.0 * n / tracks.fps:.0f} ms"
                (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
                cv2.rectangle(img, (0, 0), (tw + 16, th + 16), (0, 0, 0), -1)
                cv2.putText(img, label, (8, th + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
                tiles[n] = img
            n += 1
    finally:
        src.release()
    if not tiles:
        raise SourceError(f"could not read the event frames of {tracks.source}")
    row = np.hstack([tiles[f] for f in sorted(tiles)])
    if not cv2.imwrite(str(out), row):
        raise OSError(f"cannot write {out}")
