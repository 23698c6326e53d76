"""Pareto frontier, winners and every rejection reason on hand-made records with known answers."""

from __future__ import annotations

import pytest

from kopt.select.frontier import dominates, select
from kopt.select.metrics import Catalog
from kopt.select.rows import build_rows
from kopt.select.settings import Bound, SelectSettings
from tests.select.factory import CPU, CUDA, bench, pair, quality, standard


def run(records, **settings):
    return select(build_rows(records), SelectSettings(**settings))


def test_frontier_and_winner_on_known_data():
    sel = run(standard())
    cpu = sel.group(CPU)
    assert cpu.winner.variant == "int8"
    assert sorted(r.variant for r in cpu.frontier) == ["fp32", "int8"]
    outcomes = {v.variant: v.outcome for v in cpu.verdicts}
    assert outcomes == {"int8": "winner", "fp32": "frontier", "fp16": "dominated", "int4": "constraint",
                        "broken": "status"}
    assert sel.group(CUDA).winner.variant == "fp16"
    assert "int8 wins on CPUExecutionProvider" in cpu.explanation


def test_every_rejection_reason_is_named():
    recs = standard()
    recs += [bench("noquality", rtf=0.05, size=50.0)]  # no quality record: constraint metric missing
    recs += [bench("skipped", rtf=None, size=50.0, status="skipped", reason="provider not available")]
    recs += [bench("nospeed", rtf=None, size=70.0), quality("nospeed", pesq=4.4)]  # ok status, no rtf
    recs += pair("huge", rtf=0.15, pesq=4.3, size=900.0)
    g = run(recs, constraints={"pesq_wb_aligned": Bound(min=4.0), "size_mb": Bound(max=500)}).group(CPU)
    v = {x.variant: x for x in g.verdicts}
    assert v["int4"].outcome == "constraint" and "pesq_wb_aligned 3.5 < min 4" in v["int4"].reason
    assert v["huge"].outcome == "constraint" and "size_mb 900 > max 500" in v["huge"].reason
    assert v["noquality"].outcome == "missing" and "pesq_wb_aligned not measured" in v["noquality"].reason
    assert v["nospeed"].outcome == "missing" and "no rtf_median measured" in v["nospeed"].reason
    assert v["broken"].outcome == "status" and "failed: worker died" in v["broken"].reason
    assert v["skipped"].outcome == "status" and "skipped: provider not available" in v["skipped"].reason
    assert v["fp16"].outcome == "dominated" and v["fp16"].by == "int8" and "dominated by int8" in v["fp16"].reason
    assert v["fp32"].outcome == "frontier" and v["fp32"].by == "int8" and "slower than int8" in v["fp32"].reason
    assert g.winner.variant == "int8"


def test_a_constraint_breach_lists_every_violation():
    recs = pair("bad", rtf=0.1, pesq=3.0, size=900.0)
    g = run(recs, constraints={"pesq_wb_aligned": Bound(min=4.0), "size_mb": Bound(max=500)}).group(CPU)
    assert len(g.verdicts[0].violations) == 2


def test_per_provider_constraints_override_the_global_ones():
    sel = run(standard(), providers={CUDA: {"pesq_wb_aligned": Bound(min=4.3)}})
    assert sel.group(CPU).winner.variant == "int8"  # unchanged
    cuda = sel.group(CUDA)
    assert cuda.winner.variant == "fp32"
    assert cuda.verdict("k-fp16").outcome == "constraint"


def test_exact_tie_is_broken_by_name_and_said():
    recs = pair("b-twin", rtf=0.2, pesq=4.2, size=90.0) + pair("a-twin", rtf=0.2, pesq=4.2, size=90.0)
    g = run(recs).group(CPU)
    assert g.winner.variant == "a-twin"
    assert g.ties == ("b-twin",)
    loser = g.verdict("k-b-twin")
    assert loser.outcome == "frontier" and "tied with a-twin on every objective" in loser.reason
    assert "name order" in loser.reason


def test_speed_within_tie_tolerance_goes_to_better_quality():
    recs = pair("fast", rtf=0.200, pesq=4.1, size=90.0) + pair("good", rtf=0.203, pesq=4.4, size=90.0)
    g = run(recs, speed_tie_rel=0.02).group(CPU)
    assert g.winner.variant == "good"
    assert "as fast as good within 2%" in g.verdict("k-fast").reason
    g0 = run(recs, speed_tie_rel=0.0).group(CPU)  # no tolerance: the strictly fastest wins
    assert g0.winner.variant == "fast"


