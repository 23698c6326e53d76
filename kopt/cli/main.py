"""kopt's thin CLI root: global flags, one error handler, and the command registry (``COMMANDS``),
the one place a command is named, with its stage, where it lives and the settings it fills. Heavy
imports stay inside commands so ``kopt --help`` is instant.

The global flags (``--json``, ``--quiet``, ``--artifacts``, ``--verbose``) are accepted before the
command and after it (``kopt fetch --json``), and every command's ``--help`` lists them. ``kopt
--help`` groups the commands by pipeline stage, in pipeline order (``STAGES``, derived from
``COMMANDS``)."""

from __future__ import annotations

import importlib
import logging
import re
import sys
from typing import NamedTuple, Optional

import typer
from typer.core import TyperGroup

from kopt import __version__
from kopt.cli import state
from kopt.cli.options import show_settings_defaults
from kopt.core.exits import epilog


class Command(NamedTuple):
    name: str
    stage: str
    target: str  # "module:attribute" under kopt.cli: a command function, or a Typer app of subcommands
    settings: Optional[str] = None  # "module:Model" the command fills; its help shows the model's defaults


# Every command, by stage in pipeline order: `kopt --help` lists exactly these, in this order.
COMMANDS: tuple[Command, ...] = (
    Command("fetch", "acquire", "cmd_fetch:fetch_cmd"),
    Command("reference", "acquire", "cmd_fetch:reference_cmd"),
    Command("check", "acquire", "cmd_fetch:check_cmd"),
    Command("passes", "optimize", "cmd_optimize:passes_cmd"),
    Command("optimize", "optimize", "cmd_optimize:optimize_cmd"),
    Command("quantize", "quantize", "cmd_quantize:quantize_cmd"),
    Command("sensitivity", "quantize", "cmd_sensitivity:sensitivity_cmd",
            "kopt.quality.sensitivity_settings:SensitivityConfig"),
    Command("bench", "measure", "cmd_bench:bench_cmd", "kopt.bench.settings:BenchSettings"),
    Command("profile", "measure", "cmd_profile:profile_cmd"),
    Command("providers", "measure", "cmd_bench:providers_cmd"),
    Command("quality", "measure", "cmd_quality:quality_cmd", "kopt.quality.settings:QualitySettings"),
    Command("select", "decide", "cmd_select:select_cmd", "kopt.select.settings:SelectSettings"),
    Command("report", "decide", "cmd_report:report_cmd"),
    Command("compare", "decide", "cmd_compare:compare_cmd", "kopt.select.settings:CompareSettings"),
    Command("history", "decide", "cmd_report:history_cmd"),
    Command("publish", "ship", "cmd_publish:publish_cmd", "kopt.publish.settings:PublishSettings"),
    Command("bundle-bench", "ship", "cmd_publish:bundle_bench_cmd", "kopt.publish.settings:BundleBenchSettings"),
    Command("voices", "ship", "cmd_voices:voices_app"),
    Command("tokencache", "ship", "cmd_tokencache:tc_app"),
    Command("build", "whole pipeline", "cmd_build:build_cmd"),
    Command("artifacts", "whole pipeline", "cmd_fetch:artifacts_cmd"),
)
STAGES: dict[str, tuple[str, ...]] = {stage: tuple(c.name for c in COMMANDS if c.stage == stage)
                                      for stage in dict.fromkeys(c.stage for c in COMMANDS)}
_BY_NAME = {c.name: c for c in COMMANDS}


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
    """The root group: commands in registry order, each in its stage's help panel."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        extra = _global_options()
        for name, cmd in self.commands.items():
            cmd.rich_help_panel = _BY_NAME[name].stage  # type: ignore[attr-defined]
            _tidy(cmd, extra)
            if _BY_NAME[name].settings:
                show_settings_defaults(cmd, _BY_NAME[name].settings)
        self.help = _literal(self.help)
        for p in self.params:
            _tidy_option(p)
        _tidy_help_option(self)

    def list_commands(self, ctx) -> list[str]:
        return [c.name for c in COMMANDS if c.name in self.commands]  # typer puts groups after commands


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


def _register() -> None:
    for c in COMMANDS:
        module, _, attr = c.target.partition(":")
        target = getattr(importlib.import_module(f"kopt.cli.{module}"), attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=c.name)
        else:
            app.command(c.name)(target)


_register()


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
