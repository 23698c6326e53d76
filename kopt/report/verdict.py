"""Regression verdicts: compare a CURRENT run against a BASELINE run, metric by metric.

Thresholds are per metric: relative for machine-dependent figures (speed, memory), absolute for quality
(defaults from the metric catalogue, overridden by settings or flags). A change is a regression when it is
worse than its threshold and, for machine-dependent metrics, larger than the runs' measured noise: the noise
band is two standard errors of the difference of the two medians, each run's standard error 1.2533 x sigma /
sqrt(n) from the ``spread`` it recorded (sigma = std, else (p90 - p10) / 2.563). Speed and memory are never
compared across machine ids (the verdict says so); quality and size still are. A variant/provider that
disappeared or stopped working is a regression unless allowed. Metrics the catalogue marks as not gating
(single-sample load and first inference times, tail percentiles) are reported as "worse" without failing,
unless a threshold is set for them. ``REGRESSION_EXIT`` is the CLI's exit code for a regression.
Quality is compared language by language (``pesq_wb_aligned@ja``; the change names its language), never
as the worst-language figure: a language added to the build is "newly measured", not a regression of the
worst figure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

from kopt.core.exits import ExitCode
from kopt.core.results import RecordLike
from kopt.select.frontier import fmt
from kopt.select.metrics import Catalog, Metric, is_number, split_language
from kopt.select.rows import Row, build_rows
from kopt.select.settings import CompareSettings, Threshold

REGRESSION_EXIT = int(ExitCode.REGRESSION)

Outcome = Literal["better", "regression", "worse", "within_threshold", "within_noise", "not_compared"]


@dataclass(frozen=True)
class Change:
    variant: str
    provider: str
    metric: str
    baseline: float | None
    current: float | None
    outcome: Outcome
    note: str
    delta: float | None = None
    rel: float | None = None
    threshold: str = ""
    noise: float | None = None
    machine_baseline: str = ""
    machine_current: str = ""
    language: str | None = None  # the language of a quality figure (metric ``<name>@<language>``)


@dataclass(frozen=True)
class CellChange:
    """A variant/provider that appeared, disappeared, or changed status."""

    variant: str
    provider: str
    outcome: Literal["missing", "added", "status_regression", "status_fixed"]
    note: str
    regression: bool


@dataclass(frozen=True)
class Comparison:
    changes: tuple[Change, ...]
    cells: tuple[CellChange, ...]
    notes: tuple[str, ...]
    settings: CompareSettings = field(default_factory=CompareSettings)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.outcome == "regression"]

    @property
    def worse(self) -> list[Change]:
        """Worse beyond the threshold on a watched (non-gating) metric: reported, not failing."""
        return [c for c in self.changes if c.outcome == "worse"]

    @property
    def improvements(self) -> list[Change]:
        return [c for c in self.changes if c.outcome == "better"]

    @property
    def regression(self) -> bool:
        return bool(self.regressions) or any(c.regression for c in self.cells)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": "regression" if self.regression else "ok",
            "exit_code": REGRESSION_EXIT if self.regression else 0,
            "regressions": [asdict(c) for c in self.regressions],
            "improvements": [asdict(c) for c in self.improvements],
            "worse_not_gating": [asdict(c) for c in self.worse],
            "cells": [asdict(c) for c in self.cells],
            "changes": [asdict(c) for c in self.changes],
            "notes": list(self.notes),
            "settings": self.settings.model_dump(mode="json"),
        }


def _std_error(spread: dict[str, Any], metric: str) -> float | None:
    """Standard error of a run's median from its recorded spread: 1.2533 * sigma / sqrt(n), sigma from ``std``
    (else (p90 - p10) / 2.563, the normal-distribution width)."""
    # bench records the spread of the samples under the bare name: rtf_median/rtf_p90 -> "rtf"
    names = [metric] + ([metric.rsplit("_", 1)[0]] if metric.endswith(("_median", "_mean", "_p50", "_p90")) else [])
    for n in names:
        s = spread.get(n)
        if not isinstance(s, dict):
            continue
        if is_number(s.get("std")):
            sigma = abs(s["std"])
        elif is_number(s.get("p10")) and is_number(s.get("p90")):
            sigma = abs(s["p90"] - s["p10"]) / 2.563
        else:
            continue
        count = s.get("n") if is_number(s.get("n")) and s.get("n", 0) >= 1 else 1
        return 1.2533 * sigma / math.sqrt(count)
    return None


def noise_band(base: Row, cur: Row, metric: str) -> float | None:
    """Two standard errors of the difference of the two runs' medians (about 95%): a change inside it is noise."""
    ses = [e for e in (_std_error(base.spread, metric), _std_error(cur.spread, metric)) if e is not None]
    if not ses:
        return None
    if len(ses) == 1:
        ses = ses * 2  # one run without spread: assume it is as noisy as the other
    return 2.0 * math.sqrt(sum(e * e for e in ses))


def _threshold(m: Metric, settings: CompareSettings) -> Threshold | None:
    """The settings' threshold for the metric (a language's figure takes its own, else its metric's),
    else the catalogue's."""
    t = settings.thresholds.get(m.name) or settings.thresholds.get(split_language(m.name)[0])
    if t is not None:
        return t
    if m.rel is not None:
        return Threshold(rel=m.rel)
    if m.abs is not None:
        return Threshold(abs=m.abs)
    return None


