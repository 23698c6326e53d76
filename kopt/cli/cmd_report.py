"""`kopt report` (tables, plots, one self-contained HTML page) and `kopt history` (trends over runs)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kopt.cli import state


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
    app.command("history")(history_cmd)


def _sources(results: List[Path]):
    from kopt.core.results import read_records

    return [(str(p), read_records(p)) for p in results]


def _run_by(value: str) -> str:
    from kopt.core.errors import KoptError

    if value not in ("run_id", "source"):
        raise KoptError(f"--run-by {value!r}: expected run_id or source")
    return value


def report_cmd(
    results: List[Path] = typer.Argument(..., help="Results files (.jsonl) or folders of them: shards and runs merge."),
    out: Path = typer.Option(..., "--out", help="Report folder to write (index.html, CSV, Markdown, plots/)."),
    settings_file: Optional[Path] = typer.Option(None, "--settings", help="TOML/JSON with a [select] table."),
    mins: List[str] = typer.Option([], "--min", help="Constraint [PROVIDER:]METRIC=VALUE (as kopt select)."),
    maxs: List[str] = typer.Option([], "--max", help="Constraint [PROVIDER:]METRIC=VALUE (as kopt select)."),
    run_by: str = typer.Option("run_id", "--run-by", help="History runs: 'run_id' (records' run id) or 'source' "
                               "(each RESULTS argument is one run, e.g. a folder of one CI run's shards)."),
    sensitivity: Optional[Path] = typer.Option(None, "--sensitivity", help="A ranking JSON (default: records of "
                                               "kind 'sensitivity' in RESULTS, when present)."),
    title: str = typer.Option("kopt report", "--title", help="Page title."),
    listen: bool = typer.Option(True, "--listen/--no-listen", help="Embed the check sentences rendered by every "
                                "measured variant whose model is in the store (--artifacts), for A/B listening."),
    voices: Optional[Path] = typer.Option(None, "--voices", help="Voice pack for --listen (default: the store's "
                                          "base voices)."),
    listen_provider: Optional[str] = typer.Option(None, "--listen-provider", help="Whose winner the players and "
                                                  "the spectrogram put beside the reference (default: the first "
                                                  "measured provider)."),
) -> None:
    """Write a report folder from one or more results files: tables, plots, history and one HTML page."""
    from kopt.cli.cmd_select import select_settings
    from kopt.core.errors import KoptError
    from kopt.report.build import write_report

    s = select_settings(settings_file, mins, maxs)
    sources = _sources(results)
    if not any(recs for _, recs in sources):
        raise KoptError(f"no records in {', '.join(map(str, results))}")
    lis = None
    if listen:
        from kopt.report.listen import ListenSettings

        if voices is not None and not voices.is_file():
            raise KoptError(f"--voices {voices}: voice pack not found")
        lis = ListenSettings(store=state.store(), voices=voices, winner_provider=listen_provider)
    res = write_report(sources, out, settings=s, run_by=_run_by(run_by), sensitivity_file=sensitivity,
                       title=title, listen=lis, progress=state.progress())
    sel = res.selection
    from rich.markup import escape

    from kopt.report.tables import provider_tables

    tabs = provider_tables(sel, s.speed) if sel else []
    for t in tabs:
        g = t.group
        if t.measured:
            state.say(f"{escape(t.title)} [{g.machine_id[:8]}]: " + (
                f"[bold]{escape(g.winner.variant)}[/] ({g.winner.variant_key[:10]})" if g.winner else "no winner"))
    for t in tabs:
        if not t.measured:
            state.say(f"not measured: {escape(t.title)}: {escape(str(t.reason))}")
    for n in res.notes:
        state.say(f"note: {n}")
    state.say(f"report: {res.html} ({len(res.files)} files, {len(res.rows)} rows, {res.runs} run(s))")
    state.emit({"command": "report", "out": str(res.out), "html": str(res.html), "files": [str(f) for f in res.files],
                "runs": res.runs, "listen": res.listen, "selection": sel.as_dict() if sel else None, "notes": res.notes})


def history_cmd(
    results: List[Path] = typer.Argument(..., help="Results files or folders from successive runs."),
    metric: List[str] = typer.Option([], "--metric", help="Metrics to trend (default: the headline ones)."),
    run_by: str = typer.Option("run_id", "--run-by", help="'run_id' or 'source' (each argument is one run)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write history.csv, history.md and plots here."),
) -> None:
    """Trend tables per metric over successive runs (one series per variant, provider and machine)."""
    from kopt.report import history as hist
    from kopt.report import plots
    from kopt.select.frontier import fmt
    from kopt.select.metrics import Catalog

    runs = hist.split_runs(_sources(results), _run_by(run_by))
    cat = Catalog()
    lf = hist.long_frame(runs, cat)
    trends = hist.trend_tables(lf, runs, metric or hist.TREND_METRICS)
    if not trends:
        state.say(f"{len(runs)} run(s): no metric measured in two runs, nothing to trend")
    if not state.S.quiet:
        from rich.table import Table

        for m, wide in trends.items():
            t = Table(title=m, title_justify="left")
            t.add_column("series")
            for c in wide.columns:
                t.add_column(str(c), justify="right")
            for s, row in wide.iterrows():
                t.add_row(str(s), *(fmt(v) if v == v else "" for v in row.tolist()))
            state.console().print(t)
    files = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        lf.to_csv(out / "history.csv", index=False)
        files.append(out / "history.csv")
        md = [f"# History ({len(runs)} runs)\n"]
        for m, wide in trends.items():
            md.append(f"## {m}\n\n{wide.map(fmt).reset_index().to_markdown(index=False)}\n")
            files.append(plots.trend({s: list(r.items()) for s, r in wide.iterrows()}, list(wide.columns), m,
                                     out / f"history-{m}.png", cat))
        (out / "history.md").write_text("\n".join(md), encoding="utf-8")
        files.append(out / "history.md")
        state.say(f"history written to {out}")
    state.emit({"command": "history", "runs": [{"label": r.label, "time": r.time, "records": len(r.records)}
                                               for r in runs],
                "trends": {m: {str(s): {str(k): (None if v != v else v) for k, v in row.items()}
                               for s, row in w.iterrows()} for m, w in trends.items()},
                "files": [str(f) for f in files]})
