"""Tables: every (machine, variant, provider) row with its figures and the selection verdict, as a
pandas DataFrame written to CSV (every metric, machine-readable names) and Markdown (the columns a
release engineer reads, labelled)."""

from __future__ import annotations

from typing import Any, Sequence

from kopt.select.frontier import Selection, fmt
from kopt.select.rows import Row

# label -> metric names to look for, first present wins (bench and quality have used several names)
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("size MB", ("size_mb",)),
    ("load s", ("load_s",)),
    ("RTF median", ("rtf_median",)),
    ("RTF p90", ("rtf_p90",)),
    ("speedup", ("speedup_vs_baseline",)),
    ("TTFA ms", ("ttfa_ms_median", "ttfa_ms")),
    ("RSS MB", ("rss_peak_mb", "rss_mb", "rss_loaded_mb")),
    ("PESQ aligned", ("pesq_wb_aligned",)),
    ("PESQ natural", ("pesq_wb_natural",)),
    ("STOI", ("stoi_aligned", "stoi", "stoi_natural")),
    ("DNSMOS", ("dnsmos_ovrl",)),
    ("drift frames", ("duration_frames_diff", "duration_drift_frames")),
    ("gate", ("gate_pass",)),
)
ID_COLUMNS = ("machine", "provider", "variant", "precision", "status")


def resolve_columns(rows: Sequence[Row]) -> list[tuple[str, str | None]]:
    """(label, metric name actually present or None) for each column."""
    present = {k for r in rows for k, v in r.metrics.items() if v is not None}
    return [(label, next((n for n in names if n in present), None)) for label, names in COLUMNS]


def full_frame(rows: Sequence[Row], selection: Selection | None = None):
    """One row per (machine, variant, provider), every metric as a column (CSV)."""
    import pandas as pd

    metric_names: list[str] = []
    for r in rows:
        for k in r.metrics:
            if k not in metric_names:
                metric_names.append(k)
    out = []
    for r in rows:
        v = selection.verdict_of(r) if selection else None
        rec: dict[str, Any] = {"machine_id": r.machine_id, "machine": r.machine, "provider": r.provider,
                               "variant": r.variant, "variant_key": r.variant_key, "precision": r.precision,
                               "status": r.status, "status_reason": r.reason,
                               "selection": v.outcome if v else None, "selection_reason": v.reason if v else None,
                               "quality_from_machine": r.quality_from, "runs": " ".join(r.run_ids)}
        rec.update({k: r.metrics.get(k) for k in metric_names})
        out.append(rec)
    return pd.DataFrame(out)


def summary_frame(rows: Sequence[Row], selection: Selection | None = None, *, machine_column: bool | None = None):
    """The readable table: labelled headline columns, formatted numbers, selection outcome."""
    import pandas as pd

    cols = resolve_columns(rows)
    if machine_column is None:
        machine_column = len({r.machine_id for r in rows}) > 1
    out = []
    for r in rows:
        v = selection.verdict_of(r) if selection else None
        rec: dict[str, Any] = {}
        if machine_column:
            rec["machine"] = f"{r.machine_id[:8]} {r.machine}"
        rec.update({"provider": _short_provider(r.provider), "variant": r.variant, "precision": r.precision or "",
                    "status": r.status if r.status == "ok" or not r.reason else f"{r.status}: {r.reason}"})
        for label, name in cols:
            if name is not None:
                rec[label] = fmt(r.metrics.get(name)) if r.metrics.get(name) is not None else ""
        rec["selection"] = ("WINNER" if v.outcome == "winner" else v.outcome) if v else ""
        out.append(rec)
    return pd.DataFrame(out)


def selection_frame(selection: Selection):
    """Why each variant won or lost, per (machine, provider)."""
    import pandas as pd

    multi = len({g.machine_id for g in selection.groups}) > 1
    out = []
    for g in selection.groups:
        for v in g.verdicts:
            rec = {"machine": f"{g.machine_id[:8]} {g.machine}"} if multi else {}
            rec.update({"provider": _short_provider(g.provider), "variant": v.variant,
                        "outcome": "WINNER" if v.outcome == "winner" else v.outcome, "reason": v.reason})
            out.append(rec)
    return pd.DataFrame(out)


def _short_provider(p: str) -> str:
    return p.removesuffix("ExecutionProvider") if p.endswith("ExecutionProvider") else p


def to_markdown(df) -> str:
    """DataFrame -> GitHub Markdown (pandas uses tabulate for this)."""
    if df.empty:
        return "_(no rows)_\n"
    return df.to_markdown(index=False) + "\n"
