"""Recovered bodies drawn over video frames, for a person to judge: ``python -m realtime_hmr.train.overlay``.

    python -m realtime_hmr.train.overlay ../shared/data/video/runner_side.mp4 --out docs/mega_overlay_runner.png

Evenly spaced frames of the video go through the product's :class:`realtime_hmr.mesh.MeshRecovery` (the shipped
decoder, or ``--mega-dir``), one image at a time; every body found is rendered shaded with the same pinhole camera
the decoder assumed (``MeshRecovery.camera``: the focal length is a guess, the video has no calibration) and blended
over the frame. Each tile is the frame on the left and the overlay on the right, cropped around the people. With
``--mode stochastic`` the mesh is coloured by its per-vertex uncertainty (blue: samples agree, red: 10 cm or more
apart). With ``--fit`` a panel shows the same bodies refined on the 2D landmarks (``run --fit``), with
``--silhouette`` one refined on the 2D landmarks and each person's silhouette (``run --silhouette``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
COLOUR = np.array([0.55, 0.72, 0.95])  # light blue


def render_bodies(renderer, persons, K: np.ndarray, size: tuple[int, int], uncertainty: bool = False) -> np.ndarray:
    """Premultiplied RGBA (H, W, 4) of every person's camera-space mesh, seen through K from the origin."""
    from realtime_hmr.train.camera import Camera
    from realtime_hmr.train.render import N_MAT, Appearance, Light

    cam = Camera(np.asarray(K, np.float64), np.eye(3), np.zeros(3), size)
    light = Light(key_dir=np.array([0.3, -0.5, -0.8]), key_col=np.full(3, 0.8), fill_dir=np.array([-0.4, 0.2, -0.9]),
                  fill_col=np.full(3, 0.3), ambient=np.full(3, 0.25))
    verts, looks = [], []
    for p in persons:
        b = p.body
        mat = np.zeros(len(b.vertices), np.int32)
        c1 = np.tile(COLOUR, (N_MAT, 1))
        if uncertainty and b.vertex_uncertainty is not None:  # one material per uncertainty bin, blue to red
            level = np.clip(b.vertex_uncertainty / 0.1, 0, 1)
            mat = np.minimum((level * N_MAT).astype(np.int32), N_MAT - 1)
            t = (np.arange(N_MAT) + 0.5)[:, None] / N_MAT
            c1 = (1 - t) * np.array([0.2, 0.4, 1.0]) + t * np.array([1.0, 0.2, 0.1])
        verts.append(b.vertices.astype(np.float64))
        looks.append(Appearance(mat=mat, color1=c1, color2=c1, pattern=np.zeros(N_MAT, np.int32),
                                scale=np.ones(N_MAT), shiny=np.full(N_MAT, 0.2), info={}))
    if not verts:
        return np.zeros((size[1], size[0], 4), np.uint8)
    rgba, _ = renderer.draw(verts, looks, cam, light)
    return rgba


def blend(frame: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """The rendered bodies (RGBA) over the frame (BGR), 80 % opaque."""
    fg = rgba[..., 2::-1].astype(np.float32)  # RGB -> BGR
    alpha = rgba[..., 3:].astype(np.float32) / 255 * 0.8
    return np.clip(frame * (1 - alpha) + fg * 0.8, 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    import cv2

    from realtime_hmr.mesh import MeshRecovery
    from realtime_hmr.train.render import Renderer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--frames", type=int, default=6, help="evenly spaced frames")
    ap.add_argument("--out", required=True, help="PNG")
    ap.add_argument("--cols", type=int, default=2, help="tiles per row")
    ap.add_argument("--tile-height", type=int, default=300)
    ap.add_argument("--mode", choices=("deterministic", "stochastic"), default="deterministic")
    ap.add_argument("--mega-dir", default=None,
                    help="a decoder written by `realtime-hmr train mega` (default: the shipped one)")
    ap.add_argument("--fit", action="store_true",
                    help="add a panel: the same bodies refined on the 2D landmarks (run --fit)")
    ap.add_argument("--silhouette", action="store_true",
                    help="add a panel: the same bodies fitted on the 2D landmarks and silhouettes (run --silhouette)")
    a = ap.parse_args(argv)
    if (a.fit or a.silhouette) and a.mode != "deterministic":
        raise SystemExit("--fit refines the deterministic body: leave --mode at deterministic")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cap = cv2.VideoCapture(a.video)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if not cap.isOpened() or total <= 0:
        raise SystemExit(f"cannot read video {a.video}")
    mr = MeshRecovery.load(backend="onnxruntime", mega_dir=a.mega_dir, mode=a.mode)
    if a.silhouette:  # the same models on a tracker that segments
        from realtime_hmr.landmarks import load_pose_tracker

        mr = mr.variant(tracker=load_pose_tracker("onnxruntime", None, None, 10, 4, mask=True))
    fitted = ([("--fit", mr.variant(fit=True))] if a.fit else []) + \
        ([("--silhouette", mr.variant(fit=True, silhouette=True))] if a.silhouette else [])
    renderer = None
    tiles = []
    for idx in np.linspace(0, total - 1, a.frames + 2)[1:-1].round().astype(int):  # skip the very first/last
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(idx))
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"{a.video}: frame {idx} unreadable")
        h, w = frame.shape[:2]
        renderer = renderer or Renderer(mr.body, (w, h))
        K = mr.camera(frame)
        persons = [p for p in mr(frame, K) if p.body is not None]
        overs = [blend(frame, render_bodies(renderer, persons, K, (w, h), uncertainty=a.mode == "stochastic"))]
        for _, model in fitted:
            overs.append(blend(frame, render_bodies(renderer, [p for p in model(frame, K) if p.body is not None], K,
                                                    (w, h))))
        if persons:  # crop to the people (with a margin): a small figure in a wide frame is hard to judge
            pts = np.concatenate([q.landmarks_2d[:, :2] for q in persons])
            (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
            half = 0.65 * max(x1 - x0, y1 - y0)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            x0, x1 = int(max(0, cx - half)), int(min(w, cx + half))
            y0, y1 = int(max(0, cy - half)), int(min(h, cy + half))
            frame, overs = frame[y0:y1, x0:x1], [o[y0:y1, x0:x1] for o in overs]
        tile = np.concatenate([frame, *overs], 1)
        cv2.putText(tile, f"frame {idx}: {len(persons)} bod{'y' if len(persons) == 1 else 'ies'}", (8, 24),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
        if fitted:
            for k, text in enumerate(["decoded"] + [label for label, _ in fitted], 1):
                cv2.putText(tile, text, (k * frame.shape[1] + 8, tile.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                            (255, 255, 255), 2, cv2.LINE_AA)
        s = a.tile_height / tile.shape[0]
        tiles.append(cv2.resize(tile, (round(tile.shape[1] * s), a.tile_height), interpolation=cv2.INTER_AREA))
        log.info("frame %d: %d bodies", idx, len(persons))
    wide = max(t.shape[1] for t in tiles)  # crops differ in shape: pad every tile to the widest
    tiles = [cv2.copyMakeBorder(t, 0, 0, 0, wide - t.shape[1], cv2.BORDER_CONSTANT) for t in tiles]
    while len(tiles) % a.cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + a.cols], 1) for i in range(0, len(tiles), a.cols)]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(a.out, np.concatenate(rows, 0))
    print(f"{a.out}: {len(tiles)} frames of {a.video}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
