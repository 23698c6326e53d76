"""The report with two languages: the quality columns per language beside the worst language's, in the
HTML page, results.md and the CSV."""

from __future__ import annotations

from kopt.report.page import write_report
from kopt.select.settings import Bound, SelectSettings
from tests.select.test_languages import two_languages

RULES = SelectSettings(constraints={"pesq_wb_aligned": Bound(min=4.1)})


def test_report_shows_each_language(tmp_path):
    recs = two_languages("good", rtf=0.3, en=4.4, ja=4.3) + two_languages("ja-bad", rtf=0.1, en=4.5, ja=4.0)
    res = write_report([("a", recs)], tmp_path / "rep", settings=RULES)
    page = res.html.read_text(encoding="utf-8")
    for col in ("PESQ aligned worst", "PESQ aligned en-us", "PESQ aligned ja", "STOI ja"):
        assert f"<th>{col}</th>" in page, col
    assert "in ja, the worst of en-us/ja" in page  # why ja-bad lost
    md = (tmp_path / "rep" / "results.md").read_text(encoding="utf-8")
    assert "PESQ aligned ja" in md and "PESQ aligned en-us" in md
    head = next(line for line in md.splitlines() if "PESQ aligned ja" in line)
    cells = [c.strip() for c in head.split("|")]
    bad = next(line for line in md.splitlines() if line.startswith("| ja-bad") and "4.5" in line)
    row = [c.strip() for c in bad.split("|")]
    assert row[cells.index("PESQ aligned en-us")] == "4.5" and row[cells.index("PESQ aligned ja")] == "4"
    assert row[cells.index("PESQ aligned worst")] == "4"
    assert "pesq_wb_aligned@ja" in (tmp_path / "rep" / "results.csv").read_text(encoding="utf-8")


def test_one_language_keeps_the_plain_columns(tmp_path):
    from tests.select.factory import bench, quality

    res = write_report([("a", [bench("v", rtf=0.1, size=1.0), quality("v", pesq=4.3)])], tmp_path / "rep")
    page = res.html.read_text(encoding="utf-8")
    assert "<th>PESQ aligned</th>" in page and "PESQ aligned worst" not in page
