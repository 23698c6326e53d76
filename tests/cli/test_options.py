"""Shared options (kopt/cli/options.py): each keeps its flag names in every command that uses it, and
is the same option there (one help text), so it cannot drift per command. Help shows the defaults of
the settings a command fills from the settings model itself, and no help text restates one."""

from __future__ import annotations

import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from kopt.cli import options
from kopt.cli.main import COMMANDS, app

runner = CliRunner()

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


# command -> the options whose help shows a default of the settings model the command fills
FROM_SETTINGS = {
    "bench": {"--provider", "--threads", "--repeats", "--warmup", "--ttfa-repeats", "--category", "--timeout",
              "--memory-mb", "--scaling-threads", "--scaling-repeats"},
    "quality": {"--reference", "--metric", "--category", "--lang", "--threads"},
    "select": {"--speed", "--quality", "--size", "--tie"},
    "compare": {"--match"},
    "publish": {"--provider", "--cache-words"},
    "bundle-bench": {"--repeats", "--clients", "--instances", "--requests"},
    "sensitivity": {"--group", "--budget", "--margin", "--case-floor", "--case", "--method", "--threads"},
}


def test_settings_defaults_come_from_the_models():
    with_settings = {c.name: c.settings for c in COMMANDS if c.settings}
    assert set(with_settings) == set(FROM_SETTINGS)
    for name, ref in with_settings.items():
        cmd = _command(name)
        fields = options.settings_model(ref).model_fields
        shown = options.settings_defaults(cmd, ref)
        assert {_option_named(cmd, n).opts[0] for n in shown} == FROM_SETTINGS[name], name
        for n, value in shown.items():
            default = fields[n].get_default(call_default_factory=True)
            forms = [default] if not isinstance(default, tuple) else [list(default), ",".join(map(str, default))]
            assert value in forms, (name, n, value)  # a sequence as the flag takes it: repeated or a,b,c


def _option_named(cmd, name: str):
    return next(p for p in cmd.params if p.name == name)


def test_help_shows_the_settings_default_and_the_option_keeps_none():
    from kopt.bench.settings import BenchSettings
    from kopt.select.settings import SelectSettings

    out = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "200"}).stdout
    line = next(x for x in out.splitlines() if "--threads" in x)
    assert f"[default: {BenchSettings.model_fields['threads'].default}]" in line
    line = next(x for x in out.splitlines() if "--repeats" in x)
    assert f"[default: {BenchSettings.model_fields['repeats'].default}]" in line
    out = runner.invoke(app, ["select", "--help"], env={"COLUMNS": "200"}).stdout
    line = next(x for x in out.splitlines() if "--tie" in x)
    assert f"[default: {SelectSettings.model_fields['speed_tie_rel'].default}]" in line
    # shown only while the help is written: not given, the option leaves the value to the recipe
    assert _option_named(_command("bench"), "threads").default is None


def test_no_help_text_restates_a_default():
    def walk(cmd, path):
        for p in cmd.params:
            text = getattr(p, "help", None) or ""
            if re.search(r"(?i)\bdefault:?\s+[\d'\"`]|\(default\)", text):
                yield f"kopt {' '.join(path)} {p.opts[0]}: {text}"
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    found = list(walk(get_command(app), []))
    assert not found, "say the default through the settings model or Typer's own [default: ...]: " + "; ".join(found)


def test_tokencache_build_help_shows_the_cache_config_default():
    from kopt.publish.settings import CacheConfig

    out = runner.invoke(app, ["tokencache", "build", "--help"], env={"COLUMNS": "200"}).stdout
    line = next(x for x in out.splitlines() if "--words" in x)
    assert f"[default: {CacheConfig.model_fields['words'].default}]" in line
    assert _option_named(_command("tokencache build"), "words").default is None


def test_sensitivity_settings_load_without_onnx():
    import subprocess
    import sys

    code = ("import sys, kopt.quality.sensitivity_settings, kopt.publish.settings; "
            "print(sorted(m for m in ('numpy', 'onnx', 'onnxruntime') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"   # what --help reads stays light
