"""The report in a real headless browser (Debian's `chromium` package) at 1280 px: it loads, has no console
errors or failed loads, every image decodes, every <audio> player loads its clip and reports the clip's
duration, no table runs past the viewport, and a full-page screenshot is written (REPORT_SCREENSHOT=path
keeps it). The checker is first shown to catch a deliberately broken page, so it cannot pass vacuously.
The audio page comes from a build of the tiny synthetic graph (seconds, no real model)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kopt.report.page import write_report
from tests.report.chromium import check_page, find_chromium
from tests.report.test_listen import built, flac, players  # noqa: F401,F811  (fixtures used by name)
from tests.select.factory import standard

WIDTH = 1280

pytestmark = pytest.mark.slow

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="chromium not installed (CI: apt-get install -y chromium)")


@needs_chromium
def test_checker_catches_a_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><title>bad</title></head><body><img alt="gone" src="missing.png">'
                   '<audio controls src="data:audio/flac;base64,AAAA"></audio>'
                   '<div class="tablewrap"><table style="width:2000px"><tr><td>wide</td></tr></table></div>'
                   '<script>console.error("boom"); undefinedFunction();</script></body></html>')
    r = check_page(bad.as_uri(), tmp_path / "bad.png", width=WIDTH)
    assert r["facts"]["broken"] == ["gone"]
    assert r["console_errors"] and r["exceptions"] and r["failed_requests"]
    assert r["facts"]["audio"][0]["error"] is not None  # a clip that does not decode is caught
    assert _overflowing(r["facts"]) != []  # so is a table wider than the viewport


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


def _overflowing(f) -> list:
    """Tables whose frame runs past the viewport (the page would scroll sideways)."""
    return [t for t in f["tables"] if t["left"] < 0 or t["right"] > f["viewportWidth"]] + (
        [f["scrollWidth"]] if f["scrollWidth"] > f["viewportWidth"] else [])


@needs_chromium
def test_report_renders_in_chromium(tmp_path):
    res = write_report(_records(), tmp_path / "rep")
    shot = Path(os.environ.get("REPORT_SCREENSHOT") or tmp_path / "report.png")
    r = check_page(res.html.as_uri(), shot, width=WIDTH)
    f = r["facts"]
    assert f["title"] == "kopt report"
    assert r["console_errors"] == [] and r["exceptions"] == [] and r["log_errors"] == []
    assert r["failed_requests"] == []
    assert all(u.startswith(("file://", "data:image/png;base64,")) for u in r["requests"]), r["requests"]
    pngs = list((tmp_path / "rep" / "plots").glob("*.png"))
    assert f["images"] == len(pngs) and f["broken"] == []
    assert all(w > 0 and h > 0 and shown >= 400 for w, h, shown in f["sizes"])  # plots drawn at a readable width
    assert _overflowing(f) == [], f["tables"]  # nothing forces a horizontal page scroll at 1280 px
    # the per-provider tables fit inside their frames: no scrolling inside them either
    assert all(t["table"] <= t["frame"] for t in f["tables"] if "selection" in t["head"]), f["tables"]
    assert {"Winners", "Variants per provider", "Why each variant won or lost"} <= set(f["h2"])
    assert shot.stat().st_size > 50_000  # a page with plots, not a blank screen


@needs_chromium
def test_report_audio_players_in_chromium(built, tmp_path):  # noqa: F811
    """The tiny build's report: every clip loads and its duration is the clip's, within 5%."""
    import re

    env, d = built
    html = Path(d["report"]).read_text(encoding="utf-8")
    shot = tmp_path / "listen.png"
    r = check_page(Path(d["report"]).as_uri(), shot, width=WIDTH)
    f = r["facts"]
    assert r["console_errors"] == [] and r["exceptions"] == [] and r["log_errors"] == []
    assert r["failed_requests"] == []
    srcs = re.findall(r'<audio controls preload="metadata" src="([^"]*)"', html)
    # reference, fold and dyn on every sentence of both languages the recipe scores
    assert len(srcs) == len(f["audio"]) == len(players(html)) and len(srcs) % 3 == 0 and len(srcs) >= 18
    for src, a in zip(srcs, f["audio"]):
        assert a["error"] is None and a["readyState"] >= 1, a
        want = len(flac(src)) / 24000
        assert abs(a["duration"] - want) <= 0.05 * want, (a["duration"], want)
    assert f["broken"] == [] and f["images"] >= 3
    assert all(shown >= 400 for _, _, shown in f["sizes"])
    assert _overflowing(f) == [], f["tables"]
    assert "Listen" in f["h2"] and shot.stat().st_size > 50_000
