"""Backends that run exported networks: one class per backend, all with the same small interface.

A backend is built from an ONNX file (``Backend(path, ...)``), resolves its input and output names once, and runs
``backend.run({input name: array}) -> {output name: array}`` with numpy arrays in and out. :func:`load` picks one
(``select.py`` documents the ``auto`` order). This package never imports ``realtime_hmr.models``; heavy libraries
(onnxruntime, torch, tensorrt) are imported lazily inside the classes.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from realtime_hmr.runtime.select import BACKENDS, load


class Backend(Protocol):
    name: str  # e.g. "onnxruntime:CPUExecutionProvider"
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def run_batches(backend, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``backend.run`` in chunks of the backend's ``max_batch`` (e.g. a TensorRT profile), concatenated."""
    n = len(next(iter(feeds.values())))
    step = getattr(backend, "max_batch", None) or n
    if n <= step:
        return backend.run(feeds)
    parts = [backend.run({k: v[i:i + step] for k, v in feeds.items()}) for i in range(0, n, step)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


__all__ = ["BACKENDS", "Backend", "load", "run_batches"]
