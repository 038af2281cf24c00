"""``realtime-hmr bench``: runs every available CPU backend and writes the report (speed is not asserted here)."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_bench_writes_a_report(tmp_path):
    out = subprocess.run([sys.executable, "-m", "realtime_hmr", "bench", "--repeat", "2", "--frames", "10",
                          "--no-mediapipe", "--report", str(tmp_path / "b.json")], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert out.returncode == 0, out.stderr
    rep = json.loads((tmp_path / "b.json").read_text())
    assert rep["machine"]["cores"] and rep["device"] == "cpu"
    ort = rep["backends"]["onnxruntime:cpu"]
    for n in (1, 2, 4, 8):
        assert ort["stages"][f"landmarks_ms/{n}"]["p50"] > 0 and ort["stages"][f"ik_ms/{n}"]["n"] >= 5
        assert rep["publish"][f"publish_ms/{n}"]["p50"] > 0
    assert ort["loop"]["frames"] == 10 and ort["loop"]["fps"] > 0
    assert "onnxruntime:cpu" in out.stdout
