"""The token cache: phonemes for frequent words and listed phrases, so most text needs no G2P.

Stored as gzip JSON: {"format": "kokoro-token-cache", "version": 1, "language": "en-us",
"g2p": "espeak-ng 1.52.0", "words": {word: phonemes}, "phrases": {"lower case words": phonemes}}.
Phonemes are Kokoro symbols; token ids follow from the bundle's vocab.json (one symbol, one id).
Keys are lower case; a word written in capitals (an acronym like "NASA") only matches an
entry written exactly so, since its lower-case twin usually sounds different.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BundleError

FORMAT = "kokoro-token-cache"
VERSION = 1
_POSSESSIVE = {**dict.fromkeys("ptkfθ", "s"), **dict.fromkeys("szʃʒʧʤ", "ᵻz")}


@dataclass
class TokenCache:
    words: dict[str, str]
    phrases: dict[str, str] = field(default_factory=dict)
    language: str = "en-us"
    g2p: str = ""

    def __post_init__(self) -> None:
        self.max_phrase_words = max((len(k.split()) for k in self.phrases), default=0)

    def lookup(self, word: str) -> str | None:
        hit = self.words.get(word)
        if hit is not None:
            return hit
        if len(word) > 1 and word.isupper():
            return None
        hit = self.words.get(word.lower())
        if hit is None and word.lower().endswith("'s") and len(word) > 2:
            base = self.lookup(word[:-2])  # possessive of a cached word: Lee's, Maria's
            if base:
                hit = base + _POSSESSIVE.get(base.rstrip("ˈˌ")[-1:], "z")
        return hit

    def phrase(self, words: list[str]) -> str | None:
        return self.phrases.get(" ".join(words).lower())

    def __len__(self) -> int:
        return len(self.words) + len(self.phrases)

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "language": self.language, "g2p": self.g2p,
                "words": dict(sorted(self.words.items())), "phrases": dict(sorted(self.phrases.items()))}

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        data = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        with open(p, "wb") as f:
            # mtime=0: the same cache gives the same bytes, so its sha256 is stable
            with gzip.GzipFile(filename="", fileobj=f, mode="wb", compresslevel=9, mtime=0) as gz:
                gz.write(data)
        return p

    @classmethod
    def load(cls, path: str | Path) -> "TokenCache":
        p = Path(path)
        try:
            with gzip.open(p, "rt", encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise BundleError(f"{p}: token cache not found") from None
        except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{p}: not a readable token cache ({type(e).__name__})") from None
        return cls.from_json(data, str(p))

    @classmethod
    def from_json(cls, data: dict, source: str = "<token cache>") -> "TokenCache":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BundleError(f"{source}: not a Kokoro token cache (format field missing)")
        if data.get("version") != VERSION:
            raise BundleError(f"{source}: token cache version {data.get('version')} is not {VERSION}; rebuild it")
        words, phrases = data.get("words", {}), data.get("phrases", {})
        if not isinstance(words, dict) or not isinstance(phrases, dict):
            raise BundleError(f"{source}: token cache 'words' and 'phrases' must be objects")
        return cls(words=words, phrases=phrases, language=data.get("language", "en-us"), g2p=data.get("g2p", ""))
