"""Text -> chunks of Kokoro token ids: normalize, split, phonemize (token cache first, G2P for
misses), map symbols to ids, and pack clauses into chunks the model accepts (<= 510 tokens).

One FrontEnd reads one language (kokoro_runtime.lang): its normalizer, sentence and clause
splitting, G2P and word segmentation are that language's; the chunk packing is shared."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from . import lang as _lang
from .errors import G2PUnavailable, InvalidInput
from .lexicon import TokenCache
from .text import is_word, join_phonemes, split_clauses, split_sentences, tokens
from .textnorm import normalize

MAX_TOKENS = 510
_VOWEL_START = re.compile(r"^[ˈˌ]?[aeiouæɑɐɒɔəɚɛɜɪʊʌAIOWYᵊ]")


class G2P(Protocol):
    def phonemize(self, texts: list[str]) -> list[str]: ...
    def phonemize_words(self, words: list[str]) -> list[str]: ...


@dataclass(frozen=True)
class Chunk:
    text: str
    phonemes: str
    tokens: tuple[int, ...]
    sentence_end: bool
    lang: str = _lang.DEFAULT_LANGUAGE

    @property
    def speaks(self) -> bool:
        """Whether the chunk has a sound to make: a phoneme letter, not punctuation alone ('...' is
        one token that the model renders as a second of noise)."""
        return any(c.isalpha() for c in self.phonemes)


@dataclass(frozen=True)
class ChunkPolicy:
    """first_*: the first chunk when streaming (a clause, cut at a word boundary when longer than
    first_max_tokens: time to first audio grows with the first chunk, ~17 tokens per second of
    speech); target: later chunks pack whole sentences up to this many tokens (better prosody);
    max: the model's limit. growth: when streaming, chunk k after the first packs at most
    first_max_tokens * growth**k tokens (up to target), splitting long sentences at clauses, so
    each chunk renders while the audio before it plays (at a real-time factor below 1/growth)
    instead of a full-size second chunk leaving a silence after the short first one."""
    first_min_tokens: int = 16
    first_max_tokens: int = 32
    target_tokens: int = 300
    max_tokens: int = MAX_TOKENS
    growth: float = 2.0


@dataclass
class _Clause:
    text: str
    phonemes: str
    tokens: list[int]
    sentence_end: bool


class FrontEnd:
    """``cache`` may be None (every clause goes to G2P, whole-clause context) and is used only by a
    language that reads it (English); ``g2p`` is an object with phonemize/phonemize_words, None to
    create the language's G2P lazily when needed, or False for none. ``lang``: a code or Language."""

    def __init__(self, vocab: dict[str, int], cache: TokenCache | None = None, g2p: G2P | None | bool = None,
                 policy: ChunkPolicy = ChunkPolicy(), lang: "str | _lang.Language" = _lang.DEFAULT_LANGUAGE) -> None:
        self.vocab = vocab
        self.lang = _lang.get(lang) if isinstance(lang, str) else lang
        self.cache = cache if self.lang.token_cache else None
        self._g2p = g2p
        self.policy = policy
        self.sep = " " if self.lang.g2p == "espeak" else ""    # between clauses of the text (none in Japanese)

    # -- G2P ----------------------------------------------------------------------------------
    def g2p(self, missing: list[str] | None = None) -> G2P:
        if self._g2p is None:
            from . import g2p as g2p_mod

            # G2PUnavailable from make_g2p names the extra to install
            self._g2p = _lang.make_g2p(self.lang) if self.lang.g2p != "espeak" or g2p_mod.available() else False
        if self._g2p is False:
            words = ", ".join(dict.fromkeys(missing or []))
            what = f"words not in the token cache: {words}" if missing else "text needs G2P"
            raise G2PUnavailable(f"{what}; install the G2P extra (pip install phonemizer espeakng-loader) "
                                 "or rephrase")
        return self._g2p  # type: ignore[return-value]

    def ids(self, phonemes: str) -> list[int]:
        v = self.vocab
        return [v[c] for c in phonemes if c in v]

    # -- phonemes -----------------------------------------------------------------------------
    def phonemize_clauses(self, clauses: list[str]) -> list[str]:
        if self.cache is None:
            return self.g2p().phonemize(clauses)
        toks = [tokens(c) for c in clauses]
        resolved = [self._from_cache(t) for t in toks]
        missing = [w for r in resolved for w, ps in r if ps is None and is_word(w)]
        if missing:
            uniq = list(dict.fromkeys(missing))
            found = dict(zip(uniq, self.g2p(uniq).phonemize_words(uniq)))
            resolved = [[(w, found[w] if ps is None and is_word(w) else ps) for w, ps in r] for r in resolved]
        return [join_phonemes(_the_before_vowel(r)) for r in resolved]

    def _from_cache(self, toks: list[str]) -> list[tuple[str, str | None]]:
        cache = self.cache
        assert cache is not None
        out: list[tuple[str, str | None]] = []
        i = 0
        while i < len(toks):
            tok = toks[i]
            if not is_word(tok):
                out.append((tok, tok))
                i += 1
                continue
            n = cache.max_phrase_words
            hit = None
            while n > 1 and hit is None:
                span = toks[i:i + n]
                if len(span) == n and all(is_word(t) for t in span):
                    hit = cache.phrase(span)
                    if hit is not None:
                        out.append((" ".join(span), hit))
                        i += n
                        break
                n -= 1
            if hit is None:
                out.append((tok, cache.lookup(tok)))
                i += 1
        return out

    def words(self, text: str) -> list[str]:
        """The words of ``text`` a timestamp names, in order."""
        if self.lang.g2p in ("ja", "zh"):
            return self.g2p().words(text)  # type: ignore[attr-defined]
        return [t for t in tokens(text) if is_word(t)]

    # -- chunks -------------------------------------------------------------------------------
    def sentences(self, text: str) -> list[list[str]]:
        """The text normalized, as sentences of clauses, by this language's rules."""
        if self.lang.g2p in ("ja", "zh"):     # CJK punctuation, no spaces between sentences
            from . import ja, zh

            norm = ja.normalize if self.lang.g2p == "ja" else zh.normalize
            return [ja.split_clauses(s) for s in ja.split_sentences(norm(text))]
        if not self.lang.english:          # espeak reads numbers and symbols in its own language
            text = unicodedata.normalize("NFC", text).replace("।", ". ")
            return [split_clauses(s) for s in split_sentences(re.sub(r"[ \t\r\f\v]+", " ", text).strip())]
        return [split_clauses(s) for s in split_sentences(normalize(text))]

    def clauses(self, text: str) -> list[_Clause]:
        if not isinstance(text, str):
            raise InvalidInput("text", f"expected a string, got {type(text).__name__}")
        _lang.check_script(text, self.lang)
        items: list[tuple[str, bool]] = []
        for cl in self.sentences(text):
            items += [(c, i == len(cl) - 1) for i, c in enumerate(cl)]
        phs = self.phonemize_clauses([c for c, _ in items])
        out = []
        for (c, end), ps in zip(items, phs):
            ids = self.ids(ps)
            if not ids:
                continue
            for piece_ps, piece_text in _split_long(ps, c, self.policy.max_tokens, self.ids):
                out.append(_Clause(piece_text, piece_ps, self.ids(piece_ps), end))
            if out:
                out[-1].sentence_end = end
        return out

    def chunks(self, text: str, first_short: bool = False) -> list[Chunk]:
        cl = self.clauses(text)
        pol = self.policy
        groups: list[list[_Clause]] = []
        i = 0
        if first_short and cl:
            first = [cl[0]]
            i = 1
            while (i < len(cl) and not first[-1].sentence_end and _count(first) < pol.first_min_tokens
                   and _count(first) + len(cl[i].tokens) + 1 <= pol.max_tokens):
                first.append(cl[i])
                i += 1
            if _count(first) > pol.first_max_tokens and len(first) == 1:
                head, tail = _split_words(first[0], pol.first_max_tokens, self.ids, self.lang, self.sep)
                groups.append([head])
                cl.insert(i, tail)
            else:
                groups.append(first)
        # later chunks: whole sentences up to the budget (growing from the first chunk's size when
        # streaming, up to target), clauses when a sentence alone is over it
        def budget(k: int) -> int:
            if not first_short or pol.growth <= 1:
                return pol.target_tokens
            return int(min(pol.target_tokens, pol.first_max_tokens * pol.growth ** k))

        cur: list[_Clause] = []
        sentence: list[_Clause] = []
        for c in cl[i:]:
            sentence.append(c)
            if not c.sentence_end:
                continue
            cur = _add_sentence(groups, cur, sentence, pol, budget)
            sentence = []
        if sentence:
            cur = _add_sentence(groups, cur, sentence, pol, budget)
        if cur:
            groups.append(cur)
        out = [_merge(g, self.ids, self.sep, self.lang.code) for g in groups]
        return out if any(c.speaks for c in out) else []    # punctuation alone: nothing to speak


