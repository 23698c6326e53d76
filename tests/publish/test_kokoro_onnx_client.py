"""A bundle speaks where kopt is not: first with only numpy and onnxruntime installed (the bundle's
own runtime, text from its token cache), then in a real client, kokoro-onnx (PyPI), in the same
isolated virtual environment."""

import json
import os
import shutil
import subprocess
import venv

import pytest

from kopt.publish.bundle import RUNTIME_IGNORE
from kopt.publish.publish import publish
from kopt.publish.settings import PublishSettings
from tests.runtime.helpers import REPO

pytestmark = pytest.mark.slow

CLIENT = r"""
import json, sys
import numpy as np
from kokoro_onnx import Kokoro
bundle = sys.argv[1]
k = Kokoro(f"{bundle}/model.onnx", f"{bundle}/voices.npz")
samples, sr = k.create("Hello from a kopt bundle. It speaks in kokoro onnx.", voice="jf_alpha", speed=1.0, lang="en-us")
a = np.asarray(samples, dtype=np.float64)
_, _, spoken = k.create_timed("Hello from a kopt bundle.", voice="jf_alpha", lang="en-us")
print(json.dumps({"sr": sr, "n": int(a.size), "finite": bool(np.isfinite(a).all()),
                  "peak": float(np.abs(a).max()), "rms": float(np.sqrt((a * a).mean())),
                  "timings": [[t.phoneme, t.start, t.end] for t in spoken]}))
"""

LIBRARY = r"""
import json, sys
import kokoro_runtime
from kokoro_runtime import load, KokoroError
tts = load(sys.argv[1], threads=1)
words = [w for r in tts.render("The model speaks.", "jf_alpha", lang="en-us") for w in r.words]
try:
    tts.synthesize("The model speaks.", "jf_alpha", speed=0, lang="en-us")
    bad = None
except KokoroError as e:
    bad = str(e)
ja = list(tts.render("今日はいい天気ですね。", "jf_alpha"))
print(json.dumps({"version": kokoro_runtime.__version__, "file": kokoro_runtime.__file__,
                  "words": [w.word for w in words], "bad_speed": bad,
                  "ja_words": [w.word for r in ja for w in r.words],
                  "ja_audio_s": sum(len(r.audio) for r in ja) / 24000}))
"""


def test_bundle_speaks_with_numpy_and_onnxruntime_only_then_in_kokoro_onnx(tmp_path, real_store):
    store, base, _ = real_store
    res = publish(store, base.key, tmp_path / "bundle", PublishSettings(cache_words=20000, tarball=False))
    env = tmp_path / "client-venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    py = env / "bin" / "python"

    def pip(*pkgs):
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", *pkgs], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]

    pip("numpy", "onnxruntime")
    wav = tmp_path / "clean.wav"
    # the embedded voices are Japanese: English text is asked for by name (the token cache reads it)
    r = subprocess.run([str(py), "-m", "kokoro_runtime", "--lang", "en-us", "The model speaks without any other tools.",
                        "-o", str(wav)], cwd=res.bundle, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert wav.stat().st_size > 24000 * 2
    # without --lang the voice's language (Japanese) refuses Latin-only text instead of spelling it
    r = subprocess.run([str(py), "-m", "kokoro_runtime", "The model speaks.", "-o", str(tmp_path / "l.wav")],
                       cwd=res.bundle, capture_output=True, text=True)
    assert r.returncode != 0 and "lang" in r.stderr and "en-us" in r.stderr and not (tmp_path / "l.wav").exists()
    # Japanese needs the ja extra, which this bare environment lacks: one line naming it, no output
    r = subprocess.run([str(py), "-m", "kokoro_runtime", "こんにちは。", "-o", str(tmp_path / "j.wav")],
                       cwd=res.bundle, capture_output=True, text=True)
    assert r.returncode != 0 and "kokoro-runtime[ja]" in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "j.wav").exists()
    r = subprocess.run([str(py), "-m", "kokoro_runtime", "--lang", "en-us", "Zyxwvut qrstuv.", "-o", str(tmp_path / "x.wav")],
                       cwd=res.bundle, capture_output=True, text=True)
    assert r.returncode != 0 and "zyxwvut" in r.stderr.lower()  # uncached words, no G2P: named, no output
    assert not (tmp_path / "x.wav").exists()
    # say without the serve extra: it speaks in its own process and says why there is no daemon
    r = subprocess.run([str(py), "-m", "kokoro_runtime", "say", "--lang", "en-us", "The model speaks.", "-o", str(tmp_path / "s.wav")],
                       cwd=res.bundle, capture_output=True, text=True, env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)})
    assert r.returncode == 0 and "serve extra is not installed" in r.stderr, r.stderr[-2000:]
    assert (tmp_path / "s.wav").stat().st_size > 24000

    # the runtime installs on its own (no kopt), from its folder, and speaks the bundle as a library
    import kokoro_runtime

    src = tmp_path / "runtime-src" / "kokoro_runtime"   # pip builds in place: not in the repo's folder
    shutil.copytree(REPO / "kokoro_runtime", src, ignore=RUNTIME_IGNORE)
    pip(f"{src}[ja]")                                      # with its Japanese extra, from PyPI alone
    r = subprocess.run([str(py), "-c", LIBRARY, str(res.bundle)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    lib = json.loads(r.stdout.strip().splitlines()[-1])
    assert lib["version"] == kokoro_runtime.__version__ == res.manifest["runtime_version"]
    assert "site-packages" in lib["file"] and lib["words"] == ["The", "model", "speaks"]
    assert lib["bad_speed"].startswith("speed: 0 is out of range")
    # Japanese, the voices' own language, through the installed runtime's command: kana readings
    # (never letters read by name), a WAV, and word timestamps in the library
    ja = "今日はいい天気ですね。散歩に行きましょう。"
    r = subprocess.run([str(py), "-m", "kokoro_runtime", "--bundle", str(res.bundle), ja, "--phonemes"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    phon = r.stdout.strip()
    assert phon and "lˌɛɾəɹ" not in phon and "kʲoː" in phon, phon        # 今日 read as kyō
    r = subprocess.run([str(py), "-m", "kokoro_runtime", "--bundle", str(res.bundle), ja, "-o", str(tmp_path / "ja.wav")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "ja.wav").stat().st_size > 24000 * 2 * 1.5   # more than 1.5 s of speech
    assert lib["ja_words"][:2] == ["今日", "は"] and lib["ja_audio_s"] > 1.5

    pip("kokoro-onnx==0.6.1")
    r = subprocess.run([str(py), "-c", CLIENT, str(res.bundle)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["sr"] == 24000 and out["finite"]
    assert out["n"] > 24000  # more than a second of speech
    assert 0.01 < out["peak"] <= 1.0 and out["rms"] > 1e-3
    # the published model's `duration` output gives kokoro-onnx its timings (empty without it)
    t = out["timings"]
    assert len(t) >= 15 and all(b[1] >= a[1] for a, b in zip(t, t[1:])) and t[-1][2] > t[0][1]
    # the client ran without kopt: nothing of it is importable there
    chk = subprocess.run([str(py), "-c", "import kopt"], capture_output=True, text=True, cwd=tmp_path)
    assert chk.returncode != 0
