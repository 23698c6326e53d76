"""The bundle's languages: the voices' languages with their G2P packages and versions, voice_languages
only for voices whose names do not say their language, and a usage text that starts with Japanese."""

from __future__ import annotations

import pytest

from kopt.core.errors import KoptError
from kopt.publish.languages import languages_entry, runtime_extras, voice_languages
from kopt.publish.publish import _usage


def test_languages_come_with_the_voices():
    voices = dict.fromkeys(["jf_alpha", "jm_kumo", "af_heart", "narrator"], 0)
    spoken, listed = voice_languages(voices, {}, {"narrator": "en-gb"}, "en-us")
    assert spoken == {"af_heart": "en-us", "jf_alpha": "ja", "jm_kumo": "ja", "narrator": "en-gb"}
    assert listed == {"narrator": "en-gb"}  # only the voice whose name does not say its language
    entry = languages_entry(spoken, {"pesq_wb_aligned@ja": 4.3, "rtf_median": 0.1})
    assert list(entry) == ["ja", "en-gb", "en-us"]  # most voices first
    ja = entry["ja"]
    assert ja["extra"] == "ja" and ja["voices"] == ["jf_alpha", "jm_kumo"] and ja["quality_measured"]
    assert set(ja["g2p_packages"]) >= {"pyopenjtalk-plus", "misaki"}
    assert entry["en-us"]["extra"] == "g2p" and not entry["en-us"]["quality_measured"]
    assert runtime_extras()["ja"] == list(ja["g2p_packages"])


def test_blends_speak_their_first_voice_and_undeclared_names_take_the_default():
    voices = dict.fromkeys(["jf_alpha", "af_heart", "mix", "mine"], 0)
    spoken, listed = voice_languages(voices, {"mix": "jf_alpha:0.6,af_heart:0.4"}, {}, "ja")
    assert spoken["mix"] == "ja" and spoken["mine"] == "ja" and listed == {"mix": "ja", "mine": "ja"}


def test_wrong_declarations_are_refused():
    with pytest.raises(KoptError, match="publish.voice_languages.jf_alpha: en-us, but the name says ja"):
        voice_languages({"jf_alpha": 0}, {}, {"jf_alpha": "en-us"}, "en-us")
    with pytest.raises(KoptError, match="no voice 'ghost'"):
        voice_languages({"jf_alpha": 0}, {}, {"ghost": "ja"}, "en-us")
    with pytest.raises(KoptError, match="'xx' is not a language"):
        voice_languages({"mine": 0}, {}, {"mine": "xx"}, "en-us")


def test_usage_shows_japanese_first_and_the_ja_extra():
    spoken = {"af_heart": "en-us", "jf_alpha": "ja"}
    lines = _usage({"default_voice": "af_heart", "languages": languages_entry(spoken)})
    text = "\n".join(lines)
    assert "pip install './kokoro_runtime[ja]'" in text
    speak = [line for line in lines if line.startswith("python -m kokoro_runtime")]
    assert "--voice jf_alpha" in speak[0] and "こんにちは" in speak[0] and "--voice af_heart" in speak[1]
