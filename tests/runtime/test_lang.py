"""Languages: resolution from the voice (prefix, manifest, blend, override), the script check, Japanese
splitting, numbers and chunking on text without spaces, timestamps' words, and the error paths."""

import subprocess
import sys

import numpy as np
import pytest

from kokoro_runtime import lang as L
from kokoro_runtime.errors import G2PUnavailable, InvalidInput
from kokoro_runtime.frontend import FrontEnd
from tests.graphs import tiny_kokoro, tiny_voices
from tests.runtime.helpers import VOCAB, small_cache

ja = pytest.importorskip("kokoro_runtime.ja")
needs_ja = pytest.mark.skipif(not ja.available(), reason="the ja extra (pyopenjtalk-plus, misaki) is not installed")


# -- resolution ------------------------------------------------------------------------------------
@pytest.mark.parametrize("voice, code", [
    ("jf_alpha", "ja"), ("jm_kumo", "ja"), ("af_heart", "en-us"), ("bm_george", "en-gb"), ("ef_dora", "es"),
    ("ff_siwis", "fr-fr"), ("hf_alpha", "hi"), ("if_sara", "it"), ("pf_dora", "pt-br"), ("zf_xiaobei", "zh"),
])
def test_kokoro_prefix_gives_the_language(voice, code):
    assert L.of_voice_name(voice).code == code
    assert L.voice_language(voice).code == code


@pytest.mark.parametrize("voice", ["voice_0", "alpha", "xf_nobody", "j_alpha", "JF_alpha"])
def test_names_outside_the_convention_take_the_default(voice):
    assert L.of_voice_name(voice) is None
    assert L.voice_language(voice).code == "en-us"
    assert L.voice_language(voice, default="ja").code == "ja"


def test_declared_language_wins_over_the_name_and_blends_take_their_first_voice():
    declared = {"narrator": "ja", "af_odd": "ja"}
    assert L.voice_language("narrator", declared).code == "ja"
    assert L.voice_language("af_odd", declared).code == "ja"            # the manifest says so
    assert L.voice_language("jf_alpha:0.7,af_heart:0.3").code == "ja"
    assert L.voice_language("af_heart(2)+jf_alpha(1)").code == "en-us"
    assert L.voice_language("narrator:0.5,af_heart:0.5", declared).code == "ja"


@pytest.mark.parametrize("given, code", [("j", "ja"), ("JA", "ja"), ("jp", "ja"), ("en", "en-us"), ("a", "en-us"),
                                         ("en-GB", "en-gb"), ("fr", "fr-fr"), ("pt", "pt-br"), (" ja ", "ja")])
def test_override_codes_letters_and_aliases(given, code):
    assert L.get(given).code == code
    assert L.resolve("af_heart", given).code == code


@pytest.mark.parametrize("bad", ["xx", "", "english", 3, None])
def test_unknown_language_is_invalid_input_naming_lang(bad):
    with pytest.raises(InvalidInput) as e:
        L.get(bad)
    assert e.value.field == "lang" and "ja (j)" in str(e.value) and "\n" not in str(e.value)


# -- the script check ------------------------------------------------------------------------------
def test_japanese_text_to_an_english_voice_is_refused_naming_lang():
    with pytest.raises(InvalidInput) as e:
        L.check_script("今日はいい天気ですね。", L.get("en-us"))
    assert e.value.field == "lang" and "send lang 'ja'" in str(e.value) and "Hiragana" in str(e.value)


def test_english_sentences_to_a_japanese_voice_are_refused_naming_lang():
    with pytest.raises(InvalidInput) as e:
        L.check_script("The weather is nice today.", L.get("ja"))
    assert e.value.field == "lang" and "en-us" in str(e.value) and "letter by letter" in str(e.value)


@pytest.mark.parametrize("text, code", [
    ("APIとUSBを使います。", "ja"), ("2024年12月3日", "ja"), ("123", "ja"), ("!?", "ja"), ("人々はコーヒーを", "ja"),
    ("ｶﾀｶﾅとＡＰＩ", "ja"),
    ("The café's α-test.", "en-us"), ("Hello 👋", "en-us"), ("नमस्ते, hello", "hi"),
])
def test_scripts_a_language_reads_pass(text, code):
    L.check_script(text, L.get(code))


def test_a_script_no_language_reads_is_refused():
    with pytest.raises(InvalidInput) as e:
        L.check_script("Привет, мир", L.get("en-us"))
    assert e.value.field == "lang" and "Cyrillic" in str(e.value) and "ja (j)" in str(e.value)
    with pytest.raises(InvalidInput, match="'ja' \\(Japanese\\) or 'zh'"):
        L.check_script("天気", L.get("en-us"))


@pytest.mark.parametrize("code, module", [("ja", "pyopenjtalk"), ("zh", "jieba")])
def test_g2p_errors_name_the_extra(monkeypatch, code, module):
    monkeypatch.setitem(sys.modules, module, None)     # as if the extra were not installed
    with pytest.raises(G2PUnavailable) as e:
        L.make_g2p(L.get(code))
    assert f"kokoro-runtime[{code}]" in str(e.value) and "\n" not in str(e.value)


