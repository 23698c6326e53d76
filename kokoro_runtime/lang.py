"""Languages: which front end reads a request's text.

The language comes with the voice. Kokoro names its voices ``<language><gender>_<name>``
(``jf_alpha``: Japanese, female); a voice whose name does not follow that convention takes the
language the bundle declares for it (manifest ``voice_languages``), else the bundle's
``default_language``, else American English. A blend speaks its first voice's language. A request
may override it (``lang``: a Kokoro letter such as ``j`` or a code such as ``ja``).

Each language names the scripts its front end reads. Text in another script (Japanese sent to an
English voice, English sentences sent to a Japanese voice) is refused with an ``InvalidInput`` on
``lang`` that says which language to ask for: no front end ever reads letters by name.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .errors import G2PUnavailable, InvalidInput

DEFAULT_LANGUAGE = "en-us"


@dataclass(frozen=True)
class Language:
    code: str                       # the code results and manifests record ("en-us", "ja")
    letter: str                     # Kokoro's voice-name prefix
    name: str
    g2p: str                        # which G2P: "espeak" (with espeak_voice), "ja", "zh"
    scripts: frozenset[str]         # Unicode script names its front end reads (first word of a letter's name)
    espeak_voice: str | None = None
    extra: str = "g2p"              # the runtime extra that installs its G2P
    token_cache: bool = False       # whether the bundle's (English) token cache applies

    @property
    def english(self) -> bool:
        return self.code.startswith("en-")


_LATIN = frozenset({"LATIN"})
_WESTERN = frozenset({"LATIN", "GREEK"})    # espeak reads Greek letters in these languages (α: alpha)
_JA = frozenset({"CJK", "HIRAGANA", "KATAKANA", "LATIN"})   # Latin words (API, USB) inside Japanese
LANGUAGES: dict[str, Language] = {lang.code: lang for lang in (
    Language("en-us", "a", "American English", "espeak", _WESTERN, "en-us", token_cache=True),
    Language("en-gb", "b", "British English", "espeak", _WESTERN, "en-gb"),
    Language("es", "e", "Spanish", "espeak", _WESTERN, "es"),
    Language("fr-fr", "f", "French", "espeak", _WESTERN, "fr-fr"),
    Language("hi", "h", "Hindi", "espeak", frozenset({"DEVANAGARI"}) | _WESTERN, "hi"),
    Language("it", "i", "Italian", "espeak", _WESTERN, "it"),
    Language("ja", "j", "Japanese", "ja", _JA, extra="ja"),
    Language("pt-br", "p", "Brazilian Portuguese", "espeak", _WESTERN, "pt-br"),
    Language("zh", "z", "Mandarin Chinese", "zh", frozenset({"CJK"}), extra="zh"),
)}
_BY_LETTER = {lang.letter: lang for lang in LANGUAGES.values()}
_ALIASES = {"en": "en-us", "en-us": "en-us", "en_us": "en-us", "en-gb": "en-gb", "en_gb": "en-gb",
            "fr": "fr-fr", "fr_fr": "fr-fr", "pt": "pt-br", "pt_br": "pt-br", "jp": "ja", "cmn": "zh",
            "zh-cn": "zh"}
_KOKORO_NAME = re.compile(r"^([a-z])[fm]_")


def known() -> str:
    return ", ".join(f"{lang.code} ({lang.letter})" for lang in LANGUAGES.values())


def get(code: str, field: str = "lang") -> Language:
    """The language for a code, a Kokoro letter or an alias; InvalidInput naming ``field`` otherwise."""
    if not isinstance(code, str) or not code.strip():
        raise InvalidInput(field, f"{code!r} is not a language; use one of {known()}")
    c = code.strip().lower()
    lang = LANGUAGES.get(c) or _BY_LETTER.get(c) or LANGUAGES.get(_ALIASES.get(c, ""))
    if lang is None:
        raise InvalidInput(field, f"{code!r} is not a language kokoro_runtime knows; use one of {known()}")
    return lang


def of_voice_name(name: str) -> Language | None:
    """The language Kokoro's naming convention gives a voice (``jf_alpha`` -> ja), or None."""
    m = _KOKORO_NAME.match(name.strip())
    return _BY_LETTER.get(m.group(1)) if m else None


