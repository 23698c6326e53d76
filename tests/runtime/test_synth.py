"""The runtime's synthesizer and CLI on the tiny Kokoro-signature graph."""

import ast
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from kokoro_runtime import BundleError, InvalidInput, Synthesizer, VoiceNotFound
from kokoro_runtime.audio import JoinPolicy
from tests.graphs import tiny_kokoro, tiny_kokoro_ort, tiny_voices
from tests.runtime.helpers import REPO, VOCAB, FakeG2P, small_cache

TEXT = "Hello world, this is a test. The cat sat on the mat and the dog ran to the park. It was sunny."


@pytest.fixture
def synth(tmp_path):
    model = tiny_kokoro(tmp_path / "tiny.onnx")
    return Synthesizer(model, tiny_voices(), vocab=VOCAB, token_cache=small_cache(), g2p=FakeG2P(), threads=1)


def test_run_tokens_pads_and_picks_style_row_by_token_count(synth, monkeypatch):
    seen = {}
    real_run = synth.session.run

    def spy(names, feeds, run_options=None):
        seen.update(feeds)
        return real_run(names, feeds, run_options)

    monkeypatch.setattr(synth.session, "run", spy)
    audio = synth.run_tokens([50, 83, 54], "voice_1", speed=1.0)
    assert seen["tokens"].tolist() == [[0, 50, 83, 54, 0]] and seen["tokens"].dtype == np.int64
    np.testing.assert_array_equal(seen["style"], tiny_voices()["voice_1"][3].reshape(1, 256))
    assert seen["speed"].dtype == np.float32
    assert audio.ndim == 1 and audio.dtype == np.float32 and audio.size > 0
    synth.run_tokens([16] * 510, "voice_0")
    np.testing.assert_array_equal(seen["style"], tiny_voices()["voice_0"][509].reshape(1, 256))
    with pytest.raises(InvalidInput, match="tokens: 511 tokens; the model takes at most 510"):
        synth.run_tokens([16] * 511, "voice_0")


def test_int32_speed_and_input_ids_name(tmp_path):
    model = tiny_kokoro(tmp_path / "m.onnx", token_name="input_ids", speed_dtype="int32")
    s = Synthesizer(model, tiny_voices(), vocab=VOCAB, token_cache=small_cache(), g2p=False)
    assert s.synthesize("The cat sat.", "voice_0", speed=1.0).size > 0


def test_stream_equals_synthesize_and_joins_only_touch_edges(synth):
    parts = list(synth.stream(TEXT, "voice_0"))
    whole = synth.synthesize(TEXT, "voice_0")
    assert len(parts) >= 2
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    chunks = synth.text_to_chunks(TEXT, first_short=True)
    fade = int(synth.join.fade_s * 24000)
    for k, (part, chunk) in enumerate(zip(parts, chunks)):
        raw = synth.run_tokens(list(chunk.tokens), "voice_0")
        gap = 0 if k == len(parts) - 1 else int(round(
            (synth.join.sentence_gap_s if chunk.sentence_end else synth.join.clause_gap_s) * 24000))
        body = part[:len(part) - gap]
        assert not part[len(part) - gap:].any()  # the pause after a chunk is silence
        # the body is a trimmed slice of the model's audio; only the faded edges differ
        start = next(i for i in range(raw.size - body.size + 1)
                     if np.array_equal(raw[i + fade:i + body.size - fade], body[fade:-fade]))
        assert start >= 0
        assert abs(body[0]) <= abs(raw[start]) + 1e-7 and abs(body[-1]) < 1e-3 + abs(raw[start + body.size - 1]) * 0.01


def test_first_stream_chunk_is_the_first_clause(synth):
    synth.join = JoinPolicy(trim_db=float("inf"), clause_gap_s=0, sentence_gap_s=0)  # length ~ tokens
    first = next(iter(synth.stream(TEXT, "voice_0")))
    assert synth.text_to_chunks(TEXT, first_short=True)[0].text == "Hello world, this is a test."
    full = synth.synthesize(TEXT, "voice_0", first_short=False)
    assert 0 < first.size < full.size / 3


