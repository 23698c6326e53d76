"""Shared options (kopt/cli/options.py): each keeps its flag names in every command that uses it, and
is the same option there (one help text), so it cannot drift per command."""

from __future__ import annotations

import pytest
from typer.main import get_command

from kopt.cli import options
from kopt.cli.main import app

# alias -> its flags, and the commands that offer it (the contract the CLI and the docs rely on)
SHARED = {
    "DryRun": (("--dry-run",), ["bench", "build", "optimize", "quantize", "quality", "sensitivity",
                                "tokencache build"]),
    "Threads": (("--threads",), ["bench", "quality", "optimize", "quantize", "sensitivity"]),
    "VoicePack": (("--voices",), ["bench", "profile", "quality", "report"]),
    "Voice": (("--voice",), ["bench", "check", "profile", "tokencache stats"]),
    "Categories": (("--category",), ["bench", "quality"]),
    "ResultsOut": (("--out",), ["bench", "profile", "bundle-bench"]),
    "ResultJson": (("--out",), ["compare", "select"]),
    "SettingsFile": (("--settings",), ["compare", "select", "report"]),
    "MinBounds": (("--min",), ["select", "report"]),
    "MaxBounds": (("--max",), ["select", "report"]),
    "Blends": (("--blend",), ["publish", "voices pack"]),
    "PassSets": (("--set", "-s"), ["optimize", "quantize"]),
    "VariantName": (("--name",), ["optimize", "quantize"]),
}


def _command(path: str):
    cmd = get_command(app)
    for name in path.split():
        cmd = cmd.commands[name]
    return cmd


def _option(cmd, flag: str):
    found = [p for p in cmd.params if flag in p.opts]
    assert len(found) == 1, f"{cmd.name}: {len(found)} options {flag}"
    return found[0]


def test_every_alias_is_listed():
    aliases = {n for n, v in vars(options).items() if getattr(v, "__metadata__", None)}
    assert aliases == set(SHARED)


@pytest.mark.parametrize("alias", sorted(SHARED))
def test_alias_keeps_its_flags(alias):
    flags, _ = SHARED[alias]
    (info,) = getattr(options, alias).__metadata__
    assert (info.default, *info.param_decls) == flags


@pytest.mark.parametrize("alias", sorted(SHARED))
def test_alias_is_one_option_in_every_command(alias):
    flags, commands = SHARED[alias]
    found = {path: _option(_command(path), flags[0]) for path in commands}
    for path, p in found.items():
        assert tuple(p.opts) == flags, f"kopt {path}: {p.opts}"
    assert len({p.help for p in found.values()}) == 1, {path: p.help for path, p in found.items()}
