"""Choosing a backend. An explicit request that can't be met raises; ``auto`` falls back in a fixed order.

``auto`` order:
1. TensorRT, if ``tensorrt`` and a CUDA torch are installed and an engine for this model is already built and cached
   (``realtime-hmr engines build``; ``auto`` never starts a minutes-long build by itself);
2. ONNX Runtime with CUDA, if onnxruntime-gpu sees a GPU;
3. ONNX Runtime on CPU.
An explicit ``backend="tensorrt"`` builds a missing engine; ``"onnxruntime"`` with ``device="cuda"`` and no CUDA
provider raises. The torch backend (``runtime/torch_backend.py``: CUDA graphs per batch size) wraps a module that the
stage owning the network builds from its shipped weights, so it is not chosen here from an ONNX path: ask the stage
(``landmarks.load_pose_tracker(backend="torch")``). ``auto`` does not pick it yet: measured on a GPU first.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "tensorrt")  # names accepted by load()
STAGE_BUILT = ("torch",)  # backends that the stages build from their own modules


def _ort_cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def load(path: str | Path, backend: str = "auto", device: str | None = None, threads: int | None = None):
    """A backend for one ONNX file. ``device`` None means: CUDA if the backend can use it here, else CPU."""
    from realtime_hmr.runtime.ort import OnnxRuntime

    if not Path(path).is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if backend in STAGE_BUILT:
        raise RuntimeError(f"backend {backend!r} wraps a module built by the stage that owns {Path(path).stem}; "
                           f"this network has no {backend} loader (available here: {', '.join(BACKENDS)})")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS + STAGE_BUILT)})")
    if backend == "tensorrt":
        from realtime_hmr.runtime.tensorrt import TensorRT

        return TensorRT(path, device or "cuda", threads)
    if backend == "auto" and device in (None, "cuda"):
        try:
            from realtime_hmr.runtime.tensorrt import TensorRT

            return TensorRT(path, "cuda", threads, build_missing=False)
        except (RuntimeError, FileNotFoundError, ImportError) as e:  # not installed, no GPU or no engine yet
            log.debug("auto: no TensorRT for %s (%s)", Path(path).name, e)
    if device is None:
        device = "cuda" if _ort_cuda_available() else "cpu"
    return OnnxRuntime(path, device=device, threads=threads)
