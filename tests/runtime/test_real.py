"""The runtime on the real Kokoro model (slow): a paragraph with numbers and abbreviations,
spoken from a kopt-written bundle through the token cache, and the cached vs G2P paths (English,
asked for with lang: the embedded voices are Japanese); Japanese in the voices' own language
through the library, the one-shot command and say."""

import numpy as np
import pytest

from kokoro_runtime import g2p as g2p_mod

pytestmark = pytest.mark.slow

PARAGRAPH = ("Dr. Lee's report arrived on Tuesday, March 3rd, 2024. It said the old bridge carried 12,000 cars "
             "a day since 1987, and repairs would cost about $4.5 million. The council voted to close it for "
             "3 months, e.g. until the 1st of June.")


@pytest.fixture(scope="module")
def bundle(real_store, tmp_path_factory):
    if not g2p_mod.available():
        pytest.skip("espeak-ng (phonemizer + espeakng-loader) is needed to build the token cache")
    from kopt.core.vocab import default_vocab
    from kopt.publish.bundle import write_bundle
    from kopt.publish.tokencache import CacheConfig, build_cache
    from kopt.source.fetch import load_base_voices

    _, base, _ = real_store
    cache = build_cache(CacheConfig(words=20_000))
    voices = load_base_voices(base)
    return write_bundle(tmp_path_factory.mktemp("rt") / "bundle", base.file("model.onnx"), voices,
                        default_vocab(), cache, {"default_voice": "jf_alpha"})


def test_paragraph_from_the_cache_alone(bundle):
    from kokoro_runtime import load

    tts = load(bundle, threads=1, g2p=False)  # no G2P: every word must come from the cache
    chunks = tts.text_to_chunks(PARAGRAPH, first_short=True)
    assert all(len(c.tokens) <= 510 for c in chunks) and len(chunks) >= 2
    parts = list(tts.stream(PARAGRAPH, "jf_alpha", lang="en-us"))
    audio = np.concatenate(parts)
    words = sum(len(c.text.split()) for c in chunks)
    seconds = audio.size / 24000
    assert 0.2 * words < seconds < 0.7 * words, (seconds, words)  # a plausible speaking rate
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() < 0.999 and np.mean(np.abs(audio) > 0.98) == 0  # no clipping
    assert np.sqrt(np.mean(audio ** 2)) > 0.01  # not silence
    assert parts[0].size < audio.size / 3  # the first chunk is short: first audio comes early


def test_cached_and_g2p_paths_agree(bundle):
    from kokoro_runtime import load
    from kokoro_runtime.synth import Synthesizer
    from kopt.publish.tokencache import edit_distance

    cached = load(bundle, threads=1)
    plain = Synthesizer(cached.model_path, bundle / "voices.npz", vocab=cached.vocab, token_cache=None, threads=1)
    a = cached.text_to_chunks(PARAGRAPH, lang="en-us")
    b = plain.text_to_chunks(PARAGRAPH, lang="en-us")
    ta = [t for c in a for t in c.tokens]
    tb = [t for c in b for t in c.tokens]
    assert edit_distance(ta, tb) <= 0.03 * len(tb), (" ".join(c.phonemes for c in a), " ".join(c.phonemes for c in b))
    sentence = "It said the old bridge carried twelve thousand cars a day."
    wa = cached.synthesize(sentence, "jf_alpha", lang="en-us")
    wb = plain.synthesize(sentence, "jf_alpha", lang="en-us")
    assert abs(wa.size - wb.size) <= 0.05 * wb.size


JAPANESE = "今日はいい天気ですね。駅前の新しいカフェで、午後3時に友達と会う約束をしました。"


def _plausible(audio: np.ndarray, chars: int) -> None:
    seconds = audio.size / 24000
    assert 0.06 * chars < seconds < 0.3 * chars, (seconds, chars)   # Japanese: about 7-9 morae a second
    assert np.isfinite(audio).all() and np.sqrt(np.mean(audio ** 2)) > 0.01


def test_japanese_through_the_library(bundle):
    from kokoro_runtime import ja, load

    if not ja.available():
        pytest.skip("the ja extra (pyopenjtalk-plus, misaki) is not installed")
    tts = load(bundle, threads=2)
    chunks = tts.text_to_chunks(JAPANESE, True, tts.language_of("jf_alpha"))
    assert [c.lang for c in chunks] == ["ja"] * len(chunks) and len(chunks) >= 2
    assert "ɡoɡo saɲʥi" in " ".join(c.phonemes for c in chunks)          # 午後3時: ごごさんじ
    rendered = list(tts.render(JAPANESE, "jf_alpha"))
    audio = np.concatenate([r.audio for r in rendered])
    _plausible(audio, len(JAPANESE))
    assert np.array_equal(audio, tts.synthesize(JAPANESE, "jf_alpha"))
    if tts.has_durations:      # word timestamps come in the same shape as English ones
        words = [w for r in rendered for w in r.words]
        assert words and words[0].word == "今日" and all(w.end >= w.start for w in words)


def test_japanese_through_the_command_and_say(bundle, tmp_path):
    import subprocess
    import sys
    import wave

    from kokoro_runtime import ja

    if not ja.available():
        pytest.skip("the ja extra (pyopenjtalk-plus, misaki) is not installed")
    env = {**__import__("os").environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "kokoro_runtime", "今日はいい天気ですね。", "--phonemes"], cwd=bundle,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "kʲoː βa ii teŋkʲi desɨ ne.", r.stderr
    for args in (["-o", str(tmp_path / "one.wav")], ["say", "-o", str(tmp_path / "say.wav")]):
        cmd = [sys.executable, "-m", "kokoro_runtime"] + (args[:1] if args[0] == "say" else []) + [JAPANESE] + \
            (args[1:] if args[0] == "say" else args)
        r = subprocess.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr
    subprocess.run([sys.executable, "-m", "kokoro_runtime", "stop"], cwd=bundle, env=env, capture_output=True,
                   timeout=60)
    for name in ("one.wav", "say.wav"):
        with wave.open(str(tmp_path / name)) as w:
            assert w.getframerate() == 24000
            audio = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
        _plausible(audio, len(JAPANESE))
