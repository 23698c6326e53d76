"""The rich implementation of the progress interface (kopt.core.progress.Progress).

On a terminal: one live display per command; nested tasks (a build's stages, a stage's steps) are
rows of the same display, added when they start and removed when they end. In a log (CI, ``make run
> log``) there is no display: each step a task advances and each task that ends is one plain line
with the time since it started, so a long stage never goes silent."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class _RichTask:
    def __init__(self, prog: Progress, tid, log: "Console | None" = None):
        self.prog, self.tid, self.log = prog, tid, log
        self.t0 = time.monotonic()

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.t0:.1f} s"

    def advance(self, n: float = 1) -> None:
        self.prog.advance(self.tid, n)
        if self.log is not None:
            task = self.prog.tasks[[t.id for t in self.prog.tasks].index(self.tid)]
            total = f"/{task.total:g}" if task.total is not None else ""
            self.log.print(f"{task.description.strip()}: {task.completed:g}{total} ({self.elapsed()})",
                           highlight=False, soft_wrap=True)

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
        task = _RichTask(prog, tid, None if self.console.is_terminal else self.console)
        try:
            yield task
            if task.log is not None:     # a task that failed says nothing: the error is the one line
                task.log.print(f"{description}: done ({task.elapsed()})", highlight=False, soft_wrap=True)
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
