"""`kopt bench`'s table: variant, provider and status, then the metric catalogue's "bench" view."""

from __future__ import annotations

import io

from rich.console import Console

from kopt.cli.cmd_bench import bench_table
from kopt.select.metrics import columns


def _render(records) -> list[list[str]]:
    c = Console(file=io.StringIO(), width=400, color_system=None)
    c.print(bench_table(records))
    return [[cell.strip() for cell in line.strip("│┃").split("│" if "│" in line else "┃")]
            for line in c.file.getvalue().splitlines() if line.startswith(("│", "┃"))]


def test_columns_are_the_catalogue_view_and_missing_figures_read_dash():
    m = {"size_mb": 88.04, "load_s": 0.4123, "first_infer_s": 0.31234, "rtf_median": 0.20912, "rtf_p90": 0.2544,
         "ttfa_ms_median": 187.6, "rss_peak_mb": 951.2, "speedup_vs_baseline": 2.413}
    ok = {"variant": {"name": "hybrid"}, "provider": {"config": "cpu", "status": "ok"}, "metrics": m}
    skipped = {"variant": {"name": "fp16"}, "provider": {"config": "cuda", "status": "skipped"}, "metrics": {}}
    head, row, bare = _render([ok, skipped])
    assert head == ["variant", "provider", "status", *(c.heading for c in columns("bench"))]
    assert dict(zip(head, row)) == {
        "variant": "hybrid", "provider": "cpu", "status": "ok", "size MB": "88.0", "load s": "0.41",
        "1st inf s": "0.312", "RTF med": "0.209", "RTF p90": "0.254", "TTFA ms": "188", "peak RSS MB": "951",
        "speedup": "2.41x"}
    bare = dict(zip(head, bare))
    assert bare["status"] == "skipped (see below)"
    assert all(bare[c.heading] == "-" for c in columns("bench"))
