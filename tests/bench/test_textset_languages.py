"""The shipped text sets carry their language, and the Japanese set's stored phonemes and token ids
are what the installed runtime's Japanese front end makes of its texts today."""

import json

import pytest

from kopt.bench.textset import SHIPPED, default_path, for_language, phonemized_items
from kopt.core.errors import KoptError


@pytest.mark.parametrize("language", sorted(SHIPPED))
def test_each_shipped_set_declares_its_language(language):
    ts = for_language(language)
    assert ts.language == language and ts.ttfa_text and {i.category for i in ts.items} == {"short", "medium", "long"}
    assert all(len(i.tokens) <= 512 and i.tokens[0] == i.tokens[-1] == 0 for i in ts.items)


def test_unknown_language_names_the_shipped_ones():
    with pytest.raises(KoptError, match="ja"):
        default_path("xx")


def test_japanese_phonemes_match_the_installed_g2p():
    ja = pytest.importorskip("kokoro_runtime.ja")
    if not ja.available():
        pytest.skip("the ja extra (pyopenjtalk-plus, misaki) is not installed")
    from kopt.core.vocab import default_vocab

    data = json.loads(default_path("ja").read_text(encoding="utf-8"))
    fresh = phonemized_items([(d["id"], d["category"], d["text"]) for d in data["items"]], "ja", default_vocab())
    assert fresh == data["items"]
