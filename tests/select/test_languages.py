"""Selection with several languages: a row's quality figures are the worst language's, so a variant
passes a constraint only when every language does (means and per-sentence minimums alike), and the
verdict names the language; compare and history follow each language on its own."""

from __future__ import annotations

from kopt.core.results import read_records
from kopt.report.history import Run, long_frame, trend_tables
from kopt.report.verdict import compare
from kopt.select.frontier import select
from kopt.select.metrics import Catalog
from kopt.select.rows import build_rows
from kopt.select.settings import Bound, SelectSettings
from tests.select.factory import CPU, bench, quality

RULES = SelectSettings(constraints={"pesq_wb_aligned": Bound(min=4.1), "pesq_wb_aligned_min": Bound(min=3.9)})


def two_languages(name, *, rtf, en, ja, en_min=None, ja_min=None, run="run1"):
    return [bench(name, rtf=rtf, size=100.0, run=run),
            quality(name, pesq=en, pesq_wb_aligned_min=en_min if en_min is not None else en - 0.1, run=run),
            quality(name, pesq=ja, pesq_wb_aligned_min=ja_min if ja_min is not None else ja - 0.1, run=run,
                    language="ja")]


def test_the_worst_language_counts():
    recs = (two_languages("good", rtf=0.3, en=4.4, ja=4.3)
            + two_languages("ja-bad", rtf=0.1, en=4.5, ja=4.0)          # English passes, Japanese mean does not
            + two_languages("ja-floor", rtf=0.2, en=4.4, ja=4.3, ja_min=3.8))  # a Japanese sentence below 3.9
    rows = {r.variant: r for r in build_rows(recs)}
    assert rows["ja-bad"].value("pesq_wb_aligned") == 4.0 and rows["ja-bad"].worst_language["pesq_wb_aligned"] == "ja"
    assert rows["ja-bad"].value("pesq_wb_aligned@en-us") == 4.5 and rows["ja-bad"].languages == ("en-us", "ja")
    g = select(list(rows.values()), RULES, Catalog()).group(CPU)
    assert g.winner.variant == "good"  # the two faster ones miss in Japanese
    bad = g.verdict("k-ja-bad")
    assert bad.outcome == "constraint" and "pesq_wb_aligned 4 < min 4.1 in ja, the worst of en-us/ja" in bad.reason
    floor = g.verdict("k-ja-floor")
    assert floor.outcome == "constraint" and "pesq_wb_aligned_min 3.8 < min 3.9 in ja" in floor.reason


def test_a_language_not_measured_fails_the_constraint_and_says_which():
    recs = [bench("v", rtf=0.1, size=100.0), quality("v", pesq=4.4),
            quality("v", pesq=None, language="ja")]
    (row,) = build_rows(recs)
    assert row.value("pesq_wb_aligned") is None
    g = select([row], RULES, Catalog()).group(CPU)
    assert "pesq_wb_aligned not measured in ja" in g.verdict("k-v").reason


def test_one_language_rows_are_as_before():
    (row,) = build_rows([bench("v", rtf=0.1, size=100.0), quality("v", pesq=4.4)])
    assert row.value("pesq_wb_aligned") == 4.4 and row.languages == ("en-us",) and row.worst_language == {}


def test_old_records_without_a_language_read_as_english(tmp_path):
    rec = quality("v", pesq=4.4)
    del rec["language"]
    p = tmp_path / "old.jsonl"
    import json

    p.write_text(json.dumps(rec) + "\n")
    (back,) = read_records(p)
    (row,) = build_rows([back])
    assert row.languages == ("en-us",) and row.value("pesq_wb_aligned@en-us") == 4.4


def test_compare_goes_language_by_language():
    base = [bench("v", rtf=0.1, size=100.0, run="b"), quality("v", pesq=4.4, run="b")]  # English only, as before
    cur = two_languages("v", rtf=0.1, en=4.4, ja=3.9, run="c")
    # adding Japanese (lower than English) is no regression of English; Japanese is newly measured
    cmp_ = compare(base, cur)
    assert not cmp_.regression, [c.note for c in cmp_.regressions]
    ja = [c for c in cmp_.changes if c.metric == "pesq_wb_aligned@ja"]
    assert ja and ja[0].language == "ja" and ja[0].note == "newly measured"
    worse = two_languages("v", rtf=0.1, en=4.4, ja=3.5, run="d")
    regs = compare(cur, worse).regressions
    assert sorted((c.metric, c.language) for c in regs) == [
        ("pesq_wb_aligned@ja", "ja"), ("pesq_wb_aligned_min@ja", "ja"), ("pesq_wb_natural@ja", "ja")]


def test_history_follows_each_language():
    runs = [Run("r1", "2026-01-01", tuple(two_languages("v", rtf=0.1, en=4.4, ja=4.2, run="r1"))),
            Run("r2", "2026-01-02", tuple(two_languages("v", rtf=0.1, en=4.4, ja=4.0, run="r2")))]
    df = long_frame(runs)
    assert set(df[df["metric"] == "pesq_wb_aligned@ja"]["language"]) == {"ja"}
    t = trend_tables(df, runs, ["pesq_wb_aligned"])
    assert list(t) == ["pesq_wb_aligned", "pesq_wb_aligned@en-us", "pesq_wb_aligned@ja"]
    assert list(t["pesq_wb_aligned@ja"].iloc[0]) == [4.2, 4.0]