def test_a_language_without_a_g2p_says_not_supported_yet():
    with pytest.raises(G2PUnavailable, match="not supported yet"):
        L.make_g2p(L.Language("ko", "k", "Korean", "none", frozenset({"HANGUL"})))


# -- Japanese text ---------------------------------------------------------------------------------
def test_japanese_sentences_split_on_japanese_punctuation():
    text = ja.normalize("今日はいい天気ですね。散歩に行きましょう！「本当？」と聞いた。そうですか…分かりました。えっ？！")
    assert ja.split_sentences(text) == ["今日はいい天気ですね。", "散歩に行きましょう!", "「本当?」と聞いた。",
                                        "そうですか...", "分かりました。", "えっ?!"]
    assert ja.split_clauses("価格は千五百円、割引は二十%です。") == ["価格は千五百円、", "割引は二十%です。"]
    assert ja.split_sentences("一行目\n二行目") == ["一行目", "二行目"]


@pytest.mark.parametrize("n, kanji", [(0, "〇"), (7, "七"), (10, "十"), (11, "十一"), (100, "百"), (1000, "千"),
                                      (1500, "千五百"), (2024, "二千二十四"), (10000, "一万"), (12345, "一万二千三百四十五"),
                                      (100000000, "一億"), (30, "三十")])
def test_kanji_numbers(n, kanji):
    assert ja.kanji_number(n) == kanji


@pytest.mark.parametrize("text, normalized", [
    ("2024年12月3日", "二千二十四年十二月三日"),
    ("2024/12/03に", "二千二十四年十二月三日に"),
    ("12:30に", "十二時三十分に"),
    ("9:00から", "九時から"),
    ("1,500円", "千五百円"),
    ("3.14", "三点一四"),
    ("1/3", "三分の一"),
    ("-5度", "マイナス五度"),
    ("090-1234-5678", "〇九〇の一二三四の五六七八"),
    ("ＡＰＩ　と ｶﾀｶﾅ", "API と カタカナ"),
])
def test_japanese_normalization(text, normalized):
    assert ja.normalize(text) == normalized


@needs_ja
def test_japanese_chunks_on_text_without_spaces():
    fe = FrontEnd(VOCAB, small_cache(), None, lang="ja")
    assert fe.cache is None                                    # the English token cache does not apply
    text = "今日は朝から雨が降っていましたが、午後になって晴れてきたので、駅前の新しいカフェまで散歩に行きました。" * 3
    chunks = fe.chunks(text, first_short=True)
    assert all(c.lang == "ja" for c in chunks)
    first = chunks[0]
    assert 0 < len(first.tokens) <= fe.policy.first_max_tokens
    words = first.phonemes.split(" ")
    rest = chunks[1].phonemes.split(" ")[0]
    assert rest.strip(",.") not in {"βa", "ɡa", "o", "ɲi", "de", "to", "mo", "no"}, (words, rest)  # not before a particle
    assert "Japanese" not in " ".join(c.phonemes for c in chunks) and "letter" not in first.phonemes
    assert "".join(c.text for c in chunks).replace(" ", "") == ja.normalize(text).replace(" ", "")


@needs_ja
def test_japanese_never_exceeds_the_model_limit():
    fe = FrontEnd(VOCAB, None, None, lang="ja")
    chunks = fe.chunks("あいうえおかきくけこさしすせそ" * 80)      # no punctuation at all
    assert len(chunks) > 1 and all(len(c.tokens) <= 510 for c in chunks)


@needs_ja
def test_japanese_words_for_timestamps():
    from kokoro_runtime.synth import word_spans

    fe = FrontEnd(VOCAB, None, None, lang="ja")
    [chunk] = fe.chunks("今日はいい天気ですね。")
    assert fe.words(chunk.text) == ["今日", "は", "いい", "天気", "です", "ね"]
    spans = word_spans(chunk, fe.ids, fe.words(chunk.text))
    assert [w for w, _, _ in spans] == ["今日", "は", "いい", "天気", "です", "ね"]
    assert all(a < b for _, a, b in spans) and spans[-1][2] <= len(chunk.tokens)


def test_empty_after_g2p_and_non_string_text_are_errors():
    fe = FrontEnd(VOCAB, small_cache(), False)
    assert fe.chunks("👋 🙂") == []
    with pytest.raises(InvalidInput) as e:
        fe.chunks(["not", "text"])
    assert e.value.field == "text"


# -- the synthesizer and the command ---------------------------------------------------------------
@pytest.fixture
def ja_bundle(tmp_path):
    from kopt.publish.bundle import write_bundle

    voices = tiny_voices(3)
    voices = {"jf_test": voices["voice_0"], "af_test": voices["voice_1"], "narrator": voices["voice_2"]}
    return write_bundle(tmp_path / "bundle", tiny_kokoro(tmp_path / "tiny.onnx"), voices, VOCAB, small_cache(),
                        {"default_voice": "jf_test", "voice_languages": {"narrator": "ja"}})


