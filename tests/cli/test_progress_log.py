"""Progress in a log (not a terminal): a plain line per step and per finished task, nothing drawn;
and --quiet prints none of it."""

from kopt.cli.richprogress import RichProgress


def test_plain_lines_when_not_a_terminal(capsys):
    p = RichProgress()
    with p.task("bench cells", total=2) as t:
        t.advance()
        with p.task("quality"):
            pass
        t.advance()
    err = capsys.readouterr().err.splitlines()
    assert [ln.split(" (")[0] for ln in err] == ["bench cells: 1/2", "quality: done", "bench cells: 2/2",
                                                 "bench cells: done"]
    assert all(ln.endswith(" s)") for ln in err) and not any("\x1b" in ln for ln in err)


def test_a_command_logs_its_steps_and_quiet_silences_them(tmp_path, tiny_model):
    from typer.testing import CliRunner

    from kopt.cli.main import app

    args = ["--artifacts", str(tmp_path / "a"), "optimize", str(tiny_model), "--pass", "fold"]
    loud = CliRunner().invoke(app, args)
    assert loud.exit_code == 0, loud.output
    assert ": done (" in loud.output
    quiet = CliRunner().invoke(app, ["--quiet", *args[:2], *args[2:]])
    assert quiet.exit_code == 0, quiet.output
    assert ": done (" not in quiet.output


def test_a_failed_task_prints_no_done_line(capsys):
    import pytest

    p = RichProgress()
    with pytest.raises(RuntimeError):
        with p.task("publish"):
            raise RuntimeError("boom")
    assert "done" not in capsys.readouterr().err
