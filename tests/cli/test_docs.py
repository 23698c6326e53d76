"""The documentation stays true to the code: README.md and docs/*.md link only to files that exist,
every `kopt ...` and `python -m kokoro_runtime ...` command in their shell code blocks names a real
command with real options (each command path run once with --help), the pass table in
docs/passes.md is `kopt passes --markdown`'s output, and the README stays short."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from kopt.cli.main import app

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
runner = CliRunner()

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
SHELL = {"", "bash", "sh", "shell", "console"}
OPERATORS = {"|", "||", "&", "&&", ";", "(", ")"}
RUNTIME_COMMANDS = ("serve", "wyoming", "say", "status", "stop")   # kokoro_runtime.__main__.COMMANDS


def _rel(p: Path) -> str:
    return p.relative_to(REPO).as_posix()


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _links() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for target in LINK.findall(_prose(doc.read_text(encoding="utf-8"))):
            path = target.split("#", 1)[0]
            if path and not SCHEME.match(target):
                out.append((_rel(doc), path))
    return sorted(set(out))


def _shell_lines(text: str):
    """(line, whether the block says it is shell) for the lines of shell-like code blocks; a block
    without a language may be a file tree or output, so its lines only count when they parse."""
    for lang, body in FENCE.findall(text):
        if lang.strip().lower() in SHELL:
            for line in body.replace("\\\n", " ").splitlines():
                yield line, bool(lang.strip())


def _segments(line: str) -> list[list[str]]:
    """A shell line's simple commands (split at pipes, &&, ;), comments dropped."""
    lex = shlex.shlex(line.removeprefix("$ "), posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    segs: list[list[str]] = [[]]
    for tok in lex:
        if tok in OPERATORS:
            segs.append([])
        else:
            segs[-1].append(tok)
    return [s for s in segs if s]


def _commands() -> dict[tuple[str, ...], dict]:
    """(tool, *command path) -> the --long options shown with it and where it was shown."""
    root = get_command(app)
    found: dict[tuple[str, ...], dict] = {}
    for doc in DOCS:
        for line, shell in _shell_lines(doc.read_text(encoding="utf-8")):
            try:
                segments = _segments(line)
            except ValueError as e:            # an unclosed quote
                if shell:
                    UNPARSED.append(f"{_rel(doc)}: {line.strip()} ({e})")
                continue
            for seg in segments:
                if seg[0] == "kopt":
                    key, args = ("kopt", *_kopt_path(root, seg[1:])), seg[1:]
                elif seg[:3] == ["python", "-m", "kokoro_runtime"]:
                    args = seg[3:]
                    key = ("kokoro_runtime", *args[:1]) if args[:1] and args[0] in RUNTIME_COMMANDS \
                        else ("kokoro_runtime",)
                else:
                    continue
                entry = found.setdefault(key, {"flags": set(), "where": set()})
                entry["flags"] |= {a.split("=", 1)[0] for a in args if a.startswith("--")}
                entry["where"].add(_rel(doc))
    return found


def _kopt_path(root, args: list[str]) -> list[str]:
    """The subcommand names in ``args`` (``voices pack``), skipping options and their values."""
    cmd, path, takes_value = root, [], {o for p in root.params if not getattr(p, "is_flag", False) for o in p.opts}
    it = iter(args)
    for a in it:
        if a.startswith("-"):
            if a in takes_value:
                next(it, None)
            continue
        if a in getattr(cmd, "commands", {}):   # a group (typer's own click, so no isinstance)
            cmd = cmd.commands[a]
            path.append(a)
        else:
            break
    return path


UNPARSED: list[str] = []
COMMANDS = _commands()
KOPT = sorted(k for k in COMMANDS if k[0] == "kopt")
RUNTIME = sorted(k for k in COMMANDS if k[0] == "kokoro_runtime")


@pytest.mark.parametrize("doc,target", _links(), ids=[f"{d}->{t}" for d, t in _links()])
def test_relative_links_point_to_existing_files(doc, target):
    assert ((REPO / doc).parent / target).exists(), f"{doc} links to {target}, which does not exist"


def test_docs_show_commands_that_parse_as_shell():
    assert not UNPARSED, UNPARSED
    assert ("kopt", "build") in COMMANDS and ("kokoro_runtime",) in COMMANDS


@pytest.mark.parametrize("key", KOPT, ids=[" ".join(k) for k in KOPT])
def test_kopt_commands_in_the_docs_parse(key):
    path = list(key[1:])
    res = runner.invoke(app, [*path, "--help"])
    where = ", ".join(sorted(COMMANDS[key]["where"]))
    assert res.exit_code == 0, f"`{' '.join(key)} --help` (shown in {where}): {res.output}"
    cmd = get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    known = {"--help"} | {o for c in {cmd, get_command(app)} for p in c.params for o in (*p.opts, *p.secondary_opts)}
    unknown = sorted(COMMANDS[key]["flags"] - known)
    assert not unknown, f"{where} show `{' '.join(key)}` with options it does not have: {unknown}"


@pytest.mark.parametrize("key", RUNTIME, ids=[" ".join(k) for k in RUNTIME])
def test_runtime_commands_in_the_docs_parse(key):
    res = subprocess.run([sys.executable, "-m", "kokoro_runtime", *key[1:], "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    where = ", ".join(sorted(COMMANDS[key]["where"]))
    assert res.returncode == 0, f"`python -m {' '.join(key)} --help` (shown in {where}): {res.stderr}"
    unknown = sorted(f for f in COMMANDS[key]["flags"] if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", res.stdout))
    assert not unknown, f"{where} show `python -m {' '.join(key)}` with options it does not have: {unknown}"


def test_passes_table_is_the_registry():
    text = (REPO / "docs" / "passes.md").read_text(encoding="utf-8")
    m = re.search(r"^<!-- generated: [^\n]*-->\n(.*?)^<!-- end of generated block -->", text, re.M | re.S)
    assert m, "docs/passes.md has lost its generated-block markers"
    res = runner.invoke(app, ["passes", "--markdown"])
    assert res.exit_code == 0, res.output
    assert m.group(1) == res.stdout, ("docs/passes.md differs from the pass registry: paste the output of "
                                      "`kopt passes --markdown` between its markers")


def test_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move detail into docs/"
