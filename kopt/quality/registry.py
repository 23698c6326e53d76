"""One registry of quality metrics by name.

An *intrusive* metric compares a variant's audio with the reference's: ``fn(ref, deg, sr, aligned)``
where ``aligned`` says the two are sample-aligned (the variant was fed the reference's durations);
a *reference-free* one scores one signal: ``fn(audio, sr)``. A metric returns a dict of named
numbers (one metric may give several, e.g. DNSMOS's ovrl/sig/bak/p808); it raises ``MetricError``
when it cannot score a signal (e.g. PESQ finds no utterance), which the scorer records per case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from kopt.core.errors import KoptError


class MetricError(Exception):
    """A metric could not score this signal; the message says why."""


@dataclass(frozen=True)
class Metric:
    """How to compute a metric. What its numbers mean (direction, unit, regression threshold) is
    kept in one place, the catalogue kopt.select.metrics.CATALOG, under the names in ``produces``
    (with ``_aligned``/``_natural`` appended for intrusive metrics); a test checks every one is there."""

    name: str
    fn: Callable[..., dict[str, float]]
    kind: str  # "intrusive" | "reference_free"
    produces: tuple[str, ...]
    library: str
    summary: str


_REGISTRY: dict[str, Metric] = {}


def metric(name: str, kind: str, produces: tuple[str, ...], library: str, summary: str):
    def deco(fn):
        if name in _REGISTRY:
            raise TypeError(f"metric {name!r} registered twice")
        _REGISTRY[name] = Metric(name, fn, kind, tuple(produces), library, summary)
        return fn

    return deco


def _load_all() -> None:
    from kopt.quality import dnsmos, intrusive, spectral  # noqa: F401  (modules register on import)


def registry() -> dict[str, Metric]:
    _load_all()
    return dict(_REGISTRY)


def get(name: str) -> Metric:
    reg = registry()
    if name not in reg:
        raise KoptError(f"unknown quality metric {name!r}; choose from: {', '.join(reg)}")
    return reg[name]
