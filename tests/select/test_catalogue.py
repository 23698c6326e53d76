"""The metric catalogue is the one declaration of a metric: every entry is written by a writer (bench or
quality, run here on tiny graphs), its views are known, and the report tables, history trends and
`kopt quality`'s table take their columns from it."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kopt.select.metrics import (
    CATALOG,
    ENTRIES,
    FAMILIES,
    TAGS,
    VIEWS,
    Catalog,
    Metric,
    columns,
    quality_column,
    shown,
    table_column,
    trend,
)


def test_entries_are_unique_and_their_views_known():
    names = [m.name for m in ENTRIES]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    for m in ENTRIES:
        views = [s.view for s in m.show]
        assert len(views) == len(set(views)), f"{m.name}: shown twice in one view"
        for s in m.show:
            assert s.view in VIEWS, (m.name, s.view)
            assert set(s.tags) <= set(TAGS), (m.name, s.tags)
            assert s.view == "trend" or s.column, f"{m.name}: no column heading in the {s.view} view"
    for view in VIEWS:
        orders = [s.order for _, s in shown(view)]
        assert len(orders) == len(set(orders)), f"{view}: two entries share an order"


def _bench_names(tmp_path) -> set[str]:
    """Every metric name a tiny bench run writes: a baseline and a variant, every text category, TTFA, and a
    thread count beside the main one."""
    from kopt.bench.run import run_bench
    from kopt.bench.settings import BenchSettings
    from kopt.bench.variants import Variant
    from kopt.core.hashing import sha256_file
    from kopt.core.vocab import default_vocab
    from tests.graphs import tiny_kokoro, tiny_voices

    voices = tmp_path / "voices.npz"
    np.savez(voices, **tiny_voices())
    vs = [Variant(n, n + "-key", p, sha256_file(p)) for n, p in
          (("a", tiny_kokoro(tmp_path / "a.onnx", seed=0)), ("b", tiny_kokoro(tmp_path / "b.onnx", seed=1)))]
    s = BenchSettings(providers=("cpu",), threads=1, warmup=0, repeats=1, ttfa_repeats=1, partition=False,
                      texts=("short-1", "medium-1", "long-1"), scaling_threads=(2,), scaling_repeats=1)
    recs = run_bench(vs, s, voices_path=str(voices), vocab=default_vocab(), run_id="r")
    assert all(r["provider"]["status"] == "ok" for r in recs), [r["provider"] for r in recs]
    return {k for r in recs for k, v in r["metrics"].items() if v is not None}


def _quality_names(tmp_path, monkeypatch) -> set[str]:
    """Every metric name a tiny quality run writes, every registered metric scored on aligned and natural
    audio (a stand-in durations pass instruments the tiny graphs)."""
    import kopt.core.passes as passes
    from kopt.bench.variants import Variant
    from kopt.core.hashing import sha256_file
    from kopt.quality.run import run_quality
    from kopt.quality.settings import QualitySettings
    from tests.quality.durgraph import durations_model, save, table
    from tests.quality.test_score import FakeDurationsPass

    real = passes.get_pass
    monkeypatch.setattr(passes, "get_pass", lambda n: FakeDurationsPass if n == "durations" else real(n))
    paths = [save(durations_model(table()), tmp_path / "ref.onnx"),
             save(durations_model(table(noise=0.02), extra_token=50), tmp_path / "drift.onnx")]
    vs = [Variant(p.stem, p.stem, p, sha256_file(p)) for p in paths]
    voices = {"af_heart": (np.random.default_rng(0).standard_normal((510, 1, 256)) * 0.1).astype(np.float32)}
    s = QualitySettings(languages=("en-us",), texts=("short-1",), threads=1)
    recs = run_quality(vs, vs[0], s, voices=voices, run_id="r", cache_dir=tmp_path / "c")
    assert all(r["extra"]["aligned"] for r in recs), recs[0]["extra"]["align_reason"]
    return {k for r in recs for k, v in r["metrics"].items() if v is not None}


def test_every_entry_is_written_by_bench_or_quality(tmp_path, monkeypatch):
    """An entry nothing writes is a column that is always empty and a metric no comparison ever sees:
    bench and quality, run on tiny graphs, write every catalogued name and every family."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "quality").mkdir()
    written = _bench_names(tmp_path / "bench") | _quality_names(tmp_path / "quality", monkeypatch)
    assert not [n for n in CATALOG if n not in written], "catalogued, never written"
    for pattern in FAMILIES:
        assert any(re.fullmatch(pattern, n) for n in written), pattern


