"""`kopt optimize` (build variants from a recipe or one pass on the fly) and `kopt passes`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kopt.cli import state
from kopt.cli.options import DryRun, PassSets, Threads, VariantName


def optimize_cmd(
    model: Optional[str] = typer.Argument(None, help="Input: a model path, an artifact key, or a ref name "
                                          "('reference', 'base'). Not used with --recipe."),
    pass_names: list[str] = typer.Option([], "--pass", "-p", help="Pass to apply (repeat for a chain; see `kopt passes`)."),
    sets: PassSets = (),
    name: VariantName = None,
    recipe: Optional[Path] = typer.Option(None, "--recipe", "-r", help="Recipe file (.toml or .json) to run."),
    input_: Optional[str] = typer.Option(None, "--input", help="Override the recipe's input (every variant)."),
    dry_run: DryRun = False,
    fmt: str = typer.Option("toml", "--format", help="Recipe format for --dry-run: toml or json."),
    threads: Threads = 1,
) -> None:
    """Build optimized variants: each pass's output is cached, contract-checked and, for passes that
    must keep the maths, proven equal to its input."""
    import sys

    from kopt.core.errors import RecipeError
    from kopt.core.recipe import one_variant

    if recipe is not None:
        if model is not None or pass_names:
            raise RecipeError("use either --recipe FILE or MODEL --pass NAME, not both")
        r = _recipe_with_input(recipe, input_)
    else:
        if model is None or not pass_names:
            raise RecipeError("give MODEL and at least one --pass NAME, or --recipe FILE (see `kopt passes`)")
        chain = _chain_from_argv(sys.argv, pass_names, sets)
        r = one_variant(input_ or model, chain, name=name)
    if dry_run:
        if fmt not in ("toml", "json"):
            raise RecipeError(f"--format {fmt!r}: choose toml or json")
        typer.echo(r.to_toml() if fmt == "toml" else r.to_json(), nl=False)
        if fmt == "json":
            typer.echo("")
        raise typer.Exit(0)

    from kopt.core.runner import Runner

    results = Runner(state.store(), state.progress(), threads=threads).run(r)
    if not state.S.quiet:
        _print_results(results)
    state.emit({"command": "optimize", "recipe": r.dump(), "variants": [x.as_dict() for x in results]})
    if any(x.status == "failed" for x in results):
        raise typer.Exit(1)


def _recipe_with_input(recipe: Path, input_: str | None):
    """The recipe file's (a build recipe's variants run as well), every variant reading ``input_``
    when given."""
    from kopt.core.recipe import validate_recipe
    from kopt.pipeline.recipe import load_build_recipe

    r = load_build_recipe(recipe)
    if input_ is None:
        return r
    data = r.dump()
    data["input"] = input_
    for v in data["variants"]:
        v.pop("input", None)
    return validate_recipe(data, f"{recipe} (with --input {input_})")


def _print_results(results) -> None:
    from rich.table import Table

    t = Table("variant", "status", "key", "steps", "detail")
    for res in results:
        steps = " -> ".join(f"{s.pass_name}{' (cached)' if s.cached else ''}" for s in res.steps)
        diffs = [s.report.get("max_abs_diff") for s in res.steps if s.report.get("max_abs_diff") is not None]
        detail = res.reason or (f"max |diff| {max(diffs):.2e}" if diffs else "")
        color = {"ok": "green", "cached": "cyan", "failed": "red"}[res.status]
        t.add_row(res.name, f"[{color}]{res.status}[/]", res.key or "-", steps, detail)
    state.console().print(t)
    for res in results:
        if res.model_path:
            state.say(f"  {res.name}: {res.model_path}")


def _chain_from_argv(argv: list[str], pass_names: list[str], sets: list[str]) -> list[tuple[str, dict]]:
    """Pair each --set with the --pass before it on the command line (typer collects them apart)."""
    chain: list[tuple[str, list[str]]] = []
    it = iter(range(len(argv)))
    for i in it:
        a = argv[i]
        for flag, kind in (("--pass", "p"), ("-p", "p"), ("--set", "s"), ("-s", "s")):
            if a == flag and i + 1 < len(argv):
                val = argv[i + 1]
                next(it, None)
            elif a.startswith(flag + "=") and flag.startswith("--"):
                val = a.split("=", 1)[1]
            else:
                continue
            if kind == "p":
                chain.append((val, []))
            elif chain:
                chain[-1][1].append(val)
            break
    if [p for p, _ in chain] != list(pass_names) or sum(len(s) for _, s in chain) != len(sets):
        # Not called from a plain command line (e.g. CliRunner with a different argv): all --set to the last pass.
        chain = [(p, []) for p in pass_names]
        chain[-1][1].extend(sets)
    from kopt.core.recipe import parse_sets

    return [(p, parse_sets(s)) for p, s in chain]


def passes_cmd(
    markdown: bool = typer.Option(False, "--markdown", help="Print the registry as Markdown (the table of "
                                  "docs/passes.md, which a test keeps equal to this output) and exit."),
) -> None:
    """List the registered passes with their config fields."""
    from kopt.core.passes import registry

    reg = registry()
    rows = [cls.describe() for cls in reg.values()]
    if markdown:
        typer.echo(passes_markdown(reg), nl=False)
        return
    if not state.S.quiet:
        from rich.table import Table

        t = Table("pass", "v", "what it does", "equal?", "config fields", show_lines=True)
        for d in rows:
            fields = "\n".join(f"[bold]{k}[/] ({f['type']}, default {f['default']!r}): {f['description']}"
                               for k, f in d["config"].items()) or "-"
            eq = f"yes, tol {d['tolerance']:g}" if d["equivalent"] else "no"
            t.add_row(d["name"], str(d["version"]), d["summary"], eq, fields)
        state.console().print(t)
    state.emit({"command": "passes", "passes": rows})


_LONG_DEFAULT = 48  # characters; a longer default is shown by its size (its field's description says where it comes from)


def passes_markdown(reg: dict) -> str:
    """The pass registry as Markdown: one table of every pass (name, version, stage, whether the runner
    checks it equal to its input, its config fields, one-line summary), then each pass's fields with
    their types, defaults and descriptions. Defaults are JSON, as ``--set key=value`` takes them."""
    lines = ["| pass | version | stage | equivalent to its input | config fields | what it does |",
             "| --- | --- | --- | --- | --- | --- |"]
    details: list[str] = []
    for name, cls in reg.items():
        d = cls.describe()
        eq = f"yes (max abs diff {d['tolerance']:g})" if d["equivalent"] else "no: judged by quality metrics"
        fields = ", ".join(f"`{k}`" for k in d["config"]) or "-"
        lines.append(f"| `{name}` | {d['version']} | {_stage(cls)} | {eq} | {fields} | {_cell(_summary(cls))} |")
        if d["config"]:
            details += ["", f"### `{name}`", "",
                        "| field | type | default | description |", "| --- | --- | --- | --- |"]
            details += [f"| `{k}` | {_cell(f['type'])} | `{_cell(_default(f['default']))}` | {_cell(f['description'])} |"
                        for k, f in d["config"].items()]
    return "\n".join(lines + ["", "## Config fields", *details]) + "\n"


def _stage(cls: type) -> str:
    """The package a pass lives in (kopt.optimize.fold -> optimize, kopt.quantize.hybrid -> quantize)."""
    parts = cls.__module__.split(".")
    return parts[-2] if len(parts) > 1 else parts[0]


def _summary(cls: type) -> str:
    text = cls.summary or (cls.__doc__ or "").strip()
    return text.strip().splitlines()[0] if text.strip() else "-"


def _default(value: object) -> str:
    import json

    text = json.dumps(value, default=str)
    if len(text) <= _LONG_DEFAULT:
        return text
    if isinstance(value, dict):
        return f"{{{len(value)} entries}}"
    if isinstance(value, (list, tuple)):
        return f"[{len(value)} items]"
    return text[:_LONG_DEFAULT - 3] + "..."


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