def test_no_clicks_at_joins(synth):
    parts = list(synth.stream(TEXT, "voice_0"))
    for part in parts:
        body = np.trim_zeros(part, "b") if part is not parts[-1] else part
        # each chunk starts and ends at zero (raised-cosine fades), so no step at any join
        assert part[0] == 0 and abs(body[-1]) < 1e-3 * np.abs(part).max()
    synth.join = JoinPolicy(fade_s=0.0, clause_gap_s=0.0, sentence_gap_s=0.0)
    raw_edges = [p[0] for p in synth.stream(TEXT, "voice_0")]
    assert any(e != 0 for e in raw_edges)  # without fades the edges are not zero: the test can fail


def test_voices_names_blend_and_errors(synth):
    assert synth.voices == ["voice_0", "voice_1"]
    a = synth.synthesize("The cat sat.", "voice_0:0.5,voice_1:0.5")
    assert np.isfinite(a).all()
    with pytest.raises(VoiceNotFound, match="unknown voice 'nobody'.*voice_0, voice_1"):
        synth.synthesize("The cat sat.", "nobody")
    with pytest.raises(VoiceNotFound, match="unknown voice 'ghost'"):
        synth.synthesize("The cat sat.", "voice_0:0.5,ghost:0.5")


def test_voices_from_npz_and_bad_voice(tmp_path):
    model = tiny_kokoro(tmp_path / "m.onnx")
    np.savez(tmp_path / "v.npz", good=tiny_voices()["voice_0"])
    assert Synthesizer(model, tmp_path / "v.npz", vocab=VOCAB).voices == ["good"]
    np.savez(tmp_path / "bad.npz", bad=np.zeros((10, 256), np.float32))
    with pytest.raises(BundleError, match="voice 'bad' has shape"):
        Synthesizer(model, tmp_path / "bad.npz", vocab=VOCAB)


def test_missing_model_and_vocab(tmp_path):
    with pytest.raises(BundleError, match="model file not found"):
        Synthesizer(tmp_path / "none.onnx", tiny_voices(), vocab=VOCAB)
    model = tiny_kokoro(tmp_path / "m.onnx")
    with pytest.raises(BundleError, match="no vocab given and no vocab.json"):
        Synthesizer(model, tiny_voices())


def test_ort_format_and_no_graph_optimization(tmp_path):
    model, _ = tiny_kokoro_ort(tmp_path)
    ref = Synthesizer(model, tiny_voices(), vocab=VOCAB, token_cache=small_cache(), g2p=False)
    s = Synthesizer(tmp_path / "m.ort", tiny_voices(), vocab=VOCAB, token_cache=small_cache(), g2p=False,
                    graph_optimization=False, providers=["CPUExecutionProvider"], threads=1)
    assert s.providers == ["CPUExecutionProvider"]
    np.testing.assert_allclose(s.synthesize("The cat sat.", "voice_0"), ref.synthesize("The cat sat.", "voice_0"),
                               atol=1e-5)


RUNTIME = REPO / "kokoro_runtime"
# the core, and the G2P extras it imports on use (g2p: phonemizer, espeakng-loader; ja: pyopenjtalk-plus, misaki;
# zh: misaki, jieba)
_CORE = set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "phonemizer", "espeakng_loader", "pyopenjtalk", "misaki",
                                         "jieba"}
_SERVE = _CORE | {"starlette", "uvicorn", "soundfile", "prometheus_client", "wyoming"}  # serve and wyoming extras


