"""`kopt build`: run a recipe end to end and publish the winner."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kopt.cli import state

DEFAULT_RECIPE = Path("recipes/default.toml")


def register(app: typer.Typer) -> None:
    app.command("build")(build_cmd)


def build_cmd(
    recipe: Path = typer.Argument(DEFAULT_RECIPE, help="Recipe file (TOML)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Measure only shard K/N of the variant x provider "
                                        "matrix (deterministic); merge shards with `kopt report`."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Results of an earlier build to gate "
                                            "against (overrides the recipe's compare.baseline)."),
    no_publish: bool = typer.Option(False, "--no-publish", help="Stop after the report."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the recipe, run nothing."),
) -> None:
    """Build a recipe: fetch, reference, variants, bench, quality, select, report, compare, publish.

    Exit codes: 0 built; 1 invalid recipe or other error; 2 usage error; 3 the regression gate
    tripped; 4 no variant meets the constraints for the publish provider. Every step is cached by
    content: a re-run redoes only what changed."""
    from kopt.build.recipe import load_build_recipe

    r = load_build_recipe(recipe)
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
    from kopt.build.pipeline import run_build

    res = run_build(r, state.store(), recipe_path=recipe, shard=shard, baseline=baseline,
                    publish=not no_publish, progress=state.progress())
    _summary(res)
    state.emit({"command": "build", **res.as_dict()})
    if res.exit_code:
        raise typer.Exit(res.exit_code)


def _summary(res) -> None:
    if state.S.quiet:
        return
    from rich.table import Table

    con = state.console()
    reused = ", ".join(f"{k} {v}" for k, v in res.reused.items())
    measured = ", ".join(f"{k} {v}" for k, v in res.measured.items())
    skipped = ", ".join(f"{k} {v}" for k, v in res.skipped.items() if v)
    con.print(f"[bold]kopt build {res.recipe}[/] in {res.seconds:.1f} s  (reused: {reused}; new: {measured}"
              + (f"; skipped: {skipped}" if skipped else "") + ")")
    failed = [v for v in res.variants if v["status"] == "failed"]
    for v in failed:
        con.print(f"  [red]variant {v['name']} failed:[/] {v['reason']}")
    if res.winners:
        obj = [n for n in (res.objectives.get("speed"), res.objectives.get("quality"), res.objectives.get("size")) if n]
        t = Table("provider", "winner", *obj, "why")
        for prov, w in res.winners.items():
            m = w.get("metrics", {})
            t.add_row(prov, w.get("winner") or "-", *(_f(m.get(n), ".4g") for n in obj), w.get("explanation") or "")
        con.print(t)
    for label, val in (("results", res.results), ("report", res.report), ("bundle", res.bundle),
                       ("tarball", res.tarball)):
        if val:
            con.print(f"  {label}: {val}")
    bb = res.bundle_bench
    if bb:
        con.print(f"  bundle ({'reused' if bb.get('cached') else 'measured'}): cold start {bb['cold_start_s']:.2f} s "
                  f"(new process to first audio), warm TTFA {bb['warm_ttfa_ms']:.0f} ms for a {bb['text_words']}-word "
                  f"paragraph (first chunk {bb['first_chunk_audio_s']:.1f} s of speech)")
    for why in res.reasons:
        con.print(f"  [yellow]{why}[/]")


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)
