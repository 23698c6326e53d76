"""Japanese text -> Kokoro phonemes (the runtime's ``ja`` extra), and Japanese sentence splitting.

Readings come from pyopenjtalk-plus (OpenJTalk with its dictionary in the wheel: kanji readings,
numerals, dates, times, and Latin words such as API as katakana); the romanizer is misaki's Japanese
one (``misaki.cutlet``), the phoneme style Kokoro v1.0's Japanese voices were trained on. misaki's
own tagger (fugashi with a downloaded unidic) is replaced by pyopenjtalk's analysis, so nothing is
fetched at run time.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import G2PUnavailable
from .lang import package_version

LANGUAGE = "ja"
_EXTRA = "pip install 'kokoro-runtime[ja]' (pyopenjtalk-plus, misaki, fugashi, mojimoji, jaconv)"

# Sentence ends: 。！？ (and ASCII .!? after NFKC; decimals are 点 by then), an ellipsis, with any closing brackets after them;
# not before a quotative particle (「本当？」と聞いた is one sentence).
_SENT_END = re.compile(r"(?<=[。！？!?…．.])(?![。！？!?…．.])[」』）)】”’\"]*(?![」』）)】”’\"とっ])\s*|\n+")
# Clause ends: Japanese commas, semicolons and colons (ASCII ones too, after NFKC), the ideographic space.
_CLAUSE_END = re.compile(r"(?<=[、，,；;：:])\s*|\u3000+")


def split_sentences(text: str) -> list[str]:
    """Sentences of Japanese text (which has no spaces between them)."""
    return _split(text, _SENT_END)


def split_clauses(sentence: str) -> list[str]:
    return _split(sentence, _CLAUSE_END)


def _split(text: str, pattern: re.Pattern) -> list[str]:
    out, start = [], 0
    for m in pattern.finditer(text):
        if m.end() > start:
            out.append(text[start:m.end()].strip())
            start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


_DIGITS = "〇一二三四五六七八九"
_SMALL = ((1000, "千"), (100, "百"), (10, "十"))
_LARGE = ((10 ** 12, "兆"), (10 ** 8, "億"), (10 ** 4, "万"))


def kanji_number(n: int) -> str:
    """A non-negative integer in kanji numerals (1000 -> 千, 12345 -> 一万二千三百四十五), so OpenJTalk
    reads it with its counter (三日 -> ミッカ, 三十分 -> サンジュップン)."""
    if n == 0:
        return _DIGITS[0]
    out = ""
    for unit, name in _LARGE:
        if n >= unit:
            out += _below_10000(n // unit) + name
            n %= unit
    return out + _below_10000(n)


def _below_10000(n: int) -> str:
    out = ""
    for unit, name in _SMALL:
        d, n = divmod(n, unit)
        if d:
            out += ("" if d == 1 else _DIGITS[d]) + name
    return out + (_DIGITS[n] if n else "")


def _digits(run: str) -> str:
    return "".join(_DIGITS[int(c)] for c in run)


def _number(m: re.Match) -> str:
    run = m.group(0)
    if len(run) > 1 and run[0] == "0" or len(run) > 16:
        return _digits(run)               # codes, phone numbers: digit by digit
    return kanji_number(int(run))


# (pattern, replacement) in order; digits are ASCII after NFKC.
_NUMBER_RULES: tuple[tuple[re.Pattern, object], ...] = (
    (re.compile(r"(?<=\d),(?=\d{3}(?!\d))"), ""),                                       # 1,500
    (re.compile(r"(?<!\d)(\d{4})[/-](\d{1,2})[/-](\d{1,2})(?!\d)"), lambda m: "{}年{}月{}日".format(*map(int, m.groups()))),    # 2024/12/3
    (re.compile(r"(?<!\d)\d{2,4}(?:-\d{2,4}){1,3}(?!\d)"),                                # 090-1234-5678
     lambda m: "の".join(_digits(g) for g in m.group(0).split("-"))),
    (re.compile(r"(?<!\d)(\d{1,2}):00(?!\d)"), lambda m: f"{int(m.group(1))}時"),                                 # 9:00
    (re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)"), lambda m: "{}時{}分".format(*map(int, m.groups()))),                        # 12:30
    (re.compile(r"(?<!\d)(\d+)/(\d+)(?!\d)"), r"\2分の\1"),                               # 1/3
    (re.compile(r"(\d+)\.(\d+)"), lambda m: f"{m.group(1)}点{_digits(m.group(2))}"),    # 3.14
    (re.compile(r"(?<![0-9A-Za-z)])-(?=\d)"), "マイナス"),                                       # -5
    (re.compile(r"\d+"), _number),
)


def normalize(text: str) -> str:
    """NFKC (full-width Latin and digits to ASCII, half-width kana to full-width), whitespace
    collapsed, and numbers as kanji numerals: dates, times, fractions, decimals and thousands
    separators first, so each is read the way Japanese reads it."""
    text = re.sub(r"[ \t\r\f\v]+", " ", unicodedata.normalize("NFKC", text)).strip()
    for pattern, repl in _NUMBER_RULES:
        text = pattern.sub(repl, text)
    return text


def available() -> bool:
    try:
        import misaki.cutlet  # noqa: F401
        import pyopenjtalk  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class _Feature:
    pron: str
    kana: str


@dataclass
class _Node:
    surface: str
    feature: _Feature
    char_type: int = 6      # misaki's "word with a kana reading"
    is_unk: bool = False


def _reading(node: Mapping[str, Any]) -> str:
    """A node's pronunciation in katakana (accent marks removed); punctuation stands for itself."""
    if node["pos"] == "記号":
        return node["string"]
    return node["pron"].replace("’", "").replace("'", "")


class JapaneseG2P:
    """Phonemize Japanese clauses into Kokoro phoneme strings (words separated by spaces)."""

    language = LANGUAGE

    def __init__(self) -> None:
        try:
            import pyopenjtalk
            from misaki import cutlet
        except ImportError as e:
            raise G2PUnavailable(f"Japanese (ja) needs its G2P ({e.name} is missing): {_EXTRA}") from None
        self._ojt = pyopenjtalk

        def tag(text: str) -> list[_Node]:
            return [_Node(n["string"], _Feature(_reading(n), _reading(n))) for n in self.analyze(text)]

        romanizer = cutlet.Cutlet.__new__(cutlet.Cutlet)   # its __init__ opens fugashi's unidic tagger
        romanizer.tagger = tag
        romanizer.table = dict(cutlet.HEPBURN)
        romanizer.exceptions = {}
        self._romanize = romanizer
        self.version = f"pyopenjtalk {package_version('pyopenjtalk-plus')}, misaki {package_version('misaki')}"

    def analyze(self, text: str) -> list[Mapping[str, Any]]:
        """OpenJTalk's words: surface, part of speech, reading, pronunciation."""
        return list(self._ojt.run_frontend(text))

    def phonemize(self, texts: list[str]) -> list[str]:
        return [self._romanize(t)[0] if t.strip() else "" for t in texts]

    def phonemize_words(self, words: list[str]) -> list[str]:
        return self.phonemize(words)

    def words(self, text: str) -> list[str]:
        """The text's words (OpenJTalk's segmentation, punctuation left out): what a timestamp names."""
        return [n["string"] for n in self.analyze(normalize(text)) if n["pos"] != "記号" and n["string"].strip()]

