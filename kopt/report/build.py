"""Write a report directory from results: tables (CSV + Markdown), plots (PNG), selection JSON, history,
and one self-contained ``index.html``.

Sources are (label, records) pairs, one per results file or folder given; shards' files merge into one
set of records (exact duplicates dropped, the newest record per cell wins), and records from different
machines stay apart: each (machine, provider) gets its own frontier and winner.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from kopt.core.progress import NullProgress, Progress
from kopt.report import history as hist
from kopt.report import html, plots, sensitivity, tables
from kopt.select.frontier import Selection, fmt, select
from kopt.select.metrics import Catalog
from kopt.select.rows import Row, build_rows, merge_records
from kopt.select.settings import SelectSettings


@dataclass
class ReportResult:
    out: Path
    files: list[Path] = field(default_factory=list)
    selection: Selection | None = None
    rows: list[Row] = field(default_factory=list)
    runs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def html(self) -> Path:
        return self.out / "index.html"


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower() or "x"


def _group_title(provider: str, machine_id: str, machine: str, multi: bool) -> str:
    p = provider.removesuffix("ExecutionProvider")
    return f"{p} on {machine_id[:8]} ({machine})" if multi else p


def write_report(sources: Sequence[tuple[str, list[dict[str, Any]]]], out: str | Path, *,
                 settings: SelectSettings | None = None, run_by: hist.RunBy = "run_id",
                 sensitivity_file: str | Path | None = None, title: str = "kopt report",
                 progress: Progress | None = None) -> ReportResult:
    settings = settings or SelectSettings()
    progress = progress or NullProgress()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_dir = out / "plots"
    cat = Catalog({k: v.model_dump() for k, v in settings.metrics.items()})
    records = merge_records(r for _, recs in sources for r in recs)
    rows = build_rows(records, catalog=cat, quality_across_machines=settings.quality_across_machines)
    sel = select(rows, settings, cat)
    res = ReportResult(out, selection=sel, rows=rows)
    files = res.files
    multi = len({r.machine_id for r in rows}) > 1

    with progress.task("tables", total=None):
        full = tables.full_frame(rows, sel)
        summ = tables.summary_frame(rows, sel)
        why = tables.selection_frame(sel)
        for name, df in (("results", full), ("summary", summ), ("selection", why)):
            df.to_csv(out / f"{name}.csv", index=False)
            files.append(out / f"{name}.csv")
        (out / "results.md").write_text(
            f"# {title}\n\n## Variants x providers\n\n{tables.to_markdown(summ)}\n"
            f"## Selection\n\n{tables.to_markdown(why)}\n", encoding="utf-8")
        files.append(out / "results.md")
        (out / "selection.json").write_text(json.dumps(sel.as_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        files.append(out / "selection.json")

    page = html.Page(title)
    kinds = Counter(str(r.get("kind")) for r in records)
    machines = {}
    for r in records:
        m = r.get("machine") or {}
        machines.setdefault(str(m.get("id")), m)
    vers = sorted({f"kopt {r.get('versions', {}).get('kopt')}, onnxruntime {r.get('versions', {}).get('onnxruntime')}"
                   for r in records})
    runs = hist.split_runs(sources, run_by)
    res.runs = len(runs)
    page.meta += [
        html.esc(f"generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(sources)} source(s), "
                 f"{len(records)} records ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), {len(runs)} run(s)"),
        *(html.esc(f"machine {k[:8]}: {m.get('cpu')} x{m.get('cores')} cores, {m.get('system')} {m.get('arch')}")
          for k, m in sorted(machines.items())),
        html.esc("versions: " + "; ".join(vers)) if vers else "",
        html.esc(f"objectives: {', '.join(sel.objectives)}; speed tie tolerance {settings.speed_tie_rel:.0%}"),
    ]

    # Providers where something was measured come first, with cards and plots; providers where every
    # cell was skipped (not on this machine) are one line each, with the reason, not empty plots.
    measured = [g for g in sel.groups if any(r.status != "skipped" for r in g.rows)]
    skipped = [g for g in sel.groups if g not in measured]

    # winners
    card_html = []
    for g in measured:
        t = _group_title(g.provider, g.machine_id, g.machine, multi)
        facts = []
        if g.winner:
            for label, name in tables.resolve_columns([g.winner]):
                if name and g.winner.value(name) is not None and label in (
                        "RTF median", "speedup", "TTFA ms", "size MB", "RSS MB", "PESQ aligned", "STOI", "DNSMOS"):
                    facts.append((label, fmt(g.winner.value(name))))
        card_html.append(html.card(t, g.winner.variant if g.winner else None, facts, g.explanation))
    winners_html = html.cards(card_html) if card_html else '<p class="meta">no bench or quality records</p>'
    if skipped:
        lines = []
        for g in skipped:
            reason = next((r.reason for r in g.rows if r.reason), "skipped")
            lines.append(f"<li><b>{html.esc(_group_title(g.provider, g.machine_id, g.machine, multi))}</b>: "
                         f"{html.esc(reason)}</li>")
        winners_html += f'<p class="meta">Not measured here:</p><ul class="meta">{"".join(lines)}</ul>'
    page.add("Winners", winners_html)

    # pareto plots
    items = []
    with progress.task("plots", total=len(measured) + 3) as task:
        for i, g in enumerate(measured, 1):
            t = _group_title(g.provider, g.machine_id, g.machine, multi)
            p = plots.pareto(g, settings.speed, settings.quality, settings.size,
                             plot_dir / f"pareto-{i:02d}-{_slug(g.provider)}-{g.machine_id[:8]}.png", cat, t)
            files.append(p)
            items.append((p, f"{t}: {settings.speed} vs {settings.quality}, marker area ~ {settings.size}"))
            task.advance()
        if items:
            page.add("Speed vs quality (Pareto frontier per provider)", html.plots(items))

        row_cls = []
        for r in rows:
            v = sel.verdict_of(r)
            row_cls.append("winner" if v and v.outcome == "winner" else (r.status if r.status != "ok" else ""))
        num = [label for label, _ in tables.COLUMNS]
        page.add("All variants x providers", html.table(summ, row_class=row_cls, numeric=num)
                 + html.notes(["winner rows highlighted; files: results.csv (every metric), summary.csv, results.md, "
                               "selection.json"]
                              + [f"{r.variant} on {r.provider}: quality figures from machine {r.quality_from[:8]}"
                                 for r in rows if r.quality_from]))
        page.add("Why each variant won or lost", html.table(why))

        extra_plots = []
        groups = [(_group_title(g.provider, g.machine_id, g.machine, multi), g.rows,
                   g.winner.variant_key if g.winner else None) for g in sel.groups]
        if any(r.value(settings.speed) is not None for r in rows):
            p = plots.rtf_bars(groups, settings.speed, plot_dir / "speed-bars.png", cat)
            files.append(p)
            extra_plots.append((p, f"{settings.speed} per provider (whiskers: p10-p90 of the samples)"))
        task.advance()
        if settings.size:
            p = plots.size_quality(rows, settings.size, settings.quality, plot_dir / "size-quality.png", cat,
                                   winners={g.winner.variant_key for g in sel.groups if g.winner})
            files.append(p)
            extra_plots.append((p, f"{settings.size} vs {settings.quality}"))
        task.advance()
        if extra_plots:
            page.add("Speed and size", html.plots(extra_plots))

        rank = sensitivity.from_file(sensitivity_file) if sensitivity_file else sensitivity.from_records(records)
        if rank:
            ranking, label = rank
            p = plots.ranking(ranking, plot_dir / "sensitivity.png", "quantization sensitivity (most sensitive first)",
                              label)
            files.append(p)
            import pandas as pd

            df = pd.DataFrame([{"rank": i, "name": n, label: fmt(v)} for i, (n, v) in enumerate(ranking, 1)])
            df.to_csv(out / "sensitivity.csv", index=False)
            files.append(out / "sensitivity.csv")
            page.add("Sensitivity ranking", html.plots([(p, f"top {min(25, len(ranking))} of {len(ranking)}")]))
        task.advance()

    if len(runs) > 1:
        with progress.task("history", total=None):
            lf = hist.long_frame(runs, cat, settings.quality_across_machines)
            lf.to_csv(out / "history.csv", index=False)
            files.append(out / "history.csv")
            trends = hist.trend_tables(lf, runs)
            md = [f"# History ({len(runs)} runs)\n"]
            hplots, htables, flat = [], [], []
            for metric, wide in trends.items():
                md.append(f"## {metric}\n\n{wide.map(fmt).reset_index().to_markdown(index=False)}\n")
                if all(row.dropna().nunique() <= 1 for _, row in wide.iterrows()):
                    flat.append(metric)  # nothing moved: a table row in the page, no plot
                    continue
                series = {s: [(run, v) for run, v in row.items()] for s, row in wide.iterrows()}
                p = plots.trend(series, list(wide.columns), metric, plot_dir / f"history-{_slug(metric)}.png", cat)
                files.append(p)
                hplots.append((p, f"{metric} over {len(wide.columns)} runs"))
                htables.append(f"<h3>{html.esc(metric)}</h3>" + html.table(wide.map(fmt).reset_index()))
            (out / "history.md").write_text("\n".join(md), encoding="utf-8")
            files.append(out / "history.md")
            if trends:
                body = html.plots(hplots) + "".join(htables)
                if flat:
                    body += html.notes([f"unchanged over the runs: {', '.join(flat)} (see history.md)"])
                page.add(f"History ({len(runs)} runs)", body)
            else:
                res.notes.append(f"{len(runs)} runs given but no metric was measured in two of them")

    (out / "index.html").write_text(page.render(), encoding="utf-8")
    files.append(out / "index.html")
    return res
