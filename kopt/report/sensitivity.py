"""Read a quantization sensitivity ranking, typed (kopt.core.results.SensitivityEntry), for the report.

Two sources, one entry type ({"group" or "name": str, "score": number, "metric": str}):
- records of kind "sensitivity" whose ``extra.ranking`` is a list of entries;
- a JSON file: the ``sensitivity.json`` that `kopt sensitivity` writes (its ``ranking`` list), a bare
  list of entries, or an object {group: score}.
An entry without a group name or a numeric score is an error naming the file (or record) and the
entry; nothing is guessed from other keys. The ranking is sorted highest score first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from kopt.core.errors import KoptError
from kopt.core.recipe import explain
from kopt.core.results import ResultRecord, SensitivityEntry
from kopt.select.metrics import is_number


def _entries(items: Any, where: str) -> tuple[list[tuple[str, float]], str]:
    if not isinstance(items, list):
        raise KoptError(f"{where}: the ranking must be a list of {{group, score}} entries")
    out: list[tuple[str, float]] = []
    label = "score"
    for k, item in enumerate(items):
        try:
            e = SensitivityEntry.model_validate(item)
        except ValidationError as err:
            loc, msg = explain(err)
            raise KoptError(f"{where}: ranking[{k}].{loc}: {msg}") from None
        out.append((e.group, e.score))
        label = e.metric
    return out, label


def from_records(records: Iterable[ResultRecord]) -> tuple[list[tuple[str, float]], str] | None:
    """The ranking carried by records of kind "sensitivity" (``extra.ranking``); None without any."""
    items: list[tuple[str, float]] = []
    label = "score"
    for r in records:
        if r.kind != "sensitivity":
            continue
        where = f"sensitivity record of run {r.run_id!r}"
        got, label = _entries((r.extra or {}).get("ranking"), where)
        items.extend(got)
    return (_sorted(items), label) if items else None


def from_file(path: str | Path) -> tuple[list[tuple[str, float]], str]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise KoptError(f"{p}: cannot read the sensitivity ranking ({e})") from None
    if isinstance(data, dict) and "ranking" in data:
        items, label = _entries(data["ranking"], str(p))
    elif isinstance(data, list):
        items, label = _entries(data, str(p))
    elif isinstance(data, dict) and data and all(is_number(v) for v in data.values()):
        items, label = [(str(k), float(v)) for k, v in data.items()], "score"
    else:
        items, label = [], "score"
    if not items:
        raise KoptError(f"{p}: no ranking found: expected `kopt sensitivity`'s sensitivity.json, a list of "
                        "{group, score} entries, or {group: score}")
    return _sorted(items), label


def _sorted(items: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return sorted(items, key=lambda t: (-t[1], t[0]))
