"""Recording: CONTRACT.md arrays, numpy-only reading, chunks that survive a crash."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from realtime_hmr import record
from realtime_hmr.record import Recorder, assemble
from realtime_hmr.types import BodyResult, Frame, Person

NAMES = [f"j{i}" for i in range(24)]
FACES = np.array([[0, 1, 2]])


def person(pid, seq, body=True):
    b = BodyResult(joints=np.full((24, 3), seq + pid / 10), vertices=np.full((3, 3), 0.5),
                   rotations=np.tile([0, 0, 0, 1.0], (22, 1)), confidence=np.ones(24),
                   translation=np.array([0, 0, 3.0])) if body else None
    return Person(id=pid, box=np.array([0, 0, 10, 20.0]), score=0.75, body=b)


def frames(n, t0=100.0):
    for seq in range(n):
        persons = [] if seq % 5 == 4 else [person(1, seq), person(2, seq, body=seq % 2 == 0)]
        yield Frame(image=None, t=t0 + seq / 30, seq=seq, source_t=seq / 30), persons


def test_contract_arrays_readable_without_pickle(tmp_path):
    path = tmp_path / "rec.npz"
    rec = Recorder(path, joint_names=NAMES, bone_names=["Hips"], faces=FACES, chunk_frames=7)
    for f, ps in frames(23):
        rec(f, ps)
    assert rec.close() == path and not (tmp_path / "rec.npz.parts").exists()
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    n_rows = sum(2 for s in range(23) if s % 5 != 4)
    assert d["t"].shape == (n_rows,) and d["joints"].shape == (n_rows, 24, 3)
    assert d["vertices"].dtype == np.float16 and d["vertices"].shape == (n_rows, 3, 3)
    assert d["rotations"].shape == (n_rows, 22, 4) and d["confidence"].shape == (n_rows, 24)
    assert list(d["joint_names"]) == NAMES and d["faces"].tolist() == [[0, 1, 2]]
    assert d["frame_seq"].tolist() == list(range(23))
    np.testing.assert_allclose(d["frame_t"], np.arange(23) / 30)
    np.testing.assert_array_equal(d["person_id"][:4], [1, 2, 1, 2])
    np.testing.assert_allclose(d["joints"][2, 0, 0], 1.1, rtol=1e-6)  # frame 1, person 1
    assert np.isnan(d["joints"][3]).all()  # frame 1, person 2 had no body
    assert np.isfinite(d["box"]).all() and d["t_start_wall"].shape == ()


def test_without_vertices_and_empty(tmp_path):
    rec = Recorder(tmp_path / "a.npz", joint_names=NAMES, vertices=False)
    for f, ps in frames(3):
        rec(f, ps)
    d = record.load(rec.close())
    assert "vertices" not in d and d["joints"].shape == (6, 24, 3)
    d = record.load(Recorder(tmp_path / "b.npz", joint_names=NAMES).close())
    assert list(d["joint_names"]) == NAMES and "t" not in d


def test_refuses_to_overwrite_unfinished(tmp_path):
    Recorder(tmp_path / "a.npz")
    with pytest.raises(FileExistsError):
        Recorder(tmp_path / "a.npz")
    with pytest.raises(ValueError):
        Recorder(tmp_path / "a.mp4")


def test_killed_process_leaves_recoverable_chunks(tmp_path):
    """A recorder killed with SIGKILL mid-run: the chunks written so far assemble into a readable file."""
    path = tmp_path / "killed.npz"
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_record import frames, NAMES
from realtime_hmr.record import Recorder
rec = Recorder({str(path)!r}, joint_names=NAMES, chunk_frames=10)
for f, ps in frames(35):
    rec(f, ps)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1], timeout=60)
    assert proc.returncode != 0 and not path.exists()
    assert len(list((tmp_path / "killed.npz.parts").glob("chunk_*.npz"))) == 3
    d = record.load(assemble(path))
    assert d["frame_seq"].tolist() == list(range(30))  # the last 5 frames were never flushed
    assert d["joints"].shape[0] == d["t"].shape[0] == d["person_id"].shape[0]
