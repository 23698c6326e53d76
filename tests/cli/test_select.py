"""`kopt select` through the CLI: table, JSON, flags, settings file, --strict."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from kopt.cli.main import app
from kopt.core.exits import ExitCode
from kopt.core.results import append_records
from tests.select.factory import standard


def _results(tmp_path):
    p = tmp_path / "r.jsonl"
    append_records(p, standard())
    return str(p)


def test_select_prints_winners_and_reasons(tmp_path):
    res = CliRunner().invoke(app, ["select", _results(tmp_path), "--out", str(tmp_path / "sel.json")])
    assert res.exit_code == 0, res.output
    assert "WINNER" in res.output and "int8" in res.output and "dominated" in res.output
    sel = json.loads((tmp_path / "sel.json").read_text())
    assert [g["winner"] for g in sel["groups"]] == ["int8", "fp16"]


def test_select_flags_change_the_answer(tmp_path):
    r = _results(tmp_path)
    res = CliRunner().invoke(app, ["--json", "select", r, "--min", "CUDAExecutionProvider:pesq_wb_aligned=4.3"])
    assert res.exit_code == 0, res.output
    assert [g["winner"] for g in json.loads(res.output)["groups"]] == ["int8", "fp32"]
    res = CliRunner().invoke(app, ["--json", "select", r, "--max", "size_mb=80"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [g["winner"] for g in data["groups"]] == [None, None]
    assert "closest: int4" in data["groups"][0]["explanation"]
    res = CliRunner().invoke(app, ["--json", "select", r, "--max", "size_mb=80", "--strict"])
    assert res.exit_code == ExitCode.NO_WINNER == 4, res.output


def test_select_settings_file_and_errors(tmp_path):
    r = _results(tmp_path)
    cfg = tmp_path / "s.toml"
    cfg.write_text('[select]\nconstraints = { pesq_wb_aligned = { min = 4.4 } }\n')
    res = CliRunner().invoke(app, ["--json", "select", r, "--settings", str(cfg)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["groups"][0]["winner"] == "fp32"
    cfg.write_text('[select]\nconstraint = {}\n')
    res = CliRunner().invoke(app, ["select", r, "--settings", str(cfg)])
    assert res.exit_code == 1 and "select.constraint" in str(res.exception)
    res = CliRunner().invoke(app, ["select", r, "--quality", "nope"])
    assert res.exit_code == 1 and "unknown metric 'nope'" in str(res.exception)
    res = CliRunner().invoke(app, ["select", r, "--min", "pesq_wb_aligned"])
    assert res.exit_code == 1 and "METRIC=VALUE" in str(res.exception)
