"""`kopt compare BASELINE CURRENT`: a regression verdict for CI.

Exit codes: 0 no regression; 3 a regression (a gating metric worse than its threshold and outside the
measured noise, a variant/provider gone, or a provider that stopped working); 1 a user error (bad file,
bad flag value); 2 a usage error."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kopt.cli import state
from kopt.cli.options import ResultJson, SettingsFile
from kopt.core.exits import ExitCode


def compare_cmd(
    baseline: Path = typer.Argument(..., help="Baseline results file or folder."),
    current: Path = typer.Argument(..., help="Current results file or folder."),
    settings_file: SettingsFile = None,
    threshold: List[str] = typer.Option([], "--threshold", help="METRIC=VALUE% (relative) or METRIC=VALUE "
                                        "(absolute), e.g. rtf_median=5% or pesq_wb_aligned=0.05."),
    metric: List[str] = typer.Option([], "--metric", help="Only compare these metrics."),
    no_noise: bool = typer.Option(False, "--no-noise", help="Ignore the recorded spread (plain thresholds)."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="A variant/provider gone is not a regression."),
    match: Optional[str] = typer.Option(None, "--match", help="Match variants by 'name' or content 'key'."),
    out: ResultJson = None,
) -> None:
    """Compare CURRENT against BASELINE; exit 3 on a regression (for CI)."""
    import json

    from kopt.core.errors import KoptError
    from kopt.core.results import read_records
    from kopt.report.verdict import compare

    s = _settings(settings_file, threshold, metric, no_noise, allow_missing, match)
    brecs, crecs = read_records(baseline), read_records(current)
    if not brecs or not crecs:
        raise KoptError(f"{baseline if not brecs else current}: no records to compare")
    cmp_ = compare(brecs, crecs, s)
    if not state.S.quiet:
        _print(cmp_)
    data = {"command": "compare", "baseline": str(baseline), "current": str(current), **cmp_.as_dict()}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        state.say(f"verdict written to {out}")
    state.emit(data)
    if cmp_.regression:
        # SystemExit, not typer.Exit: the root runs click with standalone_mode=False, which swallows Exit codes
        raise SystemExit(int(ExitCode.REGRESSION))


def _settings(settings_file, threshold, metric, no_noise, allow_missing, match):
    """The settings file's [compare] with the flags on top, re-validated (a bad value names its field)."""
    from kopt.core.recipe import validate
    from kopt.select.settings import CompareSettings, load_settings, parse_threshold_flags

    base = load_settings(settings_file).compare.model_dump()
    base["thresholds"] = {**base["thresholds"], **{k: t.model_dump() for k, t in parse_threshold_flags(threshold).items()}}
    if metric:
        base["metrics"] = list(metric)
    if no_noise:
        base["noise"] = False
    if allow_missing:
        base["allow_missing"] = True
    if match is not None:
        base["match"] = match
    return validate(CompareSettings, base, "compare settings")


def _print(cmp_) -> None:
    """The verdict for a person: regressions, watched and better metrics, per-cell outcomes, totals."""
    from rich.table import Table

    from kopt.select.frontier import fmt

    con = state.console()
    for n in cmp_.notes:
        con.print(f"[yellow]note:[/] {n}")
    for title, items, style in (("worse (regressions)", cmp_.regressions, "red"),
                                ("worse on watched metrics (not gating)", cmp_.worse, "yellow"),
                                ("better", cmp_.improvements, "green")):
        if not items:
            continue
        t = Table(title=title, title_justify="left", title_style=f"bold {style}")
        langs = any("@" in c.metric for c in items)  # quality per language: a language column
        for c in ("variant", "provider", *(["language"] if langs else []), "metric", "baseline", "current",
                  "change", "threshold"):
            t.add_column(c)
        for c in items:
            rel = f"{c.rel:+.1%}" if c.rel is not None else (f"{c.delta:+.4g}" if c.delta is not None else "")
            t.add_row(c.variant, c.provider.removesuffix("ExecutionProvider"), *([c.language or ""] if langs else []),
                      c.metric, fmt(c.baseline), fmt(c.current), rel, c.threshold)
        con.print(t)
    for c in cmp_.cells:
        con.print(f"[{'red' if c.regression else 'cyan'}]{c.outcome}[/]: {c.variant} on {c.provider}: {c.note}")
    noisy = [c for c in cmp_.changes if c.outcome == "within_noise"]
    for c in noisy:
        con.print(f"[dim]within noise: {c.variant} on {c.provider} {c.metric}: {c.note}[/]")
    skipped = sorted({c.metric for c in cmp_.changes if c.outcome == "not_compared" and "machines" in c.note})
    if skipped:
        con.print(f"[yellow]not compared across machines:[/] {', '.join(skipped)}")
    same = sum(1 for c in cmp_.changes if c.outcome == "within_threshold")
    verdict = "[bold red]REGRESSION[/]" if cmp_.regression else "[bold green]OK[/]"
    con.print(f"{verdict}: {len(cmp_.regressions)} regressions, {len(cmp_.worse)} worse but not gating, "
              f"{len(cmp_.improvements)} better, "
              f"{len(noisy)} within noise, {same} within threshold"
              + (f"; exit {int(ExitCode.REGRESSION)}" if cmp_.regression else ""))
