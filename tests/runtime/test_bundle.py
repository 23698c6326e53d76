"""The minimal bundle writer and the runtime's manifest verification."""

import json

import numpy as np
import pytest

from kokoro_runtime import Bundle, BundleError, load, open_bundle
from kopt.core.errors import KoptError, VoiceError
from kopt.publish.bundle import write_bundle
from tests.graphs import tiny_kokoro, tiny_kokoro_ort, tiny_voices
from tests.runtime.helpers import VOCAB, small_cache


@pytest.fixture
def bundle(tmp_path):
    model = tiny_kokoro(tmp_path / "tiny.onnx")
    return write_bundle(tmp_path / "b", model, tiny_voices(), VOCAB, small_cache(), {"title": "tiny"})


def test_layout_and_manifest(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["model"] == "model.onnx" and m["voices"] == "voices.npz" and m["token_cache"] == "token_cache.json.gz"
    assert m["title"] == "tiny" and m["default_voice"] == "voice_0"
    on_disk = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert sorted(m["files"]) == [f for f in on_disk if f != "manifest.json"]
    assert "kokoro_runtime/__main__.py" in m["files"] and "kokoro_runtime/synth.py" in m["files"]
    assert not any("__pycache__" in f for f in m["files"])
    assert json.loads((bundle / "vocab.json").read_text())["vocab"] == VOCAB


def test_open_bundle_is_a_bundle_and_load_speaks(bundle):
    b = open_bundle(bundle)
    assert isinstance(b, Bundle) and b.default_voice == "voice_0" and b.modes == {"default": "model.onnx"}
    tts = load(bundle, threads=1, g2p=False)
    assert tts.voices == ["voice_0", "voice_1"]
    audio = tts.synthesize("The cat sat on the mat.", "voice_0")
    assert audio.size > 0 and np.isfinite(audio).all()


@pytest.mark.parametrize("victim", ["voices.npz", "model.onnx", "token_cache.json.gz", "kokoro_runtime/synth.py"])
def test_tampered_file_is_refused_with_its_name(bundle, victim):
    p = bundle / victim
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"^{victim}: sha256 does not match manifest.json"):
        Bundle(bundle)
    Bundle(bundle, verify=False)  # the caller may opt out


def test_missing_and_truncated_files(bundle):
    (bundle / "vocab.json").unlink()
    with pytest.raises(BundleError, match="^vocab.json: listed in manifest.json but missing"):
        open_bundle(bundle)
    p = bundle / "voices.npz"
    p.write_bytes(p.read_bytes()[:100])
    (bundle / "vocab.json").write_text("{}")
    with pytest.raises(BundleError, match="size"):
        Bundle(bundle)


def test_manifest_paths_cannot_leave_the_bundle(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    m["files"]["../evil"] = {"sha256": "0" * 64}
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="leaves the bundle"):
        Bundle(bundle)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no manifest.json"):
        Bundle(tmp_path)


def test_writer_is_atomic(tmp_path):
    model = tiny_kokoro(tmp_path / "tiny.onnx")
    bad = {"ok": tiny_voices()["voice_0"], "broken": np.zeros((3, 256), np.float32)}
    with pytest.raises(VoiceError, match="broken"):
        write_bundle(tmp_path / "out", model, bad, VOCAB, small_cache())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]  # no bundle, no temp folder


def test_writer_refuses_existing_and_reserved(bundle, tmp_path):
    model = tiny_kokoro(tmp_path / "tiny2.onnx")
    with pytest.raises(KoptError, match="already exists"):
        write_bundle(bundle, model, tiny_voices(), VOCAB, None)
    with pytest.raises(KoptError, match="reserved"):
        write_bundle(tmp_path / "x", model, tiny_voices(), VOCAB, None, {"files": {}})
    with pytest.raises(KoptError, match="default voice 'zz'"):
        write_bundle(tmp_path / "y", model, tiny_voices(), VOCAB, None, {"default_voice": "zz"})
    out = write_bundle(bundle, model, tiny_voices(1), VOCAB, None, overwrite=True)
    m = json.loads((out / "manifest.json").read_text())
    assert "token_cache" not in m and m["voice_names"] == ["voice_0"]
    Bundle(out)


