"""The runtime on the real Kokoro model (slow): a paragraph with numbers and abbreviations,
spoken from a kopt-written bundle through the token cache, and the cached vs G2P paths."""

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
    from kopt.publish.bundle import write_bundle
    from kopt.publish.tokencache import CacheConfig, build_cache
    from kopt.source.vocab import default_vocab
    from kopt.source.voices import load_voices

    _, base, _ = real_store
    cache = build_cache(CacheConfig(words=20_000))
    voices = load_voices(base.file("voices.npz"))
    return write_bundle(tmp_path_factory.mktemp("rt") / "bundle", base.file("model.onnx"), voices,
                        default_vocab(), cache, {"default_voice": "jf_alpha"})


def test_paragraph_from_the_cache_alone(bundle):
    from kokoro_runtime import load

    tts = load(bundle, threads=1, g2p=False)  # no G2P: every word must come from the cache
    chunks = tts.text_to_chunks(PARAGRAPH, first_short=True)
    assert all(len(c.tokens) <= 510 for c in chunks) and len(chunks) >= 2
    parts = list(tts.stream(PARAGRAPH, "jf_alpha"))
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
    a = cached.text_to_chunks(PARAGRAPH)
    b = plain.text_to_chunks(PARAGRAPH)
    ta = [t for c in a for t in c.tokens]
    tb = [t for c in b for t in c.tokens]
    assert edit_distance(ta, tb) <= 0.03 * len(tb), (" ".join(c.phonemes for c in a), " ".join(c.phonemes for c in b))
    sentence = "It said the old bridge carried twelve thousand cars a day."
    wa = cached.synthesize(sentence, "jf_alpha")
    wb = plain.synthesize(sentence, "jf_alpha")
    assert abs(wa.size - wb.size) <= 0.05 * wb.size
