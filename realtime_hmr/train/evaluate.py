"""``realtime-hmr eval synthetic``: end-to-end accuracy on freshly rendered, held-out synthetic people.

    realtime-hmr eval synthetic --n 100 --seed 0 --report benchmarks/results/eval_synthetic_n100.json

Held-out by construction: scenes come from ``SeedSequence(seed, spawn_key=(1, 0))`` (domain 1; ``data synth``
only ever uses domain 0, see :mod:`realtime_hmr.train.synth`), mocap poses only from the clips that
``mocap.HELD_OUT`` keeps out of training, ROM poses and shapes from that same held-out stream. One person per image,
cameras/appearance/backgrounds as in ``data synth`` (so some people are partly out of frame).

Scored (CONTRACT.md, mm): ours = the product's mesh model on the pixels (``realtime_hmr.mesh.MeshRecovery``): PVE and
MPJPE on the 24 SMPL-like joints after aligning the pelvis (joint 0), PA-MPJPE after a similarity Procrustes
alignment; null with a ``reason`` while no mesh model exists. Baseline, same images and run: MediaPipe's world
landmarks (legacy ``mp.solutions.pose``, static mode, complexity 1) on the 12 limb landmarks it shares with
SMPL-24 (shoulders, elbows, wrists, hips, knees, ankles), against the body's MediaPipe-33 landmark regressor (the
same landmark definitions) in camera axes, both centred on their hip midpoint (MediaPipe has no pelvis joint);
``vs_smpl24`` gives the same against the SMPL-24 joints. Means over the images where the person was detected.
The product's own perception stack (``landmarks.load_pose_tracker``, our BlazePose port) runs on every image too:
its detection count is ``detected`` and its world landmarks are scored the same way under ``perception``.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from realtime_hmr.metrics import mpjpe, pa_mpjpe, pve

log = logging.getLogger(__name__)

MP12 = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]  # MediaPipe: shoulders, elbows, wrists, hips, knees, ankles
SMPL12 = [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]  # the same joints in SMPL-24 order
HIPS12 = (6, 7)  # positions of the two hips within the 12


def limb_errors(pred12: np.ndarray, gt12: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MPJPE, PA-MPJPE) per sample in metres for (n, 12, 3) joints, both centred on their hip midpoint."""
    pr = pred12[:, HIPS12].mean(1)
    gr = gt12[:, HIPS12].mean(1)
    return mpjpe(pred12, gt12, root=gr, pred_root=pr), pa_mpjpe(pred12, gt12)


def score_mesh(pred_joints, gt_joints, pred_vertices=None, gt_vertices=None) -> dict[str, np.ndarray]:
    """Per-sample PVE / MPJPE / PA-MPJPE (metres) of 24-joint predictions (n, 24, 3), pelvis = joint 0."""
    out = {"mpjpe": mpjpe(pred_joints, gt_joints, root=0), "pa_mpjpe": pa_mpjpe(pred_joints, gt_joints)}
    if pred_vertices is not None and gt_vertices is not None:
        out["pve"] = pve(pred_vertices, gt_vertices, pred_joints[:, 0], gt_joints[:, 0])
    return out


def _mm(x) -> float | None:
    x = np.asarray(x, float)
    return round(float(x.mean()) * 1e3, 1) if x.size else None


DISTANCE_BINS = ((0.0, 3.0, "under 3 m"), (3.0, 5.0, "3-5 m"), (5.0, np.inf, "5 m and over"))
YAW_BINS = ((0.0, 45.0, "front (|yaw| < 45)"), (45.0, 135.0, "side (45-135)"), (135.0, 181.0, "back (|yaw| >= 135)"))


def breakdown(errors: dict, yaw, distance, source) -> dict:
    """Mean errors (mm) by camera distance, by the person's heading relative to the camera and by pose source."""
    yaw, distance, source = np.abs(np.asarray(yaw, float)), np.asarray(distance, float), np.asarray(source)
    masks = {"by_distance": {name: (distance >= lo) & (distance < hi) for lo, hi, name in DISTANCE_BINS},
             "by_yaw": {name: (yaw >= lo) & (yaw < hi) for lo, hi, name in YAW_BINS},
             "by_source": {str(k): source == k for k in np.unique(source)}}
    return {group: {name: {"n": int(m.sum()), **{f"{k}_mm": _mm(np.asarray(v)[m]) for k, v in errors.items()}}
                    for name, m in ms.items()}
            for group, ms in masks.items()}


