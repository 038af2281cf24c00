"""MediaPipe's measured errors on rendered people, as a JSON that training can use to simulate its landmarks.

    realtime-hmr data synth --n 2048 --out /tmp/synth --workers 2 --seed 0
    python -m realtime_hmr.train.noise_stats /tmp/synth --out realtime_hmr/assets/mediapipe_noise.json

Per person 0 of every sample (the person the camera aims at): detected = MediaPipe found a pose AND it matched
that person (``mp_person == 0``). Errors, per landmark (the 33 MediaPipe names, ground truth = the body's
MediaPipe-33 regressor):
- ``image``: (MediaPipe - truth) in pixels times depth / focal length, i.e. in metres at the person's depth (the
  pelvis'), only for landmarks whose truth lies inside the image. To simulate: ``xy = truth_px + (bias + std * N(0,
  1)) * f / z``, with probability ``outlier_rate`` replaced by a draw of scale ``outlier_scale_m``.
- ``world``: MediaPipe world landmarks minus truth in camera axes (x right, y down, z away), both centred on the hip
  midpoint, metres.
- ``visibility``: mean MediaPipe visibility for landmarks inside / outside the image.
Breakdowns by camera distance and by relative yaw (0 = facing the camera, +90 = the subject's left side towards it):
detection rate, and per-landmark image bias / std.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
DIST_EDGES = [1.5, 2.5, 4.0, 6.0, 10.01]
YAW_CENTRES = [-135, -90, -45, 0, 45, 90, 135, 180]
OUTLIER_M = 0.2


def _yaw_bin(yaw: np.ndarray) -> np.ndarray:
    return (np.round(np.asarray(yaw) / 45.0).astype(int) + 3) % 8  # -135 -> 0 ... 180 -> 7


def _load(dirs) -> dict[str, np.ndarray]:
    keys = ("mp_detected", "mp_person", "mp_image", "mp_world", "mp_visibility", "mp33", "mp33_2d", "joints24",
            "camera_K", "distance_m", "yaw_deg", "partial", "n_persons", "image_size", "telephoto")
    parts: dict[str, list] = {k: [] for k in keys}
    files = sorted(p for d in dirs for p in Path(d).glob("shard_*.npz"))
    if not files:
        raise FileNotFoundError(f"no shard_*.npz under {', '.join(map(str, dirs))}")
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            n = len(z["mp_detected"])
            for k in keys:
                parts[k].append(np.broadcast_to(z[k], (n,) + z[k].shape) if k == "image_size" else z[k])
    return {k: np.concatenate(v) for k, v in parts.items()} | {"files": files}


def _stat(err: np.ndarray, ok: np.ndarray) -> dict:
    """err (n, L, d), ok (n, L) -> per-landmark bias, std, median and p90 norm, outlier rate, count."""
    err = err.astype(np.float64)
    L = err.shape[1]
    out = {k: [] for k in ("bias", "std", "median_norm", "p90_norm", "outlier_rate", "count")}
    for j in range(L):
        e = err[ok[:, j], j]
        nrm = np.linalg.norm(e, axis=-1)
        inl = e[nrm <= OUTLIER_M]
        out["count"].append(int(len(e)))
        if len(e) < 2:
            for k in ("bias", "std"):
                out[k].append(None)
            for k in ("median_norm", "p90_norm", "outlier_rate"):
                out[k].append(None)
            continue
        out["bias"].append(np.round(inl.mean(0), 4).tolist() if len(inl) else None)
        out["std"].append(np.round(inl.std(0), 4).tolist() if len(inl) > 1 else None)
        out["median_norm"].append(round(float(np.median(nrm)), 4))
        out["p90_norm"].append(round(float(np.percentile(nrm, 90)), 4))
        out["outlier_rate"].append(round(float((nrm > OUTLIER_M).mean()), 4))
    return out


def _mean_vis(vis: np.ndarray, m: np.ndarray) -> list:
    return [round(float(vis[m[:, j], j].mean()), 3) if m[:, j].any() else None for j in range(vis.shape[1])]


def noise_stats(dirs) -> dict:
    d = _load(dirs)
    n = len(d["mp_detected"])
    det = d["mp_detected"] & (d["mp_person"] == 0)
    w, h = d["image_size"][:, 0:1], d["image_size"][:, 1:2]
    gt2 = d["mp33_2d"][:, 0]
    inside = (gt2[..., 0] >= 0) & (gt2[..., 0] < w) & (gt2[..., 1] >= 0) & (gt2[..., 1] < h)
    inside &= d["mp33"][:, 0, :, 2] > 0
    depth = d["joints24"][:, 0, 0, 2]
    f = d["camera_K"][:, 0, 0]
    err_img = (d["mp_image"][..., :2] - gt2) * (depth / f)[:, None, None]
    gw = d["mp33"][:, 0] - d["mp33"][:, 0, 23:25].mean(1, keepdims=True)
    mw = d["mp_world"] - d["mp_world"][:, 23:25].mean(1, keepdims=True)
    err_w = mw - gw
    ok_img = det[:, None] & inside
    ok_w = np.broadcast_to(det[:, None], inside.shape)
    dist_bin = np.clip(np.digitize(d["distance_m"], DIST_EDGES) - 1, 0, len(DIST_EDGES) - 2)
    yaw_bin = _yaw_bin(d["yaw_deg"])

    def rate(mask):
        return {"n": int(mask.sum()), "detection_rate": round(float(det[mask].mean()), 4) if mask.any() else None}

    def by(bins, labels):
        out = []
        for b, lab in enumerate(labels):
            m = bins == b
            s = _stat(err_img[m], ok_img[m])
            out.append({"bin": lab, **rate(m), "image_bias": s["bias"], "image_std": s["std"],
                        "image_median_norm": s["median_norm"]})
        return out

    vis = d["mp_visibility"]
    full = _stat(err_img, ok_img)
    world = _stat(err_w, ok_w)
    return {
        "samples": n, "shards": [p.name for p in d["files"]],
        "detection_rate": round(float(det.mean()), 4),
        "detected_other_person_rate": round(float((d["mp_detected"] & (d["mp_person"] != 0)).mean()), 4),
        "detection_by": {"partial": {str(v): rate(d["partial"] == v) for v in (False, True)},
                         "telephoto": {str(v): rate(d["telephoto"] == v) for v in (False, True)},
                         "n_persons": {str(v): rate(d["n_persons"] == v) for v in (1, 2, 3)}},
        "landmarks": _names(),
        "image": {"unit": "metres at the person's depth (pixels * z / f)", **full},
        "world": {"unit": "metres, camera axes, hip-midpoint centred", **world},
        "visibility": {"inside_mean": _mean_vis(vis, det[:, None] & inside),
                       "outside_mean": _mean_vis(vis, det[:, None] & ~inside)},
        "by_distance": by(dist_bin, [f"{a}-{b:g} m" for a, b in zip(DIST_EDGES[:-1], DIST_EDGES[1:], strict=True)]),
        "by_yaw": by(yaw_bin, [f"{c} deg" for c in YAW_CENTRES]),
        "outlier_threshold_m": OUTLIER_M,
    }


def _names() -> list[str]:
    from realtime_hmr.body import Body

    return Body.load().landmark_names["mediapipe33"]


class NoiseModel:
    """Simulated MediaPipe image landmarks from the shipped statistics (no rendering):

        nm = NoiseModel.load()
        xy, detected = nm.sample(gt_xy, depth, focal, distance, rng)   # (n, 33, 2) pixels, (n,) bool

    Per landmark: Gaussian with the measured bias and std (metres at the person's depth, scaled by focal / depth),
    replaced with probability ``outlier_rate`` by a Gaussian of 3x the 90th-percentile error; detection drawn
    from the measured rate of the camera-distance bin. Landmarks of undetected samples are NaN.

        world = nm.sample_world(gt_world, rng)   # (n, 33, 3) metres, hip-centred

    World landmarks: the measured bias and std per landmark and axis; with probability ``outlier_rate`` (errors over
    ``outlier_threshold_m``, common: MediaPipe's world wrists and ankles are off by more than 20 cm about half of
    the time) a Gaussian whose per-axis std is half the 90th-percentile error is added.
    """

    def __init__(self, stats: dict):
        img = stats["image"]
        self.bias = np.array([b if b is not None else [0.0, 0.0] for b in img["bias"]], np.float64)
        self.std = np.array([s if s is not None else [0.05, 0.05] for s in img["std"]], np.float64)
        self.outlier = np.array([r if r is not None else 0.0 for r in img["outlier_rate"]], np.float64)
        self.outlier_scale = 3 * np.array([p if p is not None else 0.1 for p in img["p90_norm"]], np.float64)
        self.has_world = "world" in stats
        if self.has_world:
            w = stats["world"]
            self.world_bias = np.array([b if b is not None else [0.0] * 3 for b in w["bias"]], np.float64)
            self.world_std = np.array([s if s is not None else [0.05] * 3 for s in w["std"]], np.float64)
            self.world_outlier = np.array([r if r is not None else 0.0 for r in w["outlier_rate"]], np.float64)
            self.world_outlier_scale = 0.5 * np.array([q if q is not None else 0.2 for q in w["p90_norm"]])
        self.dist_edges = np.asarray(DIST_EDGES)
        self.det_rate = np.array([b["detection_rate"] if b["detection_rate"] is not None else stats["detection_rate"]
                                  for b in stats["by_distance"]])

    @classmethod
    def load(cls, path: str | Path | None = None) -> NoiseModel:
        path = Path(path) if path else Path(__file__).resolve().parents[1] / "assets" / "mediapipe_noise.json"
        return cls(json.loads(Path(path).read_text()))

    def sample(self, gt_xy, depth, focal, distance, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        gt_xy = np.asarray(gt_xy, np.float64)
        n = len(gt_xy)
        e = self.bias + self.std * rng.standard_normal((n, 33, 2))
        out = rng.random((n, 33)) < self.outlier
        e = np.where(out[..., None], rng.standard_normal((n, 33, 2)) * self.outlier_scale[:, None], e)
        xy = gt_xy + e * (np.asarray(focal, np.float64) / np.asarray(depth, np.float64))[:, None, None]
        b = np.clip(np.digitize(distance, self.dist_edges) - 1, 0, len(self.det_rate) - 1)
        detected = rng.random(n) < self.det_rate[b]
        xy[~detected] = np.nan
        return xy, detected

    def sample_world(self, gt_world, rng: np.random.Generator) -> np.ndarray:
        if not self.has_world:
            raise ValueError("these MediaPipe statistics hold no world-landmark errors (re-run noise_stats)")
        gt = np.asarray(gt_world, np.float64)
        e = self.world_bias + self.world_std * rng.standard_normal(gt.shape)
        out = rng.random(gt.shape[:-1]) < self.world_outlier
        e = e + np.where(out[..., None], rng.standard_normal(gt.shape) * self.world_outlier_scale[:, None], 0.0)
        return gt + e


def _provenance(argv) -> dict:
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=False).stdout.strip()
    except OSError:
        rev = ""
    src = hashlib.sha256()
    for name in ("synth.py", "render.py", "camera.py", "labels.py", "noise_stats.py"):
        src.update((Path(__file__).parent / name).read_bytes())
    return {"git_head": rev, "source_sha256": src.hexdigest()[:16],
            "command": "python -m realtime_hmr.train.noise_stats " + " ".join(argv)}


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", help="directories of data synth shards")
    ap.add_argument("--out", default="realtime_hmr/assets/mediapipe_noise.json")
    ap.add_argument("--synth-command", default=None, help="the data synth command that made the shards (recorded)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    stats = noise_stats(a.dirs)
    manifests = [json.loads((Path(x) / "manifest.json").read_text()) for x in a.dirs
                 if (Path(x) / "manifest.json").exists()]
    stats["provenance"] = _provenance(argv) | {"synth": a.synth_command or [m.get("command") for m in manifests]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(stats, indent=1) + "\n")
    log.info("%d samples, detection rate %.3f -> %s", stats["samples"], stats["detection_rate"], a.out)


if __name__ == "__main__":
    main()