def test_empty_frontier_explains_the_closest_miss():
    recs = pair("near", rtf=0.2, pesq=3.95, size=90.0) + pair("far", rtf=0.1, pesq=3.0, size=60.0)
    g = run(recs).group(CPU)
    assert g.winner is None and g.frontier == ()
    assert "no variant meets the constraints" in g.explanation and "closest: near" in g.explanation


def test_empty_frontier_when_everything_failed():
    recs = [bench("x", rtf=None, size=1.0, status="failed", reason="oom"),
            bench("y", rtf=None, size=1.0, status="skipped", reason="no GPU")]
    g = run(recs).group(CPU)
    assert g.winner is None and "every variant was skipped or failed" in g.explanation


def test_empty_frontier_without_quality_says_what_to_run():
    g = run([bench("x", rtf=0.2, size=1.0)], constraints={}).group(CPU)
    assert g.winner is None and "kopt quality" in g.explanation


def test_machines_are_never_pooled():
    recs = standard(machine="m1") + pair("turbo", rtf=0.01, pesq=4.9, size=10.0, machine="m2")
    sel = run(recs)
    assert sel.group(CPU, "m1").winner.variant == "int8"  # turbo ran elsewhere: it does not dominate here
    assert sel.group(CPU, "m2").winner.variant == "turbo"


def test_quality_joins_within_a_machine_unless_asked():
    recs = [bench("v", rtf=0.2, size=90.0, machine="m2"), quality("v", pesq=4.2, machine="m1")]
    rows = build_rows(recs)
    bench_row = next(r for r in rows if r.machine_id == "m2")
    assert bench_row.value("pesq_wb_aligned") is None
    rows = build_rows(recs, quality_across_machines=True)
    bench_row = next(r for r in rows if r.machine_id == "m2")
    assert bench_row.value("pesq_wb_aligned") == 4.2 and bench_row.quality_from == "m1"


def test_quality_prefers_the_same_provider_then_cpu():
    recs = [bench("v", rtf=0.05, size=90.0, provider=CUDA), quality("v", pesq=4.2), quality("v", pesq=4.0, provider=CUDA)]
    row = build_rows(recs)[0]
    assert row.provider == CUDA and row.value("pesq_wb_aligned") == 4.0


def test_quality_from_cpu_joins_a_preset_named_gpu_row():
    recs = [bench("v", rtf=0.05, size=90.0, provider=CUDA, config="cuda"),
            quality("v", pesq=4.2, config="cpu"), quality("v", pesq=3.0, provider="OtherExecutionProvider", config="a")]
    (row,) = build_rows(recs)
    assert row.provider == "cuda" and row.value("pesq_wb_aligned") == 4.2


def test_newest_record_per_cell_wins():
    old = pair("v", rtf=0.5, pesq=4.2, size=90.0, time="2025-01-01T00:00:00Z", run="r1")
    new = pair("v", rtf=0.2, pesq=4.3, size=90.0, time="2025-02-01T00:00:00Z", run="r2")
    (row,) = build_rows(new + old)
    assert row.value("rtf_median") == 0.2 and row.value("pesq_wb_aligned") == 4.3


def test_dominance_is_strict_in_one_objective():
    cat = Catalog()
    objs = [cat.require("rtf_median"), cat.require("pesq_wb_aligned")]
    a, b = build_rows(pair("a", rtf=0.2, pesq=4.2, size=1.0) + pair("b", rtf=0.2, pesq=4.2, size=1.0))
    assert not dominates(a, b, objs) and not dominates(b, a, objs)
    (c,) = build_rows(pair("c", rtf=0.2, pesq=4.3, size=1.0))
    assert dominates(c, a, objs) and not dominates(a, c, objs)


def test_directions_are_data():
    cat = Catalog({"mos_custom": {"direction": "higher", "kind": "quality"}})
    assert cat.require("mos_custom").better(4.0, 3.0)
    assert Catalog().require("duration_frames_diff").better(-1, 3)  # closer to zero
    with pytest.raises(ValueError):
        Catalog({"mystery": {"kind": "quality"}})
    recs = [bench("v", rtf=0.2, size=1.0, mos_custom=2.0), quality("v", pesq=4.5)]
    sel = select(build_rows(recs), SelectSettings(quality="mos_custom", constraints={},
                                                  metrics={"mos_custom": {"direction": "higher"}}))
    assert sel.group(CPU).winner.variant == "v"
