"""Shared helpers for the benchmark scripts: the product's own timing and machine description, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

from realtime_hmr.bench import machine, timed

RESULTS = Path(__file__).resolve().parent / "results"
__all__ = ["RESULTS", "machine", "timed", "write"]


def write(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    return path
