"""The mesh stage's geometry, shared by training and runtime: conditioning features and the camera translation.

- :func:`condition`: one person's BlazePose landmarks (image, world, visibility) and the camera as the decoder's
  conditioning inputs. Image landmarks are expressed in their own box (centre, size), so the decoder sees the same
  numbers whatever the person's place and scale in the image; where the box sits and how big it is, relative to
  the focal length, goes into a separate geometry token (as CLIFF does), so the body can be placed in camera space.
- :func:`solve_translation`: the camera-space root translation in closed form, from 2D landmarks, the corresponding
  3D points of the predicted body (camera orientation, no translation) and the intrinsics: each landmark gives two
  equations linear in t (the direct linear transform of a pure translation), weighted by visibility.

Pure numpy (layer 3 uses only layers 0-2b): the decoder itself runs through a runtime backend.
"""

from __future__ import annotations

import numpy as np

N_LANDMARKS = 33


def landmark_box(xy: np.ndarray, visibility: np.ndarray | None = None, min_vis: float = 0.3) -> np.ndarray:
    """(cx, cy, size) of the landmarks' square box: visible ones where there are enough, else all (..., 3)."""
    xy = np.asarray(xy, np.float64)
    use = np.ones(xy.shape[:-1], bool) if visibility is None else np.asarray(visibility) >= min_vis
    use = np.where(use.sum(-1, keepdims=True) >= 4, use, True)
    big = np.where(use[..., None], xy, np.nan)
    lo, hi = np.nanmin(big, -2), np.nanmax(big, -2)
    return np.concatenate([(lo + hi) / 2, np.max(hi - lo, -1, keepdims=True).clip(1.0)], -1)


