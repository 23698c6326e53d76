"""The speech request's validation without HTTP: read_json, parse_speech, check_voice, check_lang,
mode_for. Every rule refuses with an InvalidInput naming the field the client must fix."""

from __future__ import annotations

import math

import pytest

from kokoro_runtime.errors import InvalidInput
from kokoro_runtime.server.app import MAX_BLEND_TERMS, SpeechRequest, check_voice, mode_for, parse_speech, read_json

OK = {"input": "Hello there.", "voice": "af_heart"}


def refused(body, field: str, needle: str, max_chars: int | None = 4096) -> str:
    with pytest.raises(InvalidInput) as e:
        parse_speech(body, max_chars)
    assert e.value.field == field and needle in str(e.value), (e.value.field, str(e.value))
    return str(e.value)


def test_defaults_and_every_field():
    assert parse_speech({"input": "Hi."}) == SpeechRequest("Hi.")
    full = parse_speech({"input": "Hi.", "voice": "jf_alpha", "speed": 2, "model": "tts-1", "lang": "j",
                         "response_format": "wav", "stream_format": "sse", "stream": False, "timestamps": True,
                         "instructions": "calm"})
    assert full == SpeechRequest("Hi.", "jf_alpha", 2.0, "tts-1", "ja", "wav", "sse", False, True)


def test_null_is_not_given():
    assert parse_speech({"input": "Hi.", "voice": None, "speed": None, "lang": None, "model": None}) == \
        SpeechRequest("Hi.")


@pytest.mark.parametrize("body,needle", [([1, 2], "must be a JSON object, not an array"),
                                         ("text", "not a string"), (3, "not a number")])
def test_the_body_is_an_object(body, needle):
    refused(body, "body", needle)


@pytest.mark.parametrize("body,field,needle", [
    ({"voice": "a"}, "input", "missing"),
    ({"input": 42}, "input", "must be a string"),
    ({"input": ["a"]}, "input", "not an array"),
    ({"input": " \n"}, "input", "empty"),
    ({"input": "x" * 4097}, "input", "4097 characters; the limit is 4096"),
    ({**OK, "sped": 2}, "sped", "unknown field"),
    ({**OK, "speed": 0}, "speed", "out of range"),
    ({**OK, "speed": 4.5}, "speed", "out of range"),
    ({**OK, "speed": "fast"}, "speed", "not a number"),
    ({**OK, "speed": True}, "speed", "not a number"),
    ({**OK, "speed": math.nan}, "speed", "out of range"),
    ({**OK, "speed": math.inf}, "speed", "too large"),
    ({**OK, "model": 3}, "model", "must be a string"),
    ({**OK, "response_format": "ogg"}, "response_format", "not a format"),
    ({**OK, "response_format": "aac"}, "response_format", "no AAC encoder"),
    ({**OK, "response_format": ["wav"]}, "response_format", "must be a string"),
    ({**OK, "stream_format": "chunks"}, "stream_format", "use 'audio' or 'sse'"),
    ({**OK, "stream_format": ["sse"]}, "stream_format", "use 'audio' or 'sse'"),
    ({**OK, "stream": "yes"}, "stream", "true or false"),
    ({**OK, "timestamps": 1}, "timestamps", "true or false"),
    ({**OK, "instructions": {}}, "instructions", "must be a string"),
    ({**OK, "lang": "xx"}, "lang", "'xx' is not a language"),
    ({**OK, "lang": 5}, "lang", "not a language"),
    ({**OK, "lang_code": "q"}, "lang_code", "'q' is not a language"),
    ({**OK, "lang": "ja", "lang_code": "a"}, "lang", "disagree"),
])
def test_each_rule_names_its_field(body, field, needle):
    refused(body, field, needle)


def test_max_chars_is_the_servers():
    refused({"input": "abc"}, "input", "3 characters; the limit is 2", max_chars=2)
    assert parse_speech({"input": "x" * 5000}, None).input == "x" * 5000


@pytest.mark.parametrize("voice,needle", [([], "not an array"), ({}, "not an object"), (0, "not a number"),
                                          (False, "not true or false"), (["jf_alpha"], "not an array"),
                                          ("", "empty"), ("  ", "empty")])
def test_only_a_missing_voice_means_the_default(voice, needle):
    msg = refused({"input": "Hi.", "voice": voice}, "voice", needle)
    assert "missing" not in msg


def test_lang_and_its_alias():
    assert parse_speech({**OK, "lang": "JA"}).lang == "ja"
    assert parse_speech({**OK, "lang_code": "j"}).lang == "ja"       # Kokoro-FastAPI's letter
    assert parse_speech({**OK, "lang": "en", "lang_code": "a"}).lang == "en-us"   # the same language twice


def test_blends_merge_duplicates_and_are_bounded():
    assert check_voice("voice_0") == "voice_0"
    assert check_voice("a+a+b") == "a:2.0,b:1.0"
    assert check_voice("b(1)+a(3)+b(2)") == "b:3.0,a:3.0"        # first-come order: b gives the language
    assert check_voice("a:0.25,b:0.75") == "a:0.25,b:0.75"
    ok = "+".join(f"v{k}" for k in range(MAX_BLEND_TERMS))
    assert check_voice(ok).count(":") == MAX_BLEND_TERMS
    for many in ("+".join(["a"] * (MAX_BLEND_TERMS + 1)), ",".join(["a:1"] * 30000)):
        with pytest.raises(InvalidInput) as e:
            check_voice(many)
        assert e.value.field == "voice" and f"at most {MAX_BLEND_TERMS}" in str(e.value)
    with pytest.raises(InvalidInput) as e:
        check_voice("a(x)+b")
    assert e.value.field == "voice" and "not a number" in str(e.value)


def test_read_json_refuses_what_is_not_json():
    assert read_json(b'{"input": "Hi."}') == {"input": "Hi."}
    for raw, needle in ((b"{bad", "not valid JSON"), (b"\xff", "not UTF-8"), (b"", "not valid JSON"),
                        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
                        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply")):
        with pytest.raises(InvalidInput) as e:
            read_json(raw)
        assert e.value.field == "body" and needle in str(e.value), str(e.value)


def test_huge_integers_are_out_of_range_not_a_crash():
    body = read_json(b'{"input": "Hi.", "speed": ' + b"9" * 5000 + b"}")
    assert body["speed"] == math.inf
    refused(body, "speed", "out of range")
    refused(read_json(b'{"input": "Hi.", "speed": ' + b"1" * 400 + b"}"), "speed", "out of range")
    refused(read_json(b'{"input": "Hi.", "speed": -' + b"1" * 400 + b"}"), "speed", "out of range")
    refused(read_json(b'{"input": ' + b"1" * 5000 + b"}"), "input", "must be a string")
    assert read_json(b'{"speed": 2}')["speed"] == 2


def test_mode_for():
    modes = {"fast": "model.onnx", "quality": "q.onnx"}
    assert mode_for(None, modes) is None and mode_for("quality", modes) == "quality"
    assert mode_for("tts-1-hd", modes) == "quality" and mode_for("tts-1-hd", {"default": "m"}) is None
    with pytest.raises(InvalidInput) as e:
        mode_for("gpt-9", modes)
    assert e.value.field == "model" and "not served here" in str(e.value)
