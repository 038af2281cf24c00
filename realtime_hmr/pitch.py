"""Pitch events and metrics from a pitcher's joints over time (``realtime-hmr pitch``).

Input: SMPL-24 joints (T, 24, 3) in metres in the camera's frame (OpenCV axes, z forward; a fixed camera), sampled at
``fps``, and the world's up direction in that frame (a level camera: -y). Frames where the pitcher was not found are
NaN; gaps up to ``max_gap_s`` are filled linearly, longer ones are an error. Left/right limb swaps between frames are
relabelled, a 30 ms running median takes out single-frame jumps, and the joints are low-passed without lag
(4th-order Butterworth, forward and backward) before anything is measured, as biomechanics labs filter marker data;
the cut-off defaults to 15 Hz and is capped at 0.4 x the frame rate.

Events (frame indices into the input):
- ``leg_lift``: the lead knee's highest point (the balance point). The lead leg is the one whose knee rises furthest
  above the other's; the throwing hand, unless given, is on the other side (legs are recovered far more steadily
  than an arm at full speed).
- ``foot_contact``: the lead (glove-side) foot landing, found in the image (a body's place in the image is sharp;
  its depth from one camera is not): after its fastest point following leg lift, the lead ankle comes to rest (its
  median speed over 100 ms under a quarter of that peak); the landing is the frame, within 100 ms of that, where it
  brakes hardest (its speed falls fastest). A zero-lag filter spreads a sudden stop evenly on both sides, so the
  steepest fall stays on the landing; a speed threshold would lag it.
- ``release``: the throwing wrist's peak speed 60-400 ms after foot contact (what a delivery takes); without the
  ball, the marker-free stand-in for ball release.
- ``max_external_rotation``: the throwing shoulder's largest external rotation between foot contact and release.

Metrics of the throwing arm and the trunk's turn (``INDICATIVE``, and the two arm events) are reported as indicative:
one camera recovers them far less surely than the legs (``docs/pitch.md``).

Angles (degrees):
- knee / elbow flexion: 180 minus the angle at the joint (0 = straight);
- shoulder abduction: the upper arm against the trunk's axis (pelvis to neck; 90 = arm out level with the shoulders);
- external rotation: the forearm about the upper arm's axis, from pointing forward (the trunk's front) towards up:
  0 forearm forward, 90 forearm up, over 90 laid back behind the head (the "layback"); undefined with a straight
  elbow;
- pelvis and trunk (shoulders) rotation: the hip line and the shoulder line turned about the up axis;
  hip-shoulder separation = pelvis rotation minus trunk rotation, positive while the hips lead;
- trunk tilt at release: the trunk's axis leaning towards the target (forward) and towards the glove side
  (lateral, positive = away from the throwing arm);
- arm slot at release: the line shoulder -> wrist seen from the target, against the horizontal (90 = straight over
  the top, about 45 = three-quarters, 0 = sidearm);
- stride: the horizontal distance from the pivot ankle (its mean up to leg lift) to the lead ankle (its mean from
  foot contact to release), in metres and in % of the body's height; its direction against the target line
  (positive = closed, across the body towards the throwing-arm side). The target line is the throwing wrist's
  horizontal direction at release.

Kinematic sequence: the peak angular velocities (deg/s) of pelvis rotation, trunk rotation and elbow extension, each
with its time from foot contact; efficient deliveries peak in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime_hmr.body.names import SMPL24

J = {name: i for i, name in enumerate(SMPL24)}
# Body height over the head joint's height above the ankle joints, standing (the body asset's mean shape in its
# reference pose: 1.160; random shapes 1.15-1.18; tests/test_pitch.py measures it again from the asset).
HEIGHT_PER_HEAD_ANKLE = 1.16
CAMERA_UP = np.array([0.0, -1.0, 0.0])  # OpenCV camera axes: y points down the image


class PitchError(ValueError):
    """The joints do not hold a pitch that can be measured (too short, too many gaps, no throw)."""


@dataclass(frozen=True)
class PitchConfig:
    cutoff_hz: float = 15.0
    hand: str = "auto"  # auto | right | left
    min_wrist_speed: float = 8.0  # m/s: a throwing wrist peaks far above it; walking and waving stay below
    contact_to_release_ms: tuple[float, float] = (60.0, 400.0)  # what a delivery takes; else it is not a pitch
    min_stride: float = 0.3  # of the body's height (pitchers stride 70-90 %)
    max_gap_s: float = 0.1
    median_s: float = 0.03  # a running median over this long (odd frames; none under 3) before the low-pass
    unswap: bool = True  # undo left/right limb swaps between frames (see ``unswap``)


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 1e-9, n, np.nan)


def joint_angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The angle at ``b`` (degrees) between b->a and b->c."""
    cos = np.sum(unit(a - b) * unit(c - b), axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def signed_angle(v: np.ndarray, ref: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Angle (radians) from ``ref`` to ``v`` about ``axis``, both projected on the plane normal to the axis."""
    axis = unit(axis)
    v = v - np.sum(v * axis, -1, keepdims=True) * axis
    ref = ref - np.sum(ref * axis, -1, keepdims=True) * axis
    return np.arctan2(np.sum(np.cross(ref, v) * axis, -1), np.sum(ref * v, -1))


# left/right limbs of SMPL-24 (elbow, wrist, hand; knee, ankle, foot)
ARM_CHAINS = ((18, 20, 22), (19, 21, 23))
LEG_CHAINS = ((4, 7, 10), (5, 8, 11))


def unswap(joints: np.ndarray, ratio: float = 0.5) -> tuple[np.ndarray, int]:
    """Left and right limbs relabelled where a frame has them the other way round from the frame before.

    Single-image landmarks sometimes trade the left and right arm (or leg) for a few frames, most often when the
    arms cross the body at speed; a teleporting wrist would then be read as the throw's peak speed. Frame by frame,
    each limb pair (pelvis-relative) is swapped when the swapped pairing is nearer to the previous (already
    corrected) frame than ``ratio`` times the kept one. Returns the joints and the number of limb swaps undone.
    At a high frame rate limbs move little between frames, so the test is sharp; at 30 fps it is weaker."""
    x = np.array(joints, dtype=np.float64)
    prev, undone = None, 0
    for f in range(len(x)):
        if not np.isfinite(x[f]).all():
            continue
        if prev is not None:
            rel, ref = x[f] - x[f, 0], prev - prev[0]
            for left, right in (ARM_CHAINS, LEG_CHAINS):
                L, R = list(left), list(right)
                keep = np.linalg.norm(rel[L] - ref[L], axis=-1).sum() + np.linalg.norm(rel[R] - ref[R], axis=-1).sum()
                swap = np.linalg.norm(rel[L] - ref[R], axis=-1).sum() + np.linalg.norm(rel[R] - ref[L], axis=-1).sum()
                if swap < ratio * keep:
                    x[f, L + R] = x[f, R + L]
                    undone += 1
        prev = x[f]
    return x, undone


def fill_gaps(joints: np.ndarray, max_gap: int) -> np.ndarray:
    """Linear interpolation over missing frames (NaN rows); a gap longer than ``max_gap`` frames is an error."""
    x = np.array(joints, dtype=np.float64)
    ok = np.isfinite(x).all(axis=(1, 2))
    if ok.sum() < 2:
        raise PitchError("the pitcher was found in fewer than 2 frames")
    idx = np.flatnonzero(ok)
    gaps = np.diff(idx) - 1
    if gaps.size and gaps.max() > max_gap:
        k = int(np.argmax(gaps))
        raise PitchError(f"the pitcher is missing for {gaps[k]} frames in a row (frames {idx[k] + 1}-{idx[k + 1] - 1})"
                         f"; at most {max_gap} can be filled")
    x = x[idx[0]: idx[-1] + 1]
    ok = ok[idx[0]: idx[-1] + 1]
    t = np.arange(len(x))
    flat = x.reshape(len(x), -1)
    for j in range(flat.shape[1]):
        flat[~ok, j] = np.interp(t[~ok], t[ok], flat[ok, j])
    return flat.reshape(x.shape)


def lowpass(x: np.ndarray, fps: float, cutoff_hz: float) -> tuple[np.ndarray, float]:
    """Zero-lag 4th-order Butterworth low-pass along axis 0; returns the series and the cut-off used."""
    from scipy.signal import butter, sosfiltfilt

    cutoff = min(cutoff_hz, 0.4 * fps)
    sos = butter(4, cutoff / (fps / 2.0), output="sos")
    pad = min(len(x) - 1, 3 * int(round(fps / cutoff)))
    return sosfiltfilt(sos, x, axis=0, padlen=pad), cutoff


def _event(frame: int, offset: int, fps: float) -> dict:
    return {"frame": int(frame + offset), "t_s": round((frame + offset) / fps, 4)}


def analyze(joints: np.ndarray, up: np.ndarray = CAMERA_UP, *, fps: float, height: float | None = None,
            config: PitchConfig = PitchConfig()) -> dict:
    """Events, metrics and curves of one pitch from a pitcher's joints (T, 24, 3); see the module's docstring."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (24, 3):
        raise PitchError(f"joints: expected (frames, 24, 3), got {joints.shape}")
    if fps <= 0:
        raise PitchError(f"fps must be positive, got {fps}")
    valid = np.flatnonzero(np.isfinite(joints).all(axis=(1, 2)))
    offset = int(valid[0]) if valid.size else 0
    x, swaps = unswap(joints) if config.unswap else (joints, 0)
    x = fill_gaps(x, int(round(config.max_gap_s * fps)))
    if len(x) < max(12, int(0.3 * fps)):
        raise PitchError(f"{len(x)} frames ({len(x) / fps:.2f} s) are too short for a pitch")
    k = 2 * int(config.median_s * fps / 2) + 1
    if k >= 3:  # single-frame estimates jump now and then: spikes out before the low-pass spreads them
        from scipy.ndimage import median_filter

        x = median_filter(x, size=(k, 1, 1), mode="nearest")
    if (x[..., 2] <= 0).any():
        raise PitchError("joints must be in camera space (z forward, in front of the camera)")
    image, _ = lowpass(x[..., :2] / x[..., 2:], fps, config.cutoff_hz)  # normalised image coordinates
    x, cutoff = lowpass(x, fps, config.cutoff_hz)
    up = unit(np.asarray(up, dtype=np.float64))
    dt = 1.0 / fps

    def speed(j: int) -> np.ndarray:
        return np.linalg.norm(np.gradient(x[:, j], dt, axis=0), axis=-1)

    def height_of(j: int) -> np.ndarray:
        return x[:, j] @ up

    # throwing hand: opposite the lead leg, the one whose knee rises highest above the other (the leg lift; legs
    # are recovered far more steadily than a throwing arm at full speed)
    if config.hand not in ("auto", "right", "left"):
        raise PitchError(f"hand must be auto, right or left, got {config.hand!r}")
    lift = height_of(J["left_knee"]) - height_of(J["right_knee"])
    hand = config.hand if config.hand != "auto" else ("right" if lift.max() >= -lift.min() else "left")
    glove = "left" if hand == "right" else "right"

    def h(v):  # horizontal part
        return v - np.sum(v * up, -1, keepdims=True) * up

    # leg lift: the lead knee's highest point
    ll = int(np.argmax(height_of(J[f"{glove}_knee"])))
    # foot contact, in the image, where a body's place is sharp (its depth from one camera is not): after its
    # fastest point the lead ankle comes to rest (its median speed over 100 ms under a quarter of that); the
    # landing is where it brakes hardest on the way
    ankle = image[:, J[f"{glove}_ankle"]]
    a_speed = np.linalg.norm(np.gradient(ankle, dt, axis=0), axis=-1)
    peak = ll + int(np.argmax(a_speed[ll:ll + int(fps)]))
    run = max(2, int(round(0.1 * fps)))
    rest = next((i for i in range(len(x) - peak - run + 1)
                 if np.median(a_speed[peak + i:peak + i + run]) < 0.25 * a_speed[peak]), None)
    if rest is None or a_speed[peak] * dt < 1e-4:
        raise PitchError("no foot contact: after the leg lift the lead foot never comes to rest")
    w0, w1 = max(peak, peak + rest - run), min(len(x) - 1, peak + rest + run)  # 100 ms either side of coming to rest
    fc = w0 + int(np.argmin(np.gradient(a_speed, dt)[w0:w1 + 1]))
    # release: the throwing wrist's fastest point in what a delivery takes after foot contact
    lo_ms, hi_ms = config.contact_to_release_ms
    r0, r1 = fc + int(round(lo_ms * fps / 1000.0)), min(len(x) - 1, fc + int(round(hi_ms * fps / 1000.0)))
    if r1 <= r0:
        raise PitchError(f"the clip ends {1000.0 * (len(x) - 1 - fc) / fps:.0f} ms after foot contact, before any "
                         "release")
    wrist_speed = speed(J[f"{hand}_wrist"])
    br = r0 + int(np.argmax(wrist_speed[r0:r1 + 1]))
    if wrist_speed[br] < config.min_wrist_speed:
        raise PitchError(f"no throw: the {hand} wrist peaks at {wrist_speed[br]:.1f} m/s after foot contact, under "
                         f"{config.min_wrist_speed:g} m/s")

    # the target line: the throwing wrist's horizontal direction at release
    wv = np.gradient(x[:, J[f"{hand}_wrist"]], dt, axis=0)[br]
    d = unit(h(wv))
    s_glove = np.cross(up, d) * (1.0 if hand == "right" else -1.0)

    # angles over time
    pelvis = np.unwrap(signed_angle(x[:, J["right_hip"]] - x[:, J["left_hip"]], np.broadcast_to(d, (len(x), 3)), up))
    trunk = np.unwrap(signed_angle(x[:, J["right_shoulder"]] - x[:, J["left_shoulder"]],
                                   np.broadcast_to(d, (len(x), 3)), up))
    sign = 1.0 if trunk[br] >= trunk[ll] else -1.0  # the sense the body turns towards the target
    separation = np.degrees(sign * (pelvis - trunk))
    sh, el, wr = (x[:, J[f"{hand}_{k}"]] for k in ("shoulder", "elbow", "wrist"))
    neck, root = x[:, J["neck"]], x[:, J["pelvis"]]
    trunk_axis = unit(neck - root)
    left_dir = unit(x[:, J["left_shoulder"]] - x[:, J["right_shoulder"]])
    front = unit(np.cross(left_dir, trunk_axis))
    upper = el - sh
    ext_axis = upper if hand == "right" else -upper
    elbow_flex = 180.0 - joint_angle(sh, el, wr)
    er = np.degrees(np.unwrap(signed_angle(wr - el, front, ext_axis)))
    er = np.where(elbow_flex > 20.0, er, np.nan)  # the forearm's turn is undefined on a straight arm
    window = er[fc:br + 1]
    if np.isfinite(window).any():
        mer = fc + int(np.nanargmax(window))
        # unwrap can start a turn off by 360: express the peak in (-180, 360)
        shift = 360.0 * np.floor((er[mer] + 180.0) / 360.0)
        if er[mer] - shift < 0:
            shift -= 360.0
        er = er - shift
        er_max = float(er[mer])
    else:
        mer, er_max = None, None

    def knee_flex(side: str) -> np.ndarray:
        return 180.0 - joint_angle(x[:, J[f"{side}_hip"]], x[:, J[f"{side}_knee"]], x[:, J[f"{side}_ankle"]])

    lead_knee = knee_flex(glove)
    abduction = joint_angle(el, sh, sh - trunk_axis)
    axis_br = trunk_axis[br]
    fwd_tilt = np.degrees(np.arctan2(axis_br @ d, axis_br @ up))
    lat_tilt = np.degrees(np.arctan2(axis_br @ s_glove, axis_br @ up))
    arm = wr[br] - sh[br]
    slot = np.degrees(np.arctan2(arm @ up, abs(arm @ s_glove)))

    # standing tall on the pivot leg before leg lift: the head's height above the pivot ankle at its 90th percentile
    head_ankle = (x[: max(ll, 1), J["head"]] - x[: max(ll, 1), J[f"{hand}_ankle"]]) @ up
    height_m = float(height) if height else float(np.percentile(head_ankle, 90) * HEIGHT_PER_HEAD_ANKLE)
    # the planted feet, averaged while they stand: the pivot foot up to leg lift, the lead foot from contact on
    stride = h(x[fc:br + 1, J[f"{glove}_ankle"]].mean(0) - x[: ll + 1, J[f"{hand}_ankle"]].mean(0))
    stride_len = float(np.linalg.norm(stride))
    if stride_len < config.min_stride * height_m:
        raise PitchError(f"not a pitch: a stride of {stride_len:.2f} m ({100 * stride_len / height_m:.0f} % of the "
                         f"body's height; deliveries stride over {100 * config.min_stride:.0f} %)")
    stride_dir = float(np.degrees(np.arctan2(stride @ -s_glove, stride @ d)))

    omega_p = np.degrees(sign * np.gradient(pelvis, dt))
    omega_t = np.degrees(sign * np.gradient(trunk, dt))
    omega_e = -np.gradient(elbow_flex, dt)  # extension positive
    lo, hi = ll, min(len(x), br + int(round(0.05 * fps)) + 1)  # from leg lift to just after release

    def peak_of(w: np.ndarray) -> dict:
        k = lo + int(np.argmax(w[lo:hi]))
        return {"peak_deg_s": round(float(w[k]), 1), "ms_from_foot_contact": round(1000.0 * (k - fc) / fps, 1),
                "frame": int(k + offset)}

    sequence = {"pelvis": peak_of(omega_p), "trunk": peak_of(omega_t), "elbow_extension": peak_of(omega_e)}
    order = [sequence[k]["frame"] for k in ("pelvis", "trunk", "elbow_extension")]

    def r(v, n=1):
        return None if v is None or not np.isfinite(v) else round(float(v), n)

    events = {"leg_lift": _event(ll, offset, fps), "foot_contact": _event(fc, offset, fps),
              "max_external_rotation": None if mer is None else _event(mer, offset, fps),
              "release": _event(br, offset, fps)}
    return {
        "hand": hand, "fps": fps, "frames": int(len(joints)), "cutoff_hz": round(cutoff, 2), "limb_swaps_undone": swaps,
        "events": events,
        "timing_ms": {"leg_lift_to_foot_contact": r(1000.0 * (fc - ll) / fps),
                      "foot_contact_to_max_external_rotation": None if mer is None else r(1000.0 * (mer - fc) / fps),
                      "foot_contact_to_release": r(1000.0 * (br - fc) / fps)},
        "metrics": {
            "height_m": r(height_m, 3), "height_estimated": not height,
            "stride_length_m": r(stride_len, 3), "stride_length_pct_height": r(100.0 * stride_len / height_m),
            "stride_direction_deg": r(stride_dir),
            "lead_knee_flexion_foot_contact_deg": r(lead_knee[fc]), "lead_knee_flexion_release_deg": r(lead_knee[br]),
            "elbow_flexion_foot_contact_deg": r(elbow_flex[fc]),
            "shoulder_abduction_foot_contact_deg": r(abduction[fc]),
            "hip_shoulder_separation_foot_contact_deg": r(separation[fc]),
            "max_hip_shoulder_separation_deg": r(np.max(separation[ll:br + 1])),
            "max_external_rotation_deg": r(er_max),
            "trunk_forward_tilt_release_deg": r(fwd_tilt), "trunk_lateral_tilt_release_deg": r(lat_tilt),
            "arm_slot_release_deg": r(slot), "wrist_speed_release_m_s": r(wrist_speed[br], 2),
        },
        "kinematic_sequence": {**sequence, "in_order": bool(order[0] < order[1] < order[2])},
        "indicative": list(INDICATIVE) + ["max_external_rotation", "release", "foot_contact_to_release",
                                           "foot_contact_to_max_external_rotation", "kinematic_sequence"],
        "curves": {"t_s": ((np.arange(len(x)) + offset) / fps).round(5), "pelvis_deg_s": omega_p.round(1),
                   "trunk_deg_s": omega_t.round(1), "elbow_extension_deg_s": omega_e.round(1),
                   "external_rotation_deg": er.round(1), "separation_deg": separation.round(1),
                   "wrist_speed_m_s": wrist_speed.round(3)},
    }


LABELS = (  # metric -> what a coach reads
    ("stride_length_pct_height", "Stride length", "% of height"),
    ("stride_length_m", "Stride length", "m"),
    ("stride_direction_deg", "Stride direction (+ closed)", "deg"),
    ("lead_knee_flexion_foot_contact_deg", "Lead knee flexion at foot contact", "deg"),
    ("lead_knee_flexion_release_deg", "Lead knee flexion at release", "deg"),
    ("elbow_flexion_foot_contact_deg", "Elbow flexion at foot contact", "deg"),
    ("shoulder_abduction_foot_contact_deg", "Shoulder abduction at foot contact", "deg"),
    ("hip_shoulder_separation_foot_contact_deg", "Hip-shoulder separation at foot contact", "deg"),
    ("max_hip_shoulder_separation_deg", "Max hip-shoulder separation", "deg"),
    ("max_external_rotation_deg", "Max shoulder external rotation", "deg"),
    ("trunk_forward_tilt_release_deg", "Trunk forward tilt at release", "deg"),
    ("trunk_lateral_tilt_release_deg", "Trunk lateral tilt at release (+ glove side)", "deg"),
    ("arm_slot_release_deg", "Arm slot at release (90 = over the top)", "deg"),
    ("wrist_speed_release_m_s", "Wrist speed at release", "m/s"),
)


# Metrics that depend on the throwing arm and the trunk's turn, which one camera recovers far less surely than the
# legs: on the project's rendered pitch (benchmarks/eval_pitch.py, docs/pitch.md) they were off by tens of degrees.
# The summary prints them apart, as indicative; the report lists them under "indicative".
INDICATIVE = ("stride_direction_deg", "elbow_flexion_foot_contact_deg", "shoulder_abduction_foot_contact_deg",
              "hip_shoulder_separation_foot_contact_deg", "max_hip_shoulder_separation_deg",
              "max_external_rotation_deg", "trunk_forward_tilt_release_deg", "trunk_lateral_tilt_release_deg",
              "arm_slot_release_deg", "wrist_speed_release_m_s")


def summary(report: dict) -> str:
    """The report as plain text a coach can read."""
    ev, m, tm, seq = report["events"], report["metrics"], report["timing_ms"], report["kinematic_sequence"]
    lines = [f"{report['hand']}-handed pitch, {report['frames']} frames at {report['fps']:g} fps "
             f"(filtered at {report['cutoff_hz']:g} Hz)", "", "Events:"]
    for k in ("leg_lift", "foot_contact", "max_external_rotation", "release"):
        e = ev[k]
        note = "  (indicative: from the arm)" if k in ("max_external_rotation", "release") else ""
        lines.append(f"  {k.replace('_', ' '):<24} " + ("not found" if e is None else
                                                           f"frame {e['frame']:>5}  t = {e['t_s']:.3f} s{note}"))
    lines.append(f"  foot contact -> release  {tm['foot_contact_to_release']} ms (indicative)")
    for title, keys in (("Metrics:", [k for k in LABELS if k[0] not in INDICATIVE]),
                        ("Indicative only (arm and trunk rotation: far less certain from one camera; "
                         "docs/pitch.md):", [k for k in LABELS if k[0] in INDICATIVE])):
        lines += ["", title]
        for key, label, u in keys:
            v = m.get(key)
            lines.append(f"  {label:<46} {'-' if v is None else v:>7} {u}")
    if m.get("height_estimated"):
        lines.append(f"  (height {m['height_m']} m estimated from the body; give --height for exact percentages)")
    lines += ["", "Kinematic sequence (peak angular velocity, time from foot contact; indicative):"]
    for k in ("pelvis", "trunk", "elbow_extension"):
        s = seq[k]
        lines.append(f"  {k.replace('_', ' '):<16} {s['peak_deg_s']:>7.0f} deg/s at "
                     f"{s['ms_from_foot_contact']:+6.0f} ms")
    lines.append("  order: " + ("pelvis -> trunk -> arm, as in efficient deliveries" if seq["in_order"]
                                else "out of order"))
    return "\n".join(lines)


def plot(report: dict, path) -> None:
    """The kinematic sequence, the shoulder's external rotation and the wrist's speed, with the events marked."""
    try:
        import matplotlib
    except ImportError as e:
        raise RuntimeError("--plot needs matplotlib (pip install matplotlib)") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, ev = report["curves"], report["events"]
    t = np.asarray(c["t_s"]) * 1000.0
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    ax = axes[0]
    for key, label in (("pelvis_deg_s", "pelvis rotation"), ("trunk_deg_s", "trunk rotation"),
                       ("elbow_extension_deg_s", "elbow extension")):
        ax.plot(t, c[key], label=label)
    ax.set_ylabel("deg/s")
    ax.set_title(f"{report['hand']}-handed pitch: kinematic sequence")
    ax.legend(loc="upper left")
    axes[1].plot(t, c["external_rotation_deg"], color="tab:purple", label="shoulder external rotation")
    axes[1].plot(t, c["separation_deg"], color="tab:olive", label="hip-shoulder separation")
    axes[1].set_ylabel("deg")
    axes[1].legend(loc="upper left")
    axes[2].plot(t, c["wrist_speed_m_s"], color="tab:red", label=f"{report['hand']} wrist speed")
    axes[2].set_ylabel("m/s")
    axes[2].set_xlabel("time (ms)")
    axes[2].legend(loc="upper left")
    for name, e in ev.items():
        if e is None:
            continue
        for ax in axes:
            ax.axvline(1000.0 * e["t_s"], color="0.5", lw=0.8, ls="--")
        axes[0].annotate(name.replace("_", " "), (1000.0 * e["t_s"], 1.0), xycoords=("data", "axes fraction"),
                         rotation=90, va="top", ha="right", fontsize=8, color="0.3")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
