"""One frozen configuration tree; each component receives only its own part.

Values come from the defaults below, then an optional TOML file (``--config FILE.toml``, sections named as the
fields of :class:`Config`), then command-line flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class CaptureConfig:
    source: str = "0"
    realtime: bool = False  # files: drop frames to keep up with the clock instead of processing every frame
    reconnect_attempts: int = 5
    reconnect_delay_s: float = 1.0


@dataclass(frozen=True)
class PerceptionConfig:
    max_persons: int = 4
    detect_every: int = 10  # run the person detector every N frames, or when a track is lost
    min_detection_score: float = 0.5  # the person detector's threshold
    min_presence: float = 0.5  # pose presence below this ends a track
    flip_test: bool = False  # average each person's landmarks with those of the mirrored crop (2x landmark cost)
    tiles: tuple[int, int] = (1, 1)  # detector tiles (cols, rows) beside the whole frame, for far people; "2x1" too

    def __post_init__(self):  # one form, (cols, rows), whatever a TOML file or a flag gave; a bad value fails here
        object.__setattr__(self, "tiles", parse_tiles(self.tiles))


@dataclass(frozen=True)
class MeshConfig:
    mode: str = "deterministic"  # deterministic | stochastic
    decode: str = "expected"  # deterministic tokens: expected (nearest to the mean code) | argmax (MEGA's)
    mirror_test: bool = False  # deterministic: also decode each person's mirror image and average the two bodies
    fit: bool = False  # deterministic: refine each body's pose on its 2D landmarks (realtime_hmr/body/fit.py)
    silhouette: bool = False  # the fit also matches each person's silhouette (the tracker then segments); implies fit
    samples: int = 10
    steps: int = 5
    temperature: float = 1.0

    def __post_init__(self):
        if self.silhouette:  # a term of the fit: asking for it asks for the fit
            object.__setattr__(self, "fit", True)


@dataclass(frozen=True)
class SmoothingConfig:
    # One Euro filters (realtime_hmr/filters.py); defaults chosen with benchmarks/bench_smoothing.py on a real clip
    enabled: bool = True
    min_cutoff: float = 2.0  # Hz, points (joints, vertices, translation)
    beta: float = 1.0  # per m/s of speed
    d_cutoff: float = 1.0  # Hz
    rot_min_cutoff: float = 2.0  # Hz, bone rotations
    rot_beta: float = 0.2  # per rad/s of angular speed


@dataclass(frozen=True)
class StreamConfig:
    zmq: str | None = "tcp://127.0.0.1:5555"
    osc: str | None = None  # host:port
    vmc: str | None = None  # host:port; person k goes to port + k
    send_vertices: bool = True


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str = "auto"  # auto | onnxruntime | torch | tensorrt
    device: str = "cpu"  # cpu | cuda
    threads: int = 0  # 0: the backend's default


@dataclass(frozen=True)
class Config:
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def replace(self, section: str, **changes) -> Config:
        """A copy with some fields of one section changed (unknown names raise TypeError)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


def parse_tiles(value) -> tuple[int, int]:
    """Detector tiles as (cols, rows) from "3x2", [3, 2] or (3, 2); both at least 1."""
    try:
        tiles = tuple(int(v) for v in (value.lower().split("x") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        tiles = ()
    if len(tiles) != 2 or min(tiles) < 1:
        raise ValueError(f"tiles must look like 3x2 (columns x rows, each at least 1), got {value!r}")
    return tiles


def load_config(path: str | Path | None = None) -> Config:
    """Defaults, overridden by a TOML file when given. Unknown sections or keys are errors, not silently ignored."""
    cfg = Config()
    if path is None:
        return cfg
    with open(path, "rb") as f:
        data = tomllib.load(f)
    sections = {f.name for f in dataclasses.fields(Config)}
    for name, values in data.items():
        if name not in sections or not isinstance(values, dict):
            raise ValueError(f"{path}: unknown config section [{name}]; known: {sorted(sections)}")
        known = {f.name for f in dataclasses.fields(getattr(cfg, name))}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"{path}: unknown keys in [{name}]: {sorted(unknown)}; known: {sorted(known)}")
        cfg = cfg.replace(name, **values)
    return cfg
