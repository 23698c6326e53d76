"""The report in a real headless browser (Debian's `chromium` package): it loads, has no console errors
or failed loads, every image decodes, and a full-page screenshot is written (REPORT_SCREENSHOT=path
keeps it). The checker is first shown to catch a deliberately broken page, so it cannot pass vacuously."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kopt.report.build import write_report
from tests.report.chromium import check_page, find_chromium
from tests.select.factory import standard

pytestmark = pytest.mark.slow

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="chromium not installed (CI: apt-get install -y chromium)")


@needs_chromium
def test_checker_catches_a_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><title>bad</title></head><body><img alt="gone" src="missing.png">'
                   '<script>console.error("boom"); undefinedFunction();</script></body></html>')
    r = check_page(bad.as_uri(), tmp_path / "bad.png")
    assert r["facts"]["broken"] == ["gone"]
    assert r["console_errors"] and r["exceptions"] and r["failed_requests"]


def _records():
    """Hand-made, or a real run's results when KOPT_REPORT_RESULTS names a results file/folder."""
    src = os.environ.get("KOPT_REPORT_RESULTS")
    if src:
        from kopt.core.results import read_records

        return [(src, read_records(src))]
    runs = []
    for i in (1, 2, 3):
        recs = standard(f"run{i}", time=f"2025-01-0{i}T00:00:00Z")
        for r in recs:
            if r["kind"] == "bench" and r["metrics"].get("rtf_median"):
                r["metrics"]["rtf_median"] *= 1 - 0.05 * i
        runs += recs
    return [("hand-made", runs)]


@needs_chromium
def test_report_renders_in_chromium(tmp_path):
    res = write_report(_records(), tmp_path / "rep")
    shot = Path(os.environ.get("REPORT_SCREENSHOT") or tmp_path / "report.png")
    r = check_page(res.html.as_uri(), shot)
    f = r["facts"]
    assert f["title"] == "kopt report"
    assert r["console_errors"] == [] and r["exceptions"] == [] and r["log_errors"] == []
    assert r["failed_requests"] == []
    assert all(u.startswith(("file://", "data:image/png;base64,")) for u in r["requests"]), r["requests"]
    pngs = list((tmp_path / "rep" / "plots").glob("*.png"))
    assert f["images"] == len(pngs) and f["broken"] == []
    assert all(w > 0 and h > 0 and shown >= 400 for w, h, shown in f["sizes"])  # plots drawn at a readable width
    assert f["scrollWidth"] <= 1400  # nothing forces a horizontal page scroll on a laptop-width window
    assert {"Winners", "All variants x providers", "Why each variant won or lost"} <= set(f["h2"])
    assert shot.stat().st_size > 50_000  # a page with plots, not a blank screen
