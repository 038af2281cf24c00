"""TensorRT engine cache: keying and invalidation (everywhere); building and parity (only where TensorRT + GPU)."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from realtime_hmr.runtime.engine_cache import EngineCache, EngineKey, cache_dir
from tests.conftest import REPO, has_module

KEY = EngineKey(model="blazepose/landmarks", onnx_sha256="ab" * 32, tensorrt="10.3.0", gpu="NVIDIA H100 80GB HBM3",
                compute_capability="9.0", precision="fp16", profile=(1, 4, 8))


def test_every_field_changes_the_key():
    variants = [replace(KEY, onnx_sha256="cd" * 32), replace(KEY, tensorrt="11.0.0"), replace(KEY, gpu="NVIDIA H200"),
                replace(KEY, compute_capability="8.9"), replace(KEY, precision="fp32"), replace(KEY, profile=(1, 2, 8)),
                replace(KEY, model="vqvae/decoder")]
    digests = {KEY.digest, *(v.digest for v in variants)}
    assert len(digests) == len(variants) + 1
    assert KEY.digest == replace(KEY).digest  # deterministic
    assert len({KEY.filename, *(v.filename for v in variants)}) == len(variants) + 1


def test_bad_key_values():
    with pytest.raises(ValueError, match="precision"):
        replace(KEY, precision="int4")
    with pytest.raises(ValueError, match="profile"):
        replace(KEY, profile=(4, 2, 8))


def test_store_lookup_and_invalidation(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.lookup(KEY) is None  # nothing built yet
    path = cache.store(KEY, b"engine-bytes", {"onnx": "x.onnx"})
    assert cache.lookup(KEY) == path
    assert not list(tmp_path.glob("*.tmp"))
    # another machine's key never finds this engine
    assert cache.lookup(replace(KEY, gpu="NVIDIA GeForce RTX 4090", compute_capability="8.9")) is None
    # a foreign engine copied under this machine's name: its sidecar says so, it is not loaded
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["tensorrt"] = "8.6.1"
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert cache.lookup(KEY) is None
    # damaged bytes are not loaded either
    cache.store(KEY, b"engine-bytes")
    path.write_bytes(b"engine-byte")
    assert cache.lookup(KEY) is None
    # nor an engine without its sidecar
    cache.store(KEY, b"engine-bytes")
    path.with_suffix(".json").unlink()
    assert cache.lookup(KEY) is None


def test_entries_and_clear(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"a")
    cache.store(replace(KEY, precision="fp32"), b"b")
    entries = cache.entries()
    assert len(entries) == 2 and {e["precision"] for e in entries} == {"fp16", "fp32"}
    assert cache.clear() == 2 and cache.entries() == []


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REALTIME_HMR_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" / "engines"
    monkeypatch.delenv("REALTIME_HMR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "realtime_hmr" / "engines"


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "realtime_hmr", "engines", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=120)


def test_engines_cli_list_and_clear(tmp_path):
    EngineCache(tmp_path / "engines").store(KEY, b"a")
    env = {"REALTIME_HMR_CACHE": str(tmp_path)}
    out = cli("list", env=env)
    assert out.returncode == 0 and "blazepose/landmarks" in out.stdout, out.stderr
    out = cli("clear", env=env)
    assert out.returncode == 0 and "1" in out.stdout
    assert not list((tmp_path / "engines").glob("*.engine"))


@pytest.mark.skipif(has_module("tensorrt"), reason="TensorRT is installed here")
def test_build_without_tensorrt_is_a_clear_error(tmp_path):
    out = cli("build", env={"REALTIME_HMR_CACHE": str(tmp_path)})
    assert out.returncode == 2
    assert "TensorRT is not installed" in out.stderr


def _gpu_ready() -> bool:
    if not has_module("tensorrt") or not has_module("torch"):
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _gpu_ready(), reason="needs TensorRT and a CUDA GPU")
def test_tensorrt_matches_onnxruntime(tmp_path):
    from realtime_hmr.runtime.ort import OnnxRuntime
    from realtime_hmr.runtime.tensorrt import TensorRT

    onnx = sorted(Path(REPO, "realtime_hmr", "assets").rglob("*.onnx"))
    assert onnx, "no shipped ONNX"
    ref = OnnxRuntime(onnx[0], device="cpu")
    trt = TensorRT(onnx[0], precision="fp32", cache=EngineCache(tmp_path))
    rng = np.random.default_rng(0)
    feeds = {}
    for i in ref.session.get_inputs():
        shape = [2 if not isinstance(d, int) else d for d in i.shape]
        feeds[i.name] = rng.random(shape, dtype=np.float32)
    a, b = ref.run(feeds), trt.run(feeds)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-3, rtol=1e-3)
    # a second backend finds the cached engine instead of building
    again = TensorRT(onnx[0], precision="fp32", cache=EngineCache(tmp_path), build_missing=False)
    assert again.engine_path == trt.engine_path