def condition(landmarks_2d: np.ndarray, landmarks_world: np.ndarray, visibility: np.ndarray,
              K: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoder inputs for persons (..., 33, 3) image landmarks (x, y pixels, z relative depth in pixels),
    (..., 33, 3) world landmarks (metres, hip-centred), (..., 33) visibility, K (3, 3) or (..., 3, 3).

    Returns lm2d (..., 33, 4): x, y, z in units of the box size about its centre, visibility; lmw (..., 33, 3);
    geom (..., 3): box centre offset from the principal point and box size, both over the focal length.
    """
    lm = np.asarray(landmarks_2d, np.float64)
    vis = np.asarray(visibility, np.float64)
    if lm.shape[-2:] != (N_LANDMARKS, 3) or np.shape(landmarks_world)[-2:] != (N_LANDMARKS, 3):
        raise ValueError(f"landmarks: expected (..., {N_LANDMARKS}, 3), got {lm.shape} and "
                         f"{np.shape(landmarks_world)}")
    K = np.asarray(K, np.float64)
    box = landmark_box(lm[..., :2], vis)
    c, s = box[..., None, :2], box[..., None, 2:]
    lm2d = np.concatenate([(lm[..., :2] - c) / s, lm[..., 2:3] / s, vis[..., None]], -1)
    f = (K[..., 0, 0] + K[..., 1, 1]) / 2
    pp = K[..., :2, 2]
    geom = np.concatenate([(box[..., :2] - pp) / f[..., None], box[..., 2:] / f[..., None]], -1)
    return lm2d.astype(np.float32), np.asarray(landmarks_world, np.float32), geom.astype(np.float32)


def solve_translation(points: np.ndarray, xy: np.ndarray, K: np.ndarray, weights: np.ndarray | None = None,
                      min_depth: float = 0.3) -> np.ndarray:
    """Translation t (..., 3) so that the points (..., N, 3) + t project onto xy (..., N, 2) pixels under K.

    With normalised image coordinates u = K^-1 [x, y, 1], a point P + t on the ray of u satisfies
    (P_x + t_x) - u_x (P_z + t_z) = 0 and (P_y + t_y) - u_y (P_z + t_z) = 0: linear in t, solved by weighted least
    squares. The result is kept at least ``min_depth`` in front of the camera.
    """
    P = np.asarray(points, np.float64)
    xy = np.asarray(xy, np.float64)
    K = np.asarray(K, np.float64)
    w = np.ones(P.shape[:-1]) if weights is None else np.asarray(weights, np.float64)
    w = np.where(np.isfinite(xy).all(-1), w, 0.0)
    xy = np.nan_to_num(xy)
    f, pp = np.stack([K[..., 0, 0], K[..., 1, 1]], -1)[..., None, :], K[..., None, :2, 2]
    u = (xy - pp) / f  # (..., N, 2)
    zeros, ones = np.zeros_like(u[..., 0]), np.ones_like(u[..., 0])
    A = np.stack([np.stack([ones, zeros, -u[..., 0]], -1), np.stack([zeros, ones, -u[..., 1]], -1)], -2)  # (.,N,2,3)
    b = np.stack([u[..., 0] * P[..., 2] - P[..., 0], u[..., 1] * P[..., 2] - P[..., 1]], -1)  # (..., N, 2)
    sw = np.sqrt(w)[..., None]
    A = (A * sw[..., None]).reshape(*A.shape[:-3], -1, 3)
    b = (b * sw).reshape(*b.shape[:-2], -1)
    AtA = np.swapaxes(A, -1, -2) @ A + 1e-9 * np.eye(3)
    t = np.linalg.solve(AtA, (np.swapaxes(A, -1, -2) @ b[..., None]))[..., 0]
    depth = t[..., 2] + np.average(P[..., 2], weights=np.maximum(w, 1e-12), axis=-1)
    return np.where((depth < min_depth)[..., None], t + (min_depth - depth)[..., None] * np.array([0, 0, 1.0]), t)


def rotation_angle_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Angle (degrees) of the rotation between rotation matrices A and B (..., 3, 3)."""
    rel = np.swapaxes(A, -1, -2) @ B
    return np.degrees(np.arccos(np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))


def refine_pose(points: np.ndarray, xy: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray,
                visibility: np.ndarray, min_vis: float = 0.5, max_turn_deg: float = 60.0) -> tuple[np.ndarray, ...]:
    """The body's rotation and translation refined on the image: Levenberg-Marquardt PnP (OpenCV) of the decoded
    body's landmarks (n, 33, 3), canonical frame, onto the tracker's 2D landmarks (n, 33, 2), started from the
    decoder's rotation R (n, 3, 3) and the closed-form translation t (n, 3). The 2D landmarks are far more accurate
    than the world landmarks the decoder's orientation rests on. Per person, the start is kept where fewer than six
    landmarks are visible, or where the refinement would turn the body by more than ``max_turn_deg`` or put it
    behind the camera. Returns R, t."""
    import cv2

    R, t = np.array(R, np.float64), np.array(t, np.float64)
    for i in range(len(points)):
        use = (np.asarray(visibility[i]) >= min_vis) & np.isfinite(xy[i]).all(-1)
        if use.sum() < 6:
            continue
        rvec, _ = cv2.Rodrigues(R[i])
        ok, rvec, tvec = cv2.solvePnP(np.ascontiguousarray(points[i][use], np.float64),
                                      np.ascontiguousarray(xy[i][use], np.float64), np.asarray(K, np.float64),
                                      None, rvec, t[i].reshape(3, 1).copy(), True, cv2.SOLVEPNP_ITERATIVE)
        if not ok:
            continue
        R_new = cv2.Rodrigues(rvec)[0]
        turn = rotation_angle_deg(R_new, R[i])
        depth = (points[i] @ R_new.T + tvec[:, 0])[:, 2]
        if turn <= max_turn_deg and (depth > 0.1).all():
            R[i], t[i] = R_new, tvec[:, 0]
    return R, t


def reprojection_px(points: np.ndarray, xy: np.ndarray, visibility: np.ndarray, K: np.ndarray,
                    min_vis: float = 0.5) -> np.ndarray:
    """Median pixel distance (n,) between camera-space landmarks (n, 33, 3) projected by K and the tracker's 2D
    landmarks (n, 33, 2), over the visible ones (all where fewer than four are; a landmark behind the camera counts as
    infinitely far): how well a body explains the image."""
    from realtime_hmr.preview import project

    P = np.asarray(points, np.float64)
    uv, front = project(P.reshape(-1, 3), np.asarray(K, np.float64))
    d = np.where(front, np.linalg.norm(uv - np.reshape(xy, (-1, 2)), axis=-1), np.inf).reshape(P.shape[:-1])
    use = np.asarray(visibility) >= min_vis
    use = np.where(use.sum(-1, keepdims=True) >= 4, use, True)
    return np.nanmedian(np.where(use, d, np.nan), -1)


def mirror_condition(lm2d: np.ndarray, lmw: np.ndarray, geom: np.ndarray) -> tuple:
    """The decoder inputs (:func:`condition`) of the mirror image: left and right landmarks swapped, x reflected (in
    the box, in the world frame, and the box about the principal point)."""
    from realtime_hmr.landmarks import MIRROR

    flip = np.array([-1.0, 1.0, 1.0, 1.0], np.float32)
    m = MIRROR[:N_LANDMARKS]
    return lm2d[..., m, :] * flip, lmw[..., m, :] * flip[:3], geom * flip[:3]


def unmirror_bodies(canon: np.ndarray, R: np.ndarray, twin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bodies predicted for the mirror image, mirrored back: canonical vertices (n, V, 3) reflected across the body's
    sagittal plane (x) with each vertex taking its twin's place (``twin``), and the camera-from-body rotation
    R (n, 3, 3) conjugated by the two reflections (still a rotation)."""
    M = np.diag([-1.0, 1.0, 1.0])
    return canon[:, twin] * [-1.0, 1.0, 1.0], M @ R @ M


def mean_rotation(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The rotation nearest the mean of A and B (..., 3, 3) (Frobenius projection onto SO(3))."""
    from realtime_hmr.body.kinematics import special_procrustes

    return special_procrustes(A + B)


def rotation_6d(x: np.ndarray) -> np.ndarray:
    """Zhou et al.'s 6D rotation (two columns) to matrices (..., 3, 3), as the decoder's orientation head."""
    a, b = x[..., :3], x[..., 3:]
    e1 = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b - (e1 * b).sum(-1, keepdims=True) * e1
    e2 = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.stack([e1, e2, np.cross(e1, e2)], -1)


def iterative_decode(step, n: int, length: int, mask_id: int, steps: int = 5, temperature: float = 1.0,
                     rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """MaskGIT / MEGA iterative decoding of ``n`` sequences from all-[MASK]: each step predicts every masked
    position (``step(tokens) -> (logits (n, length, K), extra)``), samples with Gumbel noise at a temperature
    annealed to 0, keeps the most confident new tokens so that floor(length * cos(pi/2 * s/steps)) stay masked, and
    repeats. Returns the tokens (n, length) and the last step's ``extra`` (the orientation for the decoder)."""
    rng = rng or np.random.default_rng()
    gumbel = lambda shape: -np.log(-np.log(rng.uniform(1e-9, 1 - 1e-9, shape)))  # noqa: E731
    tok = np.full((n, length), mask_id, np.int64)
    extra = None
    for s in range(steps):
        logits, extra = step(tok)
        temp = temperature * (1 - (s + 1) / steps)
        pick = (logits + temp * gumbel(logits.shape)).argmax(-1)
        logp = logits - logits.max(-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        conf = np.take_along_axis(logp, pick[..., None], -1)[..., 0] + temp * gumbel(pick.shape)
        still = tok == mask_id
        conf = np.where(still, conf, np.inf)  # decided tokens stay
        new = np.where(still, pick, tok)
        keep = int(np.floor(length * np.cos(np.pi / 2 * (s + 1) / steps)))
        if keep > 0:
            remask = np.zeros_like(still)
            np.put_along_axis(remask, np.argsort(conf, -1)[:, :keep], True, -1)
            new = np.where(remask & still, mask_id, new)
        tok = new
    return tok, extra


def decoder_files(name: str, mega_dir=None, vqvae_dir=None) -> tuple:
    """The mesh decoder's ``name`` ONNX file and the Mesh-VQ-VAE decoder (the shipped ones unless directories are
    given; ``REALTIME_HMR_MEGA_DIR`` names another decoder directory for every command), checked to exist with an
    error that says how to make them: (decoder path, VQ decoder path, decoder directory, codebook size from its
    mega.json)."""
    import json
    import os
    from importlib.resources import files
    from pathlib import Path

    assets = files("realtime_hmr") / "assets"
    mega_dir = mega_dir or os.environ.get("REALTIME_HMR_MEGA_DIR") or None
    where = "shipped in this build" if mega_dir is None else f"in {mega_dir}"
    mega_dir, vqvae_dir = Path(mega_dir or assets / "mega"), Path(vqvae_dir or assets / "vqvae")
    net, vq = mega_dir / name, vqvae_dir / "vqvae_decoder.onnx"
    for path, how in ((net, "realtime-hmr train mega"), (vq, "realtime-hmr train vqvae")):
        if not path.is_file():
            raise FileNotFoundError(f"no mesh model {where} ({path.name} missing; `{how}` makes it)")
    meta = mega_dir / "mega.json"
    codebook = int(json.loads(meta.read_text()).get("config", {}).get("codebook", 512)) if meta.is_file() else 512
    return net, vq, mega_dir, codebook


def generate(n: int, steps: int = 5, temperature: float = 1.0, seed: int = 0, mega_dir=None, vqvae_dir=None,
             threads: int | None = None) -> dict:
    """Random bodies from the decoder's unconditional prior (``mega_prior.onnx``) through the Mesh-VQ-VAE decoder:
    ``{"tokens": (n, 54) int64, "vertices": (n, V, 3) float32}``, canonical (no global rotation, centred), metres."""
    from realtime_hmr.runtime import load

    prior, vq, _, codebook = decoder_files("mega_prior.onnx", mega_dir, vqvae_dir)
    net, dec = load(str(prior), "onnxruntime", "cpu", threads), load(str(vq), "onnxruntime", "cpu", threads)
    rng = np.random.default_rng(seed)
    tok, _ = iterative_decode(lambda t: (net.run({"tokens": t})["logits"], None), n, 54, codebook, steps,
                              temperature, rng)
    verts = dec.run({dec.input_names[0]: tok})[dec.output_names[0]]
    return {"tokens": tok, "vertices": np.asarray(verts, np.float32)}


class MeshRecovery:
    """Every person in an image as a body in camera space (metres, OpenCV axes): the public Python API.

        mr = MeshRecovery.load(backend="auto")
        persons = mr(image_bgr)            # each: id, box, landmarks, body.joints (24), body.vertices, body.rotations

    Per person: landmarks (the tracker) -> decoder (54 tokens + orientation, one pass; expected-code tokens unless
    ``decode="argmax"``) -> Mesh-VQ-VAE decoder
    (canonical mesh) -> turned to camera space -> translation in closed form from the 2D landmarks -> rotation and
    translation refined on the 2D landmarks (PnP; ``refine=False`` keeps the decoder's) -> joints, and the rig's
    rotations by inverse kinematics (shape fitted once per track, then reused; only newcomers pay for it).
    """

    def __init__(self, tracker, decoder, vq_decoder, body, camera_matrix: np.ndarray | None = None, *,
                 step=None, mode: str = "deterministic", samples: int = 10, steps: int = 5, temperature: float = 1.0,
                 codebook: int = 512, seed: int = 0, refine: bool = True, decode: str = "expected",
                 mirror_test: bool = False, fit: bool = False, silhouette: bool = False):
        if mode not in ("deterministic", "stochastic"):
            raise ValueError(f"mode must be deterministic or stochastic, got {mode!r}")
        if decode not in ("expected", "argmax"):
            raise ValueError(f"decode must be expected or argmax, got {decode!r}")
        if "tokens_argmax" not in getattr(decoder, "output_names", ("tokens_argmax",)):
            raise ValueError("this mesh decoder's mega_det.onnx predates expected-code decoding (no tokens_argmax "
                             "output): re-export it with `realtime-hmr train mega --init DIR --steps 0 --out DIR`")
        if mirror_test and "image" in getattr(decoder, "input_names", ()):
            raise ValueError("mirror_test needs a landmarks-only decoder (this one reads image features)")
        if mirror_test and mode != "deterministic":
            raise ValueError("mirror_test applies to the deterministic pass, not to stochastic mode")
        if fit and mode != "deterministic":
            raise ValueError("fit refines the deterministic body; stochastic mode's samples are left as drawn")
        if silhouette and not fit:
            raise ValueError("silhouette is a term of the fit: use fit=True with it")
        if mode == "stochastic" and step is None:
            raise ValueError("stochastic mode needs the decoder's step model (mega_step.onnx)")
        self.tracker, self.decoder, self.vq, self.body = tracker, decoder, vq_decoder, body
        self.step, self.mode, self.samples, self.steps, self.temperature = step, mode, samples, steps, temperature
        self.codebook = codebook
        self.rng = np.random.default_rng(seed)
        self.K = camera_matrix
        self.refine = refine
        self.decode = decode
        self.mirror_test = mirror_test
        self.fit = fit
        self.silhouette = silhouette
        self._fitter = None
        self._twin: np.ndarray | None = None
        self._betas: dict[int, np.ndarray] = {}

    @classmethod
    def load(cls, backend: str = "auto", device: str | None = None, threads: int | None = None, max_persons: int = 4,
             camera_matrix: np.ndarray | None = None, mega_dir=None, tracker=None, **mode) -> MeshRecovery:
        """The shipped models (or the decoder in ``mega_dir``, as written by ``realtime-hmr train mega --out``).
        ``tracker``: a pose tracker set up by the caller (:func:`realtime_hmr.landmarks.load_pose_tracker`), instead
        of the default one.
        ``mode``: ``mode="stochastic"``, ``samples``, ``steps``, ``temperature``, ``seed``, ``refine``, ``decode``
        (deterministic mode's tokens: ``"expected"``, the codebook entry nearest to the probability-weighted mean code,
        the default; or ``"argmax"``, MEGA's), ``mirror_test`` (deterministic mode: the decoder also reads each
        person's mirror image, and the two bodies are averaged), ``fit`` (each body refined on its 2D landmarks),
        ``silhouette`` (with ``fit``: on its silhouette too; the default tracker then segments each person)."""
        from realtime_hmr.body import Body
        from realtime_hmr.landmarks import load_pose_tracker
        from realtime_hmr.runtime import load

        mega, vq, mega_dir, codebook = decoder_files("mega_det.onnx", mega_dir)
        onnx_backend = "onnxruntime" if backend == "torch" else backend
        step = mega_dir / "mega_step.onnx"
        return cls(tracker or load_pose_tracker(backend, device, threads, 10, max_persons,
                                                mask=bool(mode.get("silhouette"))),
                   load(str(mega), onnx_backend, device, threads), load(str(vq), onnx_backend, device, threads),
                   Body.load(), camera_matrix, codebook=codebook,
                   step=load(str(step), onnx_backend, device, threads) if step.is_file() else None, **mode)

    def variant(self, **changes) -> MeshRecovery:
        """The same models (tracker, decoders, body, camera) with other options, e.g. ``mr.variant(fit=True)``;
        ``tracker=`` swaps the tracker."""
        opts = dict(step=self.step, mode=self.mode, samples=self.samples, steps=self.steps,
                    temperature=self.temperature, codebook=self.codebook, refine=self.refine, decode=self.decode,
                    mirror_test=self.mirror_test, fit=self.fit, silhouette=self.silhouette)
        tracker = changes.pop("tracker", self.tracker)
        return MeshRecovery(tracker, self.decoder, self.vq, self.body, self.K, **{**opts, **changes})

    def camera(self, image: np.ndarray) -> np.ndarray:
        if self.K is not None:
            return self.K
        h, w = image.shape[:2]
        f = float(max(w, h))  # a ~53 degree horizontal field of view at 4:3: typical of webcams
        return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])

    def recover(self, persons: list, K: np.ndarray) -> list:
        """Attach a body to each person that has landmarks (one batch for all of them)."""
        from dataclasses import replace

        from realtime_hmr.types import BodyResult

        todo = [p for p in persons if p.landmarks_2d is not None]
        if not todo:
            return persons
        stack = lambda name: np.stack([getattr(p, name) for p in todo])  # noqa: E731
        lm2d, lmw, geom = condition(stack("landmarks_2d"), stack("landmarks_world"), stack("visibility"), K)
        feeds = {"lm2d": lm2d, "lmw": lmw, "geom": geom}
        net = self.step if self.mode == "stochastic" else self.decoder
        if "image" in getattr(net, "input_names", ()):
            if any(p.features is None for p in todo):
                raise ValueError("this mesh decoder reads image features, and the landmark model gave none "
                                 "(the shipped landmark ONNX files have a 'features' output)")
            feeds["image"] = np.stack([p.features for p in todo]).astype(np.float32)
        if self.mode == "stochastic":
            verts, t, spread = self._sample(feeds, todo, K)
        else:
            n = len(todo)
            if self.mirror_test:  # the mirror image too, in the same batch
                feeds = {k: np.concatenate([feeds[k], v]) for k, v in
                         zip(("lm2d", "lmw", "geom"), mirror_condition(lm2d, lmw, geom))}
            out = self.decoder.run(feeds)
            tokens = out["tokens" if self.decode == "expected" else "tokens_argmax"]
            canon, R = self._canonical(tokens.astype(np.int64), out["rot6"])
            if self.mirror_test:
                canon_m, R_m = unmirror_bodies(canon[n:], R[n:], self.twin)
                canon, R = 0.5 * (canon[:n] + canon_m), mean_rotation(R[:n], R_m)
            verts, t = self._pose(canon, R, todo, K)
            spread = None
        ik = self._rig(verts, [p.id for p in todo])
        bone_poses = ik.bone_poses
        fit_px = None
        if self.fit:
            verts, t, bone_poses, fit_px = self._fit(verts, t, ik, todo, K)
        done = {}
        for i, p in enumerate(todo):
            body = BodyResult(joints=self.body.joints(verts[i]), vertices=verts[i].astype(np.float32), translation=t[i],
                              confidence=None, extras={"bone_poses": bone_poses[i], "camera_matrix": K})
            if fit_px is not None:
                body.extras["fit_px"] = fit_px[i]
            if spread is not None:
                body.vertex_uncertainty = spread["vertices"][i].astype(np.float32)
                body.extras["joint_uncertainty"] = spread["joints"][i]
                body.extras["sample_joints"] = spread["sample_joints"][i]
                body.extras["sample_fit_px"] = spread["sample_fit_px"][i]
            done[id(p)] = replace(p, body=body)
        return [done.get(id(p), p) for p in persons]

    def _rig(self, verts: np.ndarray, ids: list):
        """The rig's parameters by IK (:class:`realtime_hmr.body.IKResult`: deltas, root translation, shape, posed bone
        frames): people seen before reuse their shape (the fast path); only new ones get their shape fitted, once, and
        remembered by id."""
        from realtime_hmr.body import IKResult

        n, B = len(ids), self.body.n_bones
        known = np.array([i in self._betas for i in ids])
        out = IKResult(np.empty((n, B, 3, 3)), np.empty((n, 3)), np.empty((n, self.body.n_betas)),
                       np.empty((n, B, 3, 4)))
        parts = []
        if known.any():
            betas = np.stack([self._betas[i] for i, k in zip(ids, known) if k])
            parts.append((known, self.body.ik(verts[known], betas=betas, fit_shape=False)))
        if not known.all():
            ik = self.body.ik(verts[~known])
            parts.append((~known, ik))
            for j, i in enumerate(np.asarray(ids, dtype=object)[~known]):
                self._betas[i] = ik.betas[j]
            while len(self._betas) > 256:  # ids only grow: forget the oldest tracks' shapes
                self._betas.pop(next(iter(self._betas)))
        for m, r in parts:
            out.rotations[m], out.translation[m], out.betas[m], out.bone_poses[m] = (
                r.rotations, r.translation, r.betas, r.bone_poses)
        return out

    def _fit(self, verts: np.ndarray, t: np.ndarray, ik, persons: list, K: np.ndarray):
        """Each body's pose refined on its 2D landmarks (:class:`realtime_hmr.body.fit.LandmarkFit`), and with
        ``silhouette`` on its silhouette (the window around its box, :func:`realtime_hmr.crop.silhouette_window`); the
        mesh moves by the change of the rig's skinning, so what the rig does not model stays as decoded. Returns the
        vertices, translations, bone frames and each fit's median reprojection error (px) before and after."""
        from realtime_hmr.body.fit import LandmarkFit, SilhouetteTarget
        from realtime_hmr.crop import silhouette_window

        if self.silhouette and all(p.silhouette is None for p in persons):
            raise ValueError("silhouette needs each person's segmentation, and the tracker gave none: load it with "
                             "load_pose_tracker(..., mask=True)")
        if self._fitter is None:
            self._fitter = LandmarkFit(self.body)
        verts, t, poses = verts.copy(), t.copy(), ik.bone_poses.copy()
        own = self.body.joints(verts, "mediapipe33")  # the decoded meshes' landmarks: what the fit moves
        px = np.empty((len(persons), 2))
        for i, p in enumerate(persons):
            box = np.asarray(p.box, np.float64)
            sil = None
            if self.silhouette and p.silhouette is not None:
                mask, origin, unknown = silhouette_window(p.silhouette, box)
                sil = SilhouetteTarget.from_mask(mask, origin, self._fitter.sil_samples, unknown)
            r = self._fitter(ik.rotations[i], ik.translation[i], ik.betas[i], p.landmarks_2d[:, :2], p.visibility, K,
                             max(box[2] - box[0], box[3] - box[1]), landmarks=own[i], silhouette=sil,
                             vertices=verts[i])
            dv = self._fitter.vertex_shift(ik.betas[i], r)
            verts[i] += dv
            t[i] += dv.mean(0)
            poses[i] = r.bone_poses
            px[i] = r.px_before, r.px_after
        return verts, t, poses, px

    @property
    def twin(self) -> np.ndarray:
        """Each vertex's mirror twin across the body's sagittal plane (the template is symmetric)."""
        if self._twin is None:
            from scipy.spatial import cKDTree

            v = np.asarray(self.body.template, np.float64)
            self._twin = cKDTree(v).query(v * [-1.0, 1.0, 1.0])[1]
        return self._twin

    def _canonical(self, tokens: np.ndarray, rot6: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decoded canonical meshes (n, V, 3) and the decoder's camera-from-body rotations (n, 3, 3)."""
        canon = self.vq.run({self.vq.input_names[0]: tokens})[self.vq.output_names[0]].astype(np.float64)
        return canon, rotation_6d(np.asarray(rot6, np.float64))

    def _place(self, tokens: np.ndarray, rot6: np.ndarray, persons: list, K: np.ndarray):
        return self._pose(*self._canonical(tokens, rot6), persons, K)

    def _pose(self, canon: np.ndarray, R: np.ndarray, persons: list, K: np.ndarray):
        """Canonical meshes turned to camera space and placed by the closed-form translation (and, with
        ``refine``, the rotation and translation refined on the 2D landmarks)."""
        lm_canon = self.body.joints(canon, "mediapipe33")
        lm3d = np.einsum("nij,nkj->nki", R, lm_canon)
        reps = len(canon) // len(persons)
        xy = np.repeat(np.stack([p.landmarks_2d[:, :2] for p in persons]), reps, 0)
        vis = np.repeat(np.stack([p.visibility for p in persons]), reps, 0)
        t = solve_translation(lm3d, xy, K, vis)
        if self.refine:
            R, t = refine_pose(lm_canon, xy, K, R, t, vis)
        return np.einsum("nij,nvj->nvi", R, canon) + t[:, None], t

    def _sample(self, feeds: dict, persons: list, K: np.ndarray):
        """Stochastic mode: ``samples`` bodies per person by iterative decoding (:func:`iterative_decode`); the mean
        body, and each vertex's (joint's) mean distance to it."""
        n, S = len(persons), self.samples
        f = {k: np.repeat(v, S, 0) for k, v in feeds.items()}

        def step(tok):
            out = self.step.run({"tokens": tok, **f})
            return out["logits"], out["rot6"]

        tok, rot6 = iterative_decode(step, n * S, 54, self.codebook, self.steps, self.temperature, self.rng)
        verts, t = self._place(tok, rot6, persons, K)
        fit = reprojection_px(self.body.joints(verts, "mediapipe33"), np.repeat(
            np.stack([p.landmarks_2d[:, :2] for p in persons]), S, 0), np.repeat(
            np.stack([p.visibility for p in persons]), S, 0), K).reshape(n, S)
        verts = verts.reshape(n, S, -1, 3)
        joints = self.body.joints(verts)
        mean_v, mean_j = verts.mean(1), joints.mean(1)
        spread = {"vertices": np.linalg.norm(verts - mean_v[:, None], axis=-1).mean(1),
                  "joints": np.linalg.norm(joints - mean_j[:, None], axis=-1).mean(1), "sample_joints": joints,
                  "sample_fit_px": fit}
        return mean_v, t.reshape(n, S, 3).mean(1), spread

    def reset(self) -> None:
        """Forget every track and its fitted shape: ids start again from 0 (a new clip, or a still image)."""
        self.tracker.reset()
        self._betas.clear()

    def __call__(self, image: np.ndarray, camera_matrix: np.ndarray | None = None) -> list:
        """One still image: every person found in it, each with a body."""
        self.reset()  # nobody here is a track seen before, nor is their shape
        return self.recover(self.tracker(image), self.camera(image) if camera_matrix is None else camera_matrix)

    def stage(self, frame, persons: list) -> list:
        """Pipeline stage after the tracker (video: tracks and their shapes persist)."""
        live = {p.id for p in persons}
        self._betas = {k: v for k, v in self._betas.items() if k in live}
        return self.recover(persons, self.camera(frame.image))