def _summary(acc: dict) -> dict:
    if not acc["p"]:
        return {"mpjpe_mm": None, "pa_mpjpe_mm": None, "n": 0}
    p, g, s = np.stack(acc["p"]), np.stack(acc["g"]), np.stack(acc["s"])
    e, pa = limb_errors(p, g)
    e2, pa2 = limb_errors(p, s)
    px = np.stack(acc["px"])  # (n, 12) image error / person height in pixels
    part, yaw = np.array(acc["partial"]), np.abs(np.array(acc["yaw"]))
    subsets = {"in_frame": ~part, "partly_out_of_frame": part, "in_frame_yaw_below_45": ~part & (yaw < 45)}
    return {"mpjpe_mm": _mm(e), "pa_mpjpe_mm": _mm(pa), "median_mpjpe_mm": round(float(np.median(e)) * 1e3, 1),
            "n": len(p), "vs_smpl24": {"mpjpe_mm": _mm(e2), "pa_mpjpe_mm": _mm(pa2)},
            "image_error_median_pct_height": round(float(np.median(px)) * 100, 2),
            "image_pck_5pct_height": round(float((px < 0.05).mean()), 3),
            "by_view": {k: {"n": int(m.sum()), "mpjpe_mm": _mm(e[m]), "pa_mpjpe_mm": _mm(pa[m])}
                        for k, m in subsets.items()},
            **breakdown({"mpjpe": e, "pa_mpjpe": pa}, acc["yaw"], acc["dist"], acc["src"])}


def _add(acc: dict, world33, image33, s: dict, source: str) -> None:
    gt2 = s["mp33_2d"][0, MP12]
    height = np.ptp(s["mp33_2d"][0, :, 1]) + 1e-6  # person height in the image (projected landmarks)
    acc["p"].append(world33[MP12])
    acc["g"].append(s["mp33"][0, MP12])
    acc["s"].append(s["joints24"][0, SMPL12])
    acc["px"].append(np.linalg.norm(image33[MP12, :2] - gt2, axis=-1) / height)
    acc["partial"].append(s["info"]["partial"])
    acc["yaw"].append(s["yaw_deg"])
    acc["dist"].append(s["info"]["distance_m"])
    acc["src"].append(source)


def _mesh_model(mega_dir=None, refine: bool = True, decode: str = "expected", tracker=None,
                mirror_test: bool = False, fit: bool = False, silhouette: bool = False):
    """The product's mesh model (``realtime_hmr.mesh.MeshRecovery``, exported as ``realtime_hmr.MeshRecovery``; the
    decoder in ``mega_dir`` where given; on ``tracker`` where given), or (None, reason)."""
    try:
        from realtime_hmr.mesh import MeshRecovery
    except ImportError as e:
        return None, f"no mesh model in this build yet (realtime_hmr.mesh.MeshRecovery: {e})"
    try:
        return MeshRecovery.load(backend="auto", mega_dir=mega_dir, refine=refine, decode=decode,
                                 tracker=tracker, mirror_test=mirror_test, fit=fit, silhouette=silhouette), None
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        return None, f"mesh model could not be loaded: {e}"


def _perception(flip_test: bool = False, tiles: tuple[int, int] = (1, 1), mask: bool = False):
    try:
        from realtime_hmr.landmarks import load_pose_tracker

        tracker = load_pose_tracker("auto", None, 1, detect_every=1, max_persons=4, flip_test=flip_test,
                                    tiles=tiles, mask=mask)
        return tracker, ("realtime_hmr PoseTracker (BlazePose ONNX port, onnxruntime" +
                         (", flip test" if flip_test else "") + (", segmenting" if mask else "") +
                         (f", detector tiles {tiles[0]}x{tiles[1]})" if tiles != (1, 1) else ")"))
    except (ImportError, FileNotFoundError, RuntimeError) as e:
        log.warning("own perception stack unavailable (%s): MediaPipe legacy stands in", e)
        return None, f"mediapipe legacy (own PoseTracker unavailable: {e})"


