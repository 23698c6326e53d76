"""Progress is an interface: the core calls these hooks; the CLI plugs in a rich implementation,
``--quiet`` uses the null one. The core never imports rich."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Protocol

log = logging.getLogger("kopt")


class Task(Protocol):
    def advance(self, n: float = 1) -> None: ...
    def update(self, description: str | None = None, total: float | None = None) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None) -> contextlib.AbstractContextManager[Task]: ...
    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...


class _NullTask:
    def advance(self, n: float = 1) -> None:
        pass

    def update(self, description: str | None = None, total: float | None = None) -> None:
        pass


class NullProgress:
    """Draws nothing; messages go to the ``kopt`` logger."""

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Task]:
        yield _NullTask()

    def info(self, message: str) -> None:
        log.info(message)

    def warn(self, message: str) -> None:
        log.warning(message)
