"""Per-invocation CLI state (quiet/json/artifact folder) and the progress/printing helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional


@dataclass
class _State:
    quiet: bool = False
    json_out: bool = False
    artifacts: str = "artifacts"


S = _State()


def configure(quiet: bool, json_out: bool, artifacts: str) -> None:
    S.quiet, S.json_out, S.artifacts = quiet, json_out, artifacts


def store():
    from kopt.core.store import ArtifactStore

    return ArtifactStore(S.artifacts)


def progress():
    """Rich progress for a person; the null one for --quiet/--json."""
    if S.quiet:
        from kopt.core.progress import NullProgress

        return NullProgress()
    from kopt.cli.richprogress import RichProgress

    return RichProgress()


def console():
    """Rich on a terminal; in a log (not a terminal) lines are never wrapped at 80 columns."""
    from rich.console import Console

    return Console(stderr=False, highlight=False, soft_wrap=not sys.stdout.isatty())


def say(message: str) -> None:
    """A line for a person (suppressed by --quiet/--json)."""
    if not S.quiet:
        console().print(message)


def emit(data: Any) -> None:
    """The command's machine-readable result, printed only with --json."""
    if S.json_out:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def error(message: str) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "error"
    sys.stderr.write(f"kopt: error: {first}\n")


def results_path(out: Optional[Path], run_id: str) -> Path:
    """Where a command's result records go: ``--out``, else ``<artifacts>/results/<run_id>.jsonl``."""
    return out if out is not None else Path(S.artifacts) / "results" / f"{run_id}.jsonl"


def overrides(**kw: Any) -> dict[str, Any]:
    """Settings from the flags the user gave (lists as tuples); unset ones are left to the recipe."""
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in kw.items() if v not in (None, [], ())}
