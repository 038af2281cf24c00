"""The torch backend: the shipped BlazePose networks rebuilt as torch modules agree with ONNX Runtime; on a GPU, the
CUDA-graph path agrees with eager execution."""

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, has_module

pytestmark = pytest.mark.skipif(not has_module("torch") or not has_module("safetensors"),
                                reason="needs torch and safetensors ([gpu] or [train])")
ROOT = Path(REPO, "realtime_hmr", "assets", "blazepose")


@pytest.mark.parametrize("onnx_name,weights", [("pose_detection.onnx", "pose_detection"),
                                                ("pose_landmark_full_nomask.onnx", "pose_landmark_full")])
def test_torch_matches_onnxruntime_on_cpu(onnx_name, weights):
    from realtime_hmr.landmarks import torch_backend
    from realtime_hmr.runtime.ort import OnnxRuntime

    ref = OnnxRuntime(ROOT / onnx_name, device="cpu")
    ours = torch_backend(ROOT, onnx_name, weights, "cpu")
    assert ours.output_names == ref.output_names and ours.name.startswith("torch:cpu")
    shape = [d if isinstance(d, int) else 3 for d in ref.input_shapes["input"]]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    a, b = ref.run({"input": x}), ours.run({"input": x})
    for k in ref.output_names:
        scale = max(1.0, float(np.abs(a[k]).max()))
        assert np.abs(a[k] - b[k]).max() / scale < 1e-3, k


def test_tracker_runs_on_the_torch_backend(shared_data):
    import cv2

    from realtime_hmr.landmarks import load_pose_tracker

    cap = cv2.VideoCapture(str(shared_data / "video" / "runner_side.mp4"))
    ok, img = cap.read()
    assert ok
    img = cv2.resize(img, (640, 480))
    a = load_pose_tracker("onnxruntime", "cpu")(img)
    b = load_pose_tracker("torch", "cpu")(img)
    assert len(a) == len(b) == 1
    assert np.median(np.linalg.norm(a[0].landmarks_2d[:, :2] - b[0].landmarks_2d[:, :2], axis=1)) < 0.5  # pixels


def _cuda() -> bool:
    if not has_module("torch"):
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_cuda_graphs_match_eager():
    from realtime_hmr.landmarks import torch_backend

    graphs = torch_backend(ROOT, "pose_landmark_full_nomask.onnx", "pose_landmark_full", "cuda")
    eager = torch_backend(ROOT, "pose_landmark_full_nomask.onnx", "pose_landmark_full", "cuda")
    eager.graphs = False
    for n in (1, 3, 8, 11):  # padding to captured sizes, and chunking past the largest
        x = np.random.default_rng(n).random((n, 256, 256, 3), dtype=np.float32)
        a, b = graphs.run({"input": x}), eager.run({"input": x})
        for k in a:
            np.testing.assert_allclose(a[k], b[k], atol=2e-2, rtol=2e-2)
