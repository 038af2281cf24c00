"""The mesh stage's shared geometry: conditioning features and the closed-form camera translation."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from realtime_hmr.mesh import condition, landmark_box, solve_translation


def camera(f=800.0, w=640, h=480):
    return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])


def project(X, K):
    x = X @ K.T
    return x[..., :2] / x[..., 2:]


@pytest.fixture(scope="module")
def person(body):
    rng = np.random.default_rng(0)
    R = Rotation.from_rotvec(rng.normal(0, 0.3, (body.n_bones, 3))).as_matrix()
    v = body.skin(R)
    lm = body.joints(v, "mediapipe33")  # body frame
    to_cam = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # body (Z up, -Y front) facing the camera
    return lm @ to_cam.T


def test_translation_is_exact_on_clean_projections(person):
    K = camera()
    for t in ([0.2, -0.1, 3.0], [-1.0, 0.4, 7.5], [0.0, 0.0, 1.6]):
        xy = project(person + t, K)
        np.testing.assert_allclose(solve_translation(person, xy, K), t, atol=1e-6)


def test_translation_batched_weighted_and_robust_to_missing(person):
    K = camera()
    t = np.array([[0.3, 0.1, 4.0], [-0.5, 0.2, 2.5]])
    P = np.stack([person, person])
    xy = project(P + t[:, None], K)
    w = np.ones((2, 33))
    xy[0, :5] = np.nan  # missing landmarks carry no weight
    xy[1, 10] += 300.0
    w[1, 10] = 0.0  # an outlier with zero visibility is ignored
    np.testing.assert_allclose(solve_translation(P, xy, K, w), t, atol=1e-6)
    noisy = xy[1] + np.random.default_rng(1).normal(0, 2.0, xy[1].shape)
    assert np.linalg.norm(solve_translation(person, noisy, K, w[1]) - t[1]) < 0.1  # 2 px noise: within 10 cm


def test_condition_is_invariant_to_where_the_person_is_in_the_image(person):
    """Shifting and zooming the image landmarks leaves the box-relative features unchanged; the geometry token
    carries the change (offset from the principal point and size, over the focal length)."""
    K = camera()
    X = person + [0.0, 0.0, 3.0]
    xy = project(X, K)
    z = (X[:, 2] - X[23:25, 2].mean()) * K[0, 0] / X[23:25, 2].mean()
    world = person - person[23:25].mean(0)
    a2, aw, ag = condition(np.c_[xy, z], world, np.ones(33), K)
    shift, zoom = np.array([150.0, -40.0]), 0.5
    b2, bw, bg = condition(np.c_[(xy - K[:2, 2]) * zoom + K[:2, 2] + shift, z * zoom], world, np.ones(33), K)
    assert a2.shape == (33, 4) and aw.shape == (33, 3) and ag.shape == (3,)
    np.testing.assert_allclose(a2, b2, atol=1e-5)
    np.testing.assert_allclose(bg[:2], ag[:2] * zoom + shift / K[0, 0], atol=1e-6)
    np.testing.assert_allclose(bg[2], ag[2] * zoom, atol=1e-6)
    assert (np.abs(a2[:, :2]) <= 0.5 + 1e-6).all()  # inside its own box


def test_landmark_box_and_bad_input():
    xy = np.array([[0.0, 0.0], [10.0, 4.0], [5.0, 2.0], [3.0, 3.0], [1000.0, 1000.0]])
    vis = np.array([1, 1, 1, 1, 0.0])
    np.testing.assert_allclose(landmark_box(xy, vis), [5.0, 2.0, 10.0])
    with pytest.raises(ValueError, match="33, 3"):
        condition(np.zeros((17, 3)), np.zeros((33, 3)), np.ones(17), camera())


class _Fixed:
    """A stand-in backend returning fixed outputs (tests only)."""

    def __init__(self, outputs: dict, input_names=("x",)):
        self.outputs, self.input_names, self.output_names = outputs, list(input_names), list(outputs)

    def run(self, feeds):
        n = len(next(iter(feeds.values())))
        return {k: np.repeat(v[None], n, 0) for k, v in self.outputs.items()}


def test_mesh_recovery_places_the_body_where_the_landmarks_say(body):
    """Decoder and VQ decoder stand-ins return a known orientation and the template body; landmarks are the exact
    projections of that body at a known place: the recovered mesh and joints must land on it."""
    from realtime_hmr.mesh import MeshRecovery
    from realtime_hmr.types import Person

    K = camera()
    canon = body.template - body.template.mean(0)
    R = Rotation.from_euler("xyz", [100, 20, -30], degrees=True).as_matrix()
    t = np.array([0.3, -0.2, 4.0])
    truth = canon @ R.T + t
    lm = body.joints(truth, "mediapipe33")
    xy = project(lm, K)
    z = (lm[:, 2] - lm[23:25, 2].mean()) * K[0, 0] / lm[23:25, 2].mean()
    person = Person(id=3, box=np.zeros(4), score=1.0, landmarks_2d=np.c_[xy, z],
                    landmarks_world=lm - lm[23:25].mean(0), visibility=np.ones(33))
    rot6 = np.concatenate([R[:, 0], R[:, 1]])
    mr = MeshRecovery(tracker=None, decoder=_Fixed({"tokens": np.zeros(54, np.int64), "rot6": rot6,
                                                     "tokens_argmax": np.zeros(54, np.int64)}),
                      vq_decoder=_Fixed({"vertices": canon.astype(np.float32)}), body=body, camera_matrix=K)
    out = mr.recover([person], K)[0]
    np.testing.assert_allclose(out.body.translation, t, atol=1e-3)
    assert np.abs(out.body.vertices - truth).max() < 2e-3
    np.testing.assert_allclose(out.body.joints, body.joints(truth), atol=2e-3)
    W = out.body.extras["bone_poses"]  # the rig fitted to the recovered mesh, in camera space
    assert W.shape == (body.n_bones, 3, 4)
    np.testing.assert_allclose(W[0, :, 3], out.body.joints[0], atol=0.03)  # the root bone at the pelvis joint
    assert 3 in mr._betas  # the shape is kept for the track
    # a second person joins: only the newcomer's shape is fitted; the first keeps the one it had
    calls = []
    ik = body.ik
    body_ik = lambda v, betas=None, fit_shape=True, iterations=3: (calls.append((len(v), fit_shape)),  # noqa: E731
                                                                   ik(v, betas, fit_shape, iterations))[1]
    mr.body = type("Spy", (), {"ik": staticmethod(body_ik), "__getattr__": lambda self, k: getattr(body, k)})()
    kept = mr._betas[3].copy()
    other = Person(id=7, box=np.zeros(4), score=1.0, landmarks_2d=person.landmarks_2d + 1.0,
                   landmarks_world=person.landmarks_world, visibility=np.ones(33))
    both = mr.recover([person, other], K)
    assert sorted(calls) == [(1, False), (1, True)]
    np.testing.assert_array_equal(mr._betas[3], kept)
    assert 7 in mr._betas and all(o.body is not None for o in both)


def test_still_images_do_not_share_a_shape(body):
    """Each still image restarts the tracker's ids: a person there must get their own shape fitted, not the shape of
    whoever had the same id in the previous image."""
    from realtime_hmr.mesh import MeshRecovery
    from realtime_hmr.types import Person

    K = camera()
    canon = body.template - body.template.mean(0)
    lm = body.joints(canon + [0, 0, 4.0], "mediapipe33")
    person = Person(id=0, box=np.zeros(4), score=1.0, landmarks_2d=np.c_[project(lm, K), np.zeros(33)],
                    landmarks_world=lm - lm[23:25].mean(0), visibility=np.ones(33))
    tracker = type("Still", (), {"reset": lambda self: None, "__call__": lambda self, image: [person]})()
    mr = MeshRecovery(tracker=tracker, decoder=_Fixed({"tokens": np.zeros(54, np.int64), "rot6": np.eye(3)[:2].ravel(),
                                                       "tokens_argmax": np.zeros(54, np.int64)}),
                      vq_decoder=_Fixed({"vertices": canon.astype(np.float32)}), body=body, camera_matrix=K)
    calls = []
    ik = body.ik
    body_ik = lambda v, betas=None, fit_shape=True, iterations=3: (calls.append(fit_shape),  # noqa: E731
                                                                   ik(v, betas, fit_shape, iterations))[1]
    mr.body = type("Spy", (), {"ik": staticmethod(body_ik), "__getattr__": lambda self, k: getattr(body, k)})()
    image = np.zeros((480, 640, 3), np.uint8)
    mr(image)
    mr(image)
    assert calls == [True, True]
    mr.stage(type("Frame", (), {"image": image})(), [person])  # video: the track keeps its shape
    assert calls == [True, True, False]


class _Step:
    """Stand-in decoding step: fixed logits for every position (tests only)."""

    input_names = ["tokens", "lm2d", "lmw", "geom"]
    output_names = ["logits", "rot6"]

    def __init__(self, logits):
        self.logits = logits

    def run(self, feeds):
        n = len(feeds["tokens"])
        return {"logits": np.broadcast_to(self.logits, (n, 54, len(self.logits))).copy(),
                "rot6": np.tile([1.0, 0, 0, 0, 1.0, 0], (n, 1))}


class _TokenVQ:
    """Stand-in VQ decoder whose mesh depends on the tokens (scaled by their mean: a shift alone would be undone by
    the translation solve), refusing [MASK] ids."""

    input_names, output_names = ["tokens"], ["vertices"]

    def __init__(self, canon):
        self.canon = canon

    def run(self, feeds):
        tok = feeds["tokens"]
        assert tok.max() < 8, "a [MASK] id reached the decoder"
        return {"vertices": self.canon[None] * (1 + 0.05 * tok.mean(1))[:, None, None]}


@pytest.mark.parametrize("peaked", [True, False])
def test_stochastic_mode_samples_and_uncertainty(body, peaked):
    from realtime_hmr.mesh import MeshRecovery
    from realtime_hmr.types import Person

    K = camera()
    canon = body.template - body.template.mean(0)
    lm = body.joints(canon + [0, 0, 4.0], "mediapipe33")
    person = Person(id=1, box=np.zeros(4), score=1.0, landmarks_2d=np.c_[project(lm, K), np.zeros(33)],
                    landmarks_world=lm - lm[23:25].mean(0), visibility=np.ones(33))
    logits = np.array([20.0, 0, 0, 0, 0, 0, 0, 0]) if peaked else np.zeros(8)
    mr = MeshRecovery(None, None, _TokenVQ(canon), body, K, step=_Step(logits), mode="stochastic", samples=6,
                      steps=5, temperature=2.0, codebook=8)
    out = mr.recover([person], K)[0]
    u = out.body.vertex_uncertainty
    assert u.shape == (body.n_vertices,) and out.body.extras["joint_uncertainty"].shape == (24,)
    sj = out.body.extras["sample_joints"]
    assert sj.shape == (6, 24, 3)
    np.testing.assert_allclose(out.body.joints, sj.mean(0), atol=1e-6)  # the mean body's joints: the samples' mean
    fit = out.body.extras["sample_fit_px"]  # each sample's reprojection error against the person's 2D landmarks
    assert fit.shape == (6,) and np.isfinite(fit).all() and (fit >= 0).all()
    if peaked:
        assert np.ptp(fit) < 1e-6  # the same body six times fits equally well
    if peaked:  # every sample decodes the same tokens: no spread
        assert u.max() < 1e-6
    else:  # samples differ
        assert u.mean() > 1e-4


def test_refine_pose_recovers_the_rotation_from_2d_landmarks(person):
    """PnP from a 25-degree-off start lands on the true rotation and translation; with too few visible landmarks,
    or a refinement that would turn the body around, the start is kept."""
    from realtime_hmr.mesh import refine_pose

    K = camera()
    P = person - person.mean(0)
    R_true = Rotation.from_euler("xyz", [10, 40, -5], degrees=True).as_matrix()
    t_true = np.array([0.2, -0.1, 3.5])
    xy = project(P @ R_true.T + t_true, K)
    R0 = Rotation.from_rotvec([0.0, np.radians(25), 0.0]).as_matrix() @ R_true
    t0 = solve_translation(P @ R0.T, xy, K)
    vis = np.ones(33)
    R, t = refine_pose(P[None], xy[None], K, R0[None], t0[None], vis[None])
    assert np.degrees(Rotation.from_matrix(R[0] @ R_true.T).magnitude()) < 0.01
    np.testing.assert_allclose(t[0], t_true, atol=1e-4)
    few = np.where(np.arange(33) < 5, 1.0, 0.1)
    R, t = refine_pose(P[None], xy[None], K, R0[None], t0[None], few[None])
    np.testing.assert_array_equal(R[0], R0)
    R, t = refine_pose(P[None], xy[None], K, R0[None], t0[None], vis[None], max_turn_deg=10.0)
    np.testing.assert_array_equal(R[0], R0)


def test_image_feature_decoder_gets_each_persons_features(body):
    """A decoder with an ``image`` input gets the tracker's per-person image features, stacked in person order; a
    person without them is refused with a clear error (a landmark model without the features output)."""
    from realtime_hmr.mesh import MeshRecovery
    from realtime_hmr.types import Person

    class Recording(_Fixed):
        def run(self, feeds):
            self.feeds = feeds
            return super().run(feeds)

    K = camera()
    canon = body.template - body.template.mean(0)
    lm = body.joints(canon + [0, 0, 4.0], "mediapipe33")
    rng = np.random.default_rng(0)
    people = [Person(id=i, box=np.zeros(4), score=1.0, landmarks_2d=np.c_[project(lm, K), np.zeros(33)],
                     landmarks_world=lm - lm[23:25].mean(0), visibility=np.ones(33),
                     features=rng.normal(size=(20, 288)).astype(np.float32)) for i in range(2)]
    dec = Recording({"tokens": np.zeros(54, np.int64), "rot6": np.array([1.0, 0, 0, 0, 1, 0]),
                     "tokens_argmax": np.zeros(54, np.int64)},
                    input_names=("lm2d", "lmw", "geom", "image"))
    mr = MeshRecovery(None, dec, _Fixed({"vertices": canon.astype(np.float32)}), body, K)
    out = mr.recover(people, K)
    assert all(p.body is not None for p in out)
    np.testing.assert_array_equal(dec.feeds["image"], np.stack([p.features for p in people]))
    people[1].features = None
    with pytest.raises(ValueError, match="image features"):
        mr.recover(people, K)


def test_deterministic_tokens_expected_or_argmax(body):
    """decode="expected" (the default) decodes the det graph's ``tokens`` output, decode="argmax" its
    ``tokens_argmax``; a det graph from before expected-code decoding (no tokens_argmax) is refused with the command
    that re-exports it, and an unknown choice is refused."""
    from realtime_hmr.mesh import MeshRecovery
    from realtime_hmr.types import Person

    K = camera()
    canon = body.template - body.template.mean(0)
    lm = body.joints(canon + [0, 0, 4.0], "mediapipe33")
    person = Person(id=0, box=np.zeros(4), score=1.0, landmarks_2d=np.c_[project(lm, K), np.zeros(33)],
                    landmarks_world=lm - lm[23:25].mean(0), visibility=np.ones(33))
    dec = _Fixed({"tokens": np.full(54, 1, np.int64), "rot6": np.array([1.0, 0, 0, 0, 1, 0]),
                  "tokens_argmax": np.full(54, 5, np.int64)})
    vq = _TokenVQ(canon)
    seen = []
    run = vq.run
    vq.run = lambda feeds: (seen.append(feeds["tokens"].copy()), run(feeds))[1]
    for decode, want in (("expected", 1), ("argmax", 5)):
        MeshRecovery(None, dec, vq, body, K, decode=decode).recover([person], K)
        assert (seen[-1] == want).all()
    old = _Fixed({"tokens": np.zeros(54, np.int64), "rot6": np.array([1.0, 0, 0, 0, 1, 0])})
    with pytest.raises(ValueError, match="--steps 0"):
        MeshRecovery(None, old, vq, body, K)
    with pytest.raises(ValueError, match="decode"):
        MeshRecovery(None, dec, vq, body, K, decode="mean")


def test_reprojection_px_scores_how_well_a_body_explains_the_image():
    from realtime_hmr.mesh import reprojection_px

    K = camera()
    rng = np.random.default_rng(2)
    P = rng.normal(0, 0.3, (2, 33, 3)) + [0, 0, 4.0]
    xy = np.stack([project(p, K) for p in P])
    vis = np.ones((2, 33))
    np.testing.assert_allclose(reprojection_px(P, xy, vis, K), 0, atol=1e-9)
    shifted = xy + [3.0, 4.0]
    np.testing.assert_allclose(reprojection_px(P, shifted, vis, K), 5.0, atol=1e-9)
    shifted[0, :10] += 1000  # wild, but not visible: ignored
    vis[0, :10] = 0.1
    np.testing.assert_allclose(reprojection_px(P, shifted, vis, K), 5.0, atol=1e-9)


def test_shipped_mesh_model_on_real_frames():
    """The shipped decoder end to end on frames of the bundled clip (two people): every person found gets a body
    of human size that lies in front of the camera and, projected, lands on the tracker's own 2D landmarks."""
    import cv2

    from realtime_hmr.mesh import MeshRecovery, reprojection_px
    from tests.conftest import REPO

    clip = REPO / "realtime_hmr" / "assets" / "demo" / "demo.mp4"
    if not (REPO / "realtime_hmr" / "assets" / "mega" / "mega_det.onnx").is_file() or not clip.is_file():
        pytest.skip("no mesh model or demo clip in this build")
    mr = MeshRecovery.load(threads=1)
    cap = cv2.VideoCapture(str(clip))
    frames = []
    for i in range(60):
        ok, f = cap.read()
        if ok and i % 20 == 0:
            frames.append(f)
    cap.release()
    seen = 0
    for f in frames:
        K = mr.camera(f)
        for p in mr(f):
            seen += 1
            b = p.body
            assert b is not None and b.vertices.shape == (mr.body.n_vertices, 3) and b.joints.shape == (24, 3)
            height = np.ptp(b.vertices @ np.linalg.eigh(np.cov(b.vertices.T))[1][:, -1:], 0)[0]
            assert 0.8 < height < 2.3, height  # the body's longest extent, metres
            assert b.vertices[:, 2].min() > 0.3
            px = reprojection_px(mr.body.joints(b.vertices[None], "mediapipe33"), p.landmarks_2d[None, :, :2],
                                 p.visibility[None], K)[0]
            box_h = np.ptp(p.landmarks_2d[:, 1])
            assert px < 0.08 * box_h, (px, box_h)
    assert seen >= 3
    # --fit on the same frames: the same people, each body brought closer to its own 2D landmarks
    fitted = mr.variant(fit=True)
    before, after = [], []
    for f in frames:
        K = mr.camera(f)
        plain = {p.id: p for p in mr(f)}
        for p in fitted(f):
            assert p.id in plain and np.isfinite(p.body.vertices).all()
            for acc, q in ((before, plain[p.id]), (after, p)):
                acc.append(reprojection_px(mr.body.joints(q.body.vertices[None], "mediapipe33"),
                                           p.landmarks_2d[None, :, :2], p.visibility[None], K)[0])
    assert len(after) == seen and np.median(after) < 0.8 * np.median(before), (before, after)  # measured: 3.6 -> 2.4 px


