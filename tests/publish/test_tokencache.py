"""Token cache: building, storage, hit rate and drift measurement, the `kopt tokencache` commands."""

import gzip
import json

import pytest
from typer.testing import CliRunner

from kokoro_runtime.frontend import FrontEnd
from kokoro_runtime.lexicon import TokenCache
from kokoro_runtime.textnorm import normalize
from kopt.publish.tokencache import (
    CacheConfig,
    build_cache,
    edit_distance,
    frequent_words,
    hit_stats,
    measure,
    number_words,
)
from tests.runtime.helpers import REPO, VOCAB, FakeG2P, fake_phonemes


def test_frequent_words_are_plain_words():
    words = frequent_words(500)
    assert len(words) == 500 and words[:3] == ["the", "to", "and"]
    assert all(w.replace("'", "").isalpha() and w == w.lower() for w in words)


def test_number_words_cover_what_the_normalizer_says():
    nw = set(number_words())
    said = normalize("On the 21st, 1,234,567 people paid $99.99 (12.5%) at 7:05 p.m. in 1999 and the 1980s; "
                     "the 3rd and 100th of 2008, -40 degrees.")
    words = {w.lower().strip(",.;()") for w in said.split()} - {"on", "the", "people", "paid", "at", "in", "and", "of",
                                                                 "degrees", ""}
    assert words <= nw, words - nw


def test_build_save_load_roundtrip(tmp_path):
    g = FakeG2P()
    cache = build_cache(CacheConfig(words=300, phrases=("Hello there, world", "x")), g2p=g)
    assert len(cache.words) >= 300 and cache.words["the"] == fake_phonemes("the")
    assert "twenty" in cache.words and "thousand" in cache.words
    assert list(cache.phrases) == ["hello there world"]  # one-word phrases are plain words
    p1, p2 = cache.save(tmp_path / "a.json.gz"), cache.save(tmp_path / "b.json.gz")
    assert p1.read_bytes() == p2.read_bytes()  # stable bytes, stable sha256
    back = TokenCache.load(p1)
    assert back.words == cache.words and back.phrases == cache.phrases and back.g2p == "espeak-ng fake"
    data = json.loads(gzip.decompress(p1.read_bytes()))
    assert data["format"] == "kokoro-token-cache" and data["version"] == 1


def test_bad_cache_files(tmp_path):
    from kokoro_runtime.errors import BundleError

    (tmp_path / "x.gz").write_bytes(b"nope")
    with pytest.raises(BundleError, match="not a readable token cache"):
        TokenCache.load(tmp_path / "x.gz")
    (tmp_path / "y.gz").write_bytes(gzip.compress(b'{"format": "other"}'))
    with pytest.raises(BundleError, match="not a Kokoro token cache"):
        TokenCache.load(tmp_path / "y.gz")


def test_hit_stats_and_measure():
    cache = TokenCache(words={w: fake_phonemes(w) for w in "the cat sat on mat".split()})
    st = hit_stats(cache, "The cat sat on the zebra mat. The quokka sat.")
    assert (st.words, st.hits, st.misses) == (10, 8, ["zebra", "quokka"])
    # with the fake G2P, word-level and clause-level agree: no drift
    m = measure(cache, "The cat sat on the zebra mat.", VOCAB, g2p=FakeG2P())
    assert m.edits == 0 and m.ref_symbols > 0 and m.hit_rate == pytest.approx(6 / 7)
    cache.words["cat"] = "kˈæt"  # drift: three symbols differ from what the G2P says
    m = measure(cache, "The cat sat on the mat.", VOCAB, g2p=FakeG2P())
    assert m.edits == 3 and m.differing_clauses == 1 and m.examples[0][0] == "The cat sat on the mat."


def test_edit_distance():
    assert edit_distance([], [1, 2]) == 2
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance(list("kitten"), list("sitting")) == 3


def test_cli_build_dry_run_and_stats(tmp_path):
    from kopt.cli.main import app

    r = CliRunner().invoke(app, ["tokencache", "build", "--words", "100", "-o", str(tmp_path / "c.gz"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "c.gz").exists()
    TokenCache(words={w: fake_phonemes(w) for w in frequent_words(2000)}).save(tmp_path / "c.gz")
    r = CliRunner().invoke(app, ["--json", "tokencache", "stats", str(tmp_path / "c.gz"), "--no-drift"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert 0.5 < out["hit_rate"] < 1.0 and out["words"] > 300



def test_real_espeak_cache_has_weak_forms_and_low_drift():
    from kokoro_runtime import g2p

    if not g2p.available():
        pytest.skip("espeak-ng (phonemizer + espeakng-loader) not installed")
    cache = build_cache(CacheConfig(words=3000))
    assert cache.words["to"] == "tə" and cache.words["a"] == "ə"  # in-sentence forms, not citation forms
    assert cache.g2p.startswith("espeak-ng 1.")
    text = (REPO / "kopt" / "data" / "prose.txt").read_text()
    m = measure(cache, text, VOCAB)
    assert m.hit_rate > 0.9
    assert m.edit_rate < 0.03, m.examples
    fe = FrontEnd(VOCAB, cache)
    assert fe.chunks("The cat sat.")[0].phonemes == "ðə kˈæt sˈæt."
