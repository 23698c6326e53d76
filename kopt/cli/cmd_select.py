"""`kopt select`: the Pareto frontier and one winner per provider, with why every other variant lost."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kopt.cli import state
from kopt.cli.options import MaxBounds, MinBounds, ResultJson, SettingsFile
from kopt.core.exits import ExitCode


def select_settings(settings_file: Optional[Path], mins: List[str], maxs: List[str], speed: Optional[str] = None,
                    quality: Optional[str] = None, size: Optional[str] = None, tie: Optional[float] = None,
                    quality_any_machine: bool = False):
    """Settings file's [select] with flags on top (re-validated, so a bad value names its field)."""
    from kopt.core.recipe import validate
    from kopt.select.settings import SelectSettings, load_settings, parse_bound_flags

    base = load_settings(settings_file).select.model_dump()
    glob, per = parse_bound_flags(mins, maxs)
    if glob:
        base["constraints"] = {**base["constraints"], **{k: b.model_dump() for k, b in glob.items()}}
    for prov, bounds in per.items():
        base["providers"].setdefault(prov, {}).update({k: b.model_dump() for k, b in bounds.items()})
    for key, val in (("speed", speed), ("quality", quality), ("speed_tie_rel", tie)):
        if val is not None:
            base[key] = val
    if size is not None:
        base["size"] = None if size.lower() in ("", "none") else size
    if quality_any_machine:
        base["quality_across_machines"] = True
    return validate(SelectSettings, base, "select settings")


def select_cmd(
    results: List[Path] = typer.Argument(..., help="Results files (.jsonl) or folders of them (shards merge)."),
    settings_file: SettingsFile = None,
    mins: MinBounds = (),
    maxs: MaxBounds = (),
    speed: Optional[str] = typer.Option(None, "--speed", help="Speed objective metric."),
    quality: Optional[str] = typer.Option(None, "--quality", help="Quality objective metric."),
    size: Optional[str] = typer.Option(None, "--size", help="Size objective metric ('none' to drop it)."),
    speed_tie_rel: Optional[float] = typer.Option(None, "--tie", help="Speed tie tolerance as a fraction."),
    quality_any_machine: bool = typer.Option(False, "--quality-any-machine",
                                             help="Use quality measured on another machine for the same variant key."),
    out: ResultJson = None,
    strict: bool = typer.Option(False, "--strict", help=f"Exit {int(ExitCode.NO_WINNER)} when a provider has no winner."),
) -> None:
    """Pick one winner per provider (and machine) from bench + quality results, explaining every loser."""
    import json

    from kopt.core.results import read_records
    from kopt.select.frontier import select
    from kopt.select.metrics import Catalog
    from kopt.select.rows import build_rows, merge_records

    s = select_settings(settings_file, mins, maxs, speed, quality, size, speed_tie_rel, quality_any_machine)
    cat = Catalog({k: v.model_dump() for k, v in s.metrics.items()})
    for name in (s.speed, s.quality, s.size):
        if name:
            cat.require(name)
    records = merge_records(read_records(*results))
    rows = build_rows(records, catalog=cat, quality_across_machines=s.quality_across_machines)
    if not rows:
        from kopt.core.errors import KoptError

        raise KoptError(f"no bench or quality records in {', '.join(map(str, results))}; run kopt bench / kopt quality")
    sel = select(rows, s, cat)
    if not state.S.quiet:
        _print_selection(sel, s)
    data = {"command": "select", **sel.as_dict(), "settings": s.model_dump(mode="json")}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        state.say(f"selection written to {out}")
    state.emit(data)
    if strict and any(g.winner is None for g in sel.groups):
        raise SystemExit(int(ExitCode.NO_WINNER))  # not typer.Exit: standalone_mode=False would swallow its code


def _print_selection(sel, s) -> None:
    """One terminal table per (machine, provider) group: every variant's objectives, outcome and reason,
    then the group's explanation."""
    from rich.table import Table

    from kopt.select.frontier import fmt

    con = state.console()
    multi = len({g.machine_id for g in sel.groups}) > 1
    for g in sel.groups:
        title = g.provider + (f" on {g.machine_id[:8]} ({g.machine})" if multi else "")
        objs = f"speed={s.speed}, quality={s.quality}" + (f", size={s.size}" if s.size else "")
        t = Table(title=f"{title}  [dim]({objs})[/]", title_justify="left", show_lines=False)
        for c in ("variant", "speed", "quality", *(["size"] if s.size else []), "outcome", "reason"):
            t.add_column(c, overflow="fold", no_wrap=c != "reason", ratio=4 if c == "reason" else None)
        for v in g.verdicts:
            r = next(x for x in g.rows if x.variant_key == v.variant_key)
            style = "bold red" if v.outcome == "winner" else ("dim" if v.outcome in ("status", "missing") else "")
            t.add_row(v.variant, fmt(r.value(s.speed)), fmt(r.value(s.quality)),
                      *([fmt(r.value(s.size))] if s.size else []),
                      "WINNER" if v.outcome == "winner" else v.outcome, v.reason, style=style)
        con.print(t)
        con.print(f"  {g.explanation}\n")