def stochastic_summary(acc: dict) -> dict:
    """Stochastic mode against the deterministic pass on the same people: MPJPE / PA-MPJPE (mm) of the samples'
    mean body, of the best of the K samples (per person, the sample nearest the truth: an oracle), of the sample that
    best explains the image (smallest median reprojection error of its landmarks: no truth used), and how the per-joint
    uncertainty (mean distance of a joint to the samples' mean) relates to MediaPipe's visibility of that joint and
    to its error (Spearman rank correlations over the 12 limb joints of every person)."""
    from scipy.stats import spearmanr

    unc, vis, err = (np.concatenate(acc[k]) for k in ("unc", "vis", "err"))
    low = vis < 0.5
    return {
        "samples": acc["samples"], "n": len(acc["det"]),
        "deterministic_mpjpe_mm": _mm(acc["det"]), "deterministic_pa_mpjpe_mm": _mm(acc["det_pa"]),
        "mean_body_mpjpe_mm": _mm(acc["mean"]), "mean_body_pa_mpjpe_mm": _mm(acc["mean_pa"]),
        "best_of_k_mpjpe_mm": _mm(acc["best"]), "best_of_k_pa_mpjpe_mm": _mm(acc["best_pa"]),
        "best_fit_sample_mpjpe_mm": _mm(acc["fit"]), "best_fit_sample_pa_mpjpe_mm": _mm(acc["fit_pa"]),
        "uncertainty_vs_visibility_spearman": round(float(spearmanr(unc, vis)[0]), 3),
        "uncertainty_vs_error_spearman": round(float(spearmanr(unc, err)[0]), 3),
        "uncertainty_mm_visibility_below_0.5": _mm(unc[low]), "uncertainty_mm_visibility_0.5_and_over": _mm(unc[~low]),
        "joints_visibility_below_0.5": int(low.sum()), "joints": len(unc),
    }