def test_views_follow_the_catalogue():
    """One more entry is all a new column takes: placed by its order, grouped by its heading."""
    extra = {"lsd_db_aligned": Metric("lsd_db_aligned", "lower", "quality", "LSD aligned", "dB", abs=0.1,
                                      show=(table_column("LSD", 95, "compact"), trend(75),
                                            quality_column("LSD dB", 45, "{:.2f}"))),
             "lsd_db_natural": Metric("lsd_db_natural", "lower", "quality", "LSD natural", "dB", abs=0.1,
                                      show=(table_column("LSD", 96), quality_column("LSD dB", 46, " / {:.2f}")))}
    cat = {**CATALOG, **extra}
    heads = [c.heading for c in columns("table", cat)]
    assert heads.index("LSD") == heads.index("PESQ natural") + 1
    lsd = next(c for c in columns("table", cat) if c.heading == "LSD")
    assert lsd.names == ("lsd_db_aligned", "lsd_db_natural") and lsd.tags == {"compact"}
    trends = [m.name for m, _ in shown("trend", cat)]
    assert trends.index("lsd_db_aligned") == trends.index("pesq_wb_natural") + 1
    q = [c.heading for c in columns("quality", cat)]
    assert q.index("LSD dB") == q.index("log-mel dB") + 1


@pytest.mark.parametrize("metrics,expected", [
    ({"pesq_wb_aligned": 3.14159, "pesq_wb_natural": 2.5}, "3.142 / 2.500"),
    ({"pesq_wb_natural": 2.5}, "- / 2.500"),  # --no-aligned
    ({}, "- / -"),
])
def test_a_quality_cell_writes_each_entry_by_its_template(metrics, expected):
    (col,) = [c for c in columns("quality") if c.heading == "PESQ-wb"]
    assert col.cell(metrics) == expected


def test_optional_entries_are_left_out_and_words_name_truth():
    cols = {c.heading: c for c in columns("quality")}
    dn = cols["DNSMOS ovrl (Δ ref)"]
    assert dn.cell({"dnsmos_ovrl": 3.331, "dnsmos_ovrl_delta": -0.049}) == "3.33 (-0.05)"
    assert dn.cell({}) == "-"  # DNSMOS not scored: no "(-)" after the dash
    assert cols["gates"].cell({"gate_pass": 1.0}) == "pass" and cols["gates"].cell({"gate_pass": 0.0}) == "FAIL"
    assert cols["bit-identical"].cell({"bit_identical": 0.0}) == "no" and cols["bit-identical"].cell({}) == "-"
    assert cols["dur. tokens changed"].cell({"duration_tokens_changed": 0.029}) == "2.9%"


def test_report_tables_and_trends_come_from_the_catalogue():
    from kopt.report import history, tables

    assert tables.COLUMNS == tuple((c.heading, c.names) for c in columns("table"))
    assert set(tables.COMPACT) <= {h for h, _ in tables.COLUMNS} and set(tables.CARD) <= {h for h, _ in tables.COLUMNS}
    per_language = {c.heading for c in columns("table") if "per_language" in c.tags}
    assert set(tables.PER_LANGUAGE) == per_language
    assert history.TREND_METRICS == tuple(m.name for m, _ in shown("trend"))
    assert all(n in CATALOG for _, names in tables.COLUMNS for n in names)


def test_language_suffix_and_families_keep_their_meaning():
    cat = Catalog()
    ja = cat.require("pesq_wb_aligned@ja")
    assert ja.label == "PESQ-wb aligned (ja)" and ja.direction == "higher" and ja.kind == "quality"
    fam = cat.require("rtf_threads_4_median")
    assert fam.label == "RTF median, 4 threads" and not fam.gate and fam.machine_dependent
    assert cat.require("rtf_threads_4_median@ja").label == "RTF median, 4 threads (ja)"
    assert not cat.require("load_s").gate and cat.require("rtf_median").gate
