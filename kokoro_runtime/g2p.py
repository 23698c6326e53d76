"""G2P through espeak-ng (the optional extra: ``phonemizer`` + ``espeakng-loader``): English, and
the other Kokoro languages espeak-ng reads (es, fr-fr, hi, it, pt-br).

espeak's IPA is mapped to the phoneme set Kokoro v1.0 was trained on. English: misaki's English
fixes (diphthongs as one symbol, ʤ/ʧ affricates, rhotic ɜɹ/əɹ, no length marks). Other languages:
misaki's espeak mapping for them (tied diphthongs and affricates as one symbol, ties and hyphens
dropped). Symbols the vocab lacks are dropped by the tokenizer.
"""

from __future__ import annotations

import logging
import re

from .errors import G2PUnavailable

LANGUAGE = "en-us"

_CARRIER = ("cats", "dogs")  # content words that never merge with their neighbour in espeak
_CARRIER_PS = ("kˈæts", "dˈɑːɡz")  # their espeak phonemes (tie '^', before the Kokoro mapping)

# espeak (tie '^') -> Kokoro/misaki symbols, longest first.
_E2M = sorted({
    "ʔˌn\u0329": "tᵊn", "ʔn\u0329": "tᵊn", "ʔn": "tᵊn", "ʔ": "t",
    "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A", "e": "A", "r": "ɹ", "t^ʃ": "ʧ",
    "x": "k", "ç": "k", "ɐ": "ə", "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ɚ": "əɹ", "ɬ": "l",
    "ʲO": "jO", "ʲQ": "jQ", "ʲ": "", "o^ʊ": "O",
}.items(), key=lambda kv: -len(kv[0]))


def espeak_to_kokoro(ps: str) -> str:
    """Map one espeak en-us phoneme string (stress marks, tie '^') to Kokoro's symbols."""
    for old, new in _E2M:
        ps = ps.replace(old, new)
    ps = re.sub(r"(\S)\u0329", r"ᵊ\1", ps).replace("\u0329", "")
    ps = ps.replace("ɜːɹ", "ɜɹ").replace("ɜː", "ɜɹ").replace("ɪə", "iə").replace("ː", "")
    ps = ps.replace("^", "").replace("əɹɹ", "əɹ")  # espeak's ɚɹ (bakery, Maria) doubles the ɹ
    return re.sub(r"\s+", " ", ps).strip()


# espeak (tie '^') -> Kokoro symbols for the languages other than English, longest first.
_E2M_OTHER = sorted({
    "a^ɪ": "I", "a^ʊ": "W", "d^z": "ʣ", "d^ʒ": "ʤ", "e^ɪ": "A", "o^ʊ": "O", "ə^ʊ": "Q", "s^s": "S",
    "t^s": "ʦ", "t^ʃ": "ʧ", "ɔ^ɪ": "Y",
}.items(), key=lambda kv: -len(kv[0]))


def espeak_to_kokoro_other(ps: str) -> str:
    """Map one espeak phoneme string of a language other than English to Kokoro's symbols."""
    for old, new in _E2M_OTHER:
        ps = ps.replace(old, new)
    return re.sub(r"\s+", " ", ps.replace("^", "").replace("-", "")).strip()


def available() -> bool:
    try:
        import espeakng_loader  # noqa: F401
        import phonemizer  # noqa: F401
    except ImportError:
        return False
    return True


class EspeakG2P:
    """Phonemize lists of texts (words or clauses with punctuation) into Kokoro phoneme strings."""

    def __init__(self, language: str = LANGUAGE) -> None:
        try:
            import espeakng_loader
            from phonemizer.backend import EspeakBackend
            from phonemizer.backend.espeak.wrapper import EspeakWrapper
        except ImportError:
            raise G2PUnavailable("G2P is not installed; pip install phonemizer espeakng-loader "
                                 "(the runtime's g2p extra)") from None
        EspeakWrapper.set_library(espeakng_loader.get_library_path())
        EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
        quiet = logging.getLogger("kokoro_runtime.phonemizer")
        quiet.setLevel(logging.ERROR)
        self.language = language
        self._backend = EspeakBackend(language, preserve_punctuation=True, with_stress=True, tie="^",
                                      language_switch="remove-flags", logger=quiet)
        self.version = ".".join(map(str, self._backend.version()))
        self._map = espeak_to_kokoro if language.startswith("en") else espeak_to_kokoro_other

    def phonemize_words(self, words: list[str]) -> list[str]:
        """Each word as it sounds inside a sentence (weak forms of 'a', 'to', 'that'...): spoken in
        a carrier phrase and cut out again; when that fails, its citation form."""
        out = self.phonemize_in_carrier(words)
        retry = [i for i, p in enumerate(out) if not p]
        for i, p in zip(retry, self.phonemize([words[i] for i in retry])):
            out[i] = p
        return [p or "" for p in out]

    def phonemize_in_carrier(self, texts: list[str]) -> list[str | None]:
        """Each text spoken between two carrier words; the phonemes between them (espeak may merge
        words, as in 'of the' -> ʌvðə), or None when the carrier did not come back intact."""
        if not texts:
            return []
        from phonemizer.separator import Separator

        sep = Separator(word="|", phone="", syllable="")
        raw = self._backend.phonemize([f"{_CARRIER[0]} {t} {_CARRIER[1]}" for t in texts], separator=sep, strip=True)
        out: list[str | None] = []
        for r in raw:
            parts = r.split("|")
            ok = len(parts) >= 3 and parts[0] == _CARRIER_PS[0] and parts[-1] == _CARRIER_PS[1]
            out.append(self._map(" ".join(parts[1:-1])) if ok and any(parts[1:-1]) else None)
        return out

    def phonemize(self, texts: list[str]) -> list[str]:
        if not texts:
            return []
        raw = self._backend.phonemize(list(texts), strip=True)
        return [self._map(p) for p in raw]