def evaluate_synthetic(n: int = 100, seed: int = 0, size: tuple[int, int] = (384, 288), progress: bool = True,
                       samples: int = 0, mega_dir=None, refine: bool = True, decode: str = "expected",
                       flip_test: bool = False, temperature: float = 1.0, fit: bool = False,
                       tiles: tuple[int, int] | str = (1, 1), silhouette: bool = False) -> dict:
    """``flip_test``: test-time mirroring, as ``run --flip-test``: our landmarks averaged with those of the mirrored
    crop, and the deterministic body with the one decoded from the mirror image; the MediaPipe baseline is MediaPipe's
    own pipeline either way. ``fit``: the deterministic body refined on the 2D landmarks, as ``run --fit``
    (stochastic mode, when asked for, starts from the unfitted decoder and is compared with the fitted body).
    ``tiles``: the person detector's tiles, as ``run --tiles`` (more people found, not the same set).
    ``silhouette``: the fit also matches each person's silhouette, as ``run --silhouette`` (implies ``fit``)."""
    import cv2
    from rich.progress import track

    from realtime_hmr.config import parse_tiles
    from realtime_hmr.train.labels import match_person
    from realtime_hmr.train.synth import EVAL, SceneMaker, SynthConfig, shard_rng

    cfg = SynthConfig(size=size, p_multi=0.0)
    maker = SceneMaker(cfg, domain=EVAL)
    rng = shard_rng(seed, EVAL, 0)
    rot, betas, src = maker.draw_people(n, rng)
    tiles = parse_tiles(tiles)
    fit = fit or silhouette
    tracker, perception_name = _perception(flip_test, tiles, mask=silhouette)
    mesh, mesh_reason = _mesh_model(mega_dir, refine, decode, tracker, mirror_test=flip_test, fit=fit,
                                    silhouette=silhouette)
    sto = None
    if mesh is not None and samples > 0 and mesh.step is not None:
        sto = mesh.variant(mode="stochastic", samples=samples, seed=seed, temperature=temperature, mirror_test=False,
                           fit=False, silhouette=False)
    sacc = {k: [] for k in ("det", "det_pa", "mean", "mean_pa", "best", "best_pa", "fit", "fit_pa", "unc", "vis",
                            "err")}
    sacc["samples"] = samples
    base, own = ({k: [] for k in ("p", "g", "s", "px", "partial", "yaw", "dist", "src")} for _ in range(2))
    ours = {"pve": [], "mpjpe": [], "pa_mpjpe": []}
    limbs = {"mpjpe": [], "pa_mpjpe": []}  # ours on the baseline's 12 limb joints, scored as the baseline is
    ours_meta = {"yaw": [], "dist": [], "src": [], "index": []}
    detected = mp_detected = 0
    t_mp, t_own, t0 = [], [], time.perf_counter()
    steps = track(range(n), description="eval synthetic", disable=not progress)
    for i in steps:
        s = maker.sample(rng, (rot[i:i + 1], betas[i:i + 1], src[i:i + 1]), single=True)
        lab = s["label"]
        t_mp.append(s["time_ms"][3])
        if lab is not None:
            mp_detected += 1
            _add(base, lab.world, lab.image, s, str(src[i]))
        bgr = cv2.cvtColor(s["rgb"], cv2.COLOR_RGB2BGR)
        if tracker is not None:
            tracker.reset()
            ta = time.perf_counter()
            persons = tracker(bgr)
            t_own.append((time.perf_counter() - ta) * 1e3)
            if persons:
                k = min(range(len(persons)), key=lambda j: match_person(
                    persons[j].landmarks_2d[:, :2], s["mp33_2d"][:1])[1])
                detected += 1
                _add(own, persons[k].landmarks_world, persons[k].landmarks_2d, s, str(src[i]))
        else:
            detected += lab is not None
        if mesh is not None:
            from realtime_hmr.train.synth import vertices as gt_vertices

            res = [p for p in mesh(bgr) if getattr(p, "body", None) is not None]
            if res:
                p = min(res, key=lambda r: np.linalg.norm(r.body.joints[0] - s["joints24"][0, 0]))
                shard = {"rotations": s["rotations"][None], "translation": s["translation"][None],
                         "betas": s["betas"][None], "camera_R": s["camera"].R[None], "camera_t": s["camera"].t[None]}
                gv = gt_vertices(shard, 0, 0, maker.body)
                sc = score_mesh(p.body.joints[None], s["joints24"][:1],
                                None if p.body.vertices is None else p.body.vertices[None], gv[None])
                for k_, v_ in sc.items():
                    ours[k_].append(v_[0])
                le, lpa = limb_errors(p.body.joints[None, SMPL12], s["joints24"][:1, SMPL12])
                limbs["mpjpe"].append(le[0])
                limbs["pa_mpjpe"].append(lpa[0])
                for k_, v_ in (("yaw", s["yaw_deg"]), ("dist", s["info"]["distance_m"]), ("src", str(src[i])),
                               ("index", i)):
                    ours_meta[k_].append(v_)
                if sto is not None:
                    q = sto.recover([p], mesh.camera(bgr))[0].body
                    gj = s["joints24"][:1]
                    cand = np.concatenate([q.joints[None], q.extras["sample_joints"]])
                    e_all = mpjpe(cand, np.repeat(gj, len(cand), 0), root=0)
                    pa_all = pa_mpjpe(cand, np.repeat(gj, len(cand), 0))
                    k_fit = 1 + int(np.argmin(q.extras["sample_fit_px"]))  # the sample that best explains the image
                    for k_, v_ in (("det", sc["mpjpe"][0]), ("det_pa", sc["pa_mpjpe"][0]), ("mean", e_all[0]),
                                   ("mean_pa", pa_all[0]), ("best", e_all[1:].min()), ("best_pa", pa_all[1:].min()),
                                   ("fit", e_all[k_fit]), ("fit_pa", pa_all[k_fit])):
                        sacc[k_].append(v_)
                    sacc["unc"].append(q.extras["joint_uncertainty"][SMPL12])
                    sacc["vis"].append(p.visibility[MP12])
                    jerr = (q.joints - q.joints[0]) - (gj[0] - gj[0, 0])
                    sacc["err"].append(np.linalg.norm(jerr, axis=-1)[SMPL12])
    wall = time.perf_counter() - t0
    report = {
        "n": n, "detected": int(detected), "seed": seed,
        "pve_mm": _mm(ours["pve"]) if ours["pve"] else None,
        "mpjpe_mm": _mm(ours["mpjpe"]) if ours["mpjpe"] else None,
        "pa_mpjpe_mm": _mm(ours["pa_mpjpe"]) if ours["pa_mpjpe"] else None,
        "limb12": {"mpjpe_mm": _mm(limbs["mpjpe"]), "pa_mpjpe_mm": _mm(limbs["pa_mpjpe"])} if limbs["mpjpe"] else None,
        "breakdown": breakdown({k: v for k, v in ours.items() if len(v) == len(ours_meta["yaw"])}, ours_meta["yaw"],
                               ours_meta["dist"], ours_meta["src"]) if ours["mpjpe"] else None,
        "per_person": {"index": ours_meta["index"], **{f"{k}_mm": np.round(np.asarray(v) * 1e3, 1).tolist()
                                                         for k, v in ours.items() if v}} if ours["mpjpe"] else None,
        "stochastic": stochastic_summary(sacc) if sacc["det"] else None,
        "baseline": {"mediapipe_world": {**_summary(base), "detected": mp_detected}},
        "perception": {"name": perception_name, "detected": int(detected),
                       "world_landmarks": _summary(own) if tracker is not None else None,
                       "ms_per_image_p50": float(np.median(t_own)) if t_own else None},
        "definitions": {
            "ours": "PVE/MPJPE on SMPL-24 joints after pelvis (joint 0) alignment; PA-MPJPE after similarity "
                    "Procrustes; mean over detected people; mm. limb12: our joints scored exactly as the baseline "
                    "(the 12 limb joints, hip-midpoint centred, camera axes; against the SMPL-24 truth)",
            "baseline": "MediaPipe world landmarks vs the body's mediapipe33 regressor on 12 limb landmarks "
                        "(shoulders, elbows, wrists, hips, knees, ankles), both hip-midpoint centred, camera axes; "
                        "vs_smpl24: same against SMPL-24 joints; mean over images MediaPipe detected; image_*: "
                        "2D landmark error on the same 12 / the person's height in the image (median, PCK@5%)",
            "per_person": "each scored person's errors, by index among the n drawn (pair two reports on it: "
                          "python benchmarks/compare_eval.py A.json B.json)",
            "held_out": "SeedSequence(seed, spawn_key=(1, 0)); data synth uses spawn_key=(0, shard); mocap clips "
                        "mocap.HELD_OUT only",
            "scenes": f"one person per image, {size[0]}x{size[1]}, cameras/appearance as data synth",
        },
        "mediapipe_ms_p50": float(np.median(t_mp)), "wall_s": round(wall, 1),
        "command": f"realtime-hmr eval synthetic --n {n} --seed {seed}"
                   + (f" --stochastic {samples}" if samples else "")
                   + (f" --temperature {temperature:g}" if samples and temperature != 1.0 else "")
                   + ("" if refine else " --no-refine")
                   + ("" if decode == "expected" else f" --decode {decode}")
                   + (f" --mega-dir {mega_dir}" if mega_dir else "") + (" --flip-test" if flip_test else "")
                   + (" --fit" if fit and not silhouette else "") + (" --silhouette" if silhouette else "")
                   + (f" --tiles {tiles[0]}x{tiles[1]}" if tiles != (1, 1) else ""),
        "mesh_model": None if mesh is None else {"decoder": str(mega_dir or "shipped"), "refine_pnp": refine,
                                                  "deterministic_tokens": decode, "mirror_test": flip_test,
                                                  "fit_2d": fit, "fit_silhouette": silhouette},
    }
    if mesh is None:
        report["reason"] = mesh_reason
    return report
