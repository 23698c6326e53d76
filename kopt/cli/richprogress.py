"""The rich implementation of the progress interface (kopt.core.progress.Progress)."""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


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

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[_RichTask]:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=self.console, transient=True) as prog:
            tid = prog.add_task(description, total=total)
            yield _RichTask(prog, tid)

    def info(self, message: str) -> None:
        self.console.print(message)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}")
