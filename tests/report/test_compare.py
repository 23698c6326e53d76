"""Regression verdicts: better / worse / within noise, cross-machine refusal, CLI exit codes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from kopt.cli.main import app
from kopt.core.results import append_records
from kopt.report.verdict import REGRESSION_EXIT, compare
from kopt.select.settings import CompareSettings, Threshold
from tests.select.factory import CPU, bench, pair, standard


def _set(recs, variant, kind, metric, value, provider=CPU):
    for r in recs:
        if r["variant"]["name"] == variant and r["kind"] == kind and r["provider"]["config"] == provider:
            r["metrics"][metric] = value
    return recs


def test_same_build_rerun_passes():
    c = compare(standard("r1"), standard("r2"))
    assert not c.regression and not c.regressions and not c.improvements
    assert c.as_dict()["exit_code"] == 0


def test_planted_speed_regression_fails():
    c = compare(standard("r1"), _set(standard("r2"), "int8", "bench", "rtf_median", 0.25))
    assert c.regression
    (reg,) = c.regressions
    assert (reg.variant, reg.metric, reg.baseline, reg.current) == ("int8", "rtf_median", 0.2, 0.25)
    assert c.as_dict()["verdict"] == "regression" and c.as_dict()["exit_code"] == REGRESSION_EXIT


def test_speedup_is_reported_better():
    c = compare(standard("r1"), _set(standard("r2"), "int8", "bench", "rtf_median", 0.15))
    assert not c.regression and [x.metric for x in c.improvements] == ["rtf_median"]


def test_speed_change_within_the_measured_spread_is_noise():
    base = pair("v", rtf=0.200, pesq=4.2, size=90.0, spread=0.03)
    cur = pair("v", rtf=0.216, pesq=4.2, size=90.0, spread=0.03, run="r2")  # +8% > 5%, but inside the spread
    c = compare(base, cur)
    assert not c.regression
    (ch,) = [x for x in c.changes if x.metric == "rtf_median"]
    assert ch.outcome == "within_noise" and ch.noise > 0.016
    assert compare(base, cur, CompareSettings(noise=False)).regression  # the same change without noise awareness


def test_speed_change_beyond_the_spread_is_a_regression():
    base = pair("v", rtf=0.200, pesq=4.2, size=90.0, spread=0.005)
    cur = pair("v", rtf=0.260, pesq=4.2, size=90.0, spread=0.005, run="r2")
    assert compare(base, cur).regression


def test_quality_threshold_is_absolute():
    worse = _set(standard("r2"), "int8", "quality", "pesq_wb_aligned", 4.10)
    assert [x.metric for x in compare(standard("r1"), worse).regressions] == ["pesq_wb_aligned"]
    slight = _set(standard("r2"), "int8", "quality", "pesq_wb_aligned", 4.17)
    assert not compare(standard("r1"), slight).regression
    loose = CompareSettings(thresholds={"pesq_wb_aligned": Threshold(abs=0.2)})
    assert not compare(standard("r1"), worse, loose).regression


def test_different_machines_refuse_speed_but_compare_quality():
    cur = _set(standard("r2", machine="m2"), "int8", "bench", "rtf_median", 0.9)
    c = compare(standard("r1", machine="m1"), cur)
    assert not c.regression
    assert any("different machines" in n for n in c.notes)
    rtf = [x for x in c.changes if x.metric == "rtf_median"]
    assert rtf and all(x.outcome == "not_compared" and "machine" in x.note for x in rtf)
    cur = _set(cur, "int8", "quality", "pesq_wb_aligned", 3.9)
    assert [x.metric for x in compare(standard("r1", machine="m1"), cur).regressions] == ["pesq_wb_aligned"]


def test_missing_variant_and_broken_provider_are_regressions():
    cur = [r for r in standard("r2") if r["variant"]["name"] != "fp16"]
    c = compare(standard("r1"), cur)
    assert c.regression and {x.outcome for x in c.cells} == {"missing"}
    assert not compare(standard("r1"), cur, CompareSettings(allow_missing=True)).regression
    cur = standard("r2")
    cur = [r for r in cur if not (r["variant"]["name"] == "int8" and r["kind"] == "bench")]
    cur.append(bench("int8", rtf=None, size=90.0, status="failed", reason="session creation failed", run="r2"))
    c = compare(standard("r1"), cur)
    assert c.regression and any(x.outcome == "status_regression" for x in c.cells)


def _files(tmp_path, base, cur):
    b, c = tmp_path / "base.jsonl", tmp_path / "cur.jsonl"
    append_records(b, base)
    append_records(c, cur)
    return str(b), str(c)


def test_cli_exit_codes_and_json(tmp_path):
    runner = CliRunner()
    b, same = _files(tmp_path, standard("r1"), standard("r2"))
    res = runner.invoke(app, ["compare", b, same, "--out", str(tmp_path / "ok.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ok.json").read_text())["verdict"] == "ok"
    worse = tmp_path / "worse.jsonl"
    append_records(worse, _set(standard("r3"), "int8", "bench", "rtf_median", 0.3))
    res = runner.invoke(app, ["compare", b, str(worse), "--out", str(tmp_path / "bad.json")])
    assert res.exit_code == REGRESSION_EXIT, res.output
    assert "rtf_median" in res.output and "REGRESSION" in res.output
    v = json.loads((tmp_path / "bad.json").read_text())
    assert v["verdict"] == "regression" and v["regressions"][0]["variant"] == "int8"
    res = runner.invoke(app, ["compare", b, str(worse), "--threshold", "rtf_median=60%", "--threshold", "rtf_p90=60%",
                              "--threshold", "ttfa_ms_median=60%"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", b, str(worse), "--threshold", "rtf_median=lots"])
    assert res.exit_code == 1 and "not a number" in str(res.exception)


def test_settings_file_for_compare(tmp_path):
    b, c = _files(tmp_path, standard("r1"), _set(standard("r2"), "int8", "bench", "rtf_median", 0.21))
    cfg = tmp_path / "s.toml"
    cfg.write_text("[compare]\nthresholds = { rtf_median = { rel = 0.01 } }\n")
    res = CliRunner().invoke(app, ["compare", b, c, "--settings", str(cfg)])
    assert res.exit_code == REGRESSION_EXIT, res.output
    cfg.write_text("[compare]\nthreshold = 1\n")
    res = CliRunner().invoke(app, ["compare", b, c, "--settings", str(cfg)])
    assert res.exit_code == 1 and "compare.threshold" in str(res.exception)


def test_watched_metrics_are_reported_but_do_not_gate():
    slow_load = _set(standard("r2"), "int8", "bench", "load_s", 5.0)  # single-sample timing, 10x worse
    c = compare(standard("r1"), slow_load)
    assert not c.regression and [(x.metric, x.outcome) for x in c.worse] == [("load_s", "worse")]
    gated = compare(standard("r1"), slow_load, CompareSettings(thresholds={"load_s": Threshold(rel=0.5)}))
    assert [x.metric for x in gated.regressions] == ["load_s"]


def test_thread_scaling_figures_are_watched_not_gating():
    """rtf_threads_<n>_median (one per thread count bench's scaling measured) is a catalogued speed metric:
    compared within a machine, reported as worse, never failing the gate unless a threshold is set."""
    from kopt.select.metrics import Catalog

    m = Catalog().require("rtf_threads_4_median")
    assert (m.kind, m.direction, m.gate, m.label) == ("speed", "lower", False, "RTF median, 4 threads")
    assert Catalog().get("rtf_threads_x_median") is None

    def run(name, rtf1):
        recs = standard(name)
        for r in recs:
            if r["kind"] == "bench" and r["provider"]["config"] == CPU and r["metrics"]["rtf_median"]:
                r["metrics"].update(rtf_threads_1_median=rtf1, rtf_threads_2_median=r["metrics"]["rtf_median"])
        return recs

    c = compare(run("r1", 0.3), run("r2", 0.6))
    assert not c.regression
    assert {(x.metric, x.outcome) for x in c.worse} == {("rtf_threads_1_median", "worse")}
    gated = compare(run("r1", 0.3), run("r2", 0.6), CompareSettings(thresholds={"rtf_threads_1_median": Threshold(rel=0.2)}))
    assert {x.metric for x in gated.regressions} == {"rtf_threads_1_median"}
    old = compare(standard("r1"), run("r2", 0.3))  # records from before scaling: newly measured, not compared
    assert not old.regression
