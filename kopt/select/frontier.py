"""The Pareto frontier (speed vs quality vs size) and one winner per (machine, provider), with the reason
every other variant lost.

Per group of rows (one machine, one provider config):
1. a variant whose provider status is not ``ok`` loses with that status and reason;
2. a variant that misses a constraint (or lacks the measured metric a constraint needs) loses, naming
   every constraint it misses; a quality figure is the worst language's (kopt.select.rows), so a
   constraint holds only when every language meets it, and the miss names the language;
3. a variant without a figure for an objective cannot be placed and loses as ``missing``;
4. among the rest, a variant is dominated when another is no worse on every objective and strictly
   better on one; it loses naming the dominating variant (the winner when it is one of them);
5. the frontier's winner: the fastest, where variants within ``speed_tie_rel`` of the fastest count as
   tied on speed and the best quality among them wins, then the smallest, then the name (so exact ties
   are decided deterministically and the reason says so).
An empty frontier gets an explanation and the closest miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from kopt.select.metrics import Catalog, Metric, is_number
from kopt.select.rows import Row
from kopt.select.settings import Bound, SelectSettings

Outcome = Literal["winner", "frontier", "dominated", "constraint", "missing", "status"]


@dataclass(frozen=True)
class Verdict:
    variant: str
    variant_key: str
    outcome: Outcome
    reason: str
    by: str | None = None  # the variant it lost to
    violations: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "variant_key": self.variant_key, "outcome": self.outcome,
                "reason": self.reason, "by": self.by, "violations": list(self.violations)}


@dataclass(frozen=True)
class GroupSelection:
    machine_id: str
    machine: str
    provider: str
    rows: tuple[Row, ...]
    frontier: tuple[Row, ...]
    winner: Row | None
    verdicts: tuple[Verdict, ...]
    explanation: str
    ties: tuple[str, ...] = ()  # names tied with the winner on every objective
    constraints: dict[str, Bound] = field(default_factory=dict)

    def verdict(self, variant_key: str) -> Verdict:
        return next(v for v in self.verdicts if v.variant_key == variant_key)

    def as_dict(self) -> dict[str, Any]:
        return {"machine_id": self.machine_id, "machine": self.machine, "provider": self.provider,
                "winner": self.winner.variant if self.winner else None,
                "winner_key": self.winner.variant_key if self.winner else None,
                "frontier": [r.variant for r in self.frontier], "ties": list(self.ties),
                "explanation": self.explanation,
                "constraints": {k: b.model_dump(exclude_none=True) for k, b in self.constraints.items()},
                "verdicts": [v.as_dict() for v in self.verdicts]}


@dataclass(frozen=True)
class Selection:
    groups: tuple[GroupSelection, ...]
    objectives: tuple[str, ...]

    def group(self, provider: str, machine_id: str | None = None) -> GroupSelection:
        for g in self.groups:
            if g.provider == provider and (machine_id is None or g.machine_id == machine_id):
                return g
        raise KeyError(provider)

    def verdict_of(self, row: Row) -> Verdict | None:
        for g in self.groups:
            if g.machine_id == row.machine_id and g.provider == row.provider:
                return g.verdict(row.variant_key)
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"objectives": list(self.objectives), "groups": [g.as_dict() for g in self.groups]}


def fmt(v: Any, missing: str = "n/a") -> str:
    if isinstance(v, float) and v != v:  # NaN (pandas' missing value)
        return ""
    if not is_number(v):
        return missing if v is None else str(v)
    a = abs(v)
    if a != 0 and (a < 0.01 or a >= 1e5):
        return f"{v:.3g}"
    return f"{v:.4g}" if a < 1000 else f"{v:.0f}"


def _violations(row: Row, bounds: dict[str, Bound], cat: Catalog) -> tuple[list[str], bool]:
    """Constraint misses as text, and whether every miss is a missing measurement."""
    out, only_missing = [], True
    for name, b in bounds.items():
        v = row.value(name)
        label = cat.get(name).label if cat.get(name) else name
        lang = row.worst_language.get(name)
        want = " and ".join(x for x in (f">= {fmt(b.min)}" if b.min is not None else "",
                                        f"<= {fmt(b.max)}" if b.max is not None else "") if x)
        if not is_number(v):
            out.append(f"{name} not measured{f' in {lang}' if lang else ''} (constraint {want})")
            continue
        where = f" in {lang}, the worst of {'/'.join(row.languages)}" if lang else ""
        if b.min is not None and v < b.min:
            out.append(f"{name} {fmt(v)} < min {fmt(b.min)}{where} ({label} short by {fmt(b.min - v)})")
            only_missing = False
        if b.max is not None and v > b.max:
            out.append(f"{name} {fmt(v)} > max {fmt(b.max)}{where} ({label} over by {fmt(v - b.max)})")
            only_missing = False
    return out, only_missing and bool(out)


def _shortfall(row: Row, bounds: dict[str, Bound]) -> float:
    s = 0.0
    for name, b in bounds.items():
        v = row.value(name)
        if not is_number(v):
            s += 1.0
            continue
        for lim, miss in ((b.min, (b.min or 0) - v), (b.max, v - (b.max or 0))):
            if lim is not None and miss > 0:
                s += miss / (abs(lim) or 1.0)
    return s


def dominates(a: Row, b: Row, objectives: list[Metric]) -> bool:
    ga = [m.goodness(a.value(m.name)) for m in objectives]
    gb = [m.goodness(b.value(m.name)) for m in objectives]
    return all(x >= y for x, y in zip(ga, gb)) and any(x > y for x, y in zip(ga, gb))


def _compare_text(a: Row, b: Row, objectives: list[Metric]) -> str:
    """How ``a`` compares to ``b`` on each objective, e.g. 'faster (rtf_median 0.1 vs 0.2), same size_mb'."""
    parts = []
    for m in objectives:
        va, vb = a.value(m.name), b.value(m.name)
        if va == vb:
            parts.append(f"equal {m.name} ({fmt(va)})")
        else:
            word = "better" if m.better(va, vb) else "worse"
            parts.append(f"{word} {m.name} ({fmt(va)} vs {fmt(vb)})")
    return ", ".join(parts)


def select_group(rows: list[Row], settings: SelectSettings, cat: Catalog) -> GroupSelection:
    """The frontier and the winner of one (machine, provider) group, with a verdict for every row:
    screen (status, constraints, missing metrics), frontier, winner and ties, dominated, explanation."""
    assert rows, "a group has rows"
    first = rows[0]
    bounds = settings.constraints_for(first.provider)
    objectives = [cat.require(n) for n in (settings.speed, settings.quality, settings.size) if n]
    verdicts: dict[str, Verdict] = {}
    feasible, constraint_losers = _screen(rows, bounds, objectives, cat, verdicts)
    speed = objectives[0]
    frontier = sorted([r for r in feasible if not any(dominates(o, r, objectives) for o in feasible if o is not r)],
                      key=lambda r: (-speed.goodness(r.value(speed.name)), r.variant, r.variant_key))
    winner, ties = _pick_winner(frontier, objectives, settings, verdicts) if frontier else (None, [])
    _judge_dominated(feasible, frontier, winner, objectives, verdicts)
    expl = _explain(first.provider, rows, frontier, winner, constraint_losers, bounds, objectives, verdicts)
    ordered = sorted(verdicts.values(), key=lambda v: (_OUTCOME_ORDER[v.outcome], v.variant, v.variant_key))
    return GroupSelection(first.machine_id, first.machine, first.provider, tuple(rows), tuple(frontier), winner,
                          tuple(ordered), expl, tuple(ties), dict(bounds))


def _screen(rows: list[Row], bounds, objectives: list, cat: Catalog,
            verdicts: dict[str, Verdict]) -> tuple[list[Row], list[Row]]:
    """(rows that may compete, rows that failed a constraint); the others get their verdict."""
    feasible: list[Row] = []
    constraint_losers: list[Row] = []
    for r in rows:
        if r.status != "ok":
            verdicts[r.variant_key] = Verdict(r.variant, r.variant_key, "status",
                                              f"provider {r.status}" + (f": {r.reason}" if r.reason else ""))
            continue
        miss, only_missing = _violations(r, bounds, cat)
        if miss:
            verdicts[r.variant_key] = Verdict(r.variant, r.variant_key, "missing" if only_missing else "constraint",
                                              "; ".join(miss), violations=tuple(miss))
            constraint_losers.append(r)
            continue
        absent = [m.name for m in objectives if not is_number(r.value(m.name))]
        if absent:
            verdicts[r.variant_key] = Verdict(r.variant, r.variant_key, "missing",
                                              f"no {', '.join(absent)} measured: cannot be placed on the frontier")
            continue
        feasible.append(r)
    return feasible, constraint_losers


def _pick_winner(frontier: list[Row], objectives: list, settings: SelectSettings,
                 verdicts: dict[str, Verdict]) -> tuple[Row, list[str]]:
    """The fastest frontier row, speed ties broken by the other objectives then by name; verdicts
    for the winner and every other frontier row. Returns (winner, names tied with it)."""
    speed, quality = objectives[0], objectives[1]
    ties: list[str] = []
    best = frontier[0].value(speed.name)
    tol = settings.speed_tie_rel * abs(best)
    tied = [r for r in frontier if abs(r.value(speed.name) - best) <= tol]
    rest = [m for m in objectives[1:]]
    tied.sort(key=lambda r: tuple(-m.goodness(r.value(m.name)) for m in rest) + (r.variant, r.variant_key))
    winner = tied[0]
    wv = tuple(winner.value(m.name) for m in rest)
    for r in tied[1:]:
        same_rest = tuple(r.value(m.name) for m in rest) == wv
        same_speed = r.value(speed.name) == winner.value(speed.name)
        if same_rest and same_speed:
            ties.append(r.variant)
            why = f"tied with {winner.variant} on every objective ({_compare_text(r, winner, objectives)}); " \
                  f"{winner.variant} wins by name order"
        elif same_rest:
            ties.append(r.variant)
            why = (f"tied with {winner.variant}: speed within {settings.speed_tie_rel:.0%} "
                   f"({speed.name} {fmt(r.value(speed.name))} vs {fmt(winner.value(speed.name))}) and equal "
                   f"{', '.join(m.name for m in rest)}; {winner.variant} wins by name order")
        else:
            lose = next(m for m in rest if r.value(m.name) != winner.value(m.name))
            why = (f"on the frontier and as fast as {winner.variant} within {settings.speed_tie_rel:.0%} "
                   f"({speed.name} {fmt(r.value(speed.name))} vs {fmt(winner.value(speed.name))}), but "
                   f"{lose.name} {fmt(r.value(lose.name))} vs {fmt(winner.value(lose.name))}")
        verdicts[r.variant_key] = Verdict(r.variant, r.variant_key, "frontier", why, by=winner.variant)
    for r in frontier:
        if r.variant_key in verdicts or r is winner:
            continue
        verdicts[r.variant_key] = Verdict(
            r.variant, r.variant_key, "frontier",
            f"on the frontier but slower than {winner.variant} beyond the {settings.speed_tie_rel:.0%} tie "
            f"tolerance ({_compare_text(r, winner, objectives)})", by=winner.variant)
    verdicts[winner.variant_key] = Verdict(
        winner.variant, winner.variant_key, "winner",
        f"fastest variant meeting the constraints on the frontier ({speed.name} {fmt(winner.value(speed.name))}, "
        f"{quality.name} {fmt(winner.value(quality.name))}"
        + (f", {objectives[2].name} {fmt(winner.value(objectives[2].name))}" if len(objectives) > 2 else "")
        + (f"; tied with {', '.join(ties)}" if ties else "") + ")")
    return winner, ties


def _judge_dominated(feasible: list[Row], frontier: list[Row], winner: Row | None, objectives: list,
                     verdicts: dict[str, Verdict]) -> None:
    """A verdict for every feasible row off the frontier: who dominates it and how."""
    front_keys = {r.variant_key for r in frontier}
    for r in feasible:
        if r.variant_key in front_keys:
            continue
        doms = [o for o in frontier + feasible if o is not r and dominates(o, r, objectives)]
        by = winner if winner in doms else doms[0]
        more = f" (and {len(set(d.variant_key for d in doms)) - 1} more)" if len(set(d.variant_key for d in doms)) > 1 else ""
        verdicts[r.variant_key] = Verdict(r.variant, r.variant_key, "dominated",
                                          f"dominated by {by.variant}{more}: it has {_compare_text(by, r, objectives)}",
                                          by=by.variant)


def _explain(provider: str, rows: list[Row], frontier: list[Row], winner: Row | None, constraint_losers: list[Row],
             bounds, objectives: list, verdicts: dict[str, Verdict]) -> str:
    """One sentence: who wins and why, or why nobody does (and the closest candidate)."""
    cons = ", ".join(f"{n} " + " and ".join(x for x in (f">= {fmt(b.min)}" if b.min is not None else "",
                                                         f"<= {fmt(b.max)}" if b.max is not None else "") if x)
                     for n, b in bounds.items()) or "none"
    if winner is not None:
        return (f"{winner.variant} wins on {provider}: {verdicts[winner.variant_key].reason}; "
                f"{len(frontier)} on the frontier, {len(rows) - len(frontier)} off it (constraints: {cons})")
    if all(r.status != "ok" for r in rows):
        return f"no winner on {provider}: every variant was skipped or failed on this provider"
    if constraint_losers:
        close = min(constraint_losers, key=lambda r: (len(verdicts[r.variant_key].violations),
                                                      _shortfall(r, bounds), r.variant))
        return (f"no winner on {provider}: no variant meets the constraints ({cons}); closest: {close.variant} "
                f"({verdicts[close.variant_key].reason})")
    return (f"no winner on {provider}: no variant has all of {', '.join(m.name for m in objectives)} measured "
            "(run kopt bench and kopt quality for it)")


_OUTCOME_ORDER = {"winner": 0, "frontier": 1, "dominated": 2, "constraint": 3, "missing": 4, "status": 5}


def select(rows: Iterable[Row], settings: SelectSettings | None = None, catalog: Catalog | None = None) -> Selection:
    """One GroupSelection per (machine, provider); records from different machines are never pooled."""
    settings = settings or SelectSettings()
    cat = catalog or Catalog({k: v.model_dump() for k, v in settings.metrics.items()})
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.machine_id, r.provider), []).append(r)
    out = tuple(select_group(g, settings, cat) for _, g in sorted(groups.items()))
    names = tuple(n for n in (settings.speed, settings.quality, settings.size) if n)
    return Selection(out, names)
