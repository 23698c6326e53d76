"""Options that several commands share, each declared once as a ``typing.Annotated`` alias: a
command writes ``dry_run: DryRun = False`` and gets the same flag and help text as every other.
The default stays at the use site (``threads: Threads = 1``; ``()`` for a repeatable one, which
the command still gets as a list); ``None`` means "not given", so the settings model the command
fills decides.

An option that only looks shared (``--voices`` of ``kopt publish`` names voices to ship, of ``kopt
bench`` a voice pack to read) stays in its command.

The help never restates a settings default: an option left at ``None`` whose parameter is named
after a field of its command's settings model (``COMMANDS`` in kopt/cli/main.py; hence ``providers``
for ``--provider``) shows that field's default, looked up when help is printed
(``show_settings_defaults``), so ``kopt --help`` imports no settings."""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, List, Optional

import typer

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print what would run (the recipe or settings) and exit; "
                                      "run nothing.")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads per onnxruntime session "
                                                "(0: onnxruntime's own choice).")]
VoicePack = Annotated[Optional[Path], typer.Option("--voices", help="Voice pack (.npz); default: the base "
                                                   "artifact's.")]
Voice = Annotated[Optional[str], typer.Option("--voice", help="Voice name in the pack (default: its first).")]
Categories = Annotated[Optional[List[str]], typer.Option("--category", help="Text categories (repeatable): short, "
                                                         "medium, long.")]
ResultsOut = Annotated[Optional[Path], typer.Option("--out", help="Results JSONL (default: <artifacts>/results/"
                                                    "<run_id>.jsonl).")]
ResultJson = Annotated[Optional[Path], typer.Option("--out", help="Also write the result as JSON here (what --json "
                                                    "prints).")]
SettingsFile = Annotated[Optional[Path], typer.Option("--settings", help="Settings file (TOML/JSON) with [select] "
                                                      "and [compare] tables.")]
MinBounds = Annotated[List[str], typer.Option("--min", help="Constraint [PROVIDER:]METRIC=VALUE (repeatable), e.g. "
                                              "pesq_wb_aligned=4.0 or CUDAExecutionProvider:dnsmos_ovrl=3.0.")]
MaxBounds = Annotated[List[str], typer.Option("--max", help="Constraint [PROVIDER:]METRIC=VALUE (repeatable), e.g. "
                                              "size_mb=100.")]
Blends = Annotated[List[str], typer.Option("--blend", help="Add a blended voice: NAME=a:0.7,b:0.3 or NAME=a(2)+b(1) "
                                         "(repeatable).")]
PassSets = Annotated[List[str], typer.Option("--set", "-s", help="Config of the last --pass before it: key=value "
                                             "(value parsed as JSON when it can be: 64, true, [32,64]).")]
VariantName = Annotated[Optional[str], typer.Option("--name", help="Variant name (default: the pass names).")]


def settings_model(ref: str) -> type:
    """The settings model named ``"module:Class"``."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def settings_defaults(cmd, ref: str) -> dict[str, Any]:
    """Parameter name -> the default to show, for each option of ``cmd`` left at ``None`` whose
    parameter is a field of the settings model ``ref`` with a default worth showing."""
    fields = settings_model(ref).model_fields
    out = {}
    for p in cmd.params:
        if getattr(p, "param_type_name", "") == "option" and p.default is None and p.name in fields:
            value = fields[p.name].get_default(call_default_factory=True)
            if isinstance(value, tuple):  # as the flag takes it: repeated, or comma-separated
                value = list(value) if p.multiple else ",".join(map(str, value))
            if value not in (None, [], {}, ""):
                out[p.name] = value
    return out


@contextmanager
def _shown(cmd, ref: str) -> Iterator[None]:
    defaults = settings_defaults(cmd, ref)
    saved = [(p, p.default, p.show_default) for p in cmd.params if p.name in defaults]
    for p, _, _ in saved:
        p.default, p.show_default = defaults[p.name], True
    try:
        yield
    finally:
        for p, default, show in saved:
            p.default, p.show_default = default, show


def show_settings_defaults(cmd, ref: str) -> None:
    """Make ``cmd``'s help show the settings defaults of its unset options. They are set only while
    the help is written: the option's own default stays ``None``, so an option not given leaves the
    value to the recipe or settings file."""
    write = cmd.format_help

    def format_help(ctx, formatter):
        with _shown(cmd, ref):
            return write(ctx, formatter)

    cmd.format_help = format_help
