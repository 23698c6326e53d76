"""The runtime's text front end: normalization, splitting, chunk limits, token cache and G2P."""

import pytest

from kokoro_runtime.errors import G2PUnavailable
from kokoro_runtime.frontend import ChunkPolicy, FrontEnd
from kokoro_runtime.numbers import cardinal, ordinal, year
from kokoro_runtime.text import split_clauses, split_sentences, tokens
from kokoro_runtime.textnorm import normalize
from tests.runtime.helpers import VOCAB, FakeG2P, fake_phonemes, small_cache


@pytest.mark.parametrize("n,words", [
    (0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety-nine"), (100, "one hundred"),
    (101, "one hundred one"), (1000, "one thousand"), (12345, "twelve thousand three hundred forty-five"),
    (2_000_000, "two million"), (-7, "minus seven"),
])
def test_cardinal(n, words):
    assert cardinal(n) == words


@pytest.mark.parametrize("n,words", [(1, "first"), (2, "second"), (3, "third"), (12, "twelfth"),
                                     (20, "twentieth"), (21, "twenty-first"), (101, "one hundred first")])
def test_ordinal(n, words):
    assert ordinal(n) == words


@pytest.mark.parametrize("n,words", [(1984, "nineteen eighty-four"), (1905, "nineteen oh five"),
                                     (1900, "nineteen hundred"), (2000, "two thousand"), (2008, "two thousand eight"),
                                     (2024, "twenty twenty-four")])
def test_year(n, words):
    assert year(n) == words


@pytest.mark.parametrize("text,expected", [
    ("It costs $5.", "It costs five dollars."),
    ("It costs $1.", "It costs one dollar."),
    ("Pay $12.50 now.", "Pay twelve dollars and fifty cents now."),
    ("A $3.5 million deal.", "A three point five million dollars deal."),
    ("£20 and €1.", "twenty pounds and one euro."),
    ("In 1984 we met.", "In nineteen eighty four we met."),
    ("The 1990s were fun.", "The nineteen nineties were fun."),
    ("On the 21st of May.", "On the twenty first of May."),
    ("He came 2nd.", "He came second."),
    ("About 25% of 1,200 people.", "About twenty five percent of one thousand two hundred people."),
    ("Pi is 3.14.", "Pi is three point one four."),
    ("Meet at 3:30 p.m. today.", "Meet at three thirty pee em today."),
    ("Meet at 10:00.", "Meet at ten o'clock."),
    ("Dr. Smith met Mr. and Mrs. Jones.", "doctor Smith met mister and missus Jones."),
    ("Apples, pears, etc. Then more.", "Apples, pears, et cetera. Then more."),
    ("Cats, e.g. lions.", "Cats, for example lions."),
    ("Ages 10-20 ran 5 km.", "Ages ten to twenty ran five kilometers."),
    ("“Quoted” — ‘yes’… ok", '"Quoted" — \'yes\'… ok'),
    ("It was -5 degrees.", "It was minus five degrees."),
])
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_normalize_leaves_no_digits():
    text = "On 3/4/2021 at 7:45, 1,234,567 fans paid $99.99 for 2.5 hrs; 0.5% left by 11 p.m. #1"
    out = normalize(text)
    assert not any(c.isdigit() for c in out), out


def test_split_sentences_and_clauses():
    s = split_sentences("First one. Second, with a clause; and more! Third?\nFourth")
    assert s == ["First one.", "Second, with a clause; and more!", "Third?", "Fourth"]
    assert split_clauses(s[1]) == ["Second,", "with a clause;", "and more!"]
    assert tokens("Don't stop, Lee's dog!") == ["Don't", "stop", ",", "Lee's", "dog", "!"]


def _fe(cache=None, g2p=None, **policy):
    return FrontEnd(VOCAB, cache, g2p if g2p is not None else FakeG2P(), ChunkPolicy(**policy))


def test_cache_hit_needs_no_g2p():
    fe = FrontEnd(VOCAB, small_cache(), g2p=False)  # no G2P at all
    [chunk] = fe.chunks("The cat sat on the mat.")
    assert chunk.phonemes == " ".join(fake_phonemes(w) for w in "the cat sat on the mat".split()) + "."
    assert list(chunk.tokens) == [VOCAB[c] for c in chunk.phonemes]


def test_cache_miss_goes_to_g2p_word_by_word():
    g = FakeG2P()
    fe = _fe(small_cache(), g)
    [chunk] = fe.chunks("The zebra sat on the quokka.")
    assert g.word_calls == [["zebra", "quokka"]] and g.text_calls == []
    assert fake_phonemes("zebra") in chunk.phonemes and fake_phonemes("quokka") in chunk.phonemes


def test_cache_miss_without_g2p_is_one_line_naming_the_words():
    fe = FrontEnd(VOCAB, small_cache(), g2p=False)
    with pytest.raises(G2PUnavailable) as e:
        fe.chunks("The zebra sat. The quokka sat on the zebra.")
    msg = str(e.value)
    assert "\n" not in msg and "zebra, quokka" in msg and "pip install phonemizer espeakng-loader" in msg


def test_numbers_speak_from_cache():
    fe = FrontEnd(VOCAB, small_cache(), g2p=False)
    [chunk] = fe.chunks("It was $25.")
    assert chunk.text == "It was twenty five dollars."


def test_cache_case_and_acronyms():
    c = small_cache()
    assert c.lookup("Hello") == c.lookup("hello")
    assert c.lookup("CAT") is None  # capitals: an acronym, not the word
    assert c.lookup("cat's") == fake_phonemes("cat") + "s"
    assert c.lookup("dog's") == fake_phonemes("dog") + "z"


def test_phrase_beats_words():
    cache = small_cache(phrases={"hello world": "həlˈO wˈɜɹld"})
    fe = FrontEnd(VOCAB, cache, g2p=False)
    assert fe.chunks("Hello world, this is a test.")[0].phonemes.startswith("həlˈO wˈɜɹld,")


def test_the_before_vowel():
    cache = small_cache(words=["the", "apple", "cat", "of"], phrases={"of the": "ʌvðə"})
    cache.words.update({"apple": "ˈæpᵊl", "the": "ðə"})
    fe = FrontEnd(VOCAB, cache, g2p=False)
    assert fe.chunks("The apple, the cat.")[0].phonemes.startswith("ðɪ ˈæpᵊl, ðə ")
    assert fe.chunks("Of the apple, of the cat.")[0].phonemes.startswith("ʌvðɪ ˈæpᵊl, ʌvðə ")


def test_no_cache_uses_clause_level_g2p():
    g = FakeG2P()
    _fe(None, g).chunks("Hello world, this is it.")
    assert g.text_calls == [["Hello world,", "this is it."]] and g.word_calls == []


def test_symbols_outside_vocab_are_dropped():
    fe = FrontEnd(VOCAB, None, FakeG2P())
    [chunk] = fe.chunks("Ωmega test")  # Ω is not in Kokoro's vocab
    assert all(t in VOCAB.values() for t in chunk.tokens)
    assert VOCAB["m"] in chunk.tokens


def _long_text(sentences: int, words: int) -> str:
    return " ".join(("word " * words).strip().capitalize() + "." for _ in range(sentences))


def test_chunks_never_exceed_the_model_limit():
    fe = _fe()
    text = _long_text(40, 30) + " " + ("verylongword " * 300).strip() + "."  # one 3900-token clause
    chunks = fe.chunks(text, first_short=True)
    assert max(len(c.tokens) for c in chunks) <= 510
    assert sum(c.text.count("word") for c in chunks) >= 40 * 30 + 300  # nothing dropped


def test_later_chunks_pack_sentences_up_to_target():
    fe = _fe(target_tokens=200)
    chunks = fe.chunks(_long_text(20, 6))  # ~41 tokens a sentence
    assert all(len(c.tokens) <= 200 for c in chunks)
    assert all(c.sentence_end for c in chunks)
    assert len(chunks) < 10 and all(c.text.count(".") >= 2 for c in chunks[:-1])


def test_first_chunk_is_a_short_clause_when_streaming():
    fe = _fe()
    text = "Well then, after the long and winding road, we arrived home. " + _long_text(5, 10)
    short = fe.chunks(text, first_short=True)
    full = fe.chunks(text, first_short=False)
    assert short[0].text == "Well then, after the long and winding road,"
    assert not short[0].sentence_end
    assert full[0].text.startswith("Well then, after the long and winding road, we arrived home.")
    assert " ".join(c.text for c in short) == " ".join(c.text for c in full)


def test_first_chunk_without_commas_is_capped():
    fe = _fe(first_max_tokens=60)
    chunks = fe.chunks(" ".join(["word"] * 80) + ". Next one.", first_short=True)
    assert len(chunks[0].tokens) <= 60
    assert sum(c.text.count("word") for c in chunks) == 80


def test_streamed_chunks_grow_so_each_renders_while_the_previous_plays():
    """First chunk <= 32 tokens, then at most 64, 128, 256, then 300 (whole sentences, clauses when a
    sentence is over the budget): a second chunk as long as the target would take longer to render
    than the first one takes to play. Not streaming, chunks pack whole sentences up to the target."""
    fe = _fe()
    text = " ".join(["The cat sat on the mat, and the dog ran to the park, where it was sunny all day."] * 12)
    streamed = fe.chunks(text, first_short=True)
    sizes = [len(c.tokens) for c in streamed]
    assert sizes[0] <= 32 and sizes[1] <= 64 and sizes[2] <= 128 and sizes[3] <= 256
    assert max(sizes) <= 300 and max(sizes[4:]) > 256                       # grown to the target
    whole = fe.chunks(text, first_short=False)
    assert all(len(c.tokens) > 256 for c in whole[:-1])
    assert " ".join(c.text for c in streamed) == " ".join(c.text for c in whole)   # nothing lost or moved
    flat = _fe(growth=1.0).chunks(text, first_short=True)                   # growth off: the old packing
    assert len(flat[1].tokens) > 256