def _imports(f: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            out.add((node.module or "").split(".")[0])
    return out


def test_runtime_imports_only_itself_numpy_and_onnxruntime():
    core = sorted(RUNTIME.glob("*.py"))
    serve = sorted((RUNTIME / "server").glob("*.py"))
    assert len(core) >= 12 and len(serve) >= 5, (core, serve)
    for f in core:
        assert not _imports(f) - _CORE, f"{f.name} imports {_imports(f) - _CORE}"
    for f in serve:
        assert not _imports(f) - _SERVE, f"server/{f.name} imports {_imports(f) - _SERVE}"
    assert "kopt" not in {i for f in core + serve for i in _imports(f)}


def test_say_path_imports_neither_numpy_nor_onnxruntime(tmp_path):
    """`python -m kokoro_runtime say/status` start fast: the package's names load on first use."""
    code = ("import sys; from kokoro_runtime.__main__ import main; rc = main(['status', '--bundle', sys.argv[1]]); "
            "print(rc, 'numpy' in sys.modules, 'onnxruntime' in sys.modules)")
    from kopt.publish.bundle import write_bundle

    b = write_bundle(tmp_path / "bundle", tiny_kokoro(tmp_path / "tiny.onnx"), tiny_voices(), VOCAB, small_cache())
    r = subprocess.run([sys.executable, "-c", code, str(b)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-3:] == ["3", "False", "False"], r.stdout


def test_cli_writes_wav_and_pcm(tmp_path):
    from kopt.publish.bundle import write_bundle

    model = tiny_kokoro(tmp_path / "tiny.onnx")
    b = write_bundle(tmp_path / "bundle", model, tiny_voices(), VOCAB, small_cache())
    run = lambda *args: subprocess.run([sys.executable, "-m", "kokoro_runtime", *args], cwd=b,  # noqa: E731
                                       capture_output=True, timeout=120)
    r = run("The cat sat on the mat.", "--voice", "voice_1", "-o", str(tmp_path / "out.wav"), "--threads", "1")
    assert r.returncode == 0, r.stderr.decode()
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2) and w.getnframes() > 0
        frames = w.getnframes()
    r = run("The cat sat on the mat.", "--voice", "voice_1", "-o", "-")
    assert r.returncode == 0 and len(r.stdout) == 2 * frames
    r = run("--list-voices")
    assert r.stdout.decode().splitlines() == ["voice_0\ten-us", "voice_1\ten-us"]  # name, then its language
    r = run("The cat sat.", "--voice", "nobody")
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1 and "unknown voice 'nobody'" in r.stderr.decode()


def test_cli_bad_inputs_are_one_line_errors_without_output(tmp_path):
    """What a new user tries: speed 0, NaN, 1e9; a provider this build lacks; nothing to speak."""
    from kopt.publish.bundle import write_bundle

    b = write_bundle(tmp_path / "bundle", tiny_kokoro(tmp_path / "tiny.onnx"), tiny_voices(), VOCAB, small_cache())
    out = tmp_path / "out.wav"
    cases = ((["--speed", "0"], 2, "--speed: 0 is out of range"),
             (["--speed", "nan"], 2, "--speed: nan is out of range"),
             (["--speed", "1e9"], 2, "out of range; use a number from 0.25 to 4.0"),
             (["--provider", "NoSuchProvider"], 1, "NoSuchProvider is not in this onnxruntime build"),
             (["--threads", "-1"], 1, "--threads: -1"),
             (["--voice", "voice_0(2)+nobody(1)"], 1, "unknown voice 'nobody'"))
    for args, code, needle in cases:
        r = subprocess.run([sys.executable, "-m", "kokoro_runtime", "The cat sat.", "-o", str(out), *args], cwd=b,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == code and needle in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
        assert not out.exists()
    r = subprocess.run([sys.executable, "-m", "kokoro_runtime", "~~~", "-o", "-"], cwd=b, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and "nothing to speak" in r.stderr and r.stdout == ""
    r = subprocess.run([sys.executable, "-m", "kokoro_runtime", "The cat sat.", "-o", str(out), "--provider",
                        "NoSuchProvider", "--fallback"], cwd=b, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and out.stat().st_size > 44     # asked for a fallback: CPU, and a warning
