"""Overlay pictures: recovered bodies rendered through the decoder's camera land where they project."""

import numpy as np

from tests.conftest import require_renderer


def test_rendered_body_covers_its_projection_and_shows_uncertainty():
    require_renderer()
    from realtime_hmr.body import Body
    from realtime_hmr.train.camera import project
    from realtime_hmr.train.overlay import render_bodies
    from realtime_hmr.train.render import Renderer
    from realtime_hmr.types import BodyResult, Person

    body = Body.load()
    size = (160, 120)
    K = np.array([[150.0, 0, 80], [0, 150.0, 60], [0, 0, 1]])
    v = body.template - body.template.mean(0)
    v = v[:, [0, 2, 1]] * [1, -1, 1] + [0, 0, 4.0]  # Z-up body frame -> camera axes (y down), 4 m away
    b = BodyResult(joints=body.joints(v), vertices=v.astype(np.float32), translation=np.zeros(3))
    b.vertex_uncertainty = np.full(len(v), 0.2, np.float32)  # 20 cm: the red end of the scale
    person = Person(id=0, box=np.zeros(4), score=1.0, body=b)
    r = Renderer(body, size)
    try:
        plain = render_bodies(r, [person], K, size)
        hot = render_bodies(r, [person], K, size, uncertainty=True)
        empty = render_bodies(r, [], K, size)
    finally:
        r.release()
    u, w = np.round(project(body.joints(v)[[0, 12]], K)).astype(int).T  # pelvis, neck
    assert (plain[w, u, 3] > 200).all() and plain[0, 0, 3] == 0 and plain[-1, -1, 3] == 0
    assert empty.shape == (120, 160, 4) and not empty.any()
    px = hot[w[0], u[0], :3].astype(int)
    assert px[0] > px[2] and plain[w[0], u[0], 2] > plain[w[0], u[0], 0]  # red where uncertain; light blue else