def compare_metric(m: Metric, base: Row, cur: Row, settings: CompareSettings, same_machine: bool) -> Change | None:
    b, c = base.value(m.name), cur.value(m.name)
    lang = split_language(m.name)[1]
    if lang is None and m.kind == "quality" and len(set(base.languages) | set(cur.languages)) == 1:
        lang = (cur.languages or base.languages)[0]
    common = dict(variant=cur.variant, provider=cur.provider, metric=m.name, baseline=b, current=c,
                  machine_baseline=base.machine_id, machine_current=cur.machine_id, language=lang)
    if not is_number(b) and not is_number(c):
        return None
    if not is_number(b) or not is_number(c):
        gone = is_number(b)
        return Change(**common, outcome="regression" if gone and m.kind == "quality" else "not_compared",
                      note="no longer measured" if gone else "newly measured")
    if m.machine_dependent and not same_machine:
        return Change(**common, outcome="not_compared",
                      note="different machines: speed/memory are only compared within one machine id")
    t = _threshold(m, settings)
    if t is None:
        return Change(**common, outcome="not_compared", note="no threshold for this metric")
    delta = c - b
    rel = delta / abs(b) if b else None
    gain = m.goodness(c) - m.goodness(b)  # > 0: better
    limit = t.abs if t.abs is not None else (t.rel or 0.0) * abs(b)
    tdesc = f"{t.rel:.1%} relative" if t.rel is not None else f"{fmt(t.abs)} absolute"
    band = noise_band(base, cur, m.name) if (settings.noise and m.machine_dependent) else None
    kw = dict(delta=delta, rel=rel, threshold=tdesc, noise=band)
    change = f"{fmt(b)} -> {fmt(c)}" + (f" ({rel:+.1%})" if rel is not None else f" ({delta:+.4g})")
    if abs(gain) <= limit:
        return Change(**common, outcome="within_threshold", note=f"{change} within {tdesc}", **kw)
    if band is not None and abs(delta) <= band:
        return Change(**common, outcome="within_noise",
                      note=f"{change} beyond {tdesc} but within the runs' noise (+-{fmt(band)}: "
                           "2 standard errors of the medians' difference)", **kw)
    if gain > 0:
        return Change(**common, outcome="better", note=f"{change} better beyond {tdesc}", **kw)
    extra = "" if band is not None or not m.machine_dependent or not settings.noise else "; no spread recorded"
    if not (m.gate or m.name in settings.thresholds or split_language(m.name)[0] in settings.thresholds):
        return Change(**common, outcome="worse", note=f"{change} worse beyond {tdesc}{extra} (watched, not gating: "
                      "set a threshold for it to gate)", **kw)
    return Change(**common, outcome="regression", note=f"{change} worse beyond {tdesc}{extra}", **kw)


def _per_language(names: Iterable[str], b: Row, c: Row) -> list[str]:
    """The metric names to compare. Rows of one and the same language compare their figures as named
    (``pesq_wb_aligned``); otherwise a quality metric either row has per language is compared as those
    (``pesq_wb_aligned@en-us``, ``@ja``), never as its worst figure."""
    have = set(b.metrics) | set(c.metrics)
    langs = list(dict.fromkeys([*b.languages, *c.languages]))
    if len(langs) <= 1:
        return [n for n in names if split_language(n)[1] is None]
    out: list[str] = []
    for n in names:
        split = [f"{n}@{lang}" for lang in langs if f"{n}@{lang}" in have]
        out += split or [n]
    return list(dict.fromkeys(out))


def compare(baseline: Iterable[RecordLike], current: Iterable[RecordLike],
            settings: CompareSettings | None = None) -> Comparison:
    """CURRENT's rows against BASELINE's: records read (read_records) or just written (make_record's dicts)."""
    settings = settings or CompareSettings()
    cat = Catalog({k: v.model_dump() for k, v in settings.overrides.items()})
    brows, crows = build_rows(baseline, catalog=cat), build_rows(current, catalog=cat)

    def ident(r: Row) -> tuple[str, str]:
        return (r.variant if settings.match == "name" else r.variant_key, r.provider)

    def index(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
        out: dict[tuple[str, str], list[Row]] = {}
        for r in rows:
            out.setdefault(ident(r), []).append(r)
        return out

    bi, ci = index(brows), index(crows)
    notes: list[str] = []
    bm, cm = {r.machine_id: r.machine for r in brows}, {r.machine_id: r.machine for r in crows}
    if bm and cm and not set(bm) & set(cm):
        notes.append("baseline and current ran on different machines (" + ", ".join(f"{k} {v}" for k, v in bm.items())
                     + " vs " + ", ".join(f"{k} {v}" for k, v in cm.items())
                     + "): speed and memory are not compared; quality and size are")
    changes: list[Change] = []
    cells: list[CellChange] = []
    for key in sorted(set(bi) | set(ci)):
        name, prov = key
        if key not in ci:
            cells.append(CellChange(name, prov, "missing", "in the baseline but not in the current run",
                                    regression=not settings.allow_missing))
            continue
        if key not in bi:
            cells.append(CellChange(name, prov, "added", "new in the current run", regression=False))
            continue
        pairs = [(b, c) for b in bi[key] for c in ci[key] if b.machine_id == c.machine_id]
        same = bool(pairs)
        if not pairs:
            pairs = [(bi[key][0], ci[key][0])]
        for b, c in pairs:
            if b.status == "ok" and c.status != "ok":
                cells.append(CellChange(name, prov, "status_regression",
                                        f"was ok, now {c.status}" + (f": {c.reason}" if c.reason else ""), True))
                continue
            if b.status != "ok" and c.status == "ok":
                cells.append(CellChange(name, prov, "status_fixed", f"was {b.status}, now ok", False))
            names = _per_language(settings.metrics or sorted(set(b.metrics) | set(c.metrics)), b, c)
            for n in names:
                m = cat.get(n)
                if m is None or m.kind == "info":
                    continue
                ch = compare_metric(m, b, c, settings, same_machine=same)
                if ch is not None:
                    changes.append(ch)
    return Comparison(tuple(changes), tuple(cells), tuple(notes), settings)
