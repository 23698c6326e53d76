"""Shared helpers for the runtime tests: a deterministic stand-in G2P and a small token cache."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VOCAB = json.loads((REPO / "kopt" / "data" / "vocab.json").read_text(encoding="utf-8"))["vocab"]


def fake_phonemes(word: str) -> str:
    """Letters as their own symbols ('g' is 'ɡ' in Kokoro's vocab), one stress mark up front."""
    w = word.lower().replace("g", "ɡ").replace("'", "")
    return "ˈ" + w if w else ""


class FakeG2P:
    """Records what it was asked; phonemizes clauses word by word, keeping punctuation."""

    version = "fake"

    def __init__(self) -> None:
        self.word_calls: list[list[str]] = []
        self.text_calls: list[list[str]] = []

    def phonemize_words(self, words: list[str]) -> list[str]:
        self.word_calls.append(list(words))
        return [fake_phonemes(w) for w in words]

    def phonemize(self, texts: list[str]) -> list[str]:
        from kokoro_runtime.text import is_word, join_phonemes, tokens

        self.text_calls.append(list(texts))
        return [join_phonemes([(t, fake_phonemes(t) if is_word(t) else t) for t in tokens(x)]) for x in texts]


def small_cache(words: list[str] | None = None, phrases: dict[str, str] | None = None):
    from kokoro_runtime.lexicon import TokenCache

    words = words or ("the a cat sat on mat and dog ran to park it was sunny hello world this is test of "
                      "one two three four five twenty hundred thousand dollars cents percent point").split()
    return TokenCache(words={w: fake_phonemes(w) for w in words}, phrases=phrases or {}, g2p="fake")
