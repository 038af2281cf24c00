import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="session")
def body():
    from realtime_hmr.body import Body

    return Body.load()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def require_renderer() -> None:
    """Skip unless the [train] extra and an EGL (OpenGL) context are available: rendering tests need both."""
    for m in ("moderngl", "mediapipe", "anny", "torch"):
        pytest.importorskip(m)
    from realtime_hmr.train import render

    try:
        render.create_context("egl").release()
    except Exception as e:  # noqa: BLE001 - any EGL failure means: no renderer here
        pytest.skip(f"moderngl EGL context unavailable: {e}")
