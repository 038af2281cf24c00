"""Package structure: the base install imports without torch, layers import only downward, the CLI works."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PKG = REPO / "realtime_hmr"

# layer of each module (path relative to the package, without .py); directories name all their modules
LAYERS = {
    "types": 0, "config": 0, "timing": 0, "version": 0, "stream/schema": 0,
    "capture": 1, "crop": 1, "track": 1, "filters": 1, "record": 1, "preview": 1, "body": 1, "metrics": 1, "pitch": 1,
    "models": 2, "runtime": 2,
    "detect": 3, "landmarks": 3, "mesh": 3, "stream": 3,
    "pipeline": 4, "live": 4, "offline": 4,
    "cli": 5, "__main__": 5, "__init__": 5, "api": 5, "bench": 5,
    "train": 6,  # the side layer: reproduces and evaluates artifacts; may use every layer below the entry points
}
HEAVY = {"torch", "anny", "mediapipe", "tensorrt", "tflite", "moderngl", "matplotlib", "onnx", "safetensors"}


def module_key(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("").as_posix()
    if rel in LAYERS:
        return rel
    for key in sorted(LAYERS, key=len, reverse=True):
        if rel.startswith(key + "/"):
            return key
    raise AssertionError(f"{rel}: module has no layer in tests/test_package.py::LAYERS; add it")


def layer_of(key: str) -> int:
    return LAYERS[key]


def sources():
    return [p for p in PKG.rglob("*.py") if "assets" not in p.parts]


def imported(tree: ast.AST, top_level_only: bool):
    """(module name, line) of imports; with top_level_only, those run at import time (not inside functions)."""
    nodes = tree.body if top_level_only else ast.walk(tree)
    out = []
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, node.lineno))
        elif top_level_only and isinstance(node, (ast.If, ast.Try, ast.With)):
            stack += list(ast.iter_child_nodes(node))
    return out


def target_key(module: str) -> str | None:
    if not module.startswith("realtime_hmr"):
        return None
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    for n in range(len(parts), 0, -1):
        key = "/".join(parts[:n])
        if key in LAYERS:
            return key
    return None


@pytest.mark.parametrize("path", sources(), ids=lambda p: p.relative_to(PKG).as_posix())
def test_layers_import_only_downward(path):
    key = module_key(path)
    tree = ast.parse(path.read_text())
    for module, line in imported(tree, top_level_only=False):
        tk = target_key(module)
        if tk is None:
            continue
        mine, theirs = layer_of(key), layer_of(tk)
        where = f"{path.relative_to(REPO)}:{line} imports {module}"
        if key == "train":
            assert theirs <= 4 or tk == "train", where
        elif key.startswith("runtime"):
            assert not tk.startswith("models"), f"{where}: runtime never imports models"
            assert theirs <= 2, where
        else:
            if tk == "train":
                assert mine == 5, f"{where}: only the entry points may import train/"
            else:
                assert theirs <= mine or tk == key, f"{where} (layer {mine} -> {theirs})"
    if key not in ("models", "train"):
        for module, line in imported(tree, top_level_only=True):
            assert module.split(".")[0] not in HEAVY, (
                f"{path.relative_to(REPO)}:{line}: {module} must be imported lazily (inside the function using it)")


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError('blocked for the test: ' + name)
sys.meta_path.insert(0, Block())
"""


def test_runtime_imports_without_heavy_packages():
    """The base install has no torch, anny or mediapipe: every runtime module, and the CLI, must work without them."""
    runtime = sorted(
        "realtime_hmr." + p.relative_to(PKG).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
        for p in sources() if module_key(p) not in ("models", "train") and p.name != "__main__.py")
    code = BLOCKER.format(blocked=sorted(HEAVY)) + f"""
import importlib
for m in {runtime!r}:
    importlib.import_module(m)
from realtime_hmr.cli import build_parser, main
build_parser()
assert main(["body"]) == 0
from realtime_hmr.body import Body
b = Body.load()
v = b.skin(__import__('numpy').tile(__import__('numpy').eye(3), (b.n_bones, 1, 1)))
assert 'torch' not in sys.modules
print('ok', len({runtime!r}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("ok")


def run_cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "realtime_hmr", *args], capture_output=True, text=True, env=env,
                          timeout=120, **kw)


def test_cli_version_and_help():
    out = run_cli("--version")
    assert out.returncode == 0 and "realtime-hmr" in out.stdout
    out = run_cli("--help")
    assert out.returncode == 0 and "body" in out.stdout


def test_cli_body_report_and_obj(tmp_path):
    out = run_cli("body", "--report", str(tmp_path / "r.json"), "--export-obj", str(tmp_path / "b.obj"))
    assert out.returncode == 0, out.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["vertices"] == 13718 and rep["bones"] == 104 and len(rep["joints"]) == 24
    lines = (tmp_path / "b.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in lines) == 13718
    assert sum(line.startswith("f ") for line in lines) == 27420


def test_cli_unknown_command_fails():
    out = run_cli("no-such-command")
    assert out.returncode != 0