def test_ort_model_keeps_its_name(tmp_path):
    model, _ = tiny_kokoro_ort(tmp_path)
    b = write_bundle(tmp_path / "b", tmp_path / "m.ort", tiny_voices(), VOCAB, small_cache(),
                     {"runtime_options": {"graph_optimization": False}})
    assert json.loads((b / "manifest.json").read_text())["model"] == "model.ort"
    assert load(b, g2p=False).synthesize("The cat sat.", "voice_1").size > 0


def test_each_mode_model_is_checked_before_its_first_use(tmp_path):
    from tests.runtime.serving import make_bundle

    b = make_bundle(tmp_path, modes=True)
    path = b / "modes" / "quality.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1                                      # same size, one bit changed
    path.write_bytes(bytes(data))
    bundle = Bundle(b)                                 # the default mode's files are fine
    assert bundle.synthesizer(mode="fast", g2p=False).voices == ["voice_0", "voice_1"]
    with pytest.raises(BundleError, match="modes/quality.onnx: sha256 does not match"):
        bundle.synthesizer(mode="quality", g2p=False)
    with pytest.raises(BundleError, match="modes/quality.onnx: sha256 does not match"):
        Bundle(b).verify()                             # a full check still covers every file


def test_optimized_session_cache_starts_the_next_process_from_the_same_graph(tmp_path, monkeypatch):
    """The full-level CPU graph is kept per model sha256, onnxruntime version and CPU; the next
    session loads it with optimizations off and gives the same audio; a damaged file is rebuilt."""
    from kokoro_runtime import session as S
    from tests.runtime.serving import make_bundle

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    b = make_bundle(tmp_path / "b")
    first = Bundle(b).synthesizer(g2p=False)
    files = list((tmp_path / "cache" / "kokoro_runtime" / "sessions").glob("*.onnx"))
    sha = json.loads((b / "manifest.json").read_text())["files"]["model.onnx"]["sha256"]
    assert len(files) == 1 and files[0].name.startswith(sha[:24]) and files[0] == S._cached_model(sha)
    again = Bundle(b).synthesizer(g2p=False)
    assert again.session.get_session_options().graph_optimization_level.name == "ORT_DISABLE_ALL"   # loaded as saved
    text = "The cat sat on the mat."
    assert np.array_equal(first.synthesize(text, "voice_0"), again.synthesize(text, "voice_0"))
    files[0].write_bytes(b"not a model")
    healed = Bundle(b).synthesizer(g2p=False)
    assert np.array_equal(healed.synthesize(text, "voice_0"), first.synthesize(text, "voice_0"))
    assert files[0].stat().st_size > 1000                                    # rebuilt
    uncached = Bundle(b, verify=False).synthesizer(g2p=False)               # unverified: never cached
    assert uncached.session.get_session_options().graph_optimization_level.name == "ORT_ENABLE_ALL"


def test_a_built_runtime_folder_ships_only_its_sources(tmp_path, monkeypatch):
    """`pip install ./kokoro_runtime` leaves build/ and *.egg-info in the folder; bundles never carry them."""
    import shutil

    import kopt.publish.bundle as B

    src = tmp_path / "kokoro_runtime"
    shutil.copytree(B.RUNTIME_DIR, src, ignore=B.RUNTIME_IGNORE)
    (src / "build" / "lib").mkdir(parents=True)
    (src / "build" / "lib" / "stale.py").write_text("x = 1\n")
    (src / "kokoro_runtime.egg-info").mkdir()
    (src / "kokoro_runtime.egg-info" / "PKG-INFO").write_text("Name: kokoro-runtime\n")
    monkeypatch.setattr(B, "RUNTIME_DIR", src)
    b = write_bundle(tmp_path / "b", tiny_kokoro(tmp_path / "tiny.onnx"), tiny_voices(), VOCAB, small_cache())
    files = json.loads((b / "manifest.json").read_text())["files"]
    assert "kokoro_runtime/pyproject.toml" in files and "kokoro_runtime/server/app.py" in files
    assert not [f for f in files if "/build/" in f or ".egg-info" in f]
