"""Anatomical range-of-motion (ROM) pose sampler on the Anny rig.

    from realtime_hmr.train.poses import sample_rom
    ps = sample_rom(1000, np.random.default_rng(0))   # PoseSet: rotations (N, 104, 3, 3) local-ref, trans (N, 3)

    python -m realtime_hmr.train.poses --contact-sheet docs/poses_contact_sheet.png

Angles are anatomical and measured from a neutral stance (limbs straight down, feet and palms facing the body),
not from Anny's A-pose: each limb's rest frame is first rotated onto that neutral frame. Every joint draws from a
mix of a uniform law over its whole range and a normal law around a relaxed stance (``NEUTRAL``). On top: activity
templates (``TEMPLATES``: sit, squat, stride, kick, throw, overhead, reach) and symmetric legs/arms for part of the
poses, since independent limbs rarely sit or squat. Left and right use the same, mirrored, limits. Couplings:
hamstrings (a straight knee caps hip flexion), the arm goes behind the body only when low, shoulder external
rotation grows with elevation, the clavicle follows the arm (scapulohumeral rhythm), spine and neck angles are
spread over their vertebrae. Poses whose arms enter the torso (elliptic cylinder), hands the head or thighs, knees
the torso, or whose legs cross through each other are redrawn (tests on the bone heads of the neutral body).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field

import numpy as np

from realtime_hmr.train import rig as R

log = logging.getLogger(__name__)

# Per-joint limits in degrees (low, high), neutral 0. Sources: AAOS normal ROM tables, widened where sport needs it.
LIMITS = {
    # joint            axis / meaning                                          low    high
    "spine.flex": (-25.0, 75.0),  # trunk flexion (+ forward), over spine05..01
    "spine.lat": (-35.0, 35.0),  # lateral bend
    "spine.twist": (-45.0, 45.0),  # axial twist (torso twist, pitching hip-shoulder separation)
    "neck.flex": (-45.0, 50.0),  # head and neck flexion (+ chin down), over neck01..head
    "neck.lat": (-35.0, 35.0),
    "neck.twist": (-70.0, 70.0),
    "hip.flex": (-20.0, 125.0),  # + knee forward; capped to 80 + 45 * min(1, knee / 90) (hamstrings)
    "hip.abd": (-25.0, 45.0),  # + abduction (away from the midline)
    "hip.rot": (-35.0, 45.0),  # + external rotation
    "knee.flex": (0.0, 150.0),
    "ankle.flex": (-20.0, 45.0),  # + plantarflexion (toes down), - dorsiflexion
    "ankle.inv": (-15.0, 25.0),  # + inversion
    "clav.elev": (-5.0, 35.0),  # coupled: 0.3 * (arm elevation - 60) + noise
    "clav.prot": (-15.0, 20.0),  # coupled: 0.15 * (plane of elevation - 30) + noise
    "shoulder.elev": (0.0, 180.0),  # humeral elevation (ISB globe angles; 180 = overhead)
    "shoulder.plane": (-60.0, 135.0),  # plane of elevation: 0 abduction, 90 forward flexion, <0 behind (e <= 60)
    "shoulder.rot": (-70.0, 110.0),  # + external; the external limit is 60 + 50 sin(elevation)
    "elbow.flex": (0.0, 150.0),
    "forearm.sup": (-60.0, 60.0),  # pronation (-) / supination (+) about the rest hand orientation
    "wrist.flex": (-60.0, 70.0),  # + palmar flexion
    "wrist.dev": (-20.0, 25.0),
    "finger.curl": (0.0, 60.0),  # one curl for all phalanges of a hand
}
# Centre of the normal law of each joint where it is not 0: a relaxed stance (arms slightly away from the body).
NEUTRAL = {"shoulder.elev": 12.0, "elbow.flex": 15.0, "finger.curl": 15.0, "hip.abd": 3.0}
# Torso cross-section for the self-intersection test: an ellipse (half-width, half-depth) centred ahead of the
# spine axis by TORSO_FRONT (Anny's neutral body: 0.13-0.16 m wide, 0.12 m in front of / 0.06-0.08 m behind it).
TORSO_AXES, TORSO_FRONT = (0.135, 0.095), 0.045
SPINE = ("spine05", "spine04", "spine03", "spine02", "spine01")
SPINE_W = {"flex": (0.25, 0.25, 0.2, 0.15, 0.15), "lat": (0.2,) * 5, "twist": (0.1, 0.15, 0.25, 0.25, 0.25)}
NECK = ("neck01", "neck02", "neck03", "head")
NECK_W = {"flex": (0.3, 0.25, 0.2, 0.25), "lat": (0.3, 0.25, 0.2, 0.25), "twist": (0.15, 0.2, 0.25, 0.4)}
X, Y, Z = np.eye(3)
DOWN = -Z


@dataclass
class PoseSet:
    """Poses in the project's format: local-ref deltas (root entry = root world rotation) + root translation."""

    rotations: np.ndarray  # (N, 104, 3, 3) float32
    trans: np.ndarray  # (N, 3) float32, metres, anny axes
    source: np.ndarray  # (N,) str: 'rom', 'cmu', 'deepmimic'
    clip: np.ndarray  # (N,) str: clip name ('' for rom)
    frame: np.ndarray = field(default=None)  # (N,) int frame index in the clip (-1 for rom)

    def __post_init__(self):
        if self.frame is None:
            self.frame = np.full(len(self.rotations), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rotations)

    def subset(self, idx) -> PoseSet:
        return PoseSet(self.rotations[idx], self.trans[idx], self.source[idx], self.clip[idx], self.frame[idx])

    @staticmethod
    def concat(sets) -> PoseSet:
        return PoseSet(*(np.concatenate([getattr(s, k) for s in sets]) for k in ("rotations", "trans", "source",
                                                                                   "clip", "frame")))


