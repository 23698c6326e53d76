"""The history dashboard: one self-contained ``index.html`` over many builds' results, for a regression
dashboard to show.

Runs are split as in :mod:`kopt.report.history` (by run id, or one run per source). Machines are kept apart:
each machine id gets its own section, whose runs are the records measured on it (a sharded CI run counts on
every machine it ran on), whose series are (variant, provider), and whose regression verdicts compare each
run's cells with their latest earlier measurement on that machine through :func:`kopt.report.verdict.compare`
(so speed is only ever compared on one machine, and a run holding one shard's cells is judged on those). Regressions are marked on the trend plots and listed; each run links back to its
build's report when one is found beside its results (``builds/<recipe>/report`` lists the runs it shows) or
through a URL template (``{run}``), e.g. where CI archives each run's report.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from kopt.core.progress import NullProgress, Progress
from kopt.core.results import MachineInfo, RecordLike
from kopt.report import history as hist
from kopt.report import html, plots
from kopt.report.verdict import compare
from kopt.select.metrics import Catalog
from kopt.select.settings import CompareSettings


@dataclass
class DashboardResult:
    out: Path
    files: list[Path] = field(default_factory=list)
    runs: int = 0
    machines: list[str] = field(default_factory=list)
    regressions: list[dict[str, Any]] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)

    @property
    def html(self) -> Path:
        return self.out / "index.html"


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower() or "x"


def report_links(paths: Sequence[str | Path], runs: Sequence[hist.Run], out: Path,
                 template: str | None = None) -> dict[str, str]:
    """Run label -> href of the report that shows it: a build folder's ``report/`` beside the results given
    (its results.csv names the runs it covers), else the URL template."""
    import pandas as pd

    links: dict[str, str] = {}
    for p in map(Path, paths):
        p = p.resolve()
        cands = [p / "report", p.parent / "report", p.parent.parent / "report"] if p.is_dir() else \
                [p.parent / "report", p.parent.parent / "report"]
        for rep in cands:
            if (rep / "index.html").is_file() and (rep / "results.csv").is_file():
                try:
                    shown = {s for v in pd.read_csv(rep / "results.csv", usecols=["runs"])["runs"].dropna()
                             for s in str(v).split()}
                except (ValueError, KeyError):
                    continue
                href = os.path.relpath(rep / "index.html", out.resolve())
                for r in runs:
                    if r.label in shown or r.label == str(p) or {x.run_id for x in r.records} & shown:
                        links.setdefault(r.label, href)
                break
    if template:
        for r in runs:
            links.setdefault(r.label, template.replace("{run}", r.label))
    return links


def _machine_runs(runs: Sequence[hist.Run], machine_id: str) -> list[hist.Run]:
    out = []
    for r in runs:
        recs = tuple(x for x in r.records if x.machine.id == machine_id)
        if recs:
            out.append(hist.Run(r.label, min(x.time for x in recs), recs))
    return out


def write_dashboard(sources: Sequence[tuple[str, Sequence[RecordLike]]], out: str | Path, *,
                    run_by: hist.RunBy = "run_id", metrics: Sequence[str] = hist.TREND_METRICS,
                    settings: CompareSettings | None = None, url_template: str | None = None,
                    title: str = "kopt history", progress: Progress | None = None) -> DashboardResult:
    progress = progress or NullProgress()
    settings = settings or CompareSettings()
    cmp_settings = settings.model_copy(update={"allow_missing": True})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cat = Catalog({k: v.model_dump() for k, v in settings.overrides.items()})
    runs = hist.split_runs(sources, run_by)
    res = DashboardResult(out, runs=len(runs))
    res.links = report_links([s for s, _ in sources], runs, out, url_template)
    machines = _machines(runs)
    res.machines = sorted(machines)
    page = html.Page(title)
    page.meta.append(html.esc(f"generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from "
                              f"{len(sources)} source(s): {len(runs)} run(s) on {len(machines)} machine(s); "
                              f"runs by {run_by}; verdicts: each run's cells against their latest earlier figures on the "
                              "same machine (kopt compare's thresholds and noise rule)"))

    sections, latest = [], []
    for mid in res.machines:
        m = machines[mid]
        label = f"machine {mid[:8]}: {m.cpu} x{m.cores} ({m.hostname or '?'})"
        mruns = _machine_runs(runs, mid)
        v = _verdicts(mid, mruns, cmp_settings, progress)
        latest.append({"machine": label, **v.latest})
        res.regressions += [{"machine": mid, **r} for r in v.rows]
        figs, flat = _trend_plots(mid, mruns, v.marks, cat, metrics, out / "plots", res)
        sections.append((label, _machine_body(mruns, v.rows, figs, flat)))

    import pandas as pd

    page.add("Latest verdict per machine", html.table(pd.DataFrame(latest)) if latest else
             '<p class="meta">fewer than two runs on every machine: nothing to compare yet</p>')
    page.add("Runs", _runs_table(_run_rows(runs, res.links)))
    for label, body in sections:
        page.add(f"Trends on {label}", body)
    with progress.task("page", total=None):
        lf_all = hist.long_frame(runs, cat)
        lf_all.to_csv(out / "history.csv", index=False)
        res.files.append(out / "history.csv")
        (out / "index.html").write_text(page.render(), encoding="utf-8")
        res.files.append(out / "index.html")
    return res


def _machines(runs: Sequence[hist.Run]) -> dict[str, MachineInfo]:
    """Machine id -> its description (the first record's), over every run."""
    machines: dict[str, MachineInfo] = {}
    for r in runs:
        for x in r.records:
            machines.setdefault(x.machine.id, x.machine)
    return machines


@dataclass
class _Verdicts:
    """One machine's runs judged: the regression rows, the (metric, series) -> runs to ring on the trend
    plots, and the latest run's verdict (without the machine column)."""

    rows: list[dict[str, Any]]
    marks: dict[tuple[str, str], list[str]]
    latest: dict[str, Any]


def _verdicts(mid: str, mruns: list[hist.Run], cmp_settings: CompareSettings, progress: Progress) -> _Verdicts:
    """Each run of one machine against the runs before it there."""
    marks: dict[tuple[str, str], list[str]] = {}
    rows: list[dict[str, Any]] = []
    latest: dict[str, Any] = {"run": mruns[0].label if mruns else "", "against": "",
                              "verdict": "one run: nothing to compare", "regressions": 0, "better": 0,
                              "worse (watched)": 0}
    with progress.task(f"verdicts on {mid[:8]}", total=max(len(mruns) - 1, 0)) as task:
        for i, (prev, cur) in enumerate(zip(mruns, mruns[1:]), 1):
            # each cell against its latest earlier measurement on this machine, so a run holding only some
            # cells (one shard's) is judged on those; a cell it lacks is not a regression here
            earlier = [x for r in mruns[:i] for x in r.records]
            cmp_ = compare(earlier, cur.records, cmp_settings)
            # a figure this run did not measure (another shard's cell, or its bench without its quality
            # record) is a gap in the trend, not a regression
            regs = [c for c in cmp_.regressions if c.current is not None]
            cells = [c for c in cmp_.cells if c.regression]
            for c in regs:
                series = hist.series_name(c.variant, c.provider, mid, False)
                marks.setdefault((c.metric, series), []).append(cur.label)
                rows.append({"run": cur.label, "against": prev.label, "variant": c.variant,
                             "provider": c.provider, "metric": c.metric, "change": c.note})
            for cc in cells:
                rows.append({"run": cur.label, "against": prev.label, "variant": cc.variant,
                             "provider": cc.provider, "metric": cc.outcome, "change": cc.note})
            if cur is mruns[-1]:
                latest = {"run": cur.label, "against": prev.label,
                          "verdict": "REGRESSION" if regs or cells else "ok",
                          "regressions": len(regs) + len(cells),
                          "better": len(cmp_.improvements), "worse (watched)": len(cmp_.worse)}
            task.advance()
    return _Verdicts(rows, marks, latest)


def _trend_plots(mid: str, mruns: list[hist.Run], marks: dict[tuple[str, str], list[str]], cat: Catalog,
                 metrics: Sequence[str], plot_dir: Path, res: DashboardResult) -> tuple[list, list[str]]:
    """One machine's trend plots, regressions first, then metrics that moved, then flat ones (also named)."""
    trends = hist.trend_tables(hist.long_frame(mruns, cat), mruns, metrics)
    figs, flat = [], []

    def moved(wide) -> bool:
        return any(row.dropna().nunique() > 1 for _, row in wide.iterrows())

    def order(item) -> tuple:
        metric, wide = item
        return (not any(k[0] == metric for k in marks), not moved(wide))

    for metric, wide in sorted(trends.items(), key=order):
        if not moved(wide):
            flat.append(metric)
        series = {s: list(row.items()) for s, row in wide.iterrows()}
        mk = {s: marks.get((metric, s), []) for s in series}
        p = plots.trend(series, list(wide.columns), metric, plot_dir / f"{mid[:8]}-{_slug(metric)}.png", cat,
                        marks=mk, title=f"{metric} on {mid[:8]}")
        res.files.append(p)
        n = sum(len(v) for v in mk.values())
        figs.append((p, f"{metric} per variant @ provider over {len(wide.columns)} runs"
                     + (f"; {n} regression(s) ringed in red" if n else "")))
    return figs, flat


def _machine_body(mruns: list[hist.Run], rows: list[dict[str, Any]], figs: list, flat: list[str]) -> str:
    """One machine's section: its regressions, then its trend plots."""
    import pandas as pd

    body = [f'<p class="meta">{len(mruns)} run(s) on this machine</p>',
            "<h3>Regressions (each run against the latest earlier figures on this machine)</h3>"
            + (html.table(pd.DataFrame(rows), wrap=("change",)) if rows else '<p class="meta">none</p>'),
            "<h3>Trends</h3>"]
    body.append(html.plots(figs) if figs else '<p class="meta">no metric was measured in two runs</p>')
    if flat:
        body.append(html.notes([f"flat over the runs (no series moved): {', '.join(flat)}"]))
    return "".join(body)


def _run_rows(runs: Sequence[hist.Run], links: dict[str, str]) -> list[dict[str, Any]]:
    """One row per run for the runs table: its time, machines, record count and report link."""
    return [{"run": r.label, "time": r.time, "machines": " ".join(sorted({x.machine.id[:8] for x in r.records})),
             "records": len(r.records), "report": links.get(r.label)} for r in runs]


def _runs_table(rows: list[dict[str, Any]]) -> str:
    """The runs, each with a link to its build's report when there is one."""
    head = "".join(f"<th>{c}</th>" for c in ("run", "time", "machines", "records", "report"))
    body = []
    for r in rows:
        link = (f'<a href="{html.esc(r["report"])}">report</a>' if r["report"]
                else '<span class="meta">no report kept</span>')
        body.append(f'<tr><td class="mono">{html.esc(r["run"])}</td><td>{html.esc(r["time"])}</td>'
                    f'<td class="mono">{html.esc(r["machines"])}</td><td class="num">{r["records"]}</td>'
                    f"<td>{link}</td></tr>")
    return (f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table></div>")

