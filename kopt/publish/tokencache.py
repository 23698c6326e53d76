"""Build and measure the token cache a bundle ships: phonemes for frequent English words, number
words and listed phrases, so the runtime needs no G2P for ordinary text.

Words are phonemized inside a carrier phrase (their in-sentence form: 'to' is tə, 'a' is ə), the
form sentence-level espeak gives them; phrases are phonemized whole. ``measure`` reports how often
ordinary prose hits the cache and how far the cached phonemes drift from sentence-level G2P.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kokoro_runtime import textnorm as _nz
from kokoro_runtime.frontend import FrontEnd
from kokoro_runtime.lexicon import TokenCache
from kokoro_runtime.numbers import cardinal, ordinal, plural_of, year
from kokoro_runtime.text import is_word, split_clauses, split_sentences, tokens
from kokoro_runtime.textnorm import normalize
from kopt.core.errors import KoptError
from kopt.core.progress import NullProgress, Progress
from kopt.publish.settings import DEFAULT_WORDS, CacheConfig

__all__ = ["DEFAULT_WORDS", "CacheConfig", "build_cache", "read_phrases"]

_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")
_BATCH = 2000


def frequent_words(n: int) -> list[str]:
    """The n most frequent plain English words (letters and inner apostrophes) from wordfreq."""
    try:
        from wordfreq import top_n_list
    except ImportError:
        raise KoptError("the token cache needs wordfreq; pip install 'kopt[cache]'") from None
    out: list[str] = []
    for w in top_n_list("en", int(n * 1.1) + 100):
        if _WORD_RE.fullmatch(w):
            out.append(w)
            if len(out) >= n:
                break
    return out


def number_words() -> list[str]:
    """Every word the normalizer uses for numbers, money, times, ordinals and years."""
    texts = [cardinal(n) for n in range(0, 101)] + [ordinal(n) for n in range(0, 101)]
    texts += [cardinal(10**k) for k in (3, 6, 9, 12)] + [ordinal(10**k) for k in (2, 3, 6, 9, 12)]
    texts += [year(1905), year(1900, plural=True), plural_of(cardinal(90))]
    texts += [plural_of(cardinal(n)) for n in range(10, 100, 10)]
    texts += [normalize(s) for s in ("$1.01 $2.02 10% 3:05 p.m. 7:00 a.m. -4 #1 3.5 5 - 6 1st 2nd 3rd",)]
    # every expansion the normalizer's tables can produce: currencies, units, abbreviations
    texts += [w for names in _nz._CURRENCY.values() for w in names] + list(_nz._MAGNITUDE.values())
    texts += [u for u in _nz._UNITS.values()] + [u + "s" for u in _nz._UNITS.values()]
    texts += list(_nz._TITLES.values()) + list(_nz._WORDS.values()) + list(_nz._DOTTED.values())
    words = {w.lower() for t in texts for w in tokens(t) if is_word(w)}
    return sorted(words)


def build_cache(config: CacheConfig = CacheConfig(), g2p=None, progress: Progress | None = None) -> TokenCache:
    """Phonemize the word list, number words and phrases with espeak-ng (``g2p`` for tests)."""
    progress = progress or NullProgress()
    if g2p is None:
        from kokoro_runtime.errors import G2PUnavailable
        from kokoro_runtime.g2p import EspeakG2P

        try:
            g2p = EspeakG2P(config.language)
        except G2PUnavailable as e:
            raise KoptError(f"building a token cache needs espeak-ng: {e}") from None
    words = list(dict.fromkeys(frequent_words(config.words) + number_words() if config.words else number_words()))
    entries: dict[str, str] = {}
    with progress.task("phonemizing words", total=len(words)) as task:
        for i in range(0, len(words), _BATCH):
            batch = words[i:i + _BATCH]
            for w, ps in zip(batch, g2p.phonemize_words(batch)):
                if ps:
                    entries[w] = ps
            task.advance(len(batch))
    phrases = word_pairs(entries, frequent_words(config.pair_words) if config.pair_words else [], g2p, progress)
    keys = []
    for p in config.phrases:
        words_in = [w.lower() for w in tokens(normalize(p)) if is_word(w)]
        if len(words_in) >= 2:
            keys.append(" ".join(words_in))
    if keys:
        phrases.update({k: ps for k, ps in zip(keys, g2p.phonemize(keys)) if ps})
    version = getattr(g2p, "version", "")
    return TokenCache(words=entries, phrases=phrases, language=config.language,
                      g2p=f"espeak-ng {version}".strip())


def word_pairs(entries: dict[str, str], top: list[str], g2p, progress: Progress) -> dict[str, str]:
    """Pairs of frequent words that espeak joins or re-stresses inside a sentence ('of the' is
    ʌvðə, 'did not' is dɪdnˌɑt): kept as two-word phrases when they differ from the two cached
    words side by side. G2Ps without carrier support (tests' stand-ins) add none."""
    carrier = getattr(g2p, "phonemize_in_carrier", None)
    top = [w for w in top if w in entries]
    if carrier is None or not top:
        return {}
    plain = FrontEnd({}, TokenCache(words=entries), g2p=False)
    pairs = [f"{a} {b}" for a in top for b in top]
    out: dict[str, str] = {}
    with progress.task("phonemizing word pairs", total=len(pairs)) as task:
        for i in range(0, len(pairs), _BATCH * 5):
            batch = pairs[i:i + _BATCH * 5]
            for pair, ps, side_by_side in zip(batch, carrier(batch), plain.phonemize_clauses(batch)):
                if ps and ps != side_by_side:
                    out[pair] = ps
            task.advance(len(batch))
    return out


def read_phrases(path: str | Path) -> tuple[str, ...]:
    """One phrase a line; blank lines and lines starting with # are skipped."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise KoptError(f"{p}: cannot read phrase list ({type(e).__name__})") from None
    return tuple(s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#"))


# -- measurement -------------------------------------------------------------------------------
@dataclass
class CacheStats:
    words: int  # word tokens in the normalized text
    hits: int
    misses: list[str] = field(default_factory=list)  # distinct missed words, in order
    clauses: int = 0
    ref_symbols: int = 0  # token ids of sentence-level G2P over all clauses
    edits: int = 0  # token-level edit distance, cached path vs sentence-level G2P
    differing_clauses: int = 0
    examples: list[tuple[str, str, str]] = field(default_factory=list)  # (clause, cached, g2p)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.words if self.words else 1.0

    @property
    def edit_rate(self) -> float:
        return self.edits / self.ref_symbols if self.ref_symbols else 0.0

    def as_dict(self) -> dict:
        return {"words": self.words, "hits": self.hits, "hit_rate": round(self.hit_rate, 4),
                "distinct_misses": len(self.misses), "misses": self.misses[:50], "clauses": self.clauses,
                "differing_clauses": self.differing_clauses, "ref_symbols": self.ref_symbols,
                "edits": self.edits, "edit_rate": round(self.edit_rate, 4)}


def hit_stats(cache: TokenCache, text: str) -> CacheStats:
    """Word-level hit rate after normalization (phrases count each word they cover)."""
    fe = FrontEnd({}, cache, g2p=False)
    stats = CacheStats(words=0, hits=0)
    seen: dict[str, None] = {}
    for sentence in split_sentences(normalize(text)):
        for clause in split_clauses(sentence):
            for tok, ps in fe._from_cache(tokens(clause)):
                if not is_word(tok):
                    continue
                n = len(tok.split())
                stats.words += n
                if ps is None:
                    seen.setdefault(tok, None)
                else:
                    stats.hits += n
    stats.misses = list(seen)
    return stats


def measure(cache: TokenCache, text: str, vocab: dict[str, int], g2p=None, examples: int = 10) -> CacheStats:
    """Hit rate, and the token-level edit distance between the cached path (cache, G2P for the
    misses) and sentence-level G2P of each clause. Needs espeak-ng (or ``g2p``)."""
    stats = hit_stats(cache, text)
    if g2p is None:
        from kokoro_runtime.g2p import EspeakG2P

        g2p = EspeakG2P(cache.language)
    cached = FrontEnd(vocab, cache, g2p)
    plain = FrontEnd(vocab, None, g2p)
    clauses = [c for s in split_sentences(normalize(text)) for c in split_clauses(s)]
    a_ps, b_ps = cached.phonemize_clauses(clauses), plain.phonemize_clauses(clauses)
    stats.clauses = len(clauses)
    for clause, a, b in zip(clauses, a_ps, b_ps):
        ta, tb = cached.ids(a), plain.ids(b)
        d = edit_distance(ta, tb)
        stats.ref_symbols += len(tb)
        stats.edits += d
        if d:
            stats.differing_clauses += 1
            if len(stats.examples) < examples:
                stats.examples.append((clause, a, b))
    return stats


def edit_distance(a: list, b: list) -> int:
    """Levenshtein distance (insert, delete, substitute: cost 1 each)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def audio_agreement(model_path: str | Path, voices, vocab: dict[str, int], cache: TokenCache, text: str,
                    voice: str, threads: int = 1) -> dict:
    """Listening proxy: render each sentence through the cached path and through sentence-level
    G2P with the real model and score the pair with wide-band PESQ (16 kHz). Sentences whose
    tokens are identical render identically and are counted, not scored."""
    import numpy as np
    from pesq import pesq
    from scipy.signal import resample_poly

    from kokoro_runtime import Synthesizer
    from kokoro_runtime.g2p import EspeakG2P

    g2p = EspeakG2P(cache.language)
    a = Synthesizer(model_path, voices, vocab=vocab, token_cache=cache, threads=threads, g2p=g2p)
    b = Synthesizer(model_path, voices, vocab=vocab, token_cache=None, threads=threads, g2p=g2p)
    b.session = a.session  # same model: one session
    sentences = split_sentences(normalize(text))
    scores, same = [], 0
    for s in sentences:
        ca, cb = a.text_to_chunks(s), b.text_to_chunks(s)
        if [c.tokens for c in ca] == [c.tokens for c in cb]:
            same += 1
            continue
        # the cache is English: English whatever the voice's own language
        wa, wb = (x.synthesize(s, voice, first_short=False, lang=cache.language) for x in (a, b))
        ra, rb = (resample_poly(w, 2, 3).astype(np.float32) for w in (wa, wb))
        scores.append(float(pesq(16000, rb, ra, "wb")))
    return {"sentences": len(sentences), "identical": same, "scored": len(scores),
            "pesq_wb_mean": round(float(np.mean(scores)), 3) if scores else None,
            "pesq_wb_min": round(float(np.min(scores)), 3) if scores else None}
