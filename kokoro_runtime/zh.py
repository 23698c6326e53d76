"""Mandarin text -> Kokoro phonemes (the runtime's ``zh`` extra): misaki's Chinese rules (jieba word
segmentation, pypinyin readings with tone arrows, cn2an for numerals), the phoneme style of
Kokoro v1.0's Mandarin voices (z*). Latin words inside Mandarin are not read (misaki's v1.0 rules
pass them through as letters), so the language check refuses Latin letters for zh.

Sentences and clauses split on the same CJK punctuation as Japanese (kokoro_runtime.ja)."""

from __future__ import annotations

import logging
import re
import unicodedata

from .errors import G2PUnavailable
from .ja import split_clauses, split_sentences  # noqa: F401  (re-exported: CJK punctuation rules)
from .lang import package_version

LANGUAGE = "zh"
_EXTRA = "pip install 'kokoro-runtime[zh]' (misaki, jieba, pypinyin, cn2an, ordered-set)"


def normalize(text: str) -> str:
    """Whitespace collapsed; full-width punctuation is kept (misaki maps it) and digits are read by cn2an."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


class ChineseG2P:
    """Phonemize Mandarin clauses into Kokoro phoneme strings (words separated by spaces)."""

    language = LANGUAGE

    def __init__(self) -> None:
        try:
            import jieba
            from misaki import zh
        except ImportError as e:
            raise G2PUnavailable(f"Mandarin (zh) needs its G2P ({e.name} is missing): {_EXTRA}") from None
        jieba.setLogLevel(logging.WARNING)      # its dictionary-loading chatter is not the caller's output
        self._jieba = jieba
        self._g2p = zh.ZHG2P()
        self.version = f"misaki {package_version('misaki')}, jieba {package_version('jieba')}, pypinyin {package_version('pypinyin')}"

    def phonemize(self, texts: list[str]) -> list[str]:
        return [self._g2p(t)[0] if t.strip() else "" for t in texts]

    def phonemize_words(self, words: list[str]) -> list[str]:
        return self.phonemize(words)

    def words(self, text: str) -> list[str]:
        """The text's words (jieba's segmentation, punctuation left out): what a timestamp names."""
        return [w for w in self._jieba.lcut(normalize(text)) if w.strip() and any(c.isalnum() for c in w)]