def test_synthesizer_languages_from_names_and_manifest(ja_bundle):
    from kokoro_runtime import load

    tts = load(ja_bundle)
    assert tts.languages == {"af_test": "en-us", "jf_test": "ja", "narrator": "ja"}
    assert tts.resolve_language("af_test").code == "en-us"
    assert tts.resolve_language("af_test", "j").code == "ja"
    assert tts.language_of(np.zeros((510, 1, 256), np.float32)).code == "en-us"
    with pytest.raises(InvalidInput):
        tts.resolve_language("jf_test", "klingon")


def _run(bundle, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "kokoro_runtime", *args], cwd=bundle, capture_output=True,
                          timeout=120, input=stdin)


@needs_ja
def test_cli_speaks_japanese_in_the_voices_language(ja_bundle, tmp_path):
    r = _run(ja_bundle, "今日はいい天気ですね。", "--phonemes")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().strip() == "kʲoː βa ii teŋkʲi desɨ ne."
    wav = tmp_path / "out.wav"
    r = _run(ja_bundle, "今日はいい天気ですね。", "-o", str(wav))
    assert r.returncode == 0 and wav.stat().st_size > 44
    r = _run(ja_bundle, "--list-voices")
    assert r.stdout.decode().splitlines() == ["af_test\ten-us", "jf_test\tja", "narrator\tja"]


@needs_ja
def test_cli_mixed_input_is_one_line_naming_lang_and_writes_nothing(ja_bundle, tmp_path):
    wav = tmp_path / "out.wav"
    for args in (["The weather is nice.", "--voice", "jf_test"], ["今日は晴れ。", "--voice", "af_test"],
                 ["今日は晴れ。", "--lang", "en-us"], ["今日は晴れ。", "--lang", "xx"]):
        r = _run(ja_bundle, *args, "-o", str(wav))
        err = r.stderr.decode()
        assert r.returncode == 1 and err.count("\n") == 1 and "lang" in err, (args, err)
        assert not wav.exists()
    r = _run(ja_bundle, "The weather is nice.", "--voice", "jf_test", "--lang", "en-us", "-o", str(wav))
    assert r.returncode == 0, r.stderr.decode()


def _zh_available() -> bool:
    try:
        import jieba  # noqa: F401
        import misaki.zh  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _zh_available(), reason="the zh extra (misaki, jieba, pypinyin, cn2an) is not installed")
def test_mandarin_chunks_words_and_latin_refused():
    fe = FrontEnd(VOCAB, None, None, lang="zh")
    chunks = fe.chunks("今天天气很好，我们去散步吧！价格是1500元。", first_short=True)
    assert [c.lang for c in chunks] == ["zh"] * len(chunks) and len(chunks) == 2
    assert chunks[0].phonemes == "ʨi→ntʰjɛ→ntʰjɛ→nʨʰi↘ xə↓n xau↓,"
    assert "i→ʨʰjɛ→nu↓pai↓ɥɛ↗n" in chunks[1].phonemes                  # 1500: 一千五百
    assert fe.words("今天天气很好，我们去散步吧！") == ["今天天气", "很", "好", "我们", "去", "散步", "吧"]
    with pytest.raises(InvalidInput, match="Latin words inside Mandarin"):
        fe.chunks("我用API。")


@pytest.mark.skipif(not __import__("kokoro_runtime.g2p", fromlist=["available"]).available(),
                    reason="espeak-ng (the g2p extra) is not installed")
@pytest.mark.parametrize("code, text, phonemes", [
    ("es", "Tengo 25 años.", "tˈɛŋɡo βˌAntiθˈinko ˈaɲos."),          # espeak's Spanish reads the number
    ("fr-fr", "Bonjour le monde.", "bɔ̃ʒˈuʁ lə mˈɔ̃d."),                  # no hyphen ties left
    ("it", "Buongiorno a tutti.", "bʊonʤˈɔrno a tˈutːɪ."),
    ("pt-br", "Olá, tudo bem?", "olˈa, tˈudʊ bˈAŋ?"),
    ("hi", "ठीक है।", "ʈʰˈiːk hɛː."),                                   # the danda ends a sentence
])
def test_other_espeak_languages_read_their_own_text(code, text, phonemes):
    fe = FrontEnd(VOCAB, small_cache(), None, lang=code)
    assert fe.cache is None                                            # the English cache is not used
    assert " ".join(c.phonemes for c in fe.chunks(text)) == phonemes


def test_punctuation_alone_is_nothing_to_speak_everywhere(ja_bundle, tmp_path):
    fe = FrontEnd(VOCAB, small_cache(), False)
    assert fe.chunks("...") == [] and fe.chunks("!!! ???") == [] and fe.chunks("The cat sat...")
    wav = tmp_path / "out.wav"
    r = _run(ja_bundle, "...", "--voice", "af_test", "-o", str(wav))
    assert r.returncode == 1 and "nothing to speak" in r.stderr.decode() and not wav.exists()
