"""The live loop assembled from the configuration: what ``realtime-hmr run`` and ``demo`` execute.

capture -> perception (our batched BlazePose port: every person, stable ids) -> mesh (where the mesh model is shipped)
-> smoothing -> sinks (ZeroMQ, OSC joints, VMC, recording, preview).

The mesh stage (:class:`realtime_hmr.mesh.MeshRecovery`) joins whenever the mesh models are shipped. Without them the
loop streams what is real: boxes, ids, 2D and world landmarks. It never invents a body; sinks that need one (OSC
joints, VMC) then send only their housekeeping messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime_hmr.capture import Capture
from realtime_hmr.config import Config
from realtime_hmr.filters import Smoother
from realtime_hmr.pipeline import Pipeline
from realtime_hmr.track import BadFrame

log = logging.getLogger(__name__)


@dataclass
class Outputs:
    """Where results go besides the stream (all optional)."""

    preview_window: bool = False
    preview_out: str | Path | None = None
    record: str | Path | None = None


class Perception:
    """Pipeline stage: the multi-person tracker on the frame's pixels. A bad frame gives no persons."""

    name = "perception"

    def __init__(self, tracker):
        self.tracker = tracker

    def __call__(self, frame, persons):
        try:
            return self.tracker(frame.image)
        except BadFrame as e:
            log.warning("frame %d skipped: %s", frame.seq, e)
            return []


# OpenCV camera axes (x right, y down, z forward) -> a world with Z up seen from the camera: x right, y away from the
# camera, z up. A person facing the camera then has the body frame's orientation (+X their left, -Y their front).
CAMERA_TO_WORLD = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])


def vmc_pose(humanoid, person):
    """The VMC pose of a person whose body carries its rig's posed bone frames (``body.extras["bone_poses"]``, (B, 3,
    4) in camera space); None otherwise. The avatar root stays at the world origin; the hips carry the position."""
    from realtime_hmr.stream.osc_out import VMCPose

    poses = None if person.body is None else person.body.extras.get("bone_poses")
    if poses is None:
        return None
    W = CAMERA_TO_WORLD @ np.asarray(poses, np.float64)  # rotates orientations and positions alike
    return VMCPose(root_position=np.zeros(3), root_rotation=np.array([0.0, 0, 0, 1]),
                   bones=humanoid.local_rotations(W), bone_positions={"Hips": humanoid.hips_position(W)})


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return host or default_host, int(port)
    except ValueError:
        raise ValueError(f"expected HOST:PORT, got {text!r}") from None


def build(cfg: Config, outputs: Outputs, *, max_frames: int | None = None, progress: bool = False,
          tracker=None) -> Pipeline:
    """A ready-to-run pipeline for ``cfg``. ``tracker`` overrides the shipped BlazePose tracker (tests)."""
    from realtime_hmr.body import SMPL24

    mesh = None
    if tracker is None:
        from realtime_hmr.landmarks import load_pose_tracker
        from realtime_hmr.mesh import MeshRecovery

        rt, pc = cfg.runtime, cfg.perception
        device = None if rt.device == "auto" else rt.device
        m = cfg.mesh
        tracker = load_pose_tracker(rt.backend, device, rt.threads or None, pc.detect_every, pc.max_persons,
                                    pc.tiles, flip_test=pc.flip_test, min_score=pc.min_detection_score,
                                    min_presence=pc.min_presence, mask=m.silhouette)
        try:  # the whole model where it is shipped; landmarks and ids only where it is not
            mesh = MeshRecovery.load(rt.backend, device, rt.threads or None, pc.max_persons, tracker=tracker,
                                     mode=m.mode, samples=m.samples, steps=m.steps, temperature=m.temperature,
                                     decode=m.decode, mirror_test=m.mirror_test, fit=m.fit,
                                     silhouette=m.silhouette)
        except FileNotFoundError as e:
            if m.mode == "stochastic":
                raise RuntimeError(f"--mode stochastic needs the mesh model: {e}") from e
            log.info("%s: streaming landmarks and ids only", e)
    capture = Capture(cfg.capture.source, cfg.capture)  # raises SourceError for an unreadable source
    stages = [Perception(tracker)]
    if mesh is not None:
        stages.append(("mesh", mesh.stage))
    stages.append(("smooth", Smoother(cfg.smoothing)))
    sinks = []
    st = cfg.stream
    if st.zmq:
        from realtime_hmr.stream.zmq_pub import ZmqPublisher

        sinks.append(("zmq", ZmqPublisher(st.zmq, joint_names=SMPL24, send_vertices=st.send_vertices)))
    if st.osc:
        from realtime_hmr.stream.osc_out import OscJointSender

        host, port = parse_host_port(st.osc)
        sinks.append(("osc", OscJointSender(host, port, joint_names=SMPL24)))
    if st.vmc:
        from realtime_hmr.body import Body, Humanoid
        from realtime_hmr.stream.osc_out import VMCSender

        host, port = parse_host_port(st.vmc)
        humanoid = Humanoid(Body.load())
        sinks.append(("vmc", VMCSender(host, port, max_persons=cfg.perception.max_persons,
                                       pose_of=lambda p: vmc_pose(humanoid, p), rest_offsets=humanoid.rest_offsets)))
    if outputs.record:
        from realtime_hmr.record import Recorder

        sinks.append(("record", Recorder(outputs.record, joint_names=SMPL24)))
    if outputs.preview_window or outputs.preview_out:
        from realtime_hmr.preview import Preview

        faces = None if mesh is None else mesh.body.faces  # the mesh is drawn where there is one
        sinks.append(("preview", Preview(outputs.preview_window, outputs.preview_out, faces=faces)))
    pipe = Pipeline(capture, stages, sinks, max_frames=max_frames, progress=progress)
    pipe.backends = {"perception": getattr(getattr(tracker, "landmarker", None), "backend", None),
                     "mesh": None if mesh is None else mesh.decoder}
    return pipe


def run(cfg: Config, outputs: Outputs, *, max_frames: int | None = None, progress: bool = False,
        tracker=None) -> dict:
    """Build and run; returns the CONTRACT.md report with the backend of each stage and the device."""
    pipe = build(cfg, outputs, max_frames=max_frames, progress=progress, tracker=tracker)
    report = pipe.run()
    backend, mesh = pipe.backends.get("perception"), pipe.backends.get("mesh")
    report["backend"] = {"perception": getattr(backend, "name", "custom"),
                         "mesh": None if mesh is None else getattr(mesh, "name", "custom")}
    report["device"] = cfg.runtime.device
    report["mesh"] = ("mesh recovered for every person" if mesh is not None
                      else "no mesh model is shipped yet: landmarks and ids only")
    return report