def _frame(d: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Orthonormal frame (columns) from a direction and a second, roughly perpendicular, axis."""
    d = d / np.linalg.norm(d)
    e = e - d * (e @ d)
    e = e / np.linalg.norm(e)
    return np.stack([d, e, np.cross(d, e)], axis=1)


def _neutralizer(rest_dir: np.ndarray, rest_axis: np.ndarray, dir_: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Rotation taking a rest segment frame (direction + hinge axis) onto the neutral one."""
    return _frame(dir_, axis) @ _frame(rest_dir, rest_axis).T


@dataclass(frozen=True)
class LimbFrames:
    """Rest-to-neutral rotations of the left limbs (right ones are their mirror images)."""

    thigh: np.ndarray
    shin: np.ndarray
    arm: np.ndarray
    fore: np.ndarray
    palm: np.ndarray  # rest palm normal (the side the fingers curl to; medial in Anny's rest pose)
    flex_axis: np.ndarray  # rest wrist / finger flexion axis: rotating the hand towards its palm

    @staticmethod
    def of(rig: R.Rig) -> LimbFrames:
        seg = {k: rig.heads[rig.segment(k)[1]] - rig.heads[rig.segment(k)[0]] for k in R.SEGMENTS}
        e0 = np.cross(seg["upperarm.L"], seg["forearm.L"])
        across = rig.heads[rig.index("finger5-1.L")] - rig.heads[rig.index("finger2-1.L")]
        palm = np.cross(across, seg["hand.L"])
        palm /= np.linalg.norm(palm)
        fa = np.cross(seg["hand.L"], palm)
        return LimbFrames(
            thigh=_neutralizer(seg["thigh.L"], X, DOWN, X),
            shin=_neutralizer(seg["shin.L"], X, DOWN, X),
            arm=_neutralizer(seg["upperarm.L"], e0, DOWN, -X),
            fore=_neutralizer(seg["forearm.L"], e0, DOWN, -X),
            palm=palm,
            flex_axis=fa / np.linalg.norm(fa),
        )


def _rot(axis, deg) -> np.ndarray:
    return R.axis_angle(np.broadcast_to(axis, np.shape(deg) + (3,)), np.radians(deg))


def _draw(rng: np.random.Generator, name: str, n: int, p_uniform: float = 0.35) -> np.ndarray:
    lo, hi = LIMITS[name]
    u = rng.uniform(lo, hi, n)
    g = np.clip(rng.normal(NEUTRAL.get(name, 0.0), (hi - lo) / 6, n), lo, hi)
    return np.where(rng.random(n) < p_uniform, u, g)


LIMB_ANGLES = tuple(k for k in LIMITS if not k.startswith(("spine.", "neck.", "clav.")))
AXIAL_ANGLES = tuple(k for k in LIMITS if k.startswith(("spine.", "neck.")))

# Activity templates: angle centres (degrees) for the left limbs, the right limbs and the spine, drawn around with
# TEMPLATE_SD noise and mirrored left/right half of the time. Everything a template leaves out is drawn freely.
TEMPLATES = {
    "sit": ({"hip.flex": 90, "knee.flex": 90}, {"hip.flex": 90, "knee.flex": 90}, {}),
    "squat": ({"hip.flex": 115, "knee.flex": 140, "ankle.flex": -15, "hip.abd": 15},
              {"hip.flex": 115, "knee.flex": 140, "ankle.flex": -15, "hip.abd": 15}, {"spine.flex": 25}),
    "stride": ({"hip.flex": 35, "knee.flex": 35, "shoulder.elev": 30, "shoulder.plane": -40, "elbow.flex": 80},
               {"hip.flex": -15, "knee.flex": 70, "ankle.flex": 25, "shoulder.elev": 35, "shoulder.plane": 90,
                "elbow.flex": 80}, {"spine.flex": 10, "spine.twist": 10}),
    "kick": ({"hip.flex": 80, "knee.flex": 20, "ankle.flex": 20}, {"hip.flex": 0, "knee.flex": 15},
             {"spine.flex": -10}),
    "throw": ({"shoulder.elev": 95, "shoulder.plane": 10, "shoulder.rot": 100, "elbow.flex": 95, "hip.flex": -10},
              {"shoulder.elev": 80, "shoulder.plane": 60, "elbow.flex": 60, "hip.flex": 45, "knee.flex": 40},
              {"spine.twist": 30, "spine.lat": -15}),
    "overhead": ({"shoulder.elev": 165, "shoulder.plane": 40}, {"shoulder.elev": 165, "shoulder.plane": 40}, {}),
    "reach": ({"shoulder.elev": 90, "shoulder.plane": 90, "elbow.flex": 10}, {}, {"spine.flex": 20}),
}
TEMPLATE_SD = 12.0
P_TEMPLATE, P_SYM_LEGS, P_SYM_ARMS = 0.4, 0.2, 0.15  # the rest: every joint drawn on its own


def draw_limb_angles(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Free anatomical angles (degrees) of one side's limbs, before the couplings (see ``couple``)."""
    return {k: _draw(rng, k, n) for k in LIMB_ANGLES}


def couple(a: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Apply the couplings to one side's angles, in place: hamstrings, arm behind the body only when low,
    external rotation growing with elevation, clavicle following the arm."""
    n = len(a["knee.flex"])
    a["hip.flex"] = np.minimum(a["hip.flex"], 80.0 + 45.0 * np.minimum(1.0, a["knee.flex"] / 90.0))
    e = a["shoulder.elev"]
    a["shoulder.plane"] = np.where((a["shoulder.plane"] < -20) & (e > 60), rng.uniform(-20, 135, n),
                                   a["shoulder.plane"])
    a["shoulder.rot"] = np.minimum(a["shoulder.rot"], 60.0 + 50.0 * np.sin(np.radians(e)))
    a["clav.elev"] = np.clip(0.3 * (e - 60.0) + rng.normal(0, 5, n), *LIMITS["clav.elev"])
    a["clav.prot"] = np.clip(0.15 * (a["shoulder.plane"] - 30.0) + rng.normal(0, 5, n), *LIMITS["clav.prot"])
    return a


def _mix(rng: np.random.Generator, n: int, left: dict, right: dict, axial: dict) -> None:
    """Symmetric limbs and activity templates, in place on freely drawn angles."""
    legs = [k for k in LIMB_ANGLES if k.startswith(("hip.", "knee.", "ankle."))]
    arms = [k for k in LIMB_ANGLES if k not in legs]
    for keys, p in ((legs, P_SYM_LEGS), (arms, P_SYM_ARMS)):
        sym = rng.random(n) < p
        for k in keys:
            right[k] = np.where(sym, np.clip(left[k] + rng.normal(0, 6, n), *LIMITS[k]), right[k])
    names = list(TEMPLATES)
    which = np.where(rng.random(n) < P_TEMPLATE, rng.integers(0, len(names), n), -1)
    flip = rng.random(n) < 0.5
    for t, name in enumerate(names):
        sel = which == t
        for side, centres in zip((left, right, axial), TEMPLATES[name], strict=True):
            for k, c in centres.items():
                side[k] = np.where(sel, np.clip(c + rng.normal(0, TEMPLATE_SD, n), *LIMITS[k]), side[k])
    for k in LIMB_ANGLES:  # mirror the templates half of the time
        f = flip & (which >= 0)
        left[k], right[k] = np.where(f, right[k], left[k]), np.where(f, left[k], right[k])


def limb_deltas(a: dict[str, np.ndarray], lf: LimbFrames, n: int) -> dict[str, np.ndarray]:
    """Local-ref deltas of the left limb bones of ``n`` poses from anatomical angles (missing angles = 0)."""
    a = {k: np.asarray(a.get(k, np.zeros(n)), dtype=np.float64) for k in LIMITS}
    e = a["shoulder.elev"]
    hip = _rot(X, -a["hip.flex"]) @ _rot(Y, -a["hip.abd"]) @ _rot(Z, a["hip.rot"])
    out = {
        "upperleg01.L": hip @ lf.thigh,
        "lowerleg01.L": lf.thigh.T @ _rot(X, a["knee.flex"]) @ lf.shin,
        "foot.L": _rot(X, a["ankle.flex"]) @ _rot(Y, a["ankle.inv"]),
    }
    clav = _rot(Z, -a["clav.prot"]) @ _rot(Y, -a["clav.elev"])
    globe = _rot(Z, -a["shoulder.plane"]) @ _rot(Y, -e) @ _rot(Z, a["shoulder.rot"])
    out["clavicle.L"] = clav
    out["upperarm01.L"] = np.swapaxes(clav, -1, -2) @ globe @ lf.arm
    out["lowerarm01.L"] = lf.arm.T @ _rot(-X, a["elbow.flex"]) @ _rot(Z, a["forearm.sup"]) @ lf.fore
    out["wrist.L"] = _rot(lf.flex_axis, a["wrist.flex"]) @ _rot(lf.palm, a["wrist.dev"])
    curl = _rot(lf.flex_axis, a["finger.curl"])
    for f in range(2, 6):
        for j in (1, 2, 3):
            out[f"finger{f}-{j}.L"] = curl
    return out


def _axial(flex, lat, tw, bones, weights, D, rig):
    for i, b in enumerate(bones):
        D[:, rig.index(b)] = _rot(Z, weights["twist"][i] * tw) @ _rot(Y, weights["lat"][i] * lat) @ _rot(
            X, weights["flex"][i] * flex)


def _draw_unchecked(n: int, rng: np.random.Generator, rig: R.Rig, lf: LimbFrames, root: str) -> np.ndarray:
    D = np.broadcast_to(np.eye(3), (n, len(rig.labels), 3, 3)).copy()
    if root == "upright":
        D[:, 0] = _rot(Z, rng.uniform(-180, 180, n)) @ _rot(X, rng.normal(0, 5, n)) @ _rot(Y, rng.normal(0, 5, n))
    axial = {k: _draw(rng, k, n, 0.25) for k in AXIAL_ANGLES}
    left, right = draw_limb_angles(rng, n), draw_limb_angles(rng, n)
    _mix(rng, n, left, right, axial)
    return build(D, axial, couple(left, rng), couple(right, rng), rig, lf)


def build(D: np.ndarray, spine: dict, left: dict, right: dict, rig: R.Rig, lf: LimbFrames) -> np.ndarray:
    """Fill the deltas ``D`` (N, 104, 3, 3) from angle dicts (degrees): spine/neck, left limbs, right limbs."""
    n = len(D)
    g = {k: np.asarray(spine.get(k, np.zeros(n)), dtype=np.float64) for k in AXIAL_ANGLES}
    _axial(g["spine.flex"], g["spine.lat"], g["spine.twist"], SPINE, SPINE_W, D, rig)
    _axial(g["neck.flex"], g["neck.lat"], g["neck.twist"], NECK, NECK_W, D, rig)
    left, right = limb_deltas(left, lf, n), limb_deltas(right, lf, n)
    for name, Dl in left.items():
        D[:, rig.index(name)] = Dl
    for name, Dr in right.items():  # the right side is the mirror image of an independent left draw
        D[:, rig.index(name.replace(".L", ".R"))] = R.MIRROR_X @ Dr @ R.MIRROR_X
    return D


def _seg_points(p: np.ndarray, a: int, b: int, k: int = 5) -> np.ndarray:
    t = np.linspace(0.0, 1.0, k)[:, None]
    return p[:, a, None, :] * (1 - t) + p[:, b, None, :] * t  # (N, k, 3)


def _min_dist(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    return np.linalg.norm(P[:, :, None, :] - Q[:, None, :, :], axis=-1).min(axis=(1, 2))


def _inside_torso(pts: np.ndarray, p: np.ndarray, G: np.ndarray, rig: R.Rig) -> np.ndarray:
    """(N,) True where any of the points (N, k, 3) lies inside the torso's elliptic cylinder."""
    a, b = p[:, rig.index("spine04")], p[:, rig.index("neck01")]
    ax = b - a
    t = np.einsum("nkj,nj->nk", pts - a[:, None], ax) / np.sum(ax * ax, axis=1)[:, None]
    radial = pts - (a[:, None] + t[..., None] * ax[:, None])
    local = np.einsum("nji,nkj->nki", G[:, rig.index("spine02")], radial)  # into the thorax frame
    r = np.hypot(local[..., 0] / TORSO_AXES[0], (local[..., 1] + TORSO_FRONT) / TORSO_AXES[1])
    return ((r < 1.0) & (t > 0.0) & (t < 1.0)).any(axis=1)


def collisions(D: np.ndarray, rig: R.Rig) -> np.ndarray:
    """True where a pose self-intersects grossly (tests on the neutral body's bone heads, metres)."""
    p, G = R.joint_positions(D, rig), R.world_deltas(D, rig.parents)
    i = rig.index
    torso = _seg_points(p, i("spine04"), i("neck01"), 9)
    head_c = p[:, i("head")] + (G[:, i("head")] @ np.array([0.0, -0.02, 0.09]))
    bad = np.zeros(len(D), dtype=bool)
    for s in "LR":
        arm = np.concatenate([_seg_points(p, i(f"lowerarm01.{s}"), i(f"wrist.{s}"), 4),
                              _seg_points(p, i(f"wrist.{s}"), i(f"finger3-3.{s}"), 3)], axis=1)
        upper = _seg_points(p, i(f"upperarm01.{s}"), i(f"lowerarm01.{s}"), 5)[:, 2:]
        bad |= _inside_torso(np.concatenate([upper, arm], axis=1), p, G, rig)
        bad |= np.linalg.norm(arm - head_c[:, None], axis=-1).min(1) < 0.08
        bad |= _min_dist(p[:, [i(f"lowerleg01.{s}")]], torso) < 0.10
        for t in "LR":
            bad |= _min_dist(arm, _seg_points(p, i(f"upperleg01.{t}"), i(f"lowerleg01.{t}"))) < 0.05
    thigh = {s: _seg_points(p, i(f"upperleg02.{s}"), i(f"lowerleg01.{s}")) for s in "LR"}
    shin = {s: _seg_points(p, i(f"lowerleg01.{s}"), i(f"foot.{s}")) for s in "LR"}
    bad |= _min_dist(thigh["L"], thigh["R"]) < 0.10
    bad |= _min_dist(shin["L"], shin["R"]) < 0.07
    bad |= _min_dist(thigh["L"], shin["R"]) < 0.08
    bad |= _min_dist(shin["L"], thigh["R"]) < 0.08
    return bad


def sample_rom(n: int, rng: np.random.Generator, root: str = "upright", max_rounds: int = 50) -> PoseSet:
    """``n`` ROM poses. ``root='upright'``: random heading, +-5 degree tilt; ``'identity'``: root unrotated."""
    rig = R.load_rig()
    lf = LimbFrames.of(rig)
    kept, total, drawn = [], 0, 0
    for _ in range(max_rounds):
        m = max(16, int(1.5 * (n - total)))
        D = _draw_unchecked(m, rng, rig, lf, root)
        D = D[~collisions(D, rig)]
        drawn += m
        kept.append(D)
        total += len(D)
        if total >= n:
            break
    D = np.concatenate(kept)[:n]
    if len(D) < n:
        raise RuntimeError(f"ROM sampler kept only {len(D)} of {n} poses in {max_rounds} rounds")
    log.info("ROM: %d poses; %.0f%% of the draws rejected for self-intersection", n, 100 * (1 - total / drawn))
    return PoseSet(D.astype(np.float32), np.zeros((n, 3), np.float32), np.full(n, "rom"), np.full(n, ""))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contact-sheet", required=True, help="PNG to write (random samples of each pose source)")
    ap.add_argument("--per-source", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from realtime_hmr.train.sheet import contact_sheet

    contact_sheet(args.contact_sheet, per_source=args.per_source, seed=args.seed)


if __name__ == "__main__":
    main()
