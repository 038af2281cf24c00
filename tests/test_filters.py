"""One Euro filters: jitter reduction, speed adaptation, rotations as rotations, per-track bank."""

import numpy as np

from realtime_hmr.config import SmoothingConfig
from realtime_hmr.filters import PointFilter, RotationFilter, Smoother, quat_angle, quat_conj, quat_mul, slerp
from realtime_hmr.types import BodyResult, Frame, Person

FPS = 30.0


def axis_angle(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    angle = np.asarray(angle, float)[..., None]
    return np.concatenate([axis * np.sin(angle / 2), np.cos(angle / 2)], -1)


def test_static_noise_is_reduced():
    rng = np.random.default_rng(0)
    f = PointFilter(min_cutoff=1.0, beta=0.0)
    truth = np.array([[0.1, 0.2, 2.0]] * 24)
    out = np.array([f(i / FPS, truth + rng.normal(0, 0.01, truth.shape)) for i in range(300)])
    err_raw = 0.01 * np.sqrt(3)
    err = np.linalg.norm(out[60:] - truth, axis=-1).mean()
    assert err < 0.5 * err_raw


def test_beta_reduces_lag_on_fast_motion():
    t = np.arange(60) / FPS
    x = np.stack([2.0 * t, 0 * t, 0 * t], -1)[:, None]  # 2 m/s ramp, one point
    lag = {}
    for beta in (0.0, 5.0):
        f = PointFilter(min_cutoff=1.0, beta=beta)
        y = np.array([f(ti, xi) for ti, xi in zip(t, x, strict=True)])
        lag[beta] = float(x[-1, 0, 0] - y[-1, 0, 0])
    assert lag[5.0] < 0.3 * lag[0.0]


def test_first_sample_passes_and_bad_time_holds():
    f = PointFilter()
    x = np.ones((2, 3))
    np.testing.assert_array_equal(f(0.0, x), x)
    np.testing.assert_array_equal(f(0.0, 2 * x), x)  # same timestamp: hold
    assert f(0.1, np.full((3, 3), 5.0)).shape == (3, 3)  # shape change: restart


def test_quaternion_helpers():
    q = axis_angle([0, 0, 1], 0.5)
    np.testing.assert_allclose(quat_mul(q, quat_conj(q)), [0, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(quat_angle(quat_mul(axis_angle([0, 0, 1], 0.2), q)), 0.7)
    np.testing.assert_allclose(slerp(axis_angle([1, 0, 0], 0), axis_angle([1, 0, 0], 1.0), 0.25),
                               axis_angle([1, 0, 0], 0.25), atol=1e-12)
    np.testing.assert_allclose(slerp(q, -q, 0.5), q, atol=1e-12)  # same rotation, other sign


def test_rotation_filter_smooths_as_rotation_and_ignores_sign_flips():
    rng = np.random.default_rng(1)
    truth = axis_angle([0.3, 1, 0.2], 2.5)  # far from identity: averaging components naively would shrink it
    f = RotationFilter(min_cutoff=1.0, beta=0.0)
    errs_raw, errs = [], []
    for i in range(200):
        noise = axis_angle(rng.normal(size=3), rng.normal(0, 0.05))
        q = quat_mul(noise, truth) * (-1 if i % 2 else 1)  # random sign flips: same rotations
        out = f(i / FPS, q)
        assert abs(np.linalg.norm(out) - 1) < 1e-9
        if i >= 60:
            errs_raw.append(quat_angle(quat_mul(quat_conj(truth), q)))
            errs.append(quat_angle(quat_mul(quat_conj(truth), out)))
    assert np.mean(errs) < 0.5 * np.mean(errs_raw)


def test_rotation_filter_tracks_fast_spin_with_beta():
    t = np.arange(45) / FPS
    qs = axis_angle([0, 0, 1], 3.0 * t)  # 3 rad/s
    lag = {}
    for beta in (0.0, 2.0):
        f = RotationFilter(min_cutoff=0.5, beta=beta)
        out = [f(ti, qi) for ti, qi in zip(t, qs, strict=True)]
        lag[beta] = float(quat_angle(quat_mul(quat_conj(qs[-1]), out[-1])))
    assert lag[2.0] < 0.3 * lag[0.0]


def person(pid, joints, rotations=None):
    return Person(id=pid, box=np.zeros(4), score=1.0,
                  body=BodyResult(joints=joints, rotations=rotations, vertices=joints.copy()))


def frame(i):
    return Frame(image=None, t=i / FPS, seq=i)


def test_smoother_keeps_tracks_apart_and_forgets():
    rng = np.random.default_rng(2)
    sm = Smoother(SmoothingConfig(min_cutoff=0.5, beta=0.0), forget_after_s=0.5)
    a, b = np.zeros((24, 3)), np.full((24, 3), 3.0)
    for i in range(30):
        out = sm(frame(i), [person(1, a + rng.normal(0, 0.01, a.shape)), person(2, b + rng.normal(0, 0.01, a.shape))])
    assert np.abs(out[0].body.joints - a).max() < 0.02 and np.abs(out[1].body.joints - b).max() < 0.02
    assert out[0].body.vertices is not None and out[0].body.joints.dtype == np.float64
    # id 1 jumps far away right after: still smoothed towards its history (same track)
    jumped = sm(frame(30), [person(1, b)])[0].body.joints
    assert np.abs(jumped - b).max() > 0.1
    # after a gap longer than forget_after_s the track starts fresh: no pull towards old positions
    fresh = sm(frame(60), [person(1, a)])[0].body.joints
    np.testing.assert_array_equal(fresh, a)
    assert set(sm.tracks) == {1}


def test_smoother_disabled_and_persons_without_body():
    p = Person(id=1, box=np.zeros(4), score=1.0)
    assert Smoother(SmoothingConfig(enabled=False))(frame(0), [p])[0] is p
    assert Smoother()(frame(0), [p])[0] is p


def test_smoother_does_not_modify_input():
    j = np.zeros((24, 3))
    p = person(1, j, rotations=np.tile([0, 0, 0, 1.0], (5, 1)))
    sm = Smoother()
    sm(frame(0), [p])
    p2 = person(1, j + 1, rotations=np.tile([0, 0, 0, 1.0], (5, 1)))
    out = sm(frame(1), [p2])[0]
    assert (p2.body.joints == 1).all() and not (out.body.joints == 1).all()
    assert out.body.rotations.shape == (5, 4)
