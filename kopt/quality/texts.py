"""What quality is scored on, per language.

The text set (``kopt/data/textset/textset.json``, or ``[quality] text_set``) is the quality texts of
its own language (it declares it: ``"language": "en-us"``), so English figures stay the ones every
earlier record measured. Every other language is scored on kopt's check set for it
(``kopt/data/calib/checkset-<lang>.tsv``, read by kopt.quantize.sentences), which has the same
short/medium/long categories. Each language is spoken by voices of that language: the requested
ones whose language it is (by Kokoro's naming), else the first such voice of the pack, else the
pack's first voice (a pack without an English voice still scores English, as before languages).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from kopt.core.errors import KoptError


@dataclass(frozen=True)
class Text:
    id: str
    category: str
    tokens: tuple[int, ...]  # with the boundary 0 at both ends
    text: str = ""


@dataclass(frozen=True)
class LanguageTexts:
    language: str
    items: tuple[Text, ...]
    inputs: dict  # text_set, text_set_version, text_set_sha256 (what a record carries)
    source: str   # the file they came from

    @property
    def sha256(self) -> str:
        return str(self.inputs["text_set_sha256"])


@functools.lru_cache(maxsize=8)
def textset_language(path: str | None = None) -> str:
    """The language a text-set JSON declares (a set without the field is English, as kopt's was)."""
    from kokoro_runtime import lang as rlang
    from kopt.bench.textset import default_path

    p = Path(path) if path else default_path()
    try:
        declared = json.loads(p.read_text(encoding="utf-8")).get("language") or rlang.DEFAULT_LANGUAGE
    except (OSError, ValueError) as e:
        raise KoptError(f"{p}: not a readable text set ({type(e).__name__})") from None
    return code(declared, f"{p}: language")


def code(language: str, where: str = "language") -> str:
    """The runtime's code for a language name, code or Kokoro letter ('ja', 'j', 'jp' -> 'ja');
    KoptError naming ``where`` otherwise."""
    from kokoro_runtime import lang as rlang
    from kokoro_runtime.errors import InvalidInput

    try:
        return rlang.get(language, where).code
    except InvalidInput as e:
        raise KoptError(str(e)) from None


def texts_for(language: str | None, categories: Sequence[str] | None = None, ids: Sequence[str] | None = None,
              text_set: str | None = None) -> LanguageTexts:
    """The texts ``language`` is scored on (None: the text set's own language), narrowed to
    ``categories`` and, when given, to the ``ids`` that exist in that language (possibly none)."""
    from kopt.bench.textset import load_textset

    ts_lang = textset_language(text_set)
    lang = ts_lang if language is None else code(language)
    if lang == ts_lang:
        ts = load_textset(text_set)
        items = ts.select(categories)
        chosen = tuple(Text(i.id, i.category, i.tokens, i.text) for i in items if not ids or i.id in ids)
        return LanguageTexts(lang, chosen, ts.as_inputs(), ts.path)
    from kopt.quantize.sentences import CHECKSETS, checkset

    if lang not in CHECKSETS:
        raise KoptError(f"quality.languages: no {lang!r} texts: the text set is {ts_lang} and kopt has check sets "
                        f"for {', '.join(CHECKSETS)}")
    cs = checkset(lang)
    items = cs.select(categories) if categories else cs.items
    chosen = tuple(Text(s.id, s.category, s.tokens(), s.text) for s in items if not ids or s.id in ids)
    return LanguageTexts(lang, chosen, cs.as_inputs(), f"kopt/data/calib/{cs.name}")


def voices_for(language: str, pack: Mapping[str, object], requested: Sequence[str] = ()) -> list[str]:
    """The voices that speak ``language`` (see the module docstring)."""
    from kokoro_runtime import lang as rlang

    def lang_of(name: str) -> str:
        return rlang.voice_language(name).code

    if requested:
        mine = [v for v in requested if lang_of(v) == language]
        return mine or list(requested)
    from kopt.quantize.checkset import voice_for

    return [voice_for(pack, language)] if pack else []  # type: ignore[arg-type]


def selection(languages: Sequence[str], categories: Sequence[str] | None, ids: Sequence[str] | None,
              text_set: str | None) -> list[LanguageTexts]:
    """Every language's texts; languages with none of ``ids`` are left out (ids name texts, so
    ``--text short-1`` scores that English text only). KoptError when nothing is left."""
    out = [texts_for(lang, categories, ids, text_set) for lang in languages]
    kept = [lt for lt in out if lt.items]
    if not kept:
        what = f"texts {', '.join(ids)}" if ids else f"categories {', '.join(categories or ())}"
        raise KoptError(f"quality: the {what} leave nothing to score in {', '.join(languages)}")
    return kept
