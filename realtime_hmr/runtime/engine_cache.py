"""Where TensorRT engines live on the user's machine, and when one may be loaded.

An engine is only valid for the exact ONNX it was built from, the TensorRT version, the GPU (name and compute
capability), the precision and the batch profile. All of these form its key; the engine file is named by the key and
a JSON sidecar repeats the fields plus the engine's own hash. :meth:`EngineCache.lookup` returns an engine only when
every field matches this machine and the bytes are intact: a stale, foreign or damaged engine is reported and
rebuilt, never loaded.

Cache directory: ``$REALTIME_HMR_CACHE/engines``, else ``$XDG_CACHE_HOME/realtime_hmr/engines``, else
``~/.cache/realtime_hmr/engines``. Pure Python: no TensorRT needed to list or clear.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")


def cache_dir() -> Path:
    root = os.environ.get("REALTIME_HMR_CACHE")
    if root:
        return Path(root) / "engines"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "realtime_hmr" / "engines"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on. ``profile``: (min, opt, max) of the batch axis."""

    model: str  # a readable name, e.g. "blazepose/landmarks"
    onnx_sha256: str
    tensorrt: str
    gpu: str
    compute_capability: str  # e.g. "9.0"
    precision: str
    profile: tuple[int, int, int]

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        lo, opt, hi = self.profile
        if not 1 <= lo <= opt <= hi:
            raise ValueError(f"batch profile must satisfy 1 <= min <= opt <= max, got {self.profile}")

    @property
    def digest(self) -> str:
        fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]

    @property
    def filename(self) -> str:
        safe = self.model.replace("/", "_").replace(" ", "_")
        return f"{safe}-{self.precision}-b{self.profile[0]}-{self.profile[2]}-{self.digest}.engine"


class EngineCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else cache_dir()

    def path(self, key: EngineKey) -> Path:
        return self.root / key.filename

    def lookup(self, key: EngineKey) -> Path | None:
        """The engine for ``key`` if one exists, matches every field and is intact; else None (it must be built)."""
        path = self.path(key)
        side = path.with_suffix(".json")
        if not path.exists():
            return None
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError) as e:
            log.warning("engine %s has no readable metadata (%s): it will be rebuilt", path.name, e)
            return None
        want = json.loads(json.dumps(asdict(key)))
        got = {k: meta.get(k) for k in want}
        if got != want:
            diff = sorted(k for k in want if got[k] != want[k])
            log.warning("engine %s was built for another %s: it will be rebuilt", path.name, ", ".join(diff))
            return None
        if meta.get("engine_sha256") != file_sha256(path):
            log.warning("engine %s is damaged (hash mismatch): it will be rebuilt", path.name)
            return None
        return path

    def store(self, key: EngineKey, engine: bytes, extra: dict | None = None) -> Path:
        """Write an engine and its sidecar atomically (a crash leaves no half-written engine behind)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = path.with_suffix(".engine.tmp")
        tmp.write_bytes(engine)
        meta = {**asdict(key), "engine_sha256": hashlib.sha256(engine).hexdigest(), **(extra or {})}
        side_tmp = path.with_suffix(".json.tmp")
        side_tmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, path)
        os.replace(side_tmp, path.with_suffix(".json"))
        return path

    def entries(self) -> list[dict]:
        """Every cached engine with its metadata (``None`` fields where the sidecar is missing or unreadable)."""
        out = []
        for p in sorted(self.root.glob("*.engine")):
            try:
                meta = json.loads(p.with_suffix(".json").read_text())
            except (OSError, ValueError):
                meta = {}
            out.append({"file": str(p), "bytes": p.stat().st_size, **meta})
        return out

    def clear(self, keep: set[str] | None = None) -> int:
        """Remove cached engines (and sidecars, timing caches are kept unless ``keep`` is empty); returns count."""
        n = 0
        for p in list(self.root.glob("*.engine")):
            if keep and p.name in keep:
                continue
            p.unlink(missing_ok=True)
            p.with_suffix(".json").unlink(missing_ok=True)
            n += 1
        return n

    @property
    def timing_cache(self) -> Path:
        return self.root / "timing.cache"
