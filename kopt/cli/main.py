"""kopt's thin CLI root: global flags, one error handler, and automatic discovery of command
modules (``kopt/cli/cmd_*.py``, each with ``register(app)``). Heavy imports stay inside commands
so ``kopt --help`` is instant.

The global flags (``--json``, ``--quiet``, ``--artifacts``, ``--verbose``) are accepted before the
command and after it (``kopt fetch --json``), and every command's ``--help`` lists them. ``kopt
--help`` groups the commands by pipeline stage, in pipeline order (``STAGES``)."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import sys
from typing import Optional

import typer
from typer.core import TyperGroup

from kopt import __version__
from kopt.cli import state
from kopt.core.exits import epilog

# Every command, by stage, in pipeline order; a command missing here is a test failure.
STAGES: dict[str, tuple[str, ...]] = {
    "acquire": ("fetch", "reference", "check"),
    "optimize": ("passes", "optimize"),
    "quantize": ("quantize", "sensitivity"),
    "measure": ("bench", "profile", "providers", "quality"),
    "decide": ("select", "report", "compare", "history"),
    "ship": ("publish", "bundle-bench", "voices", "tokencache"),
    "whole pipeline": ("build", "artifacts"),
}
_ORDER = [c for cmds in STAGES.values() for c in cmds]
_STAGE_OF = {c: stage for stage, cmds in STAGES.items() for c in cmds}


def _set_quiet(ctx, _param, value: bool) -> None:
    if value:
        state.S.quiet = True


def _set_json(ctx, _param, value: bool) -> None:
    if value:
        state.S.json_out = state.S.quiet = True


def _set_artifacts(ctx, _param, value: Optional[str]) -> None:
    if value is not None:
        state.S.artifacts = value


def _set_verbose(ctx, _param, value: bool) -> None:
    if value:
        logging.getLogger().setLevel(logging.DEBUG)


_HELP = {"quiet": "No progress bars or chatter (for CI).",
         "json": "Print a machine-readable JSON result on stdout (implies --quiet).",
         "artifacts": "Artifact store folder [default: artifacts; env KOPT_ARTIFACTS].",
         "verbose": "Debug logging."}


def _global_options() -> list:
    """The global flags as options of a command, built by Typer (so its help renders them), each
    applying itself to the CLI state when given after the command."""

    def spec(
        quiet: bool = typer.Option(False, "--quiet", "-q", help=_HELP["quiet"], callback=_set_quiet,
                                   expose_value=False, rich_help_panel="Global options"),
        json_out: bool = typer.Option(False, "--json", help=_HELP["json"], callback=_set_json, expose_value=False,
                                      rich_help_panel="Global options"),
        artifacts: Optional[str] = typer.Option(None, "--artifacts", metavar="DIR", help=_HELP["artifacts"],
                                                callback=_set_artifacts, expose_value=False,
                                                rich_help_panel="Global options"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help=_HELP["verbose"], callback=_set_verbose,
                                     expose_value=False, rich_help_panel="Global options"),
    ) -> None:
        pass

    tiny = typer.Typer(add_completion=False)
    tiny.command()(spec)
    params = list(typer.main.get_command(tiny).params)
    for p in params:
        _tidy_option(p)
    return params


def _literal(text: Optional[str]) -> Optional[str]:
    """Help text shown as written: ``[bench]`` is a recipe section, not Rich markup to drop."""
    return re.sub(r"(?<!\\)\[", r"\\[", text) if text else text


def _is_option(p) -> bool:
    return getattr(p, "param_type_name", "") == "option"


def _tidy_option(p) -> None:
    if _is_option(p):
        p.help = _literal(p.help)
        if p.is_flag and p.metavar is None:
            p.metavar = ""


def _tidy_help_option(cmd) -> None:
    """``--help`` is made when help is asked for; tidy it then."""
    made = cmd.get_help_option

    def get_help_option(ctx):
        opt = made(ctx)
        if opt is not None:
            _tidy_option(opt)
        return opt

    cmd.get_help_option = get_help_option


def _tidy(cmd, extra: list) -> None:
    """Literal help texts, flags without a ``<bool>`` type column, and the global options, on ``cmd``
    and every command below it."""
    cmd.help = _literal(cmd.help)
    cmd.short_help = _literal(cmd.short_help)
    names = {n for p in cmd.params for n in (*p.opts, *p.secondary_opts)}
    for p in cmd.params:
        _tidy_option(p)
    _tidy_help_option(cmd)
    cmd.params.extend(p for p in extra if not names.intersection(p.opts))
    for sub in getattr(cmd, "commands", {}).values():
        _tidy(sub, extra)


class KoptGroup(TyperGroup):
    """The root group: commands listed by stage in pipeline order, each in its stage's help panel."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        extra = _global_options()
        for name, cmd in self.commands.items():
            cmd.rich_help_panel = _STAGE_OF.get(name, "other")  # type: ignore[attr-defined]
            _tidy(cmd, extra)
        self.help = _literal(self.help)
        for p in self.params:
            _tidy_option(p)
        _tidy_help_option(self)

    def list_commands(self, ctx) -> list[str]:
        rank = {c: i for i, c in enumerate(_ORDER)}
        return sorted(self.commands, key=lambda c: (rank.get(c, len(rank)), c))


app = typer.Typer(
    name="kopt",
    cls=KoptGroup,
    help="Build, measure and ship optimized Kokoro-82M ONNX variants.",
    epilog=epilog(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kopt {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help=_HELP["quiet"]),
    json_out: bool = typer.Option(False, "--json", help=_HELP["json"]),
    artifacts: str = typer.Option("artifacts", "--artifacts", metavar="DIR", help="Artifact store folder.",
                                  envvar="KOPT_ARTIFACTS"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=_HELP["verbose"]),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Build, measure and ship optimized Kokoro-82M ONNX variants. The global options go before or
    after the command."""
    state.configure(quiet=quiet or json_out, json_out=json_out, artifacts=artifacts)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _discover() -> None:
    import kopt.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            mod = importlib.import_module(f"kopt.cli.{info.name}")
            mod.register(app)


_discover()


def main() -> None:
    """Entry point. Typer's standalone mode handles usage errors (exit 2) and ``typer.Exit(code)``;
    kopt's own known errors become one line on stderr and their exit code (1)."""
    from kopt.core.errors import KoptError

    try:
        app()
    except KoptError as e:
        state.error(str(e))
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
