"""kopt's thin CLI root: global flags, one error handler, and automatic discovery of command
modules (``kopt/cli/cmd_*.py``, each with ``register(app)``). Heavy imports stay inside commands
so ``kopt --help`` is instant."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import typer

from kopt import __version__
from kopt.cli import state

app = typer.Typer(
    name="kopt",
    help="Build, measure and ship optimized Kokoro-82M ONNX variants.",
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or chatter (for CI)."),
    json_out: bool = typer.Option(False, "--json", help="Print a machine-readable JSON result on stdout."),
    artifacts: str = typer.Option("artifacts", "--artifacts", help="Artifact store folder.", envvar="KOPT_ARTIFACTS"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
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
