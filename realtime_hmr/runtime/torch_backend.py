"""torch backend: a network as a torch module, with CUDA graphs captured per batch size on a GPU.

The runtime never builds networks itself (it does not import ``realtime_hmr.models``): the stage that owns a
network builds the module from the shipped weights and hands it over here, with the input and output names of the
shipped ONNX, so every backend answers ``run({input: array}) -> {output: array}`` the same way.

On CUDA each batch is padded up to the next captured size (1, 2, 4, 8 by default; larger batches go in chunks) and
replayed from a CUDA graph: after the first call per size, a frame costs one graph launch instead of hundreds of
kernel launches. fp16 runs the module in half precision (inputs and outputs stay float32 numpy). On CPU the module
runs eagerly in float32: that path is what the CPU tests compare against ONNX Runtime.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


class Torch:
    def __init__(self, module, input_names: list[str], output_names: list[str], *, device: str = "cuda",
                 precision: str = "fp16", graphs: bool = True, batch_sizes=(1, 2, 4, 8)):
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("the torch backend on 'cuda' needs a CUDA GPU (torch.cuda.is_available() is False)")
        if precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be fp32, fp16 or bf16, got {precision!r}")
        if device == "cpu":
            precision, graphs = "fp32", False
        self._torch = torch
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.device = torch.device(device)
        self.module = module.eval().to(self.device, self.dtype)
        self.input_names, self.output_names = list(input_names), list(output_names)
        if len(self.input_names) != 1:
            raise ValueError("the torch backend takes modules with one input")
        self.graphs = graphs
        self.batch_sizes = tuple(sorted(batch_sizes))
        self._captured: dict[int, tuple] = {}
        self.name = f"torch:{device}:{precision}" + (":cudagraph" if graphs else "")

    def _forward(self, x):
        out = self.module(x)
        return out if isinstance(out, dict) else dict(zip(self.output_names, out if isinstance(out, (list, tuple))
                                                          else (out,)))

    def _capture(self, size: int, shape: tuple):
        torch = self._torch
        static_in = torch.zeros((size, *shape), dtype=self.dtype, device=self.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(3):  # warm-up outside the graph (allocations, autotuning)
                self._forward(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            static_out = self._forward(static_in)
        log.info("torch backend: captured a CUDA graph for batch %d", size)
        return graph, static_in, static_out

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        x = np.ascontiguousarray(feeds[self.input_names[0]], np.float32)
        n = len(x)
        if n == 0:
            raise ValueError("empty batch")
        if not self.graphs:
            with torch.no_grad():
                out = self._forward(torch.from_numpy(x).to(self.device, self.dtype))
            return {k: out[k].float().cpu().numpy() for k in self.output_names}
        if n > self.batch_sizes[-1]:  # in chunks of the largest captured size
            parts = [self.run({self.input_names[0]: x[i:i + self.batch_sizes[-1]]})
                     for i in range(0, n, self.batch_sizes[-1])]
            return {k: np.concatenate([p[k] for p in parts]) for k in self.output_names}
        size = next(s for s in self.batch_sizes if s >= n)
        if size not in self._captured:
            self._captured[size] = self._capture(size, x.shape[1:])
        graph, static_in, static_out = self._captured[size]
        static_in[:n].copy_(torch.from_numpy(x).to(self.device, self.dtype), non_blocking=False)
        if n < size:
            static_in[n:].zero_()
        graph.replay()
        return {k: static_out[k][:n].float().cpu().numpy() for k in self.output_names}
