"""The CLI root: global flags before or after the command, help text as written, commands grouped by
stage in pipeline order, the registry as the one list of commands, the exit-code table, and
one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from kopt.cli.main import COMMANDS, STAGES, app
from kopt.core.exits import MEANING, ExitCode

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def _json(res) -> dict:
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_global_flags_after_the_command_equal_before(tmp_path, tiny_model):
    arts = str(tmp_path / "arts")
    before = _json(runner.invoke(app, ["--json", "--artifacts", arts, "optimize", str(tiny_model), "--pass", "fold"]))
    assert before["variants"][0]["status"] == "ok"
    after = _json(runner.invoke(app, ["optimize", str(tiny_model), "--pass", "fold", "--json", "--artifacts", arts]))
    assert after["variants"][0]["status"] == "cached"  # same store: the flag after the command was used
    assert after["variants"][0]["key"] == before["variants"][0]["key"]
    listed = _json(runner.invoke(app, ["artifacts", "--artifacts", arts, "--json"]))
    assert [a["key"] for a in listed["artifacts"]] == [before["variants"][0]["key"]]
    # --quiet after the command silences the human output
    res = runner.invoke(app, ["artifacts", "--artifacts", arts, "-q"])
    assert res.exit_code == 0 and res.stdout == ""


def test_global_flags_after_a_nested_command(tmp_path, tiny_voices_file):
    got = _json(runner.invoke(app, ["voices", "list", str(tiny_voices_file), "--json"]))
    assert got["command"] == "voices list" and len(got["voices"]) >= 1


def test_help_shows_flags_without_types_and_brackets_as_written():
    root = runner.invoke(app, ["--help"]).stdout
    assert "<bool>" not in root
    bench = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "200"}).stdout
    assert "<bool>" not in bench
    assert "its [bench] section gives the settings" in bench
    assert "--json" in bench and "--artifacts" in bench  # the global options, listed on the command too
    sel = runner.invoke(app, ["select", "--help"], env={"COLUMNS": "200"}).stdout
    assert "[PROVIDER:]METRIC=VALUE" in sel


def test_root_help_groups_commands_by_stage_in_pipeline_order():
    out = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    panels = re.findall(r"╭─ ([A-Za-z ]+?) ─", out)
    assert panels == ["Options", *STAGES]
    listed = re.findall(r"^│ ([a-z][a-z-]+) ", out, flags=re.M)
    assert listed == [c.name for c in COMMANDS]  # every registered command, none dropped, in registry order
    assert [c for cmds in STAGES.values() for c in cmds] == listed
    assert "Exit codes: 0 success" in out


def test_the_registry_names_every_command():
    """Each ``*_cmd`` function of a command module (other than a group's subcommands) and each group
    app is in the registry, which registers them all: a command left out of it would be unreachable."""
    from importlib import import_module

    import typer
    from typer.main import get_command

    found = set()
    for path in sorted((REPO / "kopt" / "cli").glob("cmd_*.py")):
        mod = import_module(f"kopt.cli.{path.stem}")
        apps = {n for n, v in vars(mod).items() if isinstance(v, typer.Typer)}
        subs = {ci.callback for n in apps for ci in getattr(mod, n).registered_commands}
        cmds = {n for n, v in vars(mod).items() if n.endswith("_cmd") and callable(v) and v not in subs
                and getattr(v, "__module__", "") == mod.__name__}
        assert apps or cmds, f"{path.name} defines no command"
        found |= {f"{path.stem}:{n}" for n in apps | cmds}
    assert sorted(c.target for c in COMMANDS) == sorted(found)
    assert len({c.name for c in COMMANDS}) == len(COMMANDS)
    assert get_command(app).list_commands(None) == [c.name for c in COMMANDS]


def test_root_help_imports_no_onnxruntime_nor_settings():
    code = ("import sys; from kopt.cli.main import main; sys.argv = ['kopt', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('onnxruntime', 'onnx', 'numpy', 'pydantic') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "LOADED []" in r.stdout, r.stdout[-300:]


def test_readme_exit_code_table_is_the_one_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d) \| (.+) \|$", readme, flags=re.M))
    assert {int(k): v for k, v in rows.items()} == {int(c): m for c, m in MEANING.items()}
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4]


def test_usage_error_keeps_exit_2():
    res = runner.invoke(app, ["fetch", "--no-such-flag"])
    assert res.exit_code == ExitCode.USAGE == 2


@pytest.fixture
def not_kokoro(tmp_path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.1] * 16)
    m = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w]),
                          opset_imports=[helper.make_opsetid("", 17)])
    p = tmp_path / "matmul.onnx"
    onnx.save(m, str(p))
    return p


@pytest.mark.parametrize("pass_name", ["int8-dynamic", "fp16"])
def test_quantize_on_a_non_kokoro_graph_is_one_line(tmp_path, not_kokoro, pass_name):
    r = subprocess.run([sys.executable, "-m", "kopt.cli.main", "quantize", str(not_kokoro), "--pass", pass_name,
                        "--artifacts", str(tmp_path / "arts")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines == [f"kopt: error: {pass_name}: {not_kokoro}: not a Kokoro graph: no token input named 'tokens' "
                     "or 'input_ids' (inputs are ['x'])"]


def test_imports_between_cli_modules_resolve():
    """Imports inside commands run only when the command does; check the CLI's own ones here
    (bundle-bench once imported a helper from a module it had moved out of)."""
    import ast
    from importlib import import_module

    bad = []
    for path in sorted((REPO / "kopt" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kopt.cli"):
                mod = import_module(node.module)
                bad += [f"{path.name}:{node.lineno}: {node.module}.{a.name}" for a in node.names
                        if not hasattr(mod, a.name)]
    assert not bad, bad
