"""``realtime-hmr data synth``: rendered people + MediaPipe labels + ground truth, in sharded ``.npz`` files.

    realtime-hmr data synth --n 10000 --out data/synth --workers 2 --seed 0

Determinism: shard ``k`` of a run is drawn from ``np.random.SeedSequence(seed, spawn_key=(domain, k))`` and depends
only on (seed, domain, shard size, k), never on the number of workers. ``domain`` 0 is training data (this
command); the evaluation harness uses domain 1 (and the mocap clips held out by ``mocap.HELD_OUT``), so training
and evaluation people never share a random stream.

Per image: 1 person (75 %) or 2-3 (25 %); poses 50 % anatomical ROM samples (``poses.sample_rom``) and 50 % mocap
frames (``mocap.load_mocap``, perturbed by 4 degrees), each turned to a random heading; shapes from Anny's own
age-conditioned phenotype distribution (``shapes.sample_shapes``) projected onto the body asset's 20 betas;
cameras from :mod:`realtime_hmr.train.camera`; appearance, light and background from :mod:`.render`.

Each shard ``shard_XXXXX.npz`` (``np.load(..., allow_pickle=False)``) holds, for N samples and up to P=3 persons
(person 0 is the one the camera aims at; unused slots are zero, ``n_persons`` says how many are real):
  image_jpeg/image_offsets  JPEG bytes of the RGB renders (sample i = image_jpeg[offsets[i]:offsets[i+1]])
  gt_mask (N,H,W) uint8     person index + 1 per pixel (0 background)
  camera_K/R/t              intrinsics, world->camera rotation/translation (OpenCV axes); hfov_deg, distance_m,
                            yaw_deg (person 0's heading vs the camera; 0 = facing it), telephoto, partial
  rotations (N,P,104,3,3), translation (N,P,3), betas (N,P,20): ``Body.pose`` parameters in world coordinates
  joints24 (N,P,24,3), mp33 (N,P,33,3): SMPL-24 joints and the body's MediaPipe-33 landmark regressor, camera frame
  joints24_2d, mp33_2d: their projections in pixels; pose_source (N,P) 'rom'/'cmu'/'deepmimic'
  mp_detected (N,), mp_person (N,) matched ground-truth person (-1 none), mp_match_px, mp_image (N,33,3) pixels +
  MediaPipe z, mp_visibility (N,33), mp_world (N,33,3), mp_mask (N,H,W) uint8; with ``--labeler port`` the labels
  come from our BlazePose port and mp_features (N,20,288) float16 holds its image features
  time_ms (N,4): wall time of scene, render, composite(+JPEG encode), mediapipe; cpu_ms (N,4) the same as process
  CPU time (all threads)
Vertices are not stored: :func:`vertices` regenerates them from pose + shape + camera.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
P_MAX = 3
TRAIN, EVAL = 0, 1


@dataclass
class SynthConfig:
    size: tuple[int, int] = (384, 288)
    samples: int = 0  # MSAA samples (0: none; 4 is nicer and ~2-3x slower on llvmpipe)
    p_multi: float = 0.25
    p_mocap: float = 0.5
    motion_blur: float = 0.1
    noise: float = 0.3
    jpeg_quality: int = 90
    images: bool = True
    segmentation: bool = True
    max_persons: int = P_MAX
    labeler: str = "mediapipe"  # "mediapipe" (the legacy package) or "port" (our BlazePose port, + image features)


def shard_rng(seed: int, domain: int, shard: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(domain, shard)))


def rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class SceneMaker:
    """Everything a worker holds: body, renderer, backgrounds, pose sources, MediaPipe (heavy: build once)."""

    def __init__(self, cfg: SynthConfig, domain: int = TRAIN, labeler=True, backend: str | None = "egl"):
        from realtime_hmr.body import Body
        from realtime_hmr.train import render

        self.cfg, self.domain = cfg, domain
        self.body = Body.load()
        self.renderer = render.Renderer(self.body, cfg.size, cfg.samples, backend)
        self.backgrounds = render.Backgrounds(cfg.size)
        self._mocap = None
        if labeler is True:
            from realtime_hmr.train.labels import MediaPipeLabeler, PortLabeler

            if cfg.labeler not in ("mediapipe", "port"):
                raise ValueError(f"labeler must be 'mediapipe' or 'port', not {cfg.labeler!r}")
            labeler = (PortLabeler if cfg.labeler == "port" else MediaPipeLabeler)(cfg.segmentation)
        self.labeler = labeler or None
        self._anny_betas = None  # phenotype coefficients -> betas, built on first use

    # -- pose and shape sources ----------------------------------------------------------------------------------
    def mocap(self):
        """The mocap split of this domain, or None where no clips are installed (poses then all come from ROM)."""
        if self._mocap is None:
            from realtime_hmr.train.mocap import load_mocap_or_none

            self._mocap = load_mocap_or_none("train" if self.domain == TRAIN else "eval") or False
        return self._mocap or None

    def draw_people(self, n: int, rng: np.random.Generator):
        """Rotations (n, 104, 3, 3) with random heading, betas (n, 20), source labels (n,)."""
        from realtime_hmr.train.mocap import perturb
        from realtime_hmr.train.poses import sample_rom

        n_mo = int(rng.binomial(n, self.cfg.p_mocap)) if self.mocap() is not None else 0
        rot, src = [], []
        if n - n_mo:
            ps = sample_rom(n - n_mo, rng)
            rot.append(ps.rotations)
            src += list(ps.source)
        if n_mo:
            mo = self.mocap()
            ps = perturb(mo.subset(rng.integers(0, len(mo), n_mo)), rng)
            rot.append(ps.rotations)
            src += list(ps.source)
        rot = np.concatenate(rot).astype(np.float64)
        order = rng.permutation(n)
        rot, src = rot[order], np.asarray(src)[order]
        yaw = rng.uniform(0, 2 * np.pi, n)
        rot[:, 0] = np.einsum("nij,njk->nik", np.stack([rz(a) for a in yaw]), rot[:, 0])
        return rot, self.betas(n, rng), src

    def betas(self, n: int, rng: np.random.Generator) -> np.ndarray:
        import torch

        from realtime_hmr.train.rig import anny_model
        from realtime_hmr.train.shapes import PHENOTYPES, AnnyBetas, sample_shapes

        sh = sample_shapes(n, rng)
        kw = {k: torch.tensor(sh.params[:, i], dtype=torch.float32) for i, k in enumerate(PHENOTYPES)}
        with torch.no_grad():
            c = anny_model().get_phenotype_blendshape_coefficients(**kw).double().numpy()
        if self._anny_betas is None:
            self._anny_betas = AnnyBetas(self.body, anny_model())
        return self._anny_betas(c)

    # -- one image -----------------------------------------------------------------------------------------------
    def place(self, rot, betas, xy) -> tuple[np.ndarray, np.ndarray]:
        """Vertices (V, 3) standing on z = 0 with the pelvis above ``xy``, and the translation that gives them."""
        v, _ = self.body.pose(rot[None], None, betas[None])
        pelvis = self.body.joints(v[0], "smpl24")[0]
        trans = np.array([xy[0] - pelvis[0], xy[1] - pelvis[1], -v[0, :, 2].min()])
        return v[0] + trans, trans

    def sample(self, rng: np.random.Generator, people, single: bool = False) -> dict:
        """One labelled image from ``people`` = (rotations (k,104,3,3), betas (k,20), sources (k,)), k >= P_MAX."""
        from realtime_hmr.train import camera as C
        from realtime_hmr.train import render as R

        t0, c0 = time.perf_counter(), time.process_time()
        rot, betas, src = people
        n_p = 1 if single or rng.random() >= self.cfg.p_multi else int(rng.integers(2, self.cfg.max_persons + 1))
        verts, trans = [None] * n_p, np.zeros((n_p, 3))
        verts[0], trans[0] = self.place(rot[0], betas[0], (0.0, 0.0))
        cam, info = C.sample_camera(rng, self.cfg.size, verts[0].min(0), verts[0].max(0))
        for k in range(1, n_p):  # others somewhere in the view, not inside person 0
            for _ in range(20):
                d = info["distance_m"] * rng.uniform(0.6, 2.2)
                x = rng.uniform(-0.9, 0.9) * np.tan(np.radians(info["hfov_deg"]) / 2) * d
                p = cam.center + cam.R.T @ np.array([x, 0.0, d])
                if np.hypot(*p[:2]) > 0.8 and all(np.hypot(*(p[:2] - trans[j, :2])) > 0.8 for j in range(1, k)):
                    break
            verts[k], trans[k] = self.place(rot[k], betas[k], p[:2])
        apps = [R.sample_appearance(rng, self.renderer.parts) for _ in range(n_p)]
        light = R.sample_light(rng)
        bg = self.backgrounds.sample(rng)
        t1, c1 = time.perf_counter(), time.process_time()
        rgba, ids = self.renderer.draw(verts, apps, cam, light)
        t2, c2 = time.perf_counter(), time.process_time()
        rgb = R.composite(rgba, bg, rng, self.cfg.motion_blur, self.cfg.noise)
        t3, c3 = time.perf_counter(), time.process_time()
        lab = self.labeler(rgb) if self.labeler is not None else None
        t4, c4 = time.perf_counter(), time.process_time()
        out = {"rgb": rgb, "gt_mask": ids, "camera": cam, "info": info, "n_persons": n_p, "rotations": rot[:n_p],
               "translation": trans, "betas": betas[:n_p], "pose_source": src[:n_p], "label": lab,
               "appearance": [a.info for a in apps]}
        v = np.stack(verts)
        j24 = cam.to_camera(self.body.joints(v, "smpl24"))
        mp33 = cam.to_camera(self.body.joints(v, "mediapipe33"))
        out.update(joints24=j24, mp33=mp33, joints24_2d=C.project(j24, cam.K), mp33_2d=C.project(mp33, cam.K),
                   yaw_deg=C.relative_yaw_deg(rot[0, 0], cam, v[0].mean(0)))
        out["time_ms"] = np.array([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) * 1e3
        out["cpu_ms"] = np.array([c1 - c0, c2 - c1, c3 - c2, c4 - c3]) * 1e3  # process CPU time (all threads)
        return out


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n,) + a.shape[1:], a.dtype)
    out[: len(a)] = a
    return out


def make_shard(maker: SceneMaker, seed: int, shard: int, n: int, domain: int = TRAIN) -> dict[str, np.ndarray]:
    """Arrays of one shard of ``n`` samples (see the module docstring)."""
    import cv2

    from realtime_hmr.train.labels import match_person

    cfg, P = maker.cfg, maker.cfg.max_persons
    rng = shard_rng(seed, domain, shard)
    rot, betas, src = maker.draw_people(n * P, rng)
    rows: dict[str, list] = {}
    jpeg = []
    w, h = cfg.size
    for i in range(n):
        t0 = time.perf_counter()
        s = maker.sample(rng, (rot[i * P:(i + 1) * P], betas[i * P:(i + 1) * P], src[i * P:(i + 1) * P]))
        lab, cam, info = s["label"], s["camera"], s["info"]
        r = {"camera_K": cam.K, "camera_R": cam.R, "camera_t": cam.t, "hfov_deg": info["hfov_deg"],
             "distance_m": info["distance_m"], "yaw_deg": s["yaw_deg"], "telephoto": info["telephoto"],
             "partial": info["partial"], "n_persons": s["n_persons"],
             "rotations": _pad(s["rotations"].astype(np.float32), P), "translation": _pad(s["translation"], P),
             "betas": _pad(s["betas"], P), "pose_source": _pad(np.asarray(s["pose_source"], "U10"), P),
             "joints24": _pad(s["joints24"], P), "mp33": _pad(s["mp33"], P),
             "joints24_2d": _pad(s["joints24_2d"], P), "mp33_2d": _pad(s["mp33_2d"], P), "gt_mask": s["gt_mask"],
             "appearance_json": json.dumps(s["appearance"])}
        det = lab is not None
        k, dpx = match_person(lab.image[:, :2], s["mp33_2d"]) if det else (-1, np.nan)
        r.update(mp_detected=det, mp_person=k, mp_match_px=dpx,
                 mp_image=lab.image if det else np.zeros((33, 3), np.float32),
                 mp_visibility=lab.visibility if det else np.zeros(33, np.float32),
                 mp_world=lab.world if det else np.zeros((33, 3), np.float32))
        if cfg.labeler == "port":
            r["mp_features"] = (lab.features if det and lab.features is not None
                                else np.zeros((20, 288), np.float32)).astype(np.float16)
        if cfg.segmentation:
            r["mp_mask"] = lab.mask if det and lab.mask is not None else np.zeros((h, w), np.uint8)
        t1, c1 = time.perf_counter(), time.process_time()
        if cfg.images:
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(s["rgb"], cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            jpeg.append(buf.ravel())
        s["time_ms"][2] += (time.perf_counter() - t1) * 1e3
        s["cpu_ms"][2] += (time.process_time() - c1) * 1e3
        r["time_ms"], r["cpu_ms"] = s["time_ms"], s["cpu_ms"]
        r["time_total_ms"] = (time.perf_counter() - t0) * 1e3
        for key, val in r.items():
            rows.setdefault(key, []).append(val)
    out = {k: np.asarray(v) for k, v in rows.items()}
    for k in ("camera_K", "camera_R", "camera_t", "translation", "betas", "joints24", "mp33", "joints24_2d",
              "mp33_2d", "hfov_deg", "distance_m", "yaw_deg", "mp_match_px"):
        out[k] = out[k].astype(np.float32)
    out["index"] = np.arange(shard * n, shard * n + n, dtype=np.int64)
    out["image_size"] = np.array(cfg.size, np.int32)
    if cfg.images:
        out["image_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in jpeg])]).astype(np.int64)
        out["image_jpeg"] = np.concatenate(jpeg).astype(np.uint8)
    return out


def decode_image(shard: dict, i: int) -> np.ndarray:
    """RGB uint8 image of sample ``i`` of a loaded shard."""
    import cv2

    o = shard["image_offsets"]
    return cv2.cvtColor(cv2.imdecode(shard["image_jpeg"][o[i]:o[i + 1]], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def vertices(shard: dict, i: int, person: int = 0, body=None) -> np.ndarray:
    """Camera-frame vertices (V, 3) of ``person`` in sample ``i``, regenerated from pose + shape + camera."""
    from realtime_hmr.body import Body

    body = body or Body.load()
    v = body.skin(shard["rotations"][i, person], shard["translation"][i, person], shard["betas"][i, person])
    return v @ shard["camera_R"][i].T.astype(np.float64) + shard["camera_t"][i]


# -- the command: workers and progress ------------------------------------------------------------------------------
_MAKER: SceneMaker | None = None


def _init_worker(cfg: SynthConfig, domain: int) -> None:
    global _MAKER
    os.environ.setdefault("LP_NUM_THREADS", "1")  # llvmpipe: one rendering thread per worker
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    _MAKER = SceneMaker(cfg, domain)


def _run_shard(job: tuple[int, int, int, str]) -> tuple[int, int, float, float]:
    seed, shard, n, out = job
    t0, c0 = time.perf_counter(), time.process_time()
    arrays = make_shard(_MAKER, seed, shard, n)
    path = Path(out) / f"shard_{shard:05d}.npz"
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return shard, n, time.perf_counter() - t0, time.process_time() - c0


def synth(n: int, out: str | Path, workers: int = 1, seed: int = 0, shard_size: int = 256,
          cfg: SynthConfig | None = None, progress: bool = True) -> dict:
    """Write ceil(n / shard_size) shards of ``shard_size`` samples each (n is rounded up to whole shards) and a
    ``manifest.json``; shards already present are kept (resumable). Returns the manifest."""
    import multiprocessing as mp

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cfg = cfg or SynthConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_shards = -(-n // shard_size)
    jobs = [(seed, k, shard_size, str(out)) for k in range(n_shards)
            if not (out / f"shard_{k:05d}.npz").exists()]
    done, wall0, cpu = n_shards - len(jobs), time.perf_counter(), 0.0
    if done:
        log.info("%d shards already present in %s: kept", done, out)
    with Progress(TextColumn("data synth"), BarColumn(), MofNCompleteColumn(), TextColumn("samples"),
                  TimeRemainingColumn(), disable=not progress) as bar:
        task = bar.add_task("synth", total=n_shards * shard_size, completed=done * shard_size)
        pool = None
        if workers <= 1:  # in this process
            if jobs:
                _init_worker(cfg, TRAIN)
            results = map(_run_shard, jobs)
        else:  # spawn: GL contexts and MediaPipe graphs do not survive fork
            pool = mp.get_context("spawn").Pool(workers, _init_worker, (cfg, TRAIN))
            results = pool.imap_unordered(_run_shard, jobs)
        try:
            for _, k, _, c in results:
                cpu += c
                bar.advance(task, k)
        except BaseException:  # Ctrl-C or a failed shard: stop the workers now (finished shards are kept)
            if pool is not None:
                pool.terminate()
            raise
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    wall = time.perf_counter() - wall0
    made = len(jobs) * shard_size
    size = sum(p.stat().st_size for p in out.glob("shard_*.npz"))
    manifest = {"n": n_shards * shard_size, "shards": n_shards, "shard_size": shard_size, "seed": seed,
                "domain": TRAIN, "config": asdict(cfg), "workers": workers, "made_now": made,
                "wall_s": wall, "worker_cpu_s": cpu,
                "samples_per_s": made / wall if made else None,
                "samples_per_cpu_s": made / cpu if made else None,
                "bytes_per_sample": size / (n_shards * shard_size),
                "command": f"realtime-hmr data synth --n {n} --out {out} --workers {workers} --seed {seed} "
                           f"--shard-size {shard_size}" + ("" if cfg.images else " --no-images")
                           + ("" if cfg.labeler == "mediapipe" else f" --labeler {cfg.labeler}")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_shard(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# -- a contact sheet of renders with landmarks drawn ---------------------------------------------------------------
MP_EDGES = ((11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25), (25, 27),
            (24, 26), (26, 28), (27, 31), (28, 32), (0, 11), (0, 12))


def contact_sheet(shard_paths, out: str | Path, n: int = 12, cols: int = 4, tile: tuple[int, int] = (288, 216)) -> Path:
    """Renders with ground-truth landmarks (green dots) and MediaPipe's (red skeleton) drawn, ``n`` tiles."""
    import cv2

    tiles = []
    for path in shard_paths:
        s = load_shard(path)
        for i in range(len(s["index"])):
            if len(tiles) == n:
                break
            img = decode_image(s, i).copy()
            for x, y in s["mp33_2d"][i, : s["n_persons"][i]].reshape(-1, 2):
                cv2.circle(img, (int(round(x)), int(round(y))), 2, (0, 230, 0), -1, cv2.LINE_AA)
            if s["mp_detected"][i]:
                p = s["mp_image"][i, :, :2]
                for a, b in MP_EDGES:
                    cv2.line(img, tuple(int(v) for v in p[a]), tuple(int(v) for v in p[b]), (230, 30, 30), 1,
                             cv2.LINE_AA)
            tag = (f"{s['distance_m'][i]:.1f} m  fov {s['hfov_deg'][i]:.0f}  yaw {s['yaw_deg'][i]:+.0f}"
                   f"{'' if s['mp_detected'][i] else '  no MP'}")
            img = cv2.resize(img, tile, interpolation=cv2.INTER_AREA)
            cv2.putText(img, tag, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(img)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[r:r + cols]) for r in range(0, len(tiles), cols)])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return out


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="contact sheet of data synth shards (the command itself is "
                                             "`realtime-hmr data synth`)")
    ap.add_argument("dir", help="a data synth output directory")
    ap.add_argument("--sheet", default="docs/synthetic_samples.png")
    ap.add_argument("--n", type=int, default=12)
    a = ap.parse_args(argv)
    print(contact_sheet(sorted(Path(a.dir).glob("shard_*.npz")), a.sheet, a.n))


if __name__ == "__main__":
    main()
