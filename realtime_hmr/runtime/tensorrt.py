"""TensorRT backend: engines built on the user's machine from the shipped ONNX files, cached by EngineKey.

Precision: TensorRT 10 takes fp16 as a builder flag; TensorRT 11 removed the precision flags, so there the ONNX is
first converted to a strongly typed fp16 graph (inputs and outputs stay fp32) and built as a strongly typed network.
Dynamic batch: every input whose first axis is dynamic gets one optimisation profile over ``profile`` (min, opt,
max); other dynamic axes are refused with a clear error. A timing cache beside the engines makes rebuilds fast.
Device buffers are torch CUDA tensors (the ``[gpu]`` extra); the engine runs on torch's current stream.

Written against the documented TensorRT 10/11 Python API (named I/O tensors, ``execute_async_v3``); its tests run
only where TensorRT and a GPU exist.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from realtime_hmr.runtime.engine_cache import EngineCache, EngineKey, file_sha256

log = logging.getLogger(__name__)


class TensorRTUnavailable(RuntimeError):
    pass


def require():
    """(tensorrt, torch) or a clear error saying what is missing."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TensorRTUnavailable("TensorRT is not installed: pip install 'realtime-hmr[tensorrt]' on a machine with "
                                  f"an NVIDIA GPU and driver ({e})") from e
    try:
        import torch
    except ImportError as e:
        raise TensorRTUnavailable(f"the TensorRT backend needs torch with CUDA for its buffers ({e})") from e
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("no CUDA GPU is available to TensorRT (torch.cuda.is_available() is False)")
    return trt, torch


def key_for(onnx_path: str | Path, precision: str = "fp16", profile=(1, 4, 8), model: str | None = None,
            device: int = 0) -> EngineKey:
    trt, torch = require()
    major, minor = torch.cuda.get_device_capability(device)
    return EngineKey(model=model or Path(onnx_path).stem, onnx_sha256=file_sha256(onnx_path), tensorrt=trt.__version__,
                     gpu=torch.cuda.get_device_name(device), compute_capability=f"{major}.{minor}",
                     precision=precision, profile=tuple(profile))


def _fp16_onnx(onnx_path: Path) -> bytes:
    import onnx
    from onnxconverter_common import float16

    model = float16.convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    return model.SerializeToString()


def build(onnx_path: str | Path, key: EngineKey, cache: EngineCache, workspace_gb: float = 2.0) -> Path:
    """Build the engine for ``key`` from ``onnx_path`` and store it in ``cache``."""
    trt, _ = require()
    onnx_path = Path(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = key.precision == "fp16" and int(trt.__version__.split(".")[0]) >= 11
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    data = _fp16_onnx(onnx_path) if strongly_typed else onnx_path.read_bytes()
    if not parser.parse(data):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if key.precision == "fp16" and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    lo, opt, hi = key.profile
    for i in range(network.num_inputs):
        t = network.get_input(i)
        shape = list(t.shape)
        if any(d < 0 for d in shape[1:]):
            raise RuntimeError(f"{onnx_path}: input {t.name} has a dynamic axis other than the batch: {shape}")
        if shape[0] < 0:
            profile.set_shape(t.name, [lo, *shape[1:]], [opt, *shape[1:]], [hi, *shape[1:]])
    config.add_optimization_profile(profile)
    timing_bytes = cache.timing_cache.read_bytes() if cache.timing_cache.exists() else b""
    timing = config.create_timing_cache(timing_bytes)
    config.set_timing_cache(timing, ignore_mismatch=False)
    log.info("building TensorRT engine %s (%s, batch %s) - this takes a while once", key.model, key.precision,
             key.profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine for {onnx_path}")
    cache.root.mkdir(parents=True, exist_ok=True)
    cache.timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return cache.store(key, bytes(serialized), {"onnx": str(onnx_path), "strongly_typed": strongly_typed})


class TensorRT:
    """Backend interface (see :mod:`realtime_hmr.runtime`): ``run({input: array}) -> {output: array}``."""

    def __init__(self, path: str | Path, device: str = "cuda", threads: int | None = None, *, precision: str = "fp16",
                 profile=(1, 4, 8), cache: EngineCache | None = None, model: str | None = None,
                 build_missing: bool = True):
        if device != "cuda":
            raise ValueError("the TensorRT backend runs on device 'cuda' only")
        trt, torch = require()
        self._torch = torch
        cache = cache or EngineCache()
        key = key_for(path, precision, profile, model)
        engine_path = cache.lookup(key)
        if engine_path is None:
            if not build_missing:
                raise FileNotFoundError(f"no TensorRT engine for {key.model} on this machine: run "
                                        "`realtime-hmr engines build`")
            engine_path = build(path, key, cache)
        self.engine_path = engine_path
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load {engine_path}; remove it with `realtime-hmr engines clear`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self._dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.name = f"tensorrt:{key.precision}"
        self.max_batch = key.profile[2]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        keep = []
        for n in self.input_names:
            a = np.ascontiguousarray(feeds[n], dtype=self._dtypes[n])
            if len(a) > self.max_batch:
                raise ValueError(f"batch {len(a)} exceeds the engine's profile maximum {self.max_batch}")
            t = torch.from_numpy(a).cuda()
            keep.append(t)
            self.context.set_input_shape(n, tuple(a.shape))
            self.context.set_tensor_address(n, t.data_ptr())
        outs = {}
        for n in self.output_names:
            shape = tuple(self.context.get_tensor_shape(n))
            t = torch.empty(shape, dtype=torch.from_numpy(np.empty(0, self._dtypes[n])).dtype, device="cuda")
            outs[n] = t
            self.context.set_tensor_address(n, t.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return {n: t.cpu().numpy() for n, t in outs.items()}
