"""`kopt quality`'s table: its columns are the metric catalogue's "quality" view, after variant and language."""

from __future__ import annotations

import io

from rich.console import Console

from kopt.cli.cmd_quality import quality_table
from kopt.select.metrics import columns


def _render(records) -> list[list[str]]:
    c = Console(file=io.StringIO(), width=400, color_system=None)
    c.print(quality_table(records))
    return [[cell.strip() for cell in line.strip("│┃").split("│" if "│" in line else "┃")]
            for line in c.file.getvalue().splitlines() if line.startswith(("│", "┃"))]


def test_columns_are_the_catalogue_view_and_cells_its_templates():
    m = {"pesq_wb_aligned": 4.0731, "pesq_wb_natural": 3.9, "stoi_aligned": 0.98614, "stoi_natural": 0.9,
         "mcd_db_aligned": 8.7, "mcd_db_natural": 8.69, "log_mel_db_aligned": 1.11, "log_mel_db_natural": 1.1,
         "mrstft_aligned": 0.465, "mrstft_natural": 0.4651, "dnsmos_ovrl": 3.32, "dnsmos_ovrl_delta": -0.01,
         "duration_tokens_changed": 0.0, "bit_identical": 1.0, "gate_pass": 1.0}
    rec = {"variant": {"name": "hybrid"}, "language": "ja", "inputs": {"reference": "reference"}, "metrics": m}
    head, row, bare = _render([rec, {**rec, "metrics": {"gate_pass": 0.0}}])
    assert head == ["variant", "language", *(c.heading for c in columns("quality"))]
    assert dict(zip(head, row)) == {
        "variant": "hybrid", "language": "ja", "PESQ-wb": "4.073 / 3.900", "STOI": "0.9861 / 0.9000",
        "MCD dB": "8.70 / 8.69", "log-mel dB": "1.11 / 1.10", "MR-STFT": "0.465 / 0.465",
        "DNSMOS ovrl (Δ ref)": "3.32 (-0.01)", "dur. tokens changed": "0.0%", "bit-identical": "yes",
        "gates": "pass"}
    bare = dict(zip(head, bare))
    assert bare["PESQ-wb"] == "- / -" and bare["DNSMOS ovrl (Δ ref)"] == "-" and bare["gates"] == "FAIL"
