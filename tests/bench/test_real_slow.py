"""Bench and quality of the fp32 reference and the shipped int8 on the real model (slow)."""

import pytest

pytestmark = pytest.mark.slow


def test_bench_and_quality_real(real_store, tmp_path):
    from kopt.bench.run import run_bench
    from kopt.bench.settings import BenchSettings
    from kopt.bench.variants import resolve_variant
    from kopt.core.vocab import load_vocab
    from kopt.quality.run import run_quality
    from kopt.quality.settings import QualitySettings
    from kopt.source.voices import load_voices

    st, base, ref = real_store
    vs = [resolve_variant(st, "reference"), resolve_variant(st, "base")]
    s = BenchSettings(providers=("cpu", "cuda"), threads=1, warmup=0, repeats=1, ttfa_repeats=1, texts=("short-1",),
                      partition=False)
    recs = run_bench(vs, s, voices_path=str(base.file("voices.npz")), vocab=load_vocab(base.file("vocab.json")),
                     run_id="slow")
    cpu = {r["variant"]["name"]: r for r in recs if r["provider"]["config"] == "cpu"}
    assert all(r["provider"]["status"] == "ok" for r in cpu.values()), [r["provider"] for r in recs]
    assert cpu["base"]["metrics"]["size_mb"] < cpu["reference"]["metrics"]["size_mb"] / 2
    for r in cpu.values():
        assert 0 < r["metrics"]["rtf_median"] < 5 and r["metrics"]["ttfa_ms_median"] > 0
    assert {r["provider"]["status"] for r in recs if r["provider"]["config"] == "cuda"} == {"skipped"}

    q = run_quality(vs, vs[0], QualitySettings(texts=("short-1",), threads=1, metrics=("pesq", "stoi", "mcd")),
                    voices=load_voices(base.file("voices.npz")), run_id="slow", cache_dir=tmp_path / "dur")
    qm = {r["variant"]["name"]: r for r in q}
    assert qm["reference"]["extra"]["aligned"], qm["reference"]["extra"]["align_reason"]
    assert qm["reference"]["metrics"]["pesq_wb_aligned"] > 4.6  # the reference against itself
    assert qm["reference"]["metrics"]["bit_identical"] == 1.0
    assert 2.5 < qm["base"]["metrics"]["pesq_wb_aligned"] < 4.6  # int8 is close, not identical
