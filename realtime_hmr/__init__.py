"""realtime_hmr: live markerless motion capture.

Every person in view becomes a 3D body mesh with joints and bone rotations, streamed to Blender, Unity and
analysis tools over ZeroMQ, OSC and the VMC protocol. Heavy modules are imported lazily, so
``import realtime_hmr`` needs only the base install (numpy, no torch).
"""

from importlib import import_module

from realtime_hmr.version import __version__

_LAZY = {
    "Body": "realtime_hmr.body",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'realtime_hmr' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