def voice_language(voice: str, declared: dict[str, str] | None = None,
                   default: str = DEFAULT_LANGUAGE) -> Language:
    """A voice's (or blend's: its first voice's) language: declared for it, else by its name,
    else ``default``."""
    from .voicepack import parse_blend

    first = parse_blend(voice)[0][0] if isinstance(voice, str) else ""
    if declared and first in declared:
        return get(declared[first], f"voice_languages[{first!r}]")
    return of_voice_name(first) or get(default, "default_language")


def resolve(voice: str, lang: str | None = None, declared: dict[str, str] | None = None,
            default: str = DEFAULT_LANGUAGE) -> Language:
    """The language a request speaks: ``lang`` when given, else the voice's."""
    return get(lang) if lang is not None else voice_language(voice, declared, default)


def script_of(ch: str) -> str | None:
    """The Unicode script of a letter (from its name: LATIN, CJK, HIRAGANA...), None for anything
    that is not a letter (digits, punctuation, symbols, emoji). Width forms count as their script
    (FULLWIDTH LATIN: LATIN), the prolonged sound mark ー as KATAKANA, 々 and 〆 as CJK."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    words = re.split(r"[ -]", unicodedata.name(ch, "UNKNOWN"))
    if words[0] in ("FULLWIDTH", "HALFWIDTH") and len(words) > 1:
        words = words[1:]
    return _SCRIPT_ALIASES.get(words[0], words[0])


_SCRIPT_ALIASES = {"IDEOGRAPHIC": "CJK", "VERTICAL": "KATAKANA"}


def check_script(text: str, lang: Language) -> None:
    """InvalidInput on ``lang`` when the text holds letters of a script this language's front end
    does not read, or (for Japanese and Mandarin) Latin sentences without a word of the language."""
    scripts = {s for s in map(script_of, text) if s}
    foreign = sorted(scripts - lang.scripts)
    if foreign:
        raise InvalidInput("lang", f"the text is in {_names(foreign)} script, which the {lang.name} ({lang.code}) "
                                   f"front end does not read; {_hint(scripts, lang)}")
    if lang.code == "ja" and scripts and not scripts - _LATIN:
        raise InvalidInput("lang", f"the text has no {lang.name} in it (only Latin letters), which the {lang.name} "
                                   f"front end would spell letter by letter; send lang 'en-us' to read it as "
                                   "English with this voice")


def _names(scripts: list[str]) -> str:
    return ", ".join("CJK" if s == "CJK" else s.capitalize() for s in scripts)


def _hint(scripts: set[str], lang: Language) -> str:
    """What to do about text in scripts ``lang`` does not read: the language(s) to ask for."""
    if lang.code == "zh" and "LATIN" in scripts:
        return "Latin words inside Mandarin are not read yet: write them in characters"
    if scripts & {"HIRAGANA", "KATAKANA"}:
        return "send lang 'ja' to read it as Japanese with this voice, or pick a j* voice"
    if "CJK" in scripts:
        return "send lang 'ja' (Japanese) or 'zh' (Mandarin) to read it with this voice, or pick a j* or z* voice"
    if "DEVANAGARI" in scripts:
        return "send lang 'hi' to read it as Hindi with this voice, or pick an h* voice"
    return "send text in a language this runtime reads: " + known()


def package_version(dist: str) -> str:
    """An installed distribution's version ("unknown" when it is not installed): what a G2P records."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def make_g2p(lang: Language):
    """A G2P object for ``lang`` (phonemize / phonemize_words / version), or G2PUnavailable naming the
    extra to install."""
    if lang.g2p == "espeak":
        from . import g2p

        if not g2p.available():
            raise G2PUnavailable(f"{lang.name} ({lang.code}) needs espeak-ng: pip install 'kokoro-runtime[g2p]' "
                                 "(phonemizer espeakng-loader)")
        return g2p.EspeakG2P(lang.espeak_voice or lang.code)
    if lang.g2p == "ja":
        from . import ja

        return ja.JapaneseG2P()
    if lang.g2p == "zh":
        from . import zh

        return zh.ChineseG2P()
    raise G2PUnavailable(f"{lang.name} ({lang.code}) is not supported yet: no G2P for it is packaged with "
                         "kokoro_runtime")
