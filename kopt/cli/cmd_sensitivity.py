"""`kopt sensitivity`: rank node groups by the audio damage int8 does to them, and derive the
exclusion list (and hybrid precision map) that meets a quality budget with the least float left."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kopt.cli import state
from kopt.cli.options import DryRun, Threads


def sensitivity_cmd(
    model: str = typer.Argument("reference", help="fp32 reference: model path, artifact key or ref name."),
    out: Path = typer.Option(Path("artifacts/sensitivity"), "--out", help="Folder for sensitivity.json/.png."),
    groups: Optional[List[str]] = typer.Option(None, "--group", "-g", help="Candidate group, a module-path prefix "
                                               "or op:TYPE (repeatable)."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Mean aligned PESQ-wb the combined model must "
                                           "keep."),
    margin: Optional[float] = typer.Option(None, "--margin", help="Headroom above the budget: the search accepts a "
                                           "set only at budget + margin or more."),
    case_floor: Optional[float] = typer.Option(None, "--case-floor", help="No check sentence of an accepted set may "
                                               "score below this (0: no floor)."),
    cases: Optional[List[str]] = typer.Option(None, "--case", help="Check-set sentences: short, medium, long."),
    calibrate_method: Optional[str] = typer.Option(None, "--method", help="Calibration: MinMax, Entropy or "
                                                   "Percentile."),
    no_search: bool = typer.Option(False, "--no-search", help="Rank only; skip the budget search."),
    no_balance: bool = typer.Option(False, "--no-balance", help="Plain per-tensor activation QDQ (no channel balancing)."),
    write_map: Optional[Path] = typer.Option(None, "--write-map", help="Also write a hybrid precision map JSON here."),
    threads: Threads = None,
    reuse: Optional[Path] = typer.Option(None, "--reuse", help="Earlier sensitivity.json: reuse the alone-scores "
                                         "it has for the same settings."),
    dry_run: DryRun = False,
) -> None:
    """Quantize one node group at a time, score each against the fp32 reference, rank, and search."""
    import json

    from kopt.core.recipe import validate
    from kopt.core.runner import resolve_input
    from kopt.quality.sensitivity_settings import SensitivityConfig

    fields = state.overrides(budget=budget, margin=margin, calibrate_method=calibrate_method, threads=threads,
                             groups=groups, cases=cases, reuse=str(reuse) if reuse else None)
    if case_floor is not None:
        fields["case_floor"] = case_floor or None       # 0: no floor
    cfg = validate(SensitivityConfig, {**fields, "search": not no_search, "balance": not no_balance},
                   "kopt sensitivity")
    if dry_run:
        typer.echo(json.dumps({"model": model, "out": str(out), **cfg.model_dump(mode="json")}, indent=2))
        raise typer.Exit(0)
    from kopt.quality.sensitivity import run_sensitivity, write_precision_map
    from kopt.report.plots import sensitivity as sensitivity_plot

    res = run_sensitivity(resolve_input(state.store(), model).path, out, cfg, progress=state.progress())
    sensitivity_plot(res, out / "sensitivity.png")
    if not state.S.quiet:
        _print(res, out)
    if write_map:
        write_precision_map(res, write_map)
        state.say(f"  map: {write_map}")
    state.emit({"command": "sensitivity", **res})


def _print(res: dict, out: Path) -> None:
    from rich.table import Table

    t = Table("group", "nodes", res["ranking"][0]["metric"] if res["ranking"] else "score", "int8 in map")
    chosen = set(res["int8_groups"])
    for r in res["ranking"]:
        t.add_row(r["group"], str(r["nodes"]), f"{r['score']:.3f}", "yes" if r["group"] in chosen else "no")
    state.console().print(t)
    state.say(f"exclude (stay float): {', '.join(res['exclude']) or '-'}")
    state.say(f"  {out / 'sensitivity.json'}\n  {out / 'sensitivity.png'}")
