"""History: successive runs (files, or folders of them) as trend tables and plots per metric.

A run is the records sharing a ``run_id`` (default) or the records read from one command-line source
(``by="source"``: a folder holding one CI run's shard files). Within each run, the same join as the
report builds the rows; runs are ordered by their earliest record time. Series are (variant, provider,
machine): a figure is only ever followed on one machine. A quality figure is followed per language too
(``pesq_wb_aligned@ja`` beside the worst-language ``pesq_wb_aligned``; the frame's ``language`` column).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from kopt.core.results import RecordLike, ResultRecord, as_records
from kopt.select.metrics import LANGUAGE_SEP, Catalog, shown, split_language
from kopt.select.rows import build_rows

RunBy = Literal["run_id", "source"]
# the metrics followed by default: the metric catalogue's "trend" view, in its order
TREND_METRICS: tuple[str, ...] = tuple(m.name for m, _ in shown("trend"))


@dataclass(frozen=True)
class Run:
    label: str
    time: str
    records: tuple[ResultRecord, ...]


def split_runs(sources: Sequence[tuple[str, Sequence[RecordLike]]], by: RunBy = "run_id") -> list[Run]:
    groups: dict[str, list[ResultRecord]] = {}
    for src, recs in sources:
        for r in as_records(recs):
            groups.setdefault(src if by == "source" else r.run_id, []).append(r)
    runs = [Run(k, min(r.time for r in v), tuple(v)) for k, v in groups.items()]
    return sorted(runs, key=lambda r: (r.time, r.label))


def long_frame(runs: Sequence[Run], catalog: Catalog | None = None, quality_across_machines: bool = False):
    """One row per (run, machine, variant, provider, metric) value, of the cells measured (status ok): a
    skipped or failed cell's row only echoes the variant's size and quality, which are no trend of that
    provider's."""
    import pandas as pd

    out = []
    for run in runs:
        for row in build_rows(run.records, catalog=catalog, quality_across_machines=quality_across_machines):
            if row.status != "ok":
                continue
            for m, v in row.metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out.append({"run": run.label, "run_time": run.time, "machine_id": row.machine_id,
                                "variant": row.variant, "provider": row.provider, "metric": m,
                                "language": split_language(m)[1], "value": float(v)})
    return pd.DataFrame(out, columns=["run", "run_time", "machine_id", "variant", "provider", "metric", "language",
                                      "value"])


def series_name(variant: str, provider: str, machine_id: str, multi_machine: bool) -> str:
    p = provider.removesuffix("ExecutionProvider")
    return f"{variant} @ {p}" + (f" @ {machine_id[:6]}" if multi_machine else "")


def trend_tables(df, runs: Sequence[Run], metrics: Sequence[str] = TREND_METRICS) -> dict[str, Any]:
    """metric -> wide table (series x runs), for metrics measured in at least two runs; each metric is
    followed by its per-language figures when there are several languages."""
    out: dict[str, Any] = {}
    if df.empty:
        return out
    order = [r.label for r in runs]
    multi = df["machine_id"].nunique() > 1
    present = set(df["metric"])
    expanded: list[str] = []
    for m in metrics:
        langs = sorted(n for n in present if n.startswith(m + LANGUAGE_SEP))
        expanded += [m, *(langs if len(langs) > 1 else [])]
    for m in expanded:
        sub = df[df["metric"] == m]
        if sub["run"].nunique() < 2:
            continue
        sub = sub.assign(series=[series_name(v, p, mi, multi) for v, p, mi in
                                 zip(sub["variant"], sub["provider"], sub["machine_id"])])
        wide = sub.pivot_table(index="series", columns="run", values="value", aggfunc="last")
        out[m] = wide[[c for c in order if c in wide.columns]]
    return out
