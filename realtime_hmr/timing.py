"""Clocks and per-stage timing with percentiles."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from contextlib import contextmanager

import numpy as np

now = time.perf_counter


class StageTimer:
    """Collects durations per stage in bounded windows and reports p50/p95 in milliseconds."""

    def __init__(self, window: int = 10_000):
        self._samples: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))

    @contextmanager
    def __call__(self, stage: str):
        t0 = now()
        try:
            yield
        finally:
            self._samples[stage].append((now() - t0) * 1e3)

    def add(self, stage: str, ms: float) -> None:
        self._samples[stage].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        return {k: percentiles(v) for k, v in self._samples.items() if v}


def percentiles(values) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"p50": float("nan"), "p95": float("nan")}
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95))}
