"""The fixed, versioned text set benchmarks and quality scoring run on (``kopt/data/textset/``).

Each item holds its English text, its Kokoro phonemes and token ids (boundary token 0 at both
ends), pre-computed with the runtime's espeak G2P, so measurements never depend on G2P being
installed. The ``ttfa`` paragraph is text only: time-to-first-audio goes through the runtime's
streaming path, G2P included. Every record carries the set's version and sha256.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kopt.core.errors import KoptError
from kopt.core.hashing import sha256_bytes

CATEGORIES = ("short", "medium", "long")


@dataclass(frozen=True)
class TextItem:
    id: str
    category: str
    text: str
    phonemes: str
    tokens: tuple[int, ...]  # with the boundary 0 at both ends

    @property
    def ids(self) -> list[int]:
        """Token ids without the boundary pads (what ``Synthesizer.run_tokens`` takes)."""
        return list(self.tokens[1:-1])


@dataclass(frozen=True)
class TextSet:
    name: str
    version: int
    sha256: str
    items: tuple[TextItem, ...]
    ttfa_text: str
    path: str
    language: str | None = None  # the texts' language: the TTFA paragraph is read in it, whatever the voice's

    def select(self, categories: tuple[str, ...] | list[str] | None = None,
               ids: tuple[str, ...] | list[str] | None = None) -> tuple[TextItem, ...]:
        out = self.items
        if categories:
            bad = [c for c in categories if c not in CATEGORIES]
            if bad:
                raise KoptError(f"unknown text category {bad[0]!r}; choose from: {', '.join(CATEGORIES)}")
            out = tuple(i for i in out if i.category in categories)
        if ids:
            known = {i.id for i in self.items}
            bad = [i for i in ids if i not in known]
            if bad:
                raise KoptError(f"{self.path}: no text {bad[0]!r}; known: {', '.join(sorted(known))}")
            out = tuple(i for i in out if i.id in ids)
        if not out:
            raise KoptError(f"{self.path}: the selection leaves no texts")
        return out

    def as_inputs(self) -> dict[str, object]:
        return {"text_set": self.name, "text_set_version": self.version, "text_set_sha256": self.sha256}


# The text set shipped for each language (bundle-bench reads its TTFA paragraph and load texts in the
# language it measures); model benchmarks use the English set unless [bench] text_set names another.
SHIPPED = {"en-us": "textset.json", "ja": "textset-ja.json"}


def default_path(language: str | None = None) -> Path:
    """The shipped text set for ``language`` (default: English); KoptError naming the ones there are."""
    name = SHIPPED.get(language or "en-us")
    if name is None:
        raise KoptError(f"no text set is shipped for language {language!r}; there are: {', '.join(SHIPPED)}")
    return Path(str(resources.files("kopt") / "data" / "textset" / name))


def for_language(language: str | None) -> TextSet:
    return load_textset(str(default_path(language)))


def phonemized_items(texts: list[tuple[str, str, str]], language: str, vocab: dict[str, int]) -> list[dict]:
    """Items (id, category, text) with phonemes and token ids from the installed runtime's front end
    for ``language``: how a text set's items are (re)made, and how a test checks them."""
    from kokoro_runtime.frontend import FrontEnd

    fe = FrontEnd(vocab, None, None, lang=language)
    out = []
    for tid, cat, text in texts:
        ps = " ".join(c.phonemes for c in fe.chunks(text))
        out.append({"id": tid, "category": cat, "text": text, "phonemes": ps, "tokens": [0, *fe.ids(ps), 0]})
    return out


@functools.lru_cache(maxsize=8)
def load_textset(path: str | None = None) -> TextSet:
    p = Path(path) if path else default_path()
    try:
        raw = p.read_bytes()
        data = json.loads(raw.decode("utf-8"))
        items = tuple(TextItem(d["id"], d["category"], d["text"], d["phonemes"], tuple(int(t) for t in d["tokens"]))
                      for d in data["items"])
        return TextSet(data["name"], int(data["version"]), sha256_bytes(raw), items, data["ttfa"]["text"], str(p),
                       data.get("language"))
    except FileNotFoundError:
        raise KoptError(f"{p}: text set not found") from None
    except (KeyError, TypeError, ValueError) as e:
        raise KoptError(f"{p}: not a kopt text set ({type(e).__name__}: {e})") from None