def test_mirror_test_undoes_the_mirror_image(body, person):
    """mirror_test: the decoder also sees the mirror image of each person. Its inputs are what condition() makes of
    the mirrored image, and a body predicted for the mirror image comes back as the body itself."""
    from realtime_hmr.mesh import MeshRecovery, mean_rotation, mirror_condition, unmirror_bodies
    from realtime_hmr.train.rig import MIRROR_X, mirror_index
    from realtime_hmr.types import Person

    K = camera()
    X = person + [0.3, -0.1, 3.0]
    xy = project(X, K)
    z = (X[:, 2] - X[23:25, 2].mean()) * K[0, 0] / X[23:25, 2].mean()
    vis = np.linspace(0.2, 1.0, 33)
    world = person - person[23:25].mean(0)
    swap = [0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23, 26, 25, 28, 27,
            30, 29, 32, 31]  # BlazePose: the left landmark of each pair where the right one was
    mirror_xy = xy[swap] * [-1, 1] + [2 * K[0, 2], 0]  # the image reflected about the principal point
    direct = condition(np.c_[mirror_xy, z[swap]], world[swap] * [-1, 1, 1], vis[swap], K)
    for a, b in zip(mirror_condition(*condition(np.c_[xy, z], world, vis, K)), direct):
        np.testing.assert_allclose(a, b, atol=1e-5)

    rng = np.random.default_rng(3)
    D = Rotation.from_rotvec(rng.normal(0, 0.3, (body.n_bones, 3))).as_matrix()
    Dm = MIRROR_X @ D[mirror_index(list(body.bone_names))] @ MIRROR_X  # the mirrored pose, by the rig's bone twins
    canon, canon_m = body.skin(D), body.skin(Dm)
    canon, canon_m = canon - canon.mean(0), canon_m - canon_m.mean(0)
    R = Rotation.from_euler("xyz", [100, 20, -30], degrees=True).as_matrix()
    mr = MeshRecovery(tracker=None, decoder=_Fixed({"tokens_argmax": np.zeros(54)}), vq_decoder=None, body=body)
    back, R_back = unmirror_bodies(canon_m[None], (MIRROR_X @ R @ MIRROR_X)[None], mr.twin)
    assert np.abs(back[0] - canon).max() < 2e-3  # the body of the mirror image, mirrored back
    np.testing.assert_allclose(R_back[0], R, atol=1e-12)
    assert np.abs(canon_m - canon).max() > 0.05  # the pose is not symmetric: the check has teeth
    Q = Rotation.from_rotvec([0.2, 0.0, 0.0]).as_matrix()
    np.testing.assert_allclose(mean_rotation(R @ Q, R @ Q.T), R, atol=1e-12)

    # end to end: a decoder that answers the mirrored inputs with the mirrored body gives the body back
    truth = canon @ R.T + [0.3, -0.2, 4.0]
    lm = body.joints(truth, "mediapipe33")
    p = Person(id=1, box=np.zeros(4), score=1.0, landmarks_2d=np.c_[project(lm, K), np.zeros(33)],
               landmarks_world=lm - lm[23:25].mean(0), visibility=np.ones(33))
    seen = []

    class Decoder:
        input_names, output_names = ["lm2d", "lmw", "geom"], ["tokens", "rot6", "tokens_argmax"]

        def run(self, feeds):
            seen.append(len(feeds["lm2d"]))
            Rm = MIRROR_X @ R @ MIRROR_X
            rot6 = np.stack([np.r_[R[:, 0], R[:, 1]], np.r_[Rm[:, 0], Rm[:, 1]]])
            tok = np.array([[0] * 54, [1] * 54])
            return {"tokens": tok, "tokens_argmax": tok, "rot6": rot6}

    class VQ:
        input_names, output_names = ["tokens"], ["vertices"]

        def run(self, feeds):
            return {"vertices": np.stack([canon, canon_m])[feeds["tokens"][:, 0]]}

    mr = MeshRecovery(tracker=None, decoder=Decoder(), vq_decoder=VQ(), body=body, camera_matrix=K, mirror_test=True)
    out = mr.recover([p], K)[0]
    assert seen == [2] and np.abs(out.body.vertices - truth).max() < 5e-3
    with pytest.raises(ValueError, match="deterministic"):
        MeshRecovery(tracker=None, decoder=Decoder(), vq_decoder=VQ(), body=body, step=object(), mode="stochastic",
                     mirror_test=True)
