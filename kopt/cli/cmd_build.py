"""`kopt build`: run a recipe end to end and publish the winner."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kopt.cli import state
from kopt.cli.options import DryRun

DEFAULT_RECIPE = Path("recipes/default.toml")


def build_cmd(
    recipe: Path = typer.Argument(DEFAULT_RECIPE, help="Recipe file (TOML)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Measure only shard K/N of the variant x provider "
                                        "matrix (deterministic); merge shards with `kopt report`."),
    provider: List[str] = typer.Option([], "--provider", help="Measure only these of the recipe's provider presets "
                                       "(repeatable): one CI runner per kind of machine, e.g. --provider cuda on "
                                       "the GPU runner; quality is scored on every run (see docs/ci/)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Results of an earlier build to gate "
                                            "against (overrides the recipe's compare.baseline)."),
    no_publish: bool = typer.Option(False, "--no-publish", help="Stop after the report."),
    dry_run: DryRun = False,
) -> None:
    """Build a recipe: fetch, reference, variants, bench, quality, select, report, compare, publish.

    Exit codes: 0 built; 1 invalid recipe or other error; 2 usage error; 3 the regression gate
    tripped; 4 no variant meets the constraints for the publish provider. Every step is cached by
    content: a re-run redoes only what changed."""
    from kopt.pipeline.recipe import load_build_recipe

    r = load_build_recipe(recipe)
    if provider:
        from kopt.core.errors import KoptError

        wanted = list(dict.fromkeys(provider))
        unknown = [p for p in wanted if p not in r.bench.providers]
        if unknown:
            raise KoptError(f"--provider {unknown[0]}: not one of {recipe}'s [bench] providers "
                            f"({', '.join(r.bench.providers)})")
        r = r.model_copy(update={"bench": r.bench.model_copy(update={"providers": tuple(wanted)})})
    if shard:
        from kopt.select.shard import parse_shard

        parse_shard(shard)
    if dry_run:
        import json

        data = r.model_dump(mode="json", by_alias=True)
        if state.S.json_out:
            state.emit({"command": "build", "dry_run": True, "recipe": data})
        else:
            typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    from kopt.pipeline.pipeline import run_build

    res = run_build(r, state.store(), recipe_path=recipe, shard=shard, baseline=baseline,
                    publish=not no_publish, progress=state.progress())
    _summary(res)
    state.emit({"command": "build", **res.as_dict()})
    if res.exit_code:
        raise typer.Exit(res.exit_code)


def _summary(res) -> None:
    """What a person reads after a build. On a terminal: rich tables; otherwise (a CI log) plain
    Markdown-style rows, one line each, never wrapped at the console width."""
    if state.S.quiet:
        return
    from rich.markup import escape

    line = _line_writer()
    reused = ", ".join(f"{k} {v}" for k, v in res.reused.items())
    measured = ", ".join(f"{k} {v}" for k, v in res.measured.items())
    skipped = ", ".join(f"{k} {v}" for k, v in res.skipped.items() if v)
    line(f"[bold]kopt build {escape(res.recipe)}[/] in {res.seconds:.1f} s  (reused: {reused}; new: {measured}"
         + (f"; skipped: {skipped}" if skipped else "") + ")")
    for v in res.variants:
        if v["status"] == "failed":
            line(f"  [red]variant {escape(v['name'])} failed:[/] {escape(str(v['reason']))}")
    _selection(res.tables, line)
    for label, val in (("results", res.results), ("report", res.report), ("bundle", res.bundle),
                       ("tarball", res.tarball)):
        if val:
            line(f"  {label}: {escape(str(val))}")
    bb = res.bundle_bench
    if bb:
        from kopt.cli.cmd_publish import summary_lines

        line(f"  bundle ({'reused' if bb.get('cached') else 'measured'}), as its users run it:")
        for text in summary_lines(bb):
            line(f"    {escape(text)}")
    for why in res.reasons:
        line(f"  [yellow]{escape(why)}[/]")


def _line_writer():
    """A function that prints one line of rich markup: styled on a terminal, plain text otherwise."""
    con = state.console()

    def line(markup: str) -> None:
        if con.is_terminal:
            con.print(markup)
        else:
            from rich.text import Text

            typer.echo(Text.from_markup(markup).plain)

    return line


def _selection(tables: list[dict], line) -> None:
    """Per measured provider its winner and table; then, one line per reason, the providers not measured."""
    from rich.markup import escape

    con = state.console()
    for t in tables:
        if not t["measured"]:
            continue
        win = f"[bold]{escape(t['winner'])}[/] ({t['key'][:10]})" if t["winner"] else "[red]no winner[/]"
        line(f"{escape(t['provider'])}: {win}: {escape(t['explanation'])}")
        if con.is_terminal:
            from rich.table import Table

            table = Table(*t["columns"])
            for row in t["rows"]:
                table.add_row(*("" if c is None else escape(str(c)) for c in row),
                              style="bold" if "WINNER" in row else None)
            con.print(table)
        else:
            import pandas as pd

            from kopt.report.tables import plain_rows

            for row in plain_rows(pd.DataFrame(t["rows"], columns=t["columns"])):
                typer.echo(row)
    unmeasured: dict[str, list[str]] = {}  # one line per reason, naming every provider it kept from being measured
    for t in tables:
        if not t["measured"]:
            unmeasured.setdefault(str(t["reason"]), []).append(t["provider"])
    for reason, provs in unmeasured.items():
        line(f"not measured: {escape(', '.join(provs))}: {escape(reason)}")
