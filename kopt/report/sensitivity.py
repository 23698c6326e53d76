"""Read a quantization sensitivity ranking from result records (kind "sensitivity") or a ranking JSON.

Accepted shapes, so the report does not depend on one writer's exact layout:
- a record whose ``extra.ranking`` (or a JSON file's top level / ``ranking`` key) is a list of entries
  like {"name"|"node"|"group"|"op": str, "score"|"sensitivity"|"delta"|...: number};
- one record per node/group: label from ``extra.node``/``extra.group``/``extra.name`` (else the variant
  name), score from the record's ``score``-like metric;
- a JSON object {name: score}.
The ranking is sorted most sensitive first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from kopt.core.errors import KoptError
from kopt.select.metrics import is_number

NAME_KEYS = ("name", "node", "group", "op", "layer", "target", "tensor")
SCORE_KEYS = ("score", "sensitivity", "delta", "drop", "pesq_drop", "mel_distance", "error", "mse", "rel_error")


def _entry(e: Any) -> tuple[str, float, str] | None:
    if not isinstance(e, dict):
        return None
    name = next((str(e[k]) for k in NAME_KEYS if isinstance(e.get(k), str)), None)
    metrics = e.get("metrics") if isinstance(e.get("metrics"), dict) else e
    key = next((k for k in SCORE_KEYS if is_number(metrics.get(k))), None)
    if key is None:
        key = next((k for k, v in metrics.items() if is_number(v)), None)
    if name is None or key is None:
        return None
    return name, float(metrics[key]), key


def _from_list(items: Iterable[Any]) -> tuple[list[tuple[str, float]], str]:
    out, label = [], "score"
    for e in items:
        p = _entry(e)
        if p:
            out.append((p[0], p[1]))
            label = p[2]
    return out, label


def from_records(records: Iterable[dict[str, Any]]) -> tuple[list[tuple[str, float]], str] | None:
    recs = [r for r in records if r.get("kind") == "sensitivity"]
    if not recs:
        return None
    items: list[tuple[str, float]] = []
    label = "score"
    for r in recs:
        extra = r.get("extra") or {}
        if isinstance(extra.get("ranking"), list):
            got, label = _from_list(extra["ranking"])
            items.extend(got)
            continue
        name = next((str(extra[k]) for k in NAME_KEYS if isinstance(extra.get(k), str)), None) \
            or str((r.get("variant") or {}).get("name"))
        p = _entry({"name": name, **(r.get("metrics") or {})})
        if p:
            items.append((p[0], p[1]))
            label = p[2]
    return (_sorted(items), label) if items else None


def from_file(path: str | Path) -> tuple[list[tuple[str, float]], str]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise KoptError(f"{p}: cannot read the sensitivity ranking ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("ranking"), list):
        items, label = _from_list(data["ranking"])
    elif isinstance(data, list):
        items, label = _from_list(data)
    elif isinstance(data, dict) and all(is_number(v) for v in data.values()):
        items, label = [(str(k), float(v)) for k, v in data.items()], "score"
    else:
        items, label = [], "score"
    if not items:
        raise KoptError(f"{p}: no ranking found: expected a list of {{name, score}} entries or {{name: score}}")
    return _sorted(items), label


def _sorted(items: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return sorted(items, key=lambda t: (-t[1], t[0]))
