"""Table shapes for people: one table per provider with measured rows first, a provider that was not
measured as one line with its reason, the same in results.md, the HTML and the build's CLI summary (plain
Markdown-style rows when stdout is not a terminal)."""

from __future__ import annotations

import re

from kopt.report import tables
from kopt.report.page import write_report
from kopt.select.frontier import select
from kopt.select.rows import build_rows
from kopt.select.settings import SelectSettings
from tests.select.factory import CPU, bench, standard

COREML = "CoreMLExecutionProvider is not in this onnxruntime build (available: CPUExecutionProvider)"
TRT = "TensorrtExecutionProvider is not in this onnxruntime build (available: CPUExecutionProvider)"


def _records():
    recs = standard()
    for name in ("fp32", "int8", "fp16", "int4", "broken"):
        recs.append(bench(name, rtf=None, size=1.0, provider="CoreMLExecutionProvider", status="skipped",
                          reason=COREML))
        recs.append(bench(name, rtf=None, size=1.0, provider="TensorrtExecutionProvider", status="skipped",
                          reason=TRT))
    # one skipped cell inside a measured provider stays a row of that provider's table, after the measured ones
    recs.append(bench("int2", rtf=None, size=30.0, status="skipped", reason="int2 kernels missing"))
    return recs


def _selection(recs):
    s = SelectSettings()
    return select(build_rows(recs), s), s


def test_measured_providers_first_and_rows_measured_first():
    sel, s = _selection(_records())
    tabs = tables.provider_tables(sel, s.speed)
    assert [(t.title, t.measured) for t in tabs] == [("CPU", True), ("CUDA", True), ("CoreML", False),
                                                      ("Tensorrt", False)]
    cpu = tabs[0]
    # ok rows fastest first, then the failed one, then the skipped one
    assert [r.variant for r in cpu.rows] == ["int4", "int8", "fp16", "fp32", "broken", "int2"]
    assert tabs[2].reason == COREML and tabs[3].reason == TRT
    df = tables.provider_frame(cpu)
    assert list(df.columns[:4]) == ["variant", "key", "precision", "status"]
    assert df.loc[df.variant == "int8", "selection"].item() == "WINNER"
    assert "provider" not in df.columns  # the provider is the table's title
    # a group where every row is ok has no status column
    assert "status" not in tables.provider_frame(tabs[1]).columns


def test_results_md_and_html_collapse_providers_not_measured(tmp_path):
    write_report([("a", _records())], tmp_path / "rep")
    md = (tmp_path / "rep" / "results.md").read_text()
    assert md.count(COREML) == 1 and md.count(TRT) == 1
    assert f"- CoreML: {COREML}" in md
    assert "## CoreML" not in md and "## Tensorrt" not in md
    assert md.index("## CPU") < md.index("## CUDA") < md.index("## Not measured")
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert not any("skipped" in ln and "not in this onnxruntime build" in ln for ln in rows)
    html = (tmp_path / "rep" / "index.html").read_text()
    trs = re.findall(r"<tr[^>]*>.*?</tr>", html)
    assert trs and not any("not in this onnxruntime build" in tr for tr in trs)
    assert html.count(f"<b>CoreML</b>: {COREML}") >= 1
    h3 = re.findall(r"<h3>([^<]*)</h3>", html)
    assert "CoreML" not in h3 and "CPU" in h3 and "CUDA" in h3
    # the CSV stays complete: every cell, skipped ones included
    import pandas as pd

    assert len(pd.read_csv(tmp_path / "rep" / "results.csv")) == 7 + 10 + 1


def test_names_with_keys_beside_them(tmp_path):
    recs = _records()
    for r in recs:
        r["variant"]["key"] = "0123456789abcdef" + r["variant"]["name"]
    write_report([("a", recs)], tmp_path / "rep")
    md = (tmp_path / "rep" / "results.md").read_text()
    assert re.search(r"\| int8\s+\| 0123456789\s+\|", md), md


def test_plain_rows_are_one_line_each():
    import pandas as pd

    df = pd.DataFrame([{"a": "x" * 120, "b": "y|z", "c": None}])
    assert tables.plain_rows(df) == ["| a | b | c |", "|---|---|---|", f"| {'x' * 120} | y/z |  |"]


def test_build_summary_without_a_terminal_is_plain_rows(capsys):
    from kopt.cli import cmd_build, state
    from kopt.pipeline.pipeline import BuildResult

    sel, s = _selection(_records())
    res = BuildResult("default", "r1", "/b", "/b/runs/r1.jsonl", seconds=1.0,
                      tables=tables.summary_dicts(sel, s.speed), report="/b/report/index.html",
                      reasons=["a reason that is long enough to be wrapped at eighty columns by a console that wraps"])
    state.configure(False, False, "artifacts")
    cmd_build._summary(res)
    out = capsys.readouterr().out.splitlines()
    cpu = out.index(next(ln for ln in out if ln.startswith("CPU: int8 (k-int8): int8 wins on")))
    assert out[cpu + 1] == "| variant | key | precision | status | size MB | RTF median | TTFA ms | PESQ aligned | " \
                           "STOI | selection |"
    assert out[cpu + 3].startswith("| int4 | k-int4 | int4 | ok | 60 | 0.1 | 100 | 3.5 | 0.95 | constraint |")
    assert "| int8 | k-int8 | int8 | ok | 90 | 0.2 | 100 | 4.2 | 0.95 | WINNER |" in out
    assert f"not measured: CoreML: {COREML}" in out and f"not measured: Tensorrt: {TRT}" in out
    assert sum(COREML in ln for ln in out) == 1
    assert any(len(ln) > 80 for ln in out)  # long lines are kept whole, not wrapped
    assert "  a reason that is long enough to be wrapped at eighty columns by a console that wraps" in out
    assert not any(CPU in ln and "skipped" in ln for ln in out)


def test_providers_skipped_for_the_same_reason_share_one_line(tmp_path, capsys):
    from kopt.cli import cmd_build, state
    from kopt.pipeline.pipeline import BuildResult

    recs = _records()
    for name in ("fp32", "int8"):
        recs.append(bench(name, rtf=None, size=1.0, provider="CoreMLExecutionProvider", config="coreml-ane",
                          status="skipped", reason=COREML))
    sel, s = _selection(recs)
    tabs = tables.provider_tables(sel, s.speed)
    assert tables.not_measured(tabs) == [("CoreML, coreml-ane", COREML), ("Tensorrt", TRT)]
    write_report([("a", recs)], tmp_path / "rep")
    md = (tmp_path / "rep" / "results.md").read_text()
    assert md.count(COREML) == 1 and f"- CoreML, coreml-ane: {COREML}" in md
    state.configure(False, False, "artifacts")
    cmd_build._summary(BuildResult("d", "r", "/b", "/r", tables=tables.summary_dicts(sel, s.speed)))
    out = capsys.readouterr().out.splitlines()
    assert f"not measured: CoreML, coreml-ane: {COREML}" in out and sum(COREML in ln for ln in out) == 1
