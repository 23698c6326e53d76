"""The rich implementation of the progress interface (kopt.core.progress.Progress).

One live display per command: nested tasks (a build's stages, a stage's steps) are rows of the same
display, added when they start and removed when they end."""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class _RichTask:
    def __init__(self, prog: Progress, tid):
        self.prog, self.tid = prog, tid

    def advance(self, n: float = 1) -> None:
        self.prog.advance(self.tid, n)

    def update(self, description: str | None = None, total: float | None = None) -> None:
        kw = {}
        if description is not None:
            kw["description"] = description
        if total is not None:
            kw["total"] = total
        self.prog.update(self.tid, **kw)


class RichProgress:
    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self._prog: Progress | None = None
        self._depth = 0

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[_RichTask]:
        if self._prog is None:
            self._prog = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), console=self.console, transient=True,
                                  disable=not self.console.is_terminal)
            self._prog.start()
        prog = self._prog
        self._depth += 1
        tid = prog.add_task(("  " * (self._depth - 1)) + description, total=total)
        try:
            yield _RichTask(prog, tid)
        finally:
            prog.remove_task(tid)
            self._depth -= 1
            if self._depth == 0:
                prog.stop()
                self._prog = None

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}", highlight=False)
