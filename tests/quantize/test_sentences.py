"""kopt's sentence files carry their language: the check sets and calibration corpora per language, one
loader, and the stored Japanese phonemes are what the installed runtime G2P makes of the text."""

from __future__ import annotations

import numpy as np
import pytest

from kopt.core.errors import KoptError
from kopt.quantize import sentences as S
from kopt.quantize.calibration import CalibSpec, calibration_set, corpus
from kopt.quantize.checkset import check_set, voice_for
from tests.graphs import tiny_voices


def test_every_file_says_its_language_and_items_carry_it():
    for lang in S.CHECKSETS:
        cs = S.checkset(lang)
        assert cs.language == lang and cs.g2p and cs.sha256
        assert {s.category for s in cs.items} == {"short", "medium", "long"}
        assert all(s.language == lang and s.phonemes and len(s.tokens()) <= 512 for s in cs.items)
    for lang in S.CALIBRATION:
        assert all(s.language == lang for s in S.calibration_corpus(lang).items)
    ja = S.checkset("ja")
    assert 6 <= len(ja.items) <= 10 and len(S.calibration_corpus("ja").items) >= 20
    assert "pyopenjtalk" in ja.g2p and "misaki" in ja.g2p
    # held out: no check sentence is a calibration sentence
    assert not {s.text for s in ja.items} & {s.text for s in S.calibration_corpus("ja").items}
    assert S.checkset("j") is ja  # the runtime's letters and aliases name languages too


def test_check_set_per_language_speaks_with_a_voice_of_that_language():
    voices = {"af_heart": np.zeros((510, 1, 256), np.float32), "jf_alpha": np.ones((510, 1, 256), np.float32)}
    en = check_set(voices, names=["short"])
    ja = check_set(voices, names=["short"], language="ja")
    assert [u.name for u in en] == ["short"] and en[0].language == "en-us" and en[0].voice == "af_heart"
    assert len(ja) == 3 and {u.language for u in ja} == {"ja"} and {u.voice for u in ja} == {"jf_alpha"}
    # a pack without an English voice speaks English with its first voice, as before languages
    assert voice_for({"jf_alpha": 1, "jm_kumo": 2}, "en-us") == "jf_alpha"
    with pytest.raises(KoptError, match="nothing matches nope"):
        check_set(None, names=["nope"], language="ja")
    with pytest.raises(KoptError, match="no 'zh' sentences"):
        S.checkset("zh")


def test_calibration_one_language_draws_as_before_and_two_mix():
    assert corpus() == [(s.text, s.phonemes) for s in S.calibration_corpus("en-us").items]
    spec = CalibSpec(sentences=8, seed=3, languages=("en-us", "ja"))
    utts = calibration_set(tiny_voices(), spec)
    assert len(utts) == 8
    toks = {tuple(int(t) for t in u.tokens) for u in utts}
    ja_toks = {tuple(s.tokens())[:96] for s in S.calibration_corpus("ja").items}
    assert toks & ja_toks  # Japanese sentences were drawn


def test_header_language_must_match_the_registry(tmp_path):
    with pytest.raises(KoptError, match="header says language 'en-us'"):
        S.parse("# language: en-us\n# id\tcategory\ttext\tphonemes\na\tshort\tx\ty\n", "checkset-ja.tsv")
    with pytest.raises(KoptError, match="no '# language:' header"):
        S.parse("# text\tphonemes\nx\ty\n", "mine.tsv")
    with pytest.raises(KoptError, match="3 columns"):
        S.parse("# language: ja\n# id\tcategory\ttext\tphonemes\na\tshort\tx\n", "mine.tsv")


@pytest.mark.parametrize("name", ["checkset-ja.tsv", "sentences-ja.tsv"])
def test_stored_japanese_phonemes_are_what_the_installed_g2p_makes(name):
    from kokoro_runtime import ja

    if not ja.available():
        pytest.skip("the runtime's ja extra is not installed (pip install './kokoro_runtime[ja]'): "
                    "cannot phonemize Japanese to compare")
    text, changed = S.regenerate(S.data_path(name))
    assert changed == [], (f"{name}: stored phonemes differ from the installed G2P for {changed}; regenerate with "
                           f"python -m kopt.quantize.sentences kopt/data/calib/{name}")
    assert f"# g2p: {S.g2p_label('ja')}" in text.splitlines()
