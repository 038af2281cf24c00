"""Offscreen renderer for synthetic people (moderngl; EGL, so no display; llvmpipe on CPU, the GPU when present).

Appearance is procedural and per vertex (no textures): every vertex of the fixed topology gets a body part from its
dominant skinning bone and its rest-pose position (:class:`BodyParts`), and each image draws a material per vertex:
skin (7 tones x jitter, faint mottling), shirt (sleeveless / short / elbow / long sleeves, length of the hem),
trousers (shorts / knee / long), shoes or bare feet, a hair cap (bald / short / long at the back), dark eyes.
Cloth patterns (solid, stripes, checks, mottled, camouflage) are computed in the fragment shader from rest-pose
coordinates, so they stick to the body. Lighting: ambient + key + fill (Lambert) + Blinn specular per material.
Output: premultiplied RGBA (MSAA x4, resolved) and a person-index mask (0 = background, k = person k-1) from a
second colour attachment; :func:`composite` lays it on a background (:class:`Backgrounds`: smooth noise,
gradients, photographs bundled with scikit-image) with optional motion blur and sensor noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from realtime_hmr.train.camera import Camera

log = logging.getLogger(__name__)

SKIN, SHIRT, TROUSERS, SHOES, HAIR, EYES = range(6)
N_MAT = 6
SKIN_TONES = np.array([(0.98, 0.87, 0.78), (0.94, 0.78, 0.66), (0.87, 0.67, 0.52), (0.76, 0.57, 0.42),
                       (0.62, 0.43, 0.30), (0.45, 0.30, 0.21), (0.33, 0.22, 0.16)])
HAIR_COLOURS = np.array([(0.05, 0.04, 0.03), (0.18, 0.11, 0.06), (0.35, 0.22, 0.12), (0.75, 0.6, 0.35),
                         (0.55, 0.25, 0.1), (0.6, 0.6, 0.6)])
PHOTOS = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "text", "page", "coins", "moon", "clock",
          "hubble_deep_field", "retina", "cell", "logo", "colorwheel", "immunohistochemistry")  # no astronaut/camera:
# they show people

VERT = """
#version 330
uniform mat4 mvp;
in vec3 in_pos; in vec3 in_rest; in int in_mat;
out vec3 v_pos; out vec3 v_rest; flat out int v_mat;
void main() { gl_Position = mvp * vec4(in_pos, 1.0); v_pos = in_pos; v_rest = in_rest; v_mat = in_mat; }
"""
FRAG = """
#version 330
uniform vec3 color1[6]; uniform vec3 color2[6]; uniform int pattern[6]; uniform float scale[6]; uniform float shiny[6];
uniform vec3 key_dir; uniform vec3 key_col; uniform vec3 fill_dir; uniform vec3 fill_col; uniform vec3 ambient;
uniform vec3 eye; uniform float person;
in vec3 v_pos; in vec3 v_rest; flat in int v_mat;
layout(location = 0) out vec4 f_color; layout(location = 1) out vec4 f_id;
float hash(vec3 p) { p = fract(p * 0.3183099 + 0.1); p *= 17.0; return fract(p.x * p.y * p.z * (p.x + p.y + p.z)); }
float vnoise(vec3 x) {
  vec3 i = floor(x); vec3 f = fract(x); f = f * f * (3.0 - 2.0 * f);
  float a = mix(mix(hash(i), hash(i + vec3(1, 0, 0)), f.x),
                mix(hash(i + vec3(0, 1, 0)), hash(i + vec3(1, 1, 0)), f.x), f.y);
  float b = mix(mix(hash(i + vec3(0, 0, 1)), hash(i + vec3(1, 0, 1)), f.x),
                mix(hash(i + vec3(0, 1, 1)), hash(i + vec3(1, 1, 1)), f.x), f.y);
  return mix(a, b, f.z);
}
void main() {
  int m = v_mat; vec3 p = v_rest * scale[m]; int pat = pattern[m]; float t = 0.0;
  if (pat == 1) t = step(0.5, fract(p.z));
  else if (pat == 2) t = mod(floor(p.x) + floor(p.y) + floor(p.z), 2.0);
  else if (pat == 3) t = vnoise(p) * 0.6 + vnoise(p * 2.7) * 0.4;
  else if (pat == 4) t = step(0.55, vnoise(p));
  vec3 alb = mix(color1[m], color2[m], t);
  // face normal from screen-space derivatives (triangles are ~1-3 px here, so facets do not show)
  vec3 V = normalize(eye - v_pos); vec3 n = normalize(cross(dFdx(v_pos), dFdy(v_pos))); if (dot(n, V) < 0.0) n = -n;
  vec3 H = normalize(key_dir + V);
  vec3 c = alb * (ambient + key_col * max(dot(n, key_dir), 0.0) + fill_col * max(dot(n, fill_dir), 0.0))
         + key_col * shiny[m] * pow(max(dot(n, H), 0.0), 24.0);
  f_color = vec4(clamp(c, 0.0, 1.0), 1.0); f_id = vec4(person / 255.0, 0.0, 0.0, 1.0);
}
"""


class BodyParts:
    """Per-vertex part geometry of the fixed topology, from the rest template and the dominant skinning bone."""

    def __init__(self, body):
        names = body.bone_names
        dom = np.asarray(body.weights.argmax(1)).ravel()
        bone = np.array([names[i] for i in dom])
        v = body.template.astype(np.float64)
        self.rest = v.astype(np.float32)
        h = {n: body.heads0[names.index(n)] for n in ("upperarm01.L", "wrist.L", "upperleg01.L", "foot.L", "head")}
        def starts(*prefixes):
            return np.array([b.startswith(prefixes) for b in bone])

        arm = starts("upperarm", "lowerarm", "wrist", "finger", "metacarpal", "shoulder")
        leg = starts("upperleg", "lowerleg", "foot", "toe")
        self.head = np.isin(bone, ["head", "neck03"]) | starts("eye")
        self.eyes = starts("eye")
        self.neck = starts("neck") & ~self.head
        self.hands = starts("finger", "metacarpal", "wrist")
        self.feet = starts("foot", "toe")
        self.torso = ~(arm | leg | self.head | self.neck)
        self.arm, self.leg = arm, leg
        # 0 at the shoulder/hip joint, 1 at the wrist/ankle, along the limb (mirrored for the right side)
        vx = np.abs(v[:, 0])
        a0, a1 = h["upperarm01.L"], h["wrist.L"]
        q = np.stack([vx, v[:, 1], v[:, 2]], 1)
        self.arm_s = ((q - a0) @ (a1 - a0)) / np.dot(a1 - a0, a1 - a0)
        l0, l1 = h["upperleg01.L"], h["foot.L"]
        self.leg_s = ((q - l0) @ (l1 - l0)) / np.dot(l1 - l0, l1 - l0)
        self.z, self.y = v[:, 2], v[:, 1]
        self.hip_z = float(l0[2])
        hv = v[self.head & ~self.eyes]
        self.head_z = (float(hv[:, 2].min()), float(hv[:, 2].max()))
        self.head_y = float(np.median(hv[:, 1]))
        self.faces = body.faces.astype(np.int64)


@dataclass
class Appearance:
    mat: np.ndarray  # (V,) int32 material per vertex
    color1: np.ndarray  # (N_MAT, 3)
    color2: np.ndarray  # (N_MAT, 3)
    pattern: np.ndarray  # (N_MAT,) int32
    scale: np.ndarray  # (N_MAT,) pattern frequency per metre
    shiny: np.ndarray  # (N_MAT,)
    info: dict


def _cloth_colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    s = rng.choice([rng.uniform(0, 0.15), rng.uniform(0.3, 0.9)])
    return np.array(colorsys.hsv_to_rgb(rng.random(), s, rng.uniform(0.08, 0.95)))


def sample_appearance(rng: np.random.Generator, parts: BodyParts) -> Appearance:
    sleeve = float(rng.choice([0.0, 0.3, 0.55, 1.05], p=[0.1, 0.35, 0.1, 0.45]))
    legs = float(rng.choice([0.4, 0.65, 1.02], p=[0.2, 0.1, 0.7]))
    shoes, hair = rng.random() < 0.85, int(rng.choice([0, 1, 2], p=[0.1, 0.55, 0.35]))
    waist = parts.hip_z + rng.uniform(0.02, 0.14)
    mat = np.full(len(parts.rest), SKIN, np.int32)
    mat[parts.torso & (parts.z >= waist)] = SHIRT
    mat[parts.arm & (parts.arm_s < sleeve) & ~parts.hands] = SHIRT
    mat[parts.torso & (parts.z < waist)] = TROUSERS
    mat[parts.leg & (parts.leg_s < legs) & ~parts.feet] = TROUSERS
    if shoes:
        mat[parts.feet | (parts.leg & (parts.leg_s > 0.97))] = SHOES
    if hair:
        z0, z1 = parts.head_z
        front, back = rng.uniform(0.22, 0.38), (rng.uniform(0.45, 0.6) if hair == 1 else rng.uniform(0.75, 1.0))
        w = np.clip((parts.y - parts.head_y) / 0.08 + 0.5, 0, 1)  # 0 at the face, 1 at the back of the head
        depth = front + (back - front) * w
        mat[(parts.head | (parts.neck & (hair == 2))) & (parts.z > z1 - depth * (z1 - z0)) & ~parts.eyes] = HAIR
    mat[parts.eyes] = EYES
    c1, c2 = np.zeros((N_MAT, 3)), np.zeros((N_MAT, 3))
    pattern, scale, shiny = np.zeros(N_MAT, np.int32), np.ones(N_MAT), np.zeros(N_MAT)
    skin = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.08, 3), 0, 1)
    c1[SKIN], c2[SKIN], pattern[SKIN], scale[SKIN], shiny[SKIN] = skin, skin * 0.9, 3, 40.0, rng.uniform(0.02, 0.12)
    for m in (SHIRT, TROUSERS, SHOES):
        c1[m], c2[m] = _cloth_colour(rng), _cloth_colour(rng)
        pattern[m] = rng.choice(5, p=[0.45, 0.15, 0.1, 0.2, 0.1]) if m != SHOES else 0
        scale[m], shiny[m] = rng.uniform(4, 25), rng.uniform(0.0, 0.15)
    c1[SHOES] = c1[SHOES] * rng.uniform(0.3, 1.0)
    hc = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.8, 1.2)
    c1[HAIR], c2[HAIR], pattern[HAIR], scale[HAIR], shiny[HAIR] = hc, hc * 0.7, 3, 60.0, 0.2
    c1[EYES] = c2[EYES] = (0.08, 0.06, 0.05)
    info = {"sleeve": sleeve, "trousers": legs, "shoes": bool(shoes), "hair": hair, "skin": skin.round(3).tolist()}
    return Appearance(mat, c1, c2, pattern, scale, shiny, info)


@dataclass
class Light:
    key_dir: np.ndarray
    key_col: np.ndarray
    fill_dir: np.ndarray
    fill_col: np.ndarray
    ambient: np.ndarray


def sample_light(rng: np.random.Generator) -> Light:
    def direction(elev_lo, elev_hi):
        az, el = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(elev_lo, elev_hi))
        return np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])

    tint = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.12, 0.12) * np.array([1.0, 0.0, -1.0])
    return Light(direction(10, 80), tint * rng.uniform(0.5, 1.0), direction(-20, 40),
                 np.full(3, rng.uniform(0.05, 0.35)), tint * rng.uniform(0.3, 0.6))


class Backgrounds:
    """Random backgrounds of a fixed size: smooth noise, linear gradients, crops of bundled photographs."""

    def __init__(self, size: tuple[int, int]):
        import skimage.data as data

        self.size = size
        self.photos = []
        for name in PHOTOS:
            img = np.asarray(getattr(data, name)())
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, -1)
            if img.dtype != np.uint8:
                img = (255 * (img.astype(np.float64) / max(img.max(), 1))).astype(np.uint8)
            self.photos.append(np.ascontiguousarray(img[..., :3]))

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        import cv2

        w, h = self.size
        kind = rng.choice(3, p=[0.3, 0.2, 0.5])
        if kind == 0:  # smooth colour noise, a few octaves
            out = np.zeros((h, w, 3), np.float32)
            for k in range(3):
                g = rng.random((2 + 3 * 2**k, 2 + 3 * 2**k, 3)).astype(np.float32)
                out += cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC) / 2 ** k
            out = out / 1.75 * rng.uniform(0.3, 1.0) + rng.uniform(0, 0.3)
        elif kind == 1:
            c0, c1 = rng.random(3), rng.random(3)
            ang = rng.uniform(0, 2 * np.pi)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            s = (np.cos(ang) * xx / w + np.sin(ang) * yy / h)
            s = (s - s.min()) / max(s.max() - s.min(), 1e-6)
            out = c0 + (c1 - c0) * s[..., None]
        else:
            img = self.photos[rng.integers(len(self.photos))]
            ih, iw = img.shape[:2]
            frac = rng.uniform(0.4, 1.0)
            cw, ch = int(iw * frac), int(ih * frac)
            x0, y0 = rng.integers(0, iw - cw + 1), rng.integers(0, ih - ch + 1)
            crop = img[y0:y0 + ch, x0:x0 + cw]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            out = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
            out = out * rng.uniform(0.6, 1.3) * rng.uniform(0.85, 1.15, 3) + rng.uniform(-0.1, 0.1)
        return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def composite(rgba: np.ndarray, background: np.ndarray, rng: np.random.Generator | None = None,
              motion_blur: float = 0.0, noise: float = 0.0) -> np.ndarray:
    """Premultiplied RGBA (H, W, 4) uint8 over an RGB background -> RGB uint8. With ``rng``: a linear motion blur of
    the person layer with probability ``motion_blur`` and Gaussian sensor noise with probability ``noise``."""
    import cv2

    fg = rgba.astype(np.float32)
    if rng is not None and rng.random() < motion_blur:
        k = int(rng.integers(3, 12))
        ker = np.zeros((k, k), np.float32)
        ker[k // 2] = 1.0 / k
        rot = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1.0)
        ker = cv2.warpAffine(ker, rot, (k, k))
        fg = cv2.filter2D(fg, -1, ker / max(ker.sum(), 1e-6))
    out = fg[..., :3] + background.astype(np.float32) * (1 - fg[..., 3:] / 255)
    if rng is not None and rng.random() < noise:
        grain = np.empty(out.shape, np.float32)
        cv2.setRNGSeed(int(rng.integers(0, 2**31 - 1)))
        cv2.randn(grain, 0.0, float(rng.uniform(1, 6)))
        out += grain
    return np.clip(out, 0, 255).astype(np.uint8)


def create_context(backend: str | None = "egl"):
    import moderngl

    return moderngl.create_standalone_context(backend=backend) if backend else moderngl.create_standalone_context()


class Renderer:
    """``Renderer(body, (w, h))``; ``renderer.draw(vertices_list, appearances, camera, light) -> (rgba, ids)``."""

    def __init__(self, body, size: tuple[int, int], samples: int = 4, backend: str | None = "egl", ctx=None):
        self.parts = BodyParts(body)
        self.size = tuple(size)
        self.ctx = ctx or create_context(backend)
        c = self.ctx
        self.prog = c.program(vertex_shader=VERT, fragment_shader=FRAG)
        n_v = len(self.parts.rest)
        self.b_pos = c.buffer(reserve=n_v * 12)
        self.b_mat = c.buffer(reserve=n_v * 4)
        self.b_rest = c.buffer(self.parts.rest.tobytes())
        self.ibo = c.buffer(self.parts.faces.astype(np.int32).tobytes())
        self.vao = c.vertex_array(self.prog, [(self.b_pos, "3f", "in_pos"), (self.b_rest, "3f", "in_rest"),
                                              (self.b_mat, "1i", "in_mat")],
                                  index_buffer=self.ibo, index_element_size=4)
        self.fbo_ms = c.framebuffer([c.renderbuffer(self.size, 4, samples=samples) for _ in range(2)],
                                    c.depth_renderbuffer(self.size, samples=samples))
        self.fbo = c.framebuffer([c.renderbuffer(self.size, 4) for _ in range(2)])
        self.info = dict(c.info)
        log.debug("renderer on %s", self.info.get("GL_RENDERER"))

    @property
    def gl_renderer(self) -> str:
        return str(self.info.get("GL_RENDERER", "?"))

    def draw(self, vertices: list[np.ndarray], appearances: list[Appearance], camera: Camera, light: Light
             ) -> tuple[np.ndarray, np.ndarray]:
        """Premultiplied RGBA (H, W, 4) uint8 and person index mask (H, W) uint8 (0 background, k = person k-1)."""
        import moderngl

        c, p = self.ctx, self.prog
        self.fbo_ms.use()
        self.fbo_ms.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        c.enable(moderngl.DEPTH_TEST)
        c.disable(moderngl.CULL_FACE)
        p["mvp"].write(camera.gl_mvp().T.astype("f4").tobytes())
        p["eye"].value = tuple(camera.center)
        for name in ("key_dir", "key_col", "fill_dir", "fill_col", "ambient"):
            p[name].value = tuple(float(x) for x in getattr(light, name))
        for k, (v, a) in enumerate(zip(vertices, appearances, strict=True)):
            self.b_pos.write(v.astype("f4").tobytes())
            self.b_mat.write(a.mat.astype("i4").tobytes())
            p["color1"].write(a.color1.astype("f4").tobytes())
            p["color2"].write(a.color2.astype("f4").tobytes())
            p["pattern"].write(a.pattern.astype("i4").tobytes())
            p["scale"].write(a.scale.astype("f4").tobytes())
            p["shiny"].write(a.shiny.astype("f4").tobytes())
            p["person"].value = float(k + 1)
            self.vao.render(moderngl.TRIANGLES)
        c.copy_framebuffer(self.fbo, self.fbo_ms)
        w, h = self.size
        rgba = np.frombuffer(self.fbo.read(components=4, attachment=0), np.uint8).reshape(h, w, 4)
        idr = np.frombuffer(self.fbo.read(components=4, attachment=1), np.uint8).reshape(h, w, 4)
        # resolved id = coverage * id: divide by coverage, keep pixels at least half covered
        a = idr[..., 3].astype(np.float32)
        ids = np.where(a >= 128, np.rint(idr[..., 0] * 255.0 / np.maximum(a, 1)), 0).astype(np.uint8)
        return rgba, ids

    def release(self) -> None:
        self.ctx.release()
