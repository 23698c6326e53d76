"""Sentence and clause splitting, and the word/punctuation tokens the token cache is keyed by."""

from __future__ import annotations

import re

# punctuation Kokoro's vocab has and espeak keeps (preserve_punctuation)
PUNCT = set(';:,.!?—…"()')
_CLOSE = set(',.!?;:…)')
_SENT_END = re.compile(r"(?<=[.!?…])[\")]*\s+|\n+")
_CLAUSE_END = re.compile(r"(?<=[,;:—])\s+")
_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*'?|[;:,.!?—…\"()]")


def split_sentences(text: str) -> list[str]:
    out = []
    for m in _split_keep(text, _SENT_END):
        if m.strip():
            out.append(m.strip())
    return out


def split_clauses(sentence: str) -> list[str]:
    return [c.strip() for c in _split_keep(sentence, _CLAUSE_END) if c.strip()]


def _split_keep(text: str, pattern: re.Pattern) -> list[str]:
    parts, start = [], 0
    for m in pattern.finditer(text):
        parts.append(text[start:m.start()] + text[m.start():m.end()].rstrip())
        start = m.end()
    parts.append(text[start:])
    return parts


def tokens(clause: str) -> list[str]:
    """Words (letters and inner apostrophes) and punctuation marks, in order; anything else is a gap."""
    return [t.strip("'") if len(t) > 1 else t for t in _TOKEN.findall(clause) if t.strip("'")]


def is_word(token: str) -> bool:
    return token[0] not in PUNCT


def join_phonemes(pieces: list[tuple[str, str]]) -> str:
    """Assemble (token, phonemes) pairs like espeak does with preserved punctuation:
    closing marks stick to the word before, '(' to the word after, quotes alternate."""
    out: list[str] = []
    quote_open = False
    glue_next = False
    for tok, ps in pieces:
        if not is_word(tok):
            if tok == '"':
                quote_open = not quote_open
                if quote_open:
                    out.append(" " + tok if out else tok)
                    glue_next = True
                else:
                    out.append(tok)
                continue
            if tok == "(":
                out.append(" (" if out else "(")
                glue_next = True
                continue
            if tok == "—":
                out.append(" —")
                continue
            out.append(tok)
            continue
        if not ps:
            continue
        out.append(ps if (glue_next or not out) else " " + ps)
        glue_next = False
    return "".join(out).strip()