def _count(clauses: list[_Clause]) -> int:
    return sum(len(c.tokens) for c in clauses) + max(0, len(clauses) - 1)  # a space between clauses


def _add_sentence(groups: list[list[_Clause]], cur: list[_Clause], sentence: list[_Clause],
                  pol: ChunkPolicy, budget) -> list[_Clause]:
    """Add a sentence to the chunk being packed (``cur``) or start a new one; ``budget(k)`` is the
    most tokens chunk k may hold."""
    if cur and _count(cur + sentence) > budget(len(groups)):
        groups.append(cur)
        cur = []
    limit = budget(len(groups))
    if _count(cur + sentence) <= limit:
        return cur + sentence
    if not cur and _count(sentence) <= pol.max_tokens and (limit >= pol.target_tokens or len(sentence) == 1):
        return sentence     # a whole sentence over the target but within the model's limit: one chunk
    # a sentence longer than the chunk may be: clauses packed up to the budget (the model's limit at most)
    for c in sentence:
        if cur and _count(cur + [c]) > min(pol.max_tokens, max(budget(len(groups)), 1)):
            groups.append(cur)
            cur = []
        cur.append(c)
    return cur


def _merge(group: list[_Clause], ids, sep: str = " ", lang: str = _lang.DEFAULT_LANGUAGE) -> Chunk:
    ps = " ".join(c.phonemes for c in group)
    return Chunk(sep.join(c.text for c in group), ps, tuple(ids(ps)), group[-1].sentence_end, lang)


