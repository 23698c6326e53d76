"""`kopt quantize`: build one quantized variant through the runner (cached, contract-checked).

Sugar over `kopt optimize MODEL --pass NAME`: the quantization passes (fp16, int8-dynamic,
int8-static, hybrid, int4) are ordinary registered passes, so recipes can chain them too."""

from __future__ import annotations

import typer

from kopt.cli import state
from kopt.cli.options import DryRun, PassSets, Threads, VariantName

QUANT_PASSES = ("fp16", "int8-dynamic", "int8-static", "hybrid", "int4")


def quantize_cmd(
    model: str = typer.Argument("reference", help="Input: model path, artifact key or ref name (default: reference)."),
    pass_name: str = typer.Option(..., "--pass", "-p", help=f"Quantization pass: {', '.join(QUANT_PASSES)}."),
    sets: PassSets = (),
    name: VariantName = None,
    dry_run: DryRun = False,
    threads: Threads = 1,
) -> None:
    """Quantize a model with one pass; prints the variant's key, size and precision per node group."""
    from kopt.core.errors import KoptError
    from kopt.core.recipe import one_variant, parse_sets
    from kopt.core.runner import Runner

    if pass_name not in QUANT_PASSES:
        raise KoptError(f"--pass {pass_name!r} is not a quantization pass; choose one of: {', '.join(QUANT_PASSES)}")
    r = one_variant(model, [(pass_name, parse_sets(sets))], name=name or pass_name)
    if dry_run:
        typer.echo(r.to_toml(), nl=False)
        raise typer.Exit(0)
    res = Runner(state.store(), state.progress(), threads=threads).run(r, warn=False)[0]  # the error says it
    if res.status == "failed":
        state.emit({"command": "quantize", "variant": res.as_dict()})
        raise KoptError(f"{res.name}: {res.reason}")
    rep = res.steps[-1].report if res.steps else {}
    size = rep.get("bytes_after") or rep.get("size_bytes")
    state.say(f"{res.status}: {res.name} [bold]{res.key}[/] ({size / 1e6:.1f} MB)" if size else
              f"{res.status}: {res.name} [bold]{res.key}[/]")
    for g, counts in rep.get("precision_by_group", {}).items():
        state.say(f"  {g:<24} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    state.say(f"  {res.model_path}")
    state.emit({"command": "quantize", "variant": res.as_dict()})
