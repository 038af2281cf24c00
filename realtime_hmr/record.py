"""Recording to ``FILE.npz`` (CONTRACT.md), readable with ``np.load(FILE, allow_pickle=False)``.

Crash safety: while recording, rows go to small chunk files ``FILE.npz.parts/chunk_NNNNNN.npz`` (each written to a
temporary name and renamed, so every chunk on disk is whole). :meth:`Recorder.close` - also reached on Ctrl-C and
at the end of a file - streams the chunks into ``FILE.npz`` without holding the whole recording in memory, then
removes the parts. After a hard crash, ``assemble(FILE)`` (or ``python -m realtime_hmr.record FILE``) builds the
file from the chunks that were written.

Arrays, one row per (frame, person): ``t`` (s since the first frame), ``frame`` (frame seq), ``person_id``,
``score``, ``box`` (x0 y0 x1 y1 px), ``joints`` (N, 24, 3; camera space, m), ``confidence`` (N, 24),
``translation`` (N, 3), ``rotations`` (N, B, 4 local quaternions x y z w), ``vertices`` (N, V, 3 float16,
optional); NaN where a person had no value. Per frame (persons or not): ``frame_seq``, ``frame_t``,
``frame_source_t``. Once: ``joint_names``, ``bone_names``, ``faces``, ``t_start_wall`` (Unix time of t = 0).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ROW_FIELDS = {  # name -> (attribute path on Person, dtype)
    "score": ("score", np.float32),
    "box": ("box", np.float32),
    "joints": ("body.joints", np.float32),
    "confidence": ("body.confidence", np.float32),
    "translation": ("body.translation", np.float32),
    "rotations": ("body.rotations", np.float32),
    "vertices": ("body.vertices", np.float16),
    "landmarks_2d": ("landmarks_2d", np.float32),
    "landmarks_world": ("landmarks_world", np.float32),
    "visibility": ("visibility", np.float32),
}


def _attr(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None) if obj is not None else None
    return obj


def _parts(path: Path) -> Path:
    return path.with_name(path.name + ".parts")


def _save_atomic(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


class Recorder:
    """A pipeline sink writing the recording in chunks; :meth:`close` assembles ``path``."""

    def __init__(self, path: str | Path, *, joint_names=(), bone_names=(), faces: np.ndarray | None = None,
                 vertices: bool = True, chunk_frames: int = 30):
        self.path = Path(path)
        if self.path.suffix != ".npz":
            raise ValueError(f"recording file must end in .npz: {path}")
        self.parts = _parts(self.path)
        if self.parts.exists():
            raise FileExistsError(f"{self.parts} exists (an unfinished recording?): run "
                                  f"`python -m realtime_hmr.record {self.path}` or remove it")
        self.parts.mkdir(parents=True)
        once = {"joint_names": np.array(list(joint_names), dtype=str),
                "bone_names": np.array(list(bone_names), dtype=str)}
        if faces is not None:
            once["faces"] = np.asarray(faces, dtype=np.int32)
        self.vertices = vertices
        self.chunk_frames = chunk_frames
        self._once = once
        self._t0: float | None = None
        self._rows: dict[str, list] = {}
        self._frames: dict[str, list] = {"frame_seq": [], "frame_t": [], "frame_source_t": []}
        self._n_chunks = 0
        self.frames = self.rows = 0
        self.closed = False

    def __call__(self, frame, persons) -> None:
        if self._t0 is None:
            self._t0 = frame.t
            self._once["t_start_wall"] = np.array(time.time() - (time.perf_counter() - frame.t))
            _save_atomic(self.parts / "once.npz", self._once)
        t = frame.t - self._t0
        self._frames["frame_seq"].append(frame.seq)
        self._frames["frame_t"].append(t)
        self._frames["frame_source_t"].append(np.nan if frame.source_t is None else frame.source_t)
        for p in persons:
            self._rows.setdefault("t", []).append(t)
            self._rows.setdefault("frame", []).append(frame.seq)
            self._rows.setdefault("person_id", []).append(p.id)
            for name, (attr, _) in ROW_FIELDS.items():
                if name != "vertices" or self.vertices:
                    self._rows.setdefault(name, []).append(_attr(p, attr))
            self.rows += 1
        self.frames += 1
        if len(self._frames["frame_seq"]) >= self.chunk_frames:
            self.flush()

    def flush(self) -> None:
        if not self._frames["frame_seq"]:
            return
        arrays = {"frame_seq": np.array(self._frames["frame_seq"], np.int64),
                  "frame_t": np.array(self._frames["frame_t"], np.float64),
                  "frame_source_t": np.array(self._frames["frame_source_t"], np.float64)}
        if self._rows:
            arrays["t"] = np.array(self._rows["t"], np.float64)
            arrays["frame"] = np.array(self._rows["frame"], np.int64)
            arrays["person_id"] = np.array(self._rows["person_id"], np.int64)
            for name, (_, dtype) in ROW_FIELDS.items():
                values = self._rows.get(name, [])
                shapes = [np.shape(v) for v in values if v is not None]
                if shapes:
                    shape = max(set(shapes), key=shapes.count)
                    a = np.full((len(values), *shape), np.nan, dtype)
                    for i, v in enumerate(values):
                        if v is not None and np.shape(v) == shape:
                            a[i] = v
                    arrays[name] = a
        _save_atomic(self.parts / f"chunk_{self._n_chunks:06d}.npz", arrays)
        self._n_chunks += 1
        self._rows = {}
        self._frames = {k: [] for k in self._frames}

    def close(self) -> Path:
        """Write the last rows and assemble ``path`` (idempotent)."""
        if not self.closed:
            self.closed = True
            if self._t0 is None:
                _save_atomic(self.parts / "once.npz", self._once)
            self.flush()
            assemble(self.path)
            log.info("recording written to %s (%d frames, %d person rows)", self.path, self.frames, self.rows)
        return self.path


def assemble(path: str | Path) -> Path:
    """Build ``path`` from its ``.parts`` chunks, streaming each array into the zip, then remove the chunks."""
    path = Path(path)
    parts = _parts(path)
    chunks = sorted(parts.glob("chunk_*.npz"))
    once_file = parts / "once.npz"
    once = dict(np.load(once_file, allow_pickle=False)) if once_file.exists() else {}
    files = [np.load(c, allow_pickle=False) for c in chunks]
    try:
        keys: dict[str, tuple] = {}
        for f in files:
            for k in f.files:
                keys.setdefault(k, (f[k].shape[1:], f[k].dtype))
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, value in once.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, value, allow_pickle=False)
            for name, (tail, dtype) in keys.items():
                per_frame = name.startswith("frame_")
                lengths = [len(f["frame_seq" if per_frame else "t"]) if ("frame_seq" if per_frame else "t") in f.files
                           else 0 for f in files]
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                          "shape": (sum(lengths), *tail)}
                with zf.open(name + ".npy", "w", force_zip64=True) as out:
                    np.lib.format.write_array_header_2_0(out, header)
                    for f, n in zip(files, lengths, strict=True):
                        a = f[name] if name in f.files else np.full((n, *tail), np.nan, dtype)
                        if a.shape[1:] != tail:  # a chunk where the shape changed (e.g. another mesh)
                            a = np.full((n, *tail), np.nan, dtype)
                        out.write(np.ascontiguousarray(a, dtype).tobytes())
        os.replace(tmp, path)
    finally:
        for f in files:
            f.close()
    shutil.rmtree(parts, ignore_errors=True)
    return path


def load(path: str | Path) -> dict[str, np.ndarray]:
    """The recording as a dict of arrays (numpy only, no pickles)."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


if __name__ == "__main__":  # python -m realtime_hmr.record FILE.npz: recover an interrupted recording
    for arg in sys.argv[1:]:
        print(assemble(arg))
