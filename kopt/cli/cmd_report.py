"""`kopt report` (tables, plots, one self-contained HTML page) and `kopt history` (trends over runs)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kopt.cli import state
from kopt.cli.options import MaxBounds, MinBounds, SettingsFile, VoicePack


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
    settings_file: SettingsFile = None,
    mins: MinBounds = (),
    maxs: MaxBounds = (),
    run_by: str = typer.Option("run_id", "--run-by", help="History runs: 'run_id' (records' run id) or 'source' "
                               "(each RESULTS argument is one run, e.g. a folder of one CI run's shards)."),
    sensitivity: Optional[Path] = typer.Option(None, "--sensitivity", help="A ranking JSON (default: records of "
                                               "kind 'sensitivity' in RESULTS, when present)."),
    title: str = typer.Option("kopt report", "--title", help="Page title."),
    listen: bool = typer.Option(True, "--listen/--no-listen", help="Embed the check sentences rendered by every "
                                "measured variant whose model is in the store (--artifacts), for A/B listening."),
    voices: VoicePack = None,
    listen_provider: Optional[str] = typer.Option(None, "--listen-provider", help="Whose winner the players and "
                                                  "the spectrogram put beside the reference (default: the first "
                                                  "measured provider)."),
    listen_cache: Optional[Path] = typer.Option(None, "--listen-cache", help="Folder for rendered clips and the "
                                               "spectrogram's instrumented graphs (default: <store>/.cache; use "
                                               "another to leave a shared store untouched)."),
) -> None:
    """Write a report folder from one or more results files: tables, plots, history and one HTML page."""
    from kopt.cli.cmd_select import select_settings
    from kopt.core.errors import KoptError
    from kopt.report.page import write_report

    s = select_settings(settings_file, mins, maxs)
    sources = _sources(results)
    if not any(recs for _, recs in sources):
        raise KoptError(f"no records in {', '.join(map(str, results))}")
    lis = None
    if listen:
        from kopt.report.listen import ListenSettings

        if voices is not None and not voices.is_file():
            raise KoptError(f"--voices {voices}: voice pack not found")
        lis = ListenSettings(store=state.store(), voices=voices, winner_provider=listen_provider,
                             cache_dir=listen_cache)
    res = write_report(sources, out, settings=s, run_by=_run_by(run_by), sensitivity_file=sensitivity,
                       title=title, store=state.store(), listen=lis, progress=state.progress())
    sel = res.selection
    from rich.markup import escape

    from kopt.report.tables import not_measured, provider_tables

    tabs = provider_tables(sel, s.speed) if sel else []
    for t in tabs:
        g = t.group
        if t.measured:
            state.say(f"{escape(t.title)} [{g.machine_id[:8]}]: " + (
                f"[bold]{escape(g.winner.variant)}[/] ({g.winner.variant_key[:10]})" if g.winner else "no winner"))
    for titles, reason in not_measured(tabs):
        state.say(f"not measured: {escape(titles)}: {escape(reason)}")
    for n in res.notes:
        state.say(f"note: {n}")
    state.say(f"report: {res.html} ({len(res.files)} files, {len(res.rows)} rows, {res.runs} run(s))")
    state.emit({"command": "report", "out": str(res.out), "html": str(res.html), "files": [str(f) for f in res.files],
                "runs": res.runs, "listen": res.listen, "selection": sel.as_dict() if sel else None, "notes": res.notes})


def history_cmd(
    results: List[Path] = typer.Argument(..., help="Results files or folders from successive runs (e.g. "
                                         "artifacts/builds/*/runs, or CI runs' shard folders)."),
    metric: List[str] = typer.Option([], "--metric", help="Metrics to trend (default: the headline ones)."),
    run_by: str = typer.Option("run_id", "--run-by", help="'run_id' or 'source' (each argument is one run)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the dashboard here: index.html (one self-contained "
                                       "page: trends per machine, regressions marked, links to each run's report), "
                                       "history.csv, history.md and plots/."),
    report_url: Optional[str] = typer.Option(None, "--report-url", help="Link for runs whose report is not beside "
                                             "their results, with {run} for the run label, e.g. "
                                             "'https://ci.example.org/kopt/{run}/report/index.html'."),
    title: str = typer.Option("kopt history", "--title", help="Page title."),
) -> None:
    """Trend tables per metric over successive runs (one series per variant, provider and machine), and with
    --out a dashboard page that marks each run's regression verdict against the earlier runs on its machine."""
    from kopt.core.errors import KoptError
    from kopt.report import history as hist
    from kopt.select.metrics import Catalog

    sources = _sources(results)
    if not any(recs for _, recs in sources):
        raise KoptError(f"no records in {', '.join(map(str, results))}")
    cat = Catalog()
    for m in metric:
        cat.require(m)
    if report_url is not None and "{run}" not in report_url:
        raise KoptError(f"--report-url {report_url!r}: put {{run}} where the run label goes")
    runs = hist.split_runs(sources, _run_by(run_by))
    lf = hist.long_frame(runs, cat)
    trends = hist.trend_tables(lf, runs, metric or hist.TREND_METRICS)
    if not trends:
        state.say(f"{len(runs)} run(s): no metric measured in two runs, nothing to trend")
    if not state.S.quiet and not state.S.json_out:
        _print_trends(trends)
    files, dash = [], None
    if out is not None:
        from kopt.report.dashboard import write_dashboard

        dash = write_dashboard(sources, out, run_by=_run_by(run_by), metrics=metric or hist.TREND_METRICS,
                               url_template=report_url, title=title, progress=state.progress())
        files += dash.files
        files.append(_write_history_md(out / "history.md", trends, len(runs)))
        for r in dash.regressions:
            state.say(f"regression on {r['machine'][:8]}: {r['run']} vs {r['against']}: {r['variant']}/{r['provider']} "
                      f"{r['metric']}: {r['change']}")
        state.say(f"dashboard: {dash.html} ({len(runs)} runs, {len(dash.machines)} machine(s), "
                  f"{len(dash.regressions)} regression(s))")
    state.emit({"command": "history", "runs": [{"label": r.label, "time": r.time, "records": len(r.records)}
                                               for r in runs],
                "trends": {m: {str(s): {str(k): (None if v != v else v) for k, v in row.items()}
                               for s, row in w.iterrows()} for m, w in trends.items()},
                "html": str(dash.html) if dash else None, "machines": dash.machines if dash else None,
                "regressions": dash.regressions if dash else None, "links": dash.links if dash else None,
                "files": [str(f) for f in files]})


def _print_trends(trends) -> None:
    """Each metric's trend as a terminal table: one row per series, one column per run."""
    from rich.table import Table

    from kopt.select.frontier import fmt

    for m, wide in trends.items():
        t = Table(title=m, title_justify="left")
        t.add_column("series")
        for c in wide.columns:
            t.add_column(str(c), justify="right")
        for s, row in wide.iterrows():
            t.add_row(str(s), *(fmt(v) if v == v else "" for v in row.tolist()))
        state.console().print(t)


def _write_history_md(path: Path, trends, n_runs: int) -> Path:
    """The trend tables as Markdown, one section per metric."""
    from kopt.select.frontier import fmt

    md = [f"# History ({n_runs} runs)\n"]
    for m, wide in trends.items():
        md.append(f"## {m}\n\n{wide.map(fmt).reset_index().to_markdown(index=False)}\n")
    path.write_text("\n".join(md), encoding="utf-8")
    return path
