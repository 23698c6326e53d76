"""Split a build's variant x provider matrix into N shards so a CI matrix runs one shard per machine.

Deterministic: cells are ordered by (variant key, provider config) and dealt round-robin, so every
cell lands in exactly one shard, shard sizes differ by at most one, and the same matrix always splits
the same way whatever order it was listed in. ``kopt report`` merges the shards' results files.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, TypeVar

from kopt.core.errors import KoptError
from kopt.core.results import ResultRecord

T = TypeVar("T")


@dataclass(frozen=True)
class ShardSpec:
    index: int  # 1-based
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise KoptError(f"shard {self.index}/{self.count}: expected K/N with 1 <= K <= N, e.g. --shard 2/3")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> ShardSpec:
    """``"K/N"`` -> ShardSpec; a clear error otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise KoptError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 1/3")
    return ShardSpec(int(m.group(1)), int(m.group(2)))


def cell_key(cell: object) -> tuple[str, str]:
    """(variant key, provider config) of a cell given as a tuple/list, a result record, a dict, or an object."""
    if isinstance(cell, (tuple, list)) and len(cell) >= 2:
        return (str(cell[0]), str(cell[1]))
    if isinstance(cell, ResultRecord):
        return (cell.variant.ident, cell.provider.label)
    if isinstance(cell, dict):
        v, p = cell.get("variant_key", cell.get("variant")), cell.get("provider_config", cell.get("provider"))
        if isinstance(v, dict):
            v = v.get("key") or v.get("name")
        if isinstance(p, dict):
            p = p.get("config") or p.get("name")
        return (str(v), str(p))
    v = getattr(cell, "variant_key", None) or getattr(cell, "key", None)
    p = getattr(cell, "provider_config", None) or getattr(cell, "provider", None)
    if v is None or p is None:
        raise TypeError(f"cannot find (variant key, provider config) in {cell!r}; pass key=")
    return (str(v), str(p))


def shard(cells: Iterable[T], spec: ShardSpec | str | None, key: Callable[[T], tuple[str, str]] = cell_key) -> list[T]:
    """The cells of shard ``spec`` (all cells, in stable order, when spec is None)."""
    ordered = sorted(cells, key=key)
    dup = {k for k, n in Counter(key(c) for c in ordered).items() if n > 1}
    if dup:
        raise KoptError(f"the build matrix lists a cell twice: {sorted(dup)[0]}")
    if spec is None:
        return ordered
    s = parse_shard(spec) if isinstance(spec, str) else spec
    return [c for i, c in enumerate(ordered) if i % s.count == s.index - 1]


def split(cells: Sequence[T], count: int, key: Callable[[T], tuple[str, str]] = cell_key) -> list[list[T]]:
    """Every shard of an N-way split (for planning and tests)."""
    return [shard(cells, ShardSpec(k, count), key) for k in range(1, count + 1)]
