"""The wire format (docs/wire-format.md): golden bytes, round trips, lazy joints, malformed input."""

import struct

import numpy as np
import pytest

from realtime_hmr.stream import schema
from realtime_hmr.types import BodyResult, Person

GOLDEN_FRAME = (
    b'hmr.frame\x00RHMR\x01\x00\x00\x00\xe2\x01\x00\x00'
    b'{"buffers":[{"dtype":"<f4","name":"box","nbytes":16,"offset":0,"shape":[1,4]},'
    b'{"dtype":"<f4","name":"score","nbytes":4,"offset":16,"shape":[1]},'
    b'{"dtype":"<f4","name":"joints","nbytes":24,"offset":24,"shape":[1,2,3]},'
    b'{"dtype":"<f4","name":"vertices","nbytes":12,"offset":48,"shape":[1,1,3]}],'
    b'"coord":"opencv_camera","ids":[7],"image_size":[640,480],"meta_id":42,"seq":3,"source_t":null,'
    b'"t_capture":10.5,"t_capture_wall":1700000000.25,"t_send":10.75,"t_send_wall":1700000000.5}       '
    b'\x00\x00\x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@'  # box 1 2 3 4
    b'\x00\x00\x00?\x00\x00\x00\x00'  # score 0.5, pad
    b'\x00\x00\x00\x00\x00\x00\x80>\x00\x00\x00?\x00\x00@?\x00\x00\x80?\x00\x00\xa0?'  # joints 0 .25 .5 .75 1 1.25
    b'\x00\x00\x80>\x00\x00\x80\xbf\x00\x00\x00@'  # vertices .25 -1 2
)
GOLDEN_META = (
    b'hmr.meta\x00RHMR\x01\x00\x00\x00\x03\x01\x00\x00'
    b'{"bone_names":null,"buffers":[{"dtype":"<i4","name":"faces","nbytes":12,"offset":0,"shape":[1,3]}],'
    b'"coord":"opencv_camera","frame_topics":["hmr.frame","hmr.pose"],"joint_names":["a","b"],"n_vertices":3,'
    b'"producer":"","rotation_format":"xyzw","units":"m"}      '
    b'\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00'
)


def person(pid=7, joints=None, vertices=None, rotations=None):
    j = np.arange(6, dtype=float).reshape(2, 3) / 4 if joints is None else joints
    v = np.array([[0.25, -1, 2]]) if vertices is None else vertices
    return Person(id=pid, box=np.array([1, 2, 3, 4.0]), score=0.5,
                  body=BodyResult(joints=j, vertices=v, rotations=rotations))


def encode(persons, **kw):
    args = dict(t_capture_wall=1700000000.25, t_send=10.75, t_send_wall=1700000000.5, image_size=(640, 480),
                meta_id=42)
    return schema.encode_frame(3, 10.5, persons, **{**args, **kw})


def test_frame_golden_bytes():
    assert encode([person()]) == GOLDEN_FRAME


def test_meta_golden_bytes():
    assert schema.encode_meta(["a", "b"], faces=np.array([[0, 1, 2]]), n_vertices=3) == GOLDEN_META


def test_layout_by_hand():
    """Parse the golden message with struct alone, as a C#/JS reader would."""
    m = GOLDEN_FRAME
    end = m.index(b"\0")
    magic, version, flags, n = struct.unpack_from("<4sHHI", m, end + 1)
    assert (m[:end], magic, version, flags) == (b"hmr.frame", b"RHMR", 1, 0)
    data = end + 1 + 12 + n
    assert data % 8 == 0
    assert struct.unpack_from("<6f", m, data + 24) == (0, 0.25, 0.5, 0.75, 1, 1.25)


def test_round_trip_many_persons_and_missing_fields():
    rng = np.random.default_rng(0)
    a = person(1, joints=rng.normal(size=(24, 3)), vertices=rng.normal(size=(100, 3)),
               rotations=rng.normal(size=(22, 4)))
    b = Person(id=5, box=np.zeros(4), score=0.9, body=None)  # detected but no body yet
    msg = schema.decode(encode([a, b], vertex_dtype="<f2"))
    assert msg.topic == schema.TOPIC_FRAME and msg.header["ids"] == [1, 5]
    j = msg.array("joints")
    np.testing.assert_allclose(j[0], a.body.joints.astype(np.float32))
    assert np.isnan(j[1]).all()
    assert msg.array("vertices").dtype == np.float16
    np.testing.assert_allclose(msg.array("vertices")[0], a.body.vertices, atol=2e-3)
    assert msg.array("rotations").shape == (2, 22, 4)
    assert msg.get("landmarks_2d") is None


def test_pose_topic_has_no_vertices_and_joints_are_views():
    raw = encode([person()], vertices=False)
    msg = schema.decode(raw)
    assert msg.topic == schema.TOPIC_POSE and "vertices" not in msg.names
    j = msg.array("joints")
    assert not j.flags.writeable and not j.flags.owndata  # a view into the received bytes, no copy


def test_empty_frame():
    msg = schema.decode(encode([]))
    assert msg.header["ids"] == [] and msg.names == []


def test_subscribe_prefix_is_exact_topic():
    assert GOLDEN_FRAME.startswith(schema.topic_prefix("hmr.frame"))
    assert not GOLDEN_FRAME.startswith(schema.topic_prefix("hmr.frame.x"))
    assert not schema.encode_meta([]).startswith(schema.topic_prefix("hmr.frame"))


@pytest.mark.parametrize("bad", [b"", b"hmr.frame", b"hmr.frame\0XXXX\1\0\0\0\0\0\0\0", b"x" * 100,
                                 GOLDEN_FRAME[:40], GOLDEN_FRAME.replace(b"RHMR\x01", b"RHMR\x02", 1)])
def test_malformed_messages_raise_wire_error(bad):
    with pytest.raises(schema.WireError):
        schema.decode(bad)


def test_buffer_out_of_bounds_is_detected():
    msg = schema.decode(GOLDEN_FRAME[:-4])
    with pytest.raises(schema.WireError):
        msg.array("vertices")
    assert msg.array("joints").shape == (1, 2, 3)  # earlier buffers still readable


def test_nan_in_header_is_refused():
    with pytest.raises(ValueError):
        encode([person()], t_send=float("nan"))
