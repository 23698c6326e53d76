"""Publishing a tiny model: the bundle's files, manifest, lineage, licences, tarball, and that it speaks."""

import subprocess
import sys
import tarfile

import numpy as np
import pytest

from kopt.core.passes import get_pass, make_config
from kopt.core.runner import Runner, resolve_input
from kopt.publish.publish import Figures, Release, publish
from kopt.publish.settings import PublishSettings
from kopt.source.fetch import fetch
from kopt.source.reference import reference


@pytest.fixture
def tiny_store(store, tiny_model, tiny_voices_file):
    base = fetch(store, model=tiny_model, voices=tiny_voices_file).artifact
    reference(store, base)
    return store, base


def test_publish_bundle_manifest_lineage_and_speech(tmp_path, tiny_store):
    store, base = tiny_store
    cls = get_pass("fold")
    _, out = Runner(store).step(cls(make_config(cls, {})), resolve_input(store, "reference"), label="t")
    settings = PublishSettings(cache_words=300, blends={"mix": "voice_0:0.5,voice_1:0.5"}, default_voice="mix")
    res = publish(store, out.key, tmp_path / "bundle", settings,
                  figures=Figures({"rtf_median": 0.1}, measured_on={"cpu": "x", "cores": 2, "id": "m1"}))
    b = res.bundle
    m = res.manifest
    for f in ("model.onnx", "voices.npz", "vocab.json", "README.md", "LICENSES/LICENSE-Apache-2.0.txt",
              "LICENSES/LICENSE-kokoro-onnx-MIT.txt", "kokoro_runtime/__main__.py"):
        assert (b / f).is_file(), f
        assert f in m["files"]
    assert m["variant"]["key"] == out.key
    assert m["base_model_sha256"] == base.sha256("model.onnx")
    steps = [s["step"] for s in m["lineage"]]
    assert steps == ["pass:fold@1", "fetch"]  # fold <- (fp32 base is its own reference) fetch
    assert m["metrics"] == {"rtf_median": 0.1} and m["measured_on"]["id"] == "m1"
    assert m["recommended"]["provider"] == "cpu" and m["default_voice"] == "mix"
    with np.load(b / "voices.npz") as z:
        assert sorted(z.files) == ["mix", "voice_0", "voice_1"]
    assert "Apache License" in (b / "LICENSES/LICENSE-Apache-2.0.txt").read_text()
    assert "`pass:fold@1`" not in (b / "README.md").read_text() and out.key in (b / "README.md").read_text()
    with tarfile.open(res.tarball) as tf:
        names = tf.getnames()
    assert "bundle/manifest.json" in names and "bundle/model.onnx" in names
    assert m["token_cache"] == "token_cache.json.gz"
    # the runtime speaks from the bundle in a fresh process
    wav = tmp_path / "out.wav"
    r = subprocess.run([sys.executable, "-m", "kokoro_runtime", "It is time to go home.", "-o", str(wav)],
                       cwd=b, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert wav.stat().st_size > 1000


def test_tampered_bundle_is_refused(tmp_path, tiny_store):
    store, _ = tiny_store
    res = publish(store, "reference", tmp_path / "b", PublishSettings(cache_words=0, tarball=False))
    data = bytearray((res.bundle / "voices.npz").read_bytes())
    data[-10] ^= 0xFF
    (res.bundle / "voices.npz").write_bytes(bytes(data))
    r = subprocess.run([sys.executable, "-m", "kokoro_runtime", "--list-voices"],
                       cwd=res.bundle, capture_output=True, text=True)
    assert r.returncode != 0
    assert "voices.npz" in r.stderr


def test_publish_bad_voice_names(tmp_path, tiny_store):
    from kopt.core.errors import KoptError

    store, _ = tiny_store
    with pytest.raises(KoptError, match="publish.voices: unknown voice"):
        publish(store, "reference", tmp_path / "b", PublishSettings(cache_words=0, voices=("nope",)))
    assert not (tmp_path / "b").exists()


def test_bundle_bench_measures_cold_start_and_warm_ttfa(tmp_path, tiny_store, monkeypatch):
    from kopt.core.errors import KoptError
    from kopt.publish.measure import measure_bundle
    from kopt.publish.settings import BundleBenchSettings

    store, _ = tiny_store
    res = publish(store, "reference", tmp_path / "b", PublishSettings(cache_words=300, tarball=False))
    monkeypatch.chdir(tmp_path)  # a relative bundle path, as `kopt build` passes with the default artifacts/
    from kokoro_runtime import ja

    others = {"ja": "今日はいい天気ですね。"} if ja.available() else {}
    m = measure_bundle("b", "It is time to go home. We will be back in a day.", threads=1,
                       settings=BundleBenchSettings(repeats=2, clients=(1, 2), instances=(1, 2)),
                       load_texts=["It is time.", "We will be back in a day."], other_languages=others)
    assert m["cold_start_s"] > 0 and len(m["cold_start_s_runs"]) == 2
    assert m["warm_ttfa_ms"] > 0 and m["first_chunk_audio_s"] > 0 and m["text_words"] == 13
    assert m["cold_start_s"] * 1000 > m["warm_ttfa_ms"]  # a new process pays for start-up and loading
    bd = m["cold_breakdown_s"]
    from kopt.publish.coldstart import ONESHOT_PHASES

    assert set(bd) == {*ONESHOT_PHASES, "session", "total"}
    assert 0 < sum(bd[k] for k in ONESHOT_PHASES) <= bd["total"] * 1.05   # the steps add up to the start
    assert bd["session"] > 0 and bd["session_wait"] <= bd["session"] + 0.01   # it waited for at most the session
    # the server over HTTP, its load runs (every request answered) and the say client
    assert m["http_ttfa_ms"] > 0 and m["http_latency_ms"] >= m["http_ttfa_ms"] and m["server_rss_mb"] > 0
    assert [(r["clients"], r["instances"]) for r in m["load"]] == [(1, 1), (2, 1), (1, 2), (2, 2)]
    assert all(r["ok"] == r["requests"] and r["errors"] == 0 and r["throughput_x"] > 0 for r in m["load"])
    assert m["say_warm_ms"] > 0 and m["say_cold_ms"] > m["say_warm_ms"]   # a cold say starts the daemon
    assert m["say_cached_ms"] > 0 and m["cold_start_first_s"] > 0
    # every language measured, with the same voice; the figures flat in the record's metrics
    from kopt.publish.measure import bundle_metrics

    assert m["language"] == "en-us" and set(m["languages"]) == {"en-us", *others}
    flat = bundle_metrics(m)
    for code, f in m["languages"].items():
        assert f["warm_ttfa_ms"] > 0 and f["frontend_ms"] > 0 and f["http_ttfa_ms"] > 0 and f["first_chunk_audio_s"] > 0
        assert flat[f"http_ttfa_ms_{code}"] == f["http_ttfa_ms"]
        assert f["http_ttfa_ms_per_audio_s"] == round(f["http_ttfa_ms"] / f["first_chunk_audio_s"], 1)
    if others:  # TTFA compared per second of first-chunk audio, beside English's
        en, ja_ = m["languages"]["en-us"], m["languages"]["ja"]
        assert ja_["http_ttfa_vs_english"] == round(ja_["http_ttfa_ms_per_audio_s"] / en["http_ttfa_ms_per_audio_s"], 3)
        assert flat["http_ttfa_vs_english_ja"] == ja_["http_ttfa_vs_english"]
        assert "http_ttfa_vs_english" not in en
    (res.bundle / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(KoptError, match=r"the bundle's runtime failed: .*model\.onnx"):
        measure_bundle(res.bundle, "It is time.", settings=BundleBenchSettings(repeats=1))


def test_publish_modes_word_timings_and_names(tmp_path, store, tiny_voices_file):
    import onnx
    import onnxruntime as ort

    import kokoro_runtime
    from kokoro_runtime import load
    from tests.graphs import duration_kokoro_model

    model = tmp_path / "dur.onnx"
    onnx.save(duration_kokoro_model(), str(model))
    base = fetch(store, model=model, voices=tiny_voices_file).artifact
    ref_key = reference(store, base).artifact.key
    cls = get_pass("fold")
    _, folded = Runner(store).step(cls(make_config(cls, {})), resolve_input(store, "reference"), label="t")
    settings = PublishSettings(cache_words=0, tarball=False, modes={"fast": "folded", "quality": "reference"})
    res = publish(store, Release(folded.key, name="folded",
                                 modes={"fast": ("folded", folded.key), "quality": ("reference", ref_key)}),
                  tmp_path / "b", settings)
    m = res.manifest
    assert m["variant"]["name"] == "folded" and m["variant"]["key"] == folded.key
    assert m["variant"]["precision"] == "fp32" and m["variant"]["timings"] == "duration"
    assert m["runtime_version"] == kokoro_runtime.__version__
    assert m["default_mode"] == "fast" and m["modes"]["quality"]["model"] == "modes/quality.onnx"
    assert m["modes"]["quality"]["variant"]["name"] == "reference" and "modes/quality.onnx" in m["files"]
    sess = ort.InferenceSession(str(res.bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["audio", "duration"]     # what kokoro-onnx reads
    for mode in ("fast", "quality"):
        tts = load(res.bundle, mode=mode)            # no token cache here: espeak-ng (the g2p extra)
        rendered = list(tts.render("The cat sat on the mat.", "voice_0"))
        words = [w for r in rendered for w in r.words]     # espeak may join words ("sat on"): all, in order
        assert tts.has_durations and " ".join(w.word for w in words).split() == "The cat sat on the mat".split()
        assert all(b.start >= a.end - 1e-3 for a, b in zip(words, words[1:]))
    # a published variant that no mode names still ships, as mode "default"
    res = publish(store, Release(folded.key, name="folded", modes={"quality": ("reference", ref_key)}),
                  tmp_path / "c", PublishSettings(cache_words=0, tarball=False, modes={"quality": "reference"}))
    assert res.manifest["default_mode"] == "default" and set(res.manifest["modes"]) == {"default", "quality"}
    assert res.manifest["modes"]["default"]["variant"]["name"] == "folded"
