"""A real client must accept a kopt bundle: its model and voice NPZ speak in kokoro-onnx (PyPI),
installed in an isolated virtual environment that has no kopt."""

import json
import subprocess
import sys
import venv

import pytest

from kopt.publish.publish import publish
from kopt.publish.settings import PublishSettings

pytestmark = pytest.mark.slow

CLIENT = r"""
import json, sys
import numpy as np
from kokoro_onnx import Kokoro
bundle = sys.argv[1]
k = Kokoro(f"{bundle}/model.onnx", f"{bundle}/voices.npz")
samples, sr = k.create("Hello from a kopt bundle. It speaks in kokoro onnx.", voice="jf_alpha", speed=1.0, lang="en-us")
a = np.asarray(samples, dtype=np.float64)
print(json.dumps({"sr": sr, "n": int(a.size), "finite": bool(np.isfinite(a).all()),
                  "peak": float(np.abs(a).max()), "rms": float(np.sqrt((a * a).mean()))}))
"""


def test_bundle_speaks_in_kokoro_onnx(tmp_path, real_store):
    store, base, _ = real_store
    res = publish(store, base.key, tmp_path / "bundle", PublishSettings(cache_words=0, tarball=False))
    env = tmp_path / "client-venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    py = env / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "kokoro-onnx==0.6.1"], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-2000:]
    r = subprocess.run([str(py), "-c", CLIENT, str(res.bundle)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["sr"] == 24000 and out["finite"]
    assert out["n"] > 24000  # more than a second of speech
    assert 0.01 < out["peak"] <= 1.0 and out["rms"] > 1e-3
    # the client ran without kopt: nothing of it is importable there
    chk = subprocess.run([str(py), "-c", "import kopt"], capture_output=True, text=True, cwd=tmp_path)
    assert chk.returncode != 0
