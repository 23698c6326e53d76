"""One registry of quality metrics by name.

An *intrusive* metric compares a variant's audio with the reference's: ``fn(ref, deg, sr, aligned)``
where ``aligned`` says the two are sample-aligned (the variant was fed the reference's durations);
a *reference-free* one scores one signal: ``fn(audio, sr)``. A metric returns a dict of named
numbers (one metric may give several, e.g. DNSMOS's ovrl/sig/bak/p808); it raises ``MetricError``
when it cannot score a signal (e.g. PESQ finds no utterance), which the scorer records per case. An
intrusive metric is registered behind a check that both signals are finite (no metric of NaN or
infinite samples means anything, and PESQ crashes on them).

Metrics live in the modules of ``kopt.quality.metrics``, each registering its own with ``@metric``;
the registry imports every one of them (underscore modules excepted), so a new module needs no list.
Every registered metric is scored by default.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from kopt.core.errors import KoptError

METRICS_PACKAGE = "kopt.quality.metrics"


class MetricError(Exception):
    """A metric could not score this signal; the message says why."""


@dataclass(frozen=True)
class Metric:
    """How to compute a metric. What its numbers mean (direction, unit, regression threshold) and where
    they are shown is kept in one place, the catalogue kopt.select.metrics, under the names records carry
    (``record_names``); a test checks every one is there."""

    name: str
    fn: Callable[..., dict[str, float]]
    kind: str  # "intrusive" | "reference_free"
    produces: tuple[str, ...]
    library: str
    summary: str

    @property
    def record_names(self) -> tuple[str, ...]:
        """The names a quality record carries for this metric: an intrusive one's figures with ``_aligned``
        and ``_natural`` appended (kopt.quality.score scores both audios), a reference-free one's as is."""
        if self.kind == "intrusive":
            return tuple(f"{p}_{s}" for p in self.produces for s in ("aligned", "natural"))
        return self.produces


_REGISTRY: dict[str, Metric] = {}


def finite(audio: Any, what: str) -> None:
    """MetricError naming how many of ``audio``'s samples are NaN or infinite, if any are."""
    bad = int(np.size(audio) - np.count_nonzero(np.isfinite(audio)))
    if bad:
        raise MetricError(f"{what}: {bad} of {np.size(audio)} samples are NaN or infinite")


def _finite_inputs(fn: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
    @functools.wraps(fn)
    def checked(ref: Any, deg: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        finite(ref, "reference audio")
        finite(deg, "audio")
        return fn(ref, deg, *args, **kwargs)

    return checked


def metric(name: str, kind: str, produces: tuple[str, ...], library: str, summary: str):
    def deco(fn):
        if name in _REGISTRY:
            raise TypeError(f"metric {name!r} registered twice")
        run = _finite_inputs(fn) if kind == "intrusive" else fn
        _REGISTRY[name] = Metric(name, run, kind, tuple(produces), library, summary)
        return run

    return deco


def _load_all() -> None:
    import importlib
    import pkgutil

    pkg = importlib.import_module(METRICS_PACKAGE)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{METRICS_PACKAGE}.{info.name}")


def _place(m: Metric) -> tuple[bool, str, int]:
    code = getattr(inspect.unwrap(m.fn), "__code__", None)
    return (m.kind != "intrusive", m.fn.__module__, code.co_firstlineno if code is not None else 0)


def registry() -> dict[str, Metric]:
    """Every metric by name: intrusive ones first, then reference-free ones, each by module and place
    in it (an order that does not depend on which module happened to be imported first)."""
    _load_all()
    return {m.name: m for m in sorted(_REGISTRY.values(), key=_place)}


def default_metrics() -> tuple[str, ...]:
    """Every registered metric, in ``registry`` order: what a quality run scores unless told otherwise."""
    return tuple(registry())


def get(name: str) -> Metric:
    reg = registry()
    if name not in reg:
        raise KoptError(f"unknown quality metric {name!r}; choose from: {', '.join(reg)}")
    return reg[name]
