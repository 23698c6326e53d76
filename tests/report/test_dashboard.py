"""`kopt history --out`: one self-contained dashboard page over runs from two machines, kept apart, with
regression verdicts marked and links back to each build's report."""

from __future__ import annotations

import base64
import json
import re

from typer.testing import CliRunner

from kopt.cli.main import app
from kopt.core.results import append_records
from tests.select.factory import CPU, bench, standard

PNG = b"\x89PNG\r\n\x1a\n"


def _runs(tmp_path):
    """Three builds on machine m1 (steady) and three sharded CI runs on m2 whose int8 CPU RTF jumps by 40%
    in the third: each m2 run's shards are separate files with their own run ids, read as one run per folder."""
    m1 = tmp_path / "builds" / "default" / "runs"
    for i in (1, 2, 3):
        recs = standard(f"run{i}", machine="m1", time=f"2025-01-0{i}T00:00:00Z")
        recs.append(bench("int8", rtf=None, size=90.0, provider="CoreMLExecutionProvider", status="skipped",
                          reason="not in this onnxruntime build", run=f"run{i}", machine="m1",
                          time=f"2025-01-0{i}T00:00:00Z"))
        append_records(m1 / f"run{i}.jsonl", recs)
    for i in (1, 2, 3):
        recs = standard(f"ci{i}", machine="m2", time=f"2025-01-0{i}T12:00:00Z")
        for r in recs:
            if r["kind"] == "bench" and r["variant"]["name"] == "int8" and r["provider"]["config"] == CPU:
                r["metrics"]["rtf_median"] = 0.28 if i == 3 else 0.20
                r["spread"] = {"rtf": {"p10": 0.199, "p90": 0.201, "n": 20, "std": 0.001}}
        half = len(recs) // 2
        for j, part in enumerate((recs[:half], recs[half:])):
            for r in part:
                r["run_id"] = f"ci{i}-shard{j}"
            append_records(tmp_path / "ci" / f"ci{i}" / f"shard{j}.jsonl", part)
    # the m1 build's report shows its latest run (results.csv lists the runs it covers)
    rep = tmp_path / "builds" / "default" / "report"
    rep.mkdir(parents=True)
    (rep / "index.html").write_text("<!DOCTYPE html><title>r</title>")
    (rep / "results.csv").write_text("variant,runs\nint8,run3\n")
    return m1, [tmp_path / "ci" / f"ci{i}" for i in (1, 2, 3)]


def test_dashboard_two_machines(tmp_path):
    m1, ci = _runs(tmp_path)
    out = tmp_path / "dash"
    r = CliRunner().invoke(app, ["--json", "history", *map(str, ci), "--run-by", "source", "--out", str(out),
                                 "--report-url", "../ci/{run}/report/index.html"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["machines"] == ["m2"] and len(d["runs"]) == 3
    [reg] = d["regressions"]
    assert (reg["machine"], reg["run"], reg["variant"], reg["metric"]) == ("m2", str(ci[2]), "int8", "rtf_median")
    assert "0.2 -> 0.28" in reg["change"]
    html = (out / "index.html").read_text()
    assert f"<td>machine m2: cpu-m2 x2 (m2)</td><td>{ci[2]}</td><td>{ci[1]}</td><td>REGRESSION</td>" in html
    # the CI runs' reports are linked through the template
    assert html.count('<a href="../ci/') == 3

    # both machines: each run by run id, the CI runs by folder are not mixed with m1's
    r = CliRunner().invoke(app, ["--json", "history", str(m1), *map(str, ci), "--out", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["machines"] == ["m1", "m2"]
    assert [x["machine"] for x in d["regressions"]] == ["m2"]  # m1 steady; m2's jump is only compared on m2
    assert d["links"] == {"run3": "../builds/default/report/index.html"}
    html = (out / "index.html").read_text()
    h2 = re.findall(r"<h2>([^<]*)</h2>", html)
    assert h2[:2] == ["Latest verdict per machine", "Runs"]
    assert [h for h in h2 if h.startswith("Trends on")] == ["Trends on machine m1: cpu-m1 x2 (m1)",
                                                             "Trends on machine m2: cpu-m2 x2 (m2)"]
    m1_sec = html[html.index("Trends on machine m1"):html.index("Trends on machine m2")]
    m2_sec = html[html.index("Trends on machine m2"):]
    # every trend is plotted, flat ones too (steady is news on a dashboard); only m2's rtf_median is ringed
    assert "alt=\"rtf_median per variant @ provider over 3 runs\"" in m1_sec and "ringed" not in m1_sec
    assert re.search(r"flat over the runs \(no series moved\): [^<]*rtf_median", m1_sec)
    # m2 by run id: each shard file is a run; the ringed metric comes first
    caps = re.findall(r"<figcaption>([^<]*)</figcaption>", m2_sec)
    assert caps[0] == "rtf_median per variant @ provider over 6 runs; 1 regression(s) ringed in red"
    assert "0.2 -&gt; 0.28" in m2_sec
    assert "<td>machine m1: cpu-m1 x2 (m1)</td><td>run3</td><td>run2</td><td>ok</td>" in html
    assert html.count('<a href="../builds/default/report/index.html">report</a>') == 1
    assert html.count("no report kept") == len(d["runs"]) - 1
    # one self-contained file: every image embedded, links only to reports, no script, no network
    assert "<script" not in html.lower() and not re.search(r"https?:", html)
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert srcs and all(base64.b64decode(s.split(",", 1)[1])[:8] == PNG for s in srcs)
    assert not re.findall(r'src="(?!data:)', html)
    assert (out / "history.csv").stat().st_size > 0 and (out / "history.md").stat().st_size > 0
    # a skipped cell echoes the variant's size and quality: not a trend of that provider's
    assert "CoreML" not in (out / "history.csv").read_text() and "CoreML" not in html


def test_history_bad_inputs_are_one_line_errors(tmp_path):
    m1, _ = _runs(tmp_path)
    run = CliRunner()
    r = run.invoke(app, ["history", str(m1), "--out", str(tmp_path / "d"), "--report-url", "x/index.html"])
    assert r.exit_code == 1 and "put {run} where the run label goes" in str(r.exception)
    r = run.invoke(app, ["history", str(m1), "--metric", "no_such_metric"])
    assert r.exit_code == 1 and "unknown metric 'no_such_metric'" in str(r.exception)
    (tmp_path / "empty").mkdir()
    r = run.invoke(app, ["history", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "no records in" in str(r.exception)
