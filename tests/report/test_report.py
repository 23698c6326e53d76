"""The report folder: files, tables, self-contained HTML, shards merging, history and sensitivity."""

from __future__ import annotations

import base64
import json
import re

from typer.testing import CliRunner

from kopt.cli.main import app
from kopt.core.results import append_records, make_record
from kopt.report.page import write_report
from kopt.select.shard import ShardSpec, shard
from tests.select.factory import CPU, standard

PNG = b"\x89PNG\r\n\x1a\n"


def _check_self_contained(html: str) -> list[str]:
    assert not re.search(r"(?i)(https?:|file:|//[a-z0-9.-]+\.[a-z]{2,}/)", html), "network or file URL in the page"
    assert "<script" not in html.lower()
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert srcs, "no images"
    for s in srcs:
        assert s.startswith("data:image/png;base64,"), s[:40]
        assert base64.b64decode(s.split(",", 1)[1])[:8] == PNG
    assert not re.findall(r'(?:href|src)="(?!data:)[^"#]', html), "a reference that is not embedded"
    return srcs


def test_report_files_and_embedded_html(tmp_path):
    res = write_report([("a", standard())], tmp_path / "rep")
    out = tmp_path / "rep"
    for name in ("index.html", "results.csv", "summary.csv", "selection.csv", "results.md", "selection.json"):
        assert (out / name).stat().st_size > 0, name
    pngs = sorted((out / "plots").glob("*.png"))
    assert {p.name.split("-")[0] for p in pngs} == {"pareto", "speed", "size"}
    assert all(p.read_bytes()[:8] == PNG for p in pngs)
    srcs = _check_self_contained((out / "index.html").read_text())
    assert len(srcs) == len(pngs)
    md = (out / "results.md").read_text()
    for col in ("size MB", "load s", "RTF median", "TTFA ms", "RSS MB", "PESQ aligned", "PESQ natural", "STOI",
                "DNSMOS", "drift frames", "status", "WINNER"):
        assert col in md, col
    sel = json.loads((out / "selection.json").read_text())
    assert {g["provider"]: g["winner"] for g in sel["groups"]} == {CPU: "int8", "CUDAExecutionProvider": "fp16"}
    html = (out / "index.html").read_text()
    assert "worker died (SIGKILL)" in html and "dominated by int8" in html
    assert res.runs == 1


def test_report_escapes_names(tmp_path):
    recs = standard()
    for r in recs:
        if r["variant"]["name"] == "int8":
            r["variant"]["name"] = "<b>int8</b>"
    write_report([("a", recs)], tmp_path / "rep")
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "<b>int8</b>" not in html and "&lt;b&gt;int8&lt;/b&gt;" in html


def test_shards_merge_into_the_same_report_as_one_run(tmp_path):
    recs = standard("r1", time="2025-01-01T00:00:00Z")
    one = tmp_path / "one.jsonl"
    append_records(one, recs)
    cells = sorted({(r["variant"]["key"], r["provider"]["config"]) for r in recs})
    for k in (1, 2, 3):
        mine = set(shard(cells, ShardSpec(k, 3)))
        append_records(tmp_path / "shards" / f"{k}.jsonl",
                       [r for r in recs if (r["variant"]["key"], r["provider"]["config"]) in mine])
    runner = CliRunner()
    for src, dest in ((str(one), "r-one"), (str(tmp_path / "shards"), "r-shards")):
        res = runner.invoke(app, ["report", src, "--out", str(tmp_path / dest)])
        assert res.exit_code == 0, res.output
    for name in ("results.csv", "summary.csv", "selection.csv", "results.md", "selection.json"):
        assert (tmp_path / "r-one" / name).read_text() == (tmp_path / "r-shards" / name).read_text(), name