def _split_long(ps: str, text: str, limit: int, ids) -> list[tuple[str, str]]:
    """A clause over the model's limit is cut at word boundaries (phoneme words)."""
    if len(ids(ps)) <= limit:
        return [(ps, text)]
    out, cur = [], ""
    for w in ps.split(" "):
        cand = f"{cur} {w}" if cur else w
        if cur and len(ids(cand)) > limit:
            out.append(cur)
            cur = w
        else:
            cur = cand
    if cur:
        out.append(cur)
    pieces = []
    for p in out:
        while len(ids(p)) > limit:  # a single 'word' over the limit: cut it
            pieces.append((p[:limit], text))
            p = p[limit:]
        pieces.append((p, text))
    return pieces


# Phoneme words (stress marks removed) a phrase should not end on: articles, prepositions,
# conjunctions, auxiliaries. Cutting "opens at nine | in the morning" sounds natural; "in the |" does not.
_FUNCTION_PH = {
    "ðə", "ðɪ", "ɐ", "ə", "æn", "ən", "ɪn", "ɪnðə", "ɪnðɪ", "æt", "ætðə", "ʌv", "əv", "ʌvðə", "əvðə", "tə", "tʊ",
    "tu", "ænd", "ɔɹ", "ɔːɹ", "fɔɹ", "fɔːɹ", "ɔn", "ɑn", "ɔnðə", "wɪð", "baɪ", "fɹʌm", "ðæt", "ɪz", "wʌz",
    "ɑɹ", "bʌt", "ɪf", "æz", "ɪntu", "ʌndɚ", "oʊvɚ", "Ovɚ", "hɪz", "hɚ", "ðɛɹ", "mAɪ", "maɪ", "jʊɹ", "ɪts",
}


def _ends_on_function_word(head: str) -> bool:
    last = head.rsplit(" ", 1)[-1].replace("ˈ", "").replace("ˌ", "").strip(",.;:!?")
    return last in _FUNCTION_PH


# Japanese phoneme words a phrase should not start with (particles, the copula, sentence endings):
# a cut before one strands it from the word it belongs to.
_JA_CLITICS = {"βa", "ɡa", "o", "ɲi", "de", "to", "mo", "no", "e", "ka", "ne", "jo", "ja", "kaɾa", "made",
               "joɾi", "desɨ", "deɕita", "da", "datta", "masɨ", "maɕita", "na", "dake", "kedo", "ɕi"}


def _bad_cut(words: list[str], k: int, lang: "_lang.Language") -> bool:
    """Whether cutting a clause's phoneme words before words[k] sounds wrong in this language."""
    if lang.g2p == "ja":
        return k < len(words) and words[k].strip(",.;:!?") in _JA_CLITICS
    return _ends_on_function_word(" ".join(words[:k]))


def _split_words(c: _Clause, limit: int, ids, lang: "_lang.Language" = _lang.LANGUAGES[_lang.DEFAULT_LANGUAGE],
                 sep: str = " ") -> tuple[_Clause, _Clause]:
    """Cut a clause at a word boundary within ``limit`` tokens, preferring the latest boundary that
    does not strand a word (English: a head ending on a function word; Japanese: a tail starting
    with a particle). The text is shared out by words (characters where the script has no spaces)."""
    words = c.phonemes.split(" ")
    fits = 1  # how many phoneme words fit (at least one)
    while fits < len(words) and len(ids(" ".join(words[:fits + 1]))) <= limit:
        fits += 1
    k = fits
    while k > 1 and _bad_cut(words, k, lang):
        k -= 1
    if _bad_cut(words, k, lang):
        k = fits  # nothing better: the longest head that fits
    head = " ".join(words[:k])
    tail = " ".join(words[k:])
    twords = c.text.split(" ") if sep else list(c.text)
    cut = max(1, round(len(twords) * k / max(1, len(words))))
    return (_Clause(sep.join(twords[:cut]), head, ids(head), False),
            _Clause(sep.join(twords[cut:]), tail, ids(tail), c.sentence_end))


def _the_before_vowel(pieces: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    out = []
    for k, (tok, ps) in enumerate(pieces):
        ps = ps or ""
        if (tok.lower().rsplit(" ", 1)[-1] == "the" and ps.endswith("ðə") and k + 1 < len(pieces)
                and _VOWEL_START.match(pieces[k + 1][1] or "")):
            ps = ps[:-2] + "ðɪ"  # espeak's (and a speaker's) form before a vowel; also 'of the' + vowel
        out.append((tok, ps))
    return out
