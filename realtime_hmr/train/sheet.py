"""Contact sheet of random samples of each pose source (and of body shapes), for a human to check at a glance.

Each sample is drawn as Anny's shaded mesh in orthographic front and left-side views (moderngl on EGL, no window).
The root's heading is removed for display so that 'front' shows the subject's front; tilt is kept.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from realtime_hmr.train import rig as R

log = logging.getLogger(__name__)

VERT = """#version 330
in vec3 in_pos; in vec3 in_nrm; out vec3 v_n;
void main() { gl_Position = vec4(in_pos, 1.0); v_n = in_nrm; }"""
FRAG = """#version 330
in vec3 v_n; uniform vec3 color; out vec4 f;
void main() { vec3 n = normalize(v_n); float l = 0.25 + 0.75 * abs(dot(n, normalize(vec3(0.35, 0.45, 1.0))));
              f = vec4(color * l, 1.0); }"""
# view -> (image right, image up, towards the camera), anny axes
VIEWS = {"front": (np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), np.array([0, -1.0, 0])),
         "side": (np.array([0, 1.0, 0]), np.array([0, 0, 1.0]), np.array([1.0, 0, 0]))}  # from the left


class Renderer:
    def __init__(self, faces: np.ndarray, size: tuple[int, int] = (150, 240)):
        import moderngl

        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.prog = self.ctx.program(vertex_shader=VERT, fragment_shader=FRAG)
        self.faces = faces.astype(np.int32)
        self.size = size
        self.fbo = self.ctx.simple_framebuffer(size)
        self.ibo = self.ctx.buffer(self.faces.tobytes())

    def normals(self, v: np.ndarray) -> np.ndarray:
        f = self.faces
        fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        n = np.zeros_like(v)
        for k in range(3):
            np.add.at(n, f[:, k], fn)
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    def draw(self, v: np.ndarray, view: str, center: np.ndarray, half_height: float, color=(0.75, 0.68, 0.6)):
        right, up, back = VIEWS[view]
        basis = np.stack([right, up, back])
        w, h = self.size
        p = (v - center) @ basis.T / half_height
        p[:, 0] *= h / w
        p[:, 2] = -p[:, 2] * 0.5  # nearer = smaller depth
        n = self.normals(v) @ basis.T
        vbo = self.ctx.buffer(np.concatenate([p, n], axis=1).astype(np.float32).tobytes())
        vao = self.ctx.vertex_array(self.prog, [(vbo, "3f 3f", "in_pos", "in_nrm")], self.ibo)
        self.fbo.use()
        self.fbo.clear(1.0, 1.0, 1.0, 1.0, depth=1.0)
        self.ctx.enable(self.ctx.DEPTH_TEST)
        self.prog["color"].value = tuple(color)
        vao.render()
        img = np.frombuffer(self.fbo.read(components=3), np.uint8).reshape(h, w, 3)[::-1]
        vao.release()
        vbo.release()
        return img


def unyaw(rot: np.ndarray) -> np.ndarray:
    """Root rotations of poses (N, 104, 3, 3) with their heading (rotation about Z) removed: the root's front
    for an upright body, the pelvis-to-thorax axis for one lying or crawling."""
    rig = R.load_rig()
    G = R.world_deltas(rot.astype(np.float64), rig.parents)
    front = G[:, 0] @ np.array([0.0, -1.0, 0.0])
    spine = G[:, rig.index("spine01")] @ (rig.heads[rig.index("neck01")] - rig.heads[0])
    spine /= np.linalg.norm(spine, axis=1, keepdims=True)
    front = np.where((np.linalg.norm(spine[:, :2], axis=1) > 0.7)[:, None], spine, front)
    yaw = np.arctan2(front[:, 0], -front[:, 1])  # angle from -Y towards +X
    return R.axis_angle(np.array([0, 0, 1.0]), -yaw) @ rot[:, 0]


def pose_meshes(rotations: np.ndarray, shapes: np.ndarray | None = None) -> np.ndarray:
    """Anny vertices (N, V, 3) for local-ref rotations (N, 104, 3, 3) and phenotypes (N, 6) (neutral if None)."""
    import torch

    from realtime_hmr.train.shapes import PHENOTYPES

    m = R.anny_model()
    P = torch.zeros(len(rotations), rotations.shape[1], 4, 4)
    P[:, :, :3, :3] = torch.as_tensor(np.array(rotations, dtype=np.float32))
    P[:, :, 3, 3] = 1.0
    kw = {} if shapes is None else {k: torch.as_tensor(shapes[:, i], dtype=torch.float32) for i, k in
                                    enumerate(PHENOTYPES)}
    with torch.no_grad():
        return m(pose_parameters=P, phenotype_kwargs=kw or None)["vertices"].numpy()


def _label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    img = img.copy()
    cv2.putText(img, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (40, 40, 40), 1, cv2.LINE_AA)
    return img


def contact_sheet(path: str, per_source: int = 8, seed: int = 0, sources=None) -> Path:
    """Write a PNG: one row per pose source (front + side of ``per_source`` random samples) and one of shapes."""
    import cv2

    from realtime_hmr.train.shapes import Shapes, sample_shapes

    rng = np.random.default_rng(seed)
    if sources is None:
        from realtime_hmr.train.mocap import load_mocap
        from realtime_hmr.train.poses import sample_rom

        mocap = load_mocap()
        sources = {"rom": sample_rom(per_source, rng)}
        for src in ("cmu", "deepmimic"):
            sel = np.flatnonzero(mocap.source == src)
            sources[src] = mocap.subset(rng.choice(sel, per_source, replace=False))
    m = R.anny_model()
    ren = Renderer(m.faces.numpy())
    rows, listing = [], {}
    for name, ps in sources.items():
        listing[name] = [f"{c}:{f}" if c else "" for c, f in zip(ps.clip, ps.frame, strict=True)]
        rot = ps.rotations.copy()
        rot[:, 0] = unyaw(rot)
        verts = pose_meshes(rot)
        tiles = []
        for k, v in enumerate(verts):
            c = (v.max(0) + v.min(0)) / 2
            ext = v.max(0) - v.min(0)
            hh = 0.55 * max(ext[2], max(ext[0], ext[1]) * ren.size[1] / ren.size[0])
            clip = f"{ps.clip[k]}:{ps.frame[k]}" if ps.clip[k] else ""
            tiles.append(_label(ren.draw(v, "front", c, hh), f"{name} {clip}"[:30]))
            tiles.append(ren.draw(v, "side", c, hh, color=(0.62, 0.68, 0.75)))
        rows.append(np.concatenate(tiles, axis=1))
    edges = np.geomspace(3.0, 90.0, per_source + 1)  # one body per age band, so the row shows every age
    bands = [sample_shapes(1, rng, age_years=(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    sh = Shapes(np.concatenate([b.params for b in bands]), np.concatenate([b.age_years for b in bands]))
    verts = pose_meshes(np.broadcast_to(np.eye(3, dtype=np.float32), (per_source, 104, 3, 3)), sh.params)
    tiles = []
    for k, v in enumerate(verts):  # common scale: heights compare across the row
        c = np.array([0.0, 0.0, v[:, 2].min() + 1.0])
        g, a = sh.params[k, 0], sh.age_years[k]
        tiles.append(_label(ren.draw(v, "front", c, 1.05), f"shape {a:.0f}y g={g:.2f}"))
        tiles.append(ren.draw(v, "side", c, 1.05, color=(0.62, 0.68, 0.75)))
    rows.append(np.concatenate(tiles, axis=1))
    sheet = np.concatenate(rows, axis=0)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    meta = {"command": f"python -m realtime_hmr.train.poses --contact-sheet {path} --per-source {per_source} "
                       f"--seed {seed}", "rows": list(listing) + ["shapes"], "samples": listing,
            "shapes": {"params": sh.params.round(3).tolist(), "age_years": sh.age_years.round(1).tolist()},
            "views": "front (camera at -Y) and left side (camera at +X), orthographic; heading removed"}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    log.info("wrote %s (%dx%d, %d kB)", out, sheet.shape[1], sheet.shape[0], out.stat().st_size // 1024)
    return out