def test_history_over_runs(tmp_path):
    runs = []
    for i, rtf in enumerate((0.20, 0.18, 0.16), 1):
        recs = standard(f"run{i}", time=f"2025-01-0{i}T00:00:00Z")
        for r in recs:
            if r["variant"]["name"] == "int8" and r["kind"] == "bench" and r["provider"]["config"] == CPU:
                r["metrics"]["rtf_median"] = rtf
        append_records(tmp_path / "runs" / f"run{i}.jsonl", recs)
        runs.append(recs)
    res = CliRunner().invoke(app, ["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "rep"
    assert (out / "plots" / "history-rtf-median.png").exists()
    assert not (out / "plots" / "history-pesq-wb-aligned.png").exists()  # flat: a table, no plot
    hist = (out / "history.md").read_text()
    assert re.search(r"int8 @ CPU\s*\|\s*0\.2\s*\|\s*0\.18\s*\|\s*0\.16", hist), hist
    _check_self_contained((out / "index.html").read_text())
    # the current tables show the newest run
    import pandas as pd

    df = pd.read_csv(out / "results.csv")
    row = df[(df.variant == "int8") & (df.provider == CPU)]
    assert row["rtf_median"].tolist() == [0.16]
    res = CliRunner().invoke(app, ["--json", "history", str(tmp_path / "runs"), "--metric", "rtf_median"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["trends"]["rtf_median"]["int8 @ CPU"] == {"run1": 0.2, "run2": 0.18, "run3": 0.16}


def test_history_by_source_groups_shards_of_one_ci_run(tmp_path):
    for i in (1, 2):
        recs = standard(f"run{i}", time=f"2025-01-0{i}T00:00:00Z")
        half = len(recs) // 2
        for j, part in enumerate((recs[:half], recs[half:])):
            for r in part:
                r["run_id"] = f"ci{i}-shard{j}"  # each shard invocation has its own run id
            append_records(tmp_path / f"ci{i}" / f"shard{j}.jsonl", part)
    res = CliRunner().invoke(app, ["--json", "report", str(tmp_path / "ci1"), str(tmp_path / "ci2"),
                                   "--run-by", "source", "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["runs"] == 2


def test_sensitivity_ranking_from_records(tmp_path):
    recs = standard()
    ranking = [{"name": f"/decoder/conv{i}", "score": float(i)} for i in range(30)]
    recs.append(make_record("sensitivity", run_id="r1", variant={"name": "int8", "key": "k-int8"},
                            provider={"name": CPU}, metrics={}, extra={"ranking": ranking}))
    write_report([("a", recs)], tmp_path / "rep")
    assert (tmp_path / "rep" / "plots" / "sensitivity.png").exists()
    lines = (tmp_path / "rep" / "sensitivity.csv").read_text().splitlines()
    assert lines[1].startswith("1,/decoder/conv29,")
    assert "Sensitivity ranking" in (tmp_path / "rep" / "index.html").read_text()


def test_sensitivity_ranking_from_a_json_file(tmp_path):
    f = tmp_path / "rank.json"
    f.write_text(json.dumps({"/a": 0.5, "/b": 2.0}))
    res = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "rep"), "--sensitivity", str(f), "--", "x"])
    assert res.exit_code != 0  # 'x' does not exist
    p = tmp_path / "r.jsonl"
    append_records(p, standard())
    res = CliRunner().invoke(app, ["report", str(p), "--out", str(tmp_path / "rep"), "--sensitivity", str(f)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep" / "sensitivity.csv").read_text().splitlines()[1].startswith("1,/b,")


def _with_scaling(recs):
    """standard() with bench's thread-scaling figures on the CPU cells: 2 threads main, 1 and 4 extra; int4
    failed at 4 threads (a null figure)."""
    for r in recs:
        m = r["metrics"]
        if r["kind"] == "bench" and r["provider"]["name"] == CPU and m.get("rtf_median"):
            m.update(rtf_threads_1_median=2 * m["rtf_median"], rtf_threads_2_median=m["rtf_median"],
                     rtf_threads_4_median=None if r["variant"]["name"] == "int4" else m["rtf_median"] / 1.6)
    return recs


def test_thread_scaling_table_only_when_recorded(tmp_path):
    write_report([("a", _with_scaling(standard()))], tmp_path / "new")
    md = (tmp_path / "new" / "results.md").read_text()
    html = (tmp_path / "new" / "index.html").read_text()
    assert "## Thread scaling: CPU" in md and "Thread scaling: CUDA" not in md
    section = md.split("## Thread scaling: CPU", 1)[1].split("\n## ", 1)[0]
    for col in ("RTF 1 thread", "RTF 2 threads", "RTF 4 threads", "speed-up 2 threads", "speed-up 4 threads"):
        assert col in section, col
    int8 = next(ln for ln in section.splitlines() if ln.startswith("| int8"))
    assert "0.4" in int8 and "0.2" in int8 and "2.00x" in int8 and "3.20x" in int8
    int4 = next(ln for ln in section.splitlines() if ln.startswith("| int4"))
    assert "failed" in int4
    assert "broken" not in section  # a failed cell has no scaling row
    assert "<h2>Thread scaling</h2>" in html and "RTF 4 threads" in html
    # records from before thread scaling: no section, the rest as before
    write_report([("a", standard())], tmp_path / "old")
    assert "Thread scaling" not in (tmp_path / "old" / "results.md").read_text()
    assert "Thread scaling" not in (tmp_path / "old" / "index.html").read_text()
