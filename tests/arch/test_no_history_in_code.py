"""Comments and docstrings state design and contracts, not history: no run ids, issue numbers or commit
hashes in kopt/ or kokoro_runtime/. Measured figures, with the command and the commit or run that
measured them, belong in docs/benchmark-log.md.

Only comments (tokenize) and docstrings (ast) are read, so hex in code, such as a sha256 constant or a
test's key, never counts."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("kopt", "kokoro_runtime")

HISTORY = {
    "a run id": re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}"),
    "an issue number": re.compile(r"\bissues? #?\d+", re.IGNORECASE),
    "a commit hash": re.compile(r"\bcommits? [`'\"]*[0-9a-f]{7,40}\b", re.IGNORECASE),
    # an abbreviated commit or a store key quoted without the word "commit" (digits and letters both,
    # so that words such as "deadbeef" or numbers such as 10000000 pass)
    "a short hash": re.compile(r"(?<![0-9A-Za-z_])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,12}"
                               r"(?![0-9A-Za-z_])"),
}


def prose(src: str) -> list[tuple[int, str]]:
    """(line, text) of every comment and every module, class and function docstring in src."""
    out = [(tok.start[0], tok.string) for tok in tokenize.generate_tokens(io.StringIO(src).readline)
           if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                out.append((node.body[0].lineno, doc))
    return out


def findings(src: str) -> list[str]:
    return [f"line {line}: {what} ({m.group()!r})" for line, text in prose(src)
            for what, pattern in HISTORY.items() for m in pattern.finditer(text)]


FILES = [f for root in ROOTS for f in sorted((REPO / root).rglob("*.py"))]


@pytest.mark.parametrize("path", FILES, ids=lambda f: str(f.relative_to(REPO)))
def test_no_history_in_comments_or_docstrings(path: Path):
    found = findings(path.read_text(encoding="utf-8"))
    assert not found, (f"{path.relative_to(REPO)} quotes history in prose (move figures to "
                       f"docs/benchmark-log.md, drop the ids): {found}")


def test_the_check_reads_prose_only():
    src = '''"""A pass (issue 14)."""
SHA = "93161a2631b5e0c4d1f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9"  # the text set's sha256
KEY = "efcdeff77f"


def f():
    """Measured at commit `0da43ba`, run 20261130T102925Z-0222e8."""
    return KEY  # like the int8 of cd7c231
'''
    kinds = sorted(item.split(": ")[1].split(" (")[0] for item in findings(src))
    assert kinds == ["a commit hash", "a run id", "a short hash", "a short hash", "an issue number"], kinds
    assert findings('X = "0da43ba"  # 10000000 samples, a deadbeef marker, issue-free\n') == []
