"""Tables: every (machine, variant, provider) row with its figures and the selection verdict, as a
pandas DataFrame written to CSV (every metric, machine-readable names) and, for people, one table per
provider (measured rows first; a provider where nothing was measured is one line with its reason) in
Markdown, HTML and the CLI summary; and, where bench measured it, each provider's thread scaling."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from kopt.select.frontier import GroupSelection, Selection, fmt
from kopt.select.metrics import columns, is_number
from kopt.select.rows import Row

# the headline columns, from the metric catalogue's "table" view: label -> metric names to look for, the
# first a row has wins; and the labels of the columns tagged for the CI log line, the winner's card, and
# per-language figures
_COLUMNS = columns("table")
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = tuple((c.heading, c.names) for c in _COLUMNS)
COMPACT: tuple[str, ...] = tuple(c.heading for c in _COLUMNS if "compact" in c.tags)
CARD: tuple[str, ...] = tuple(c.heading for c in _COLUMNS if "card" in c.tags)
PER_LANGUAGE: tuple[str, ...] = tuple(c.heading for c in _COLUMNS if "per_language" in c.tags)
ID_COLUMNS = ("machine", "provider", "variant", "precision", "status")
KEY_CHARS = 10  # a variant key is shown this long beside its name (the CSV has it whole)
_STATUS_ORDER = {"ok": 0, "failed": 1, "skipped": 2}


def resolve_columns(rows: Sequence[Row]) -> list[tuple[str, str | None]]:
    """(label, metric name actually present or None) for each column; with several languages, the
    PER_LANGUAGE columns are the worst language's ("PESQ aligned worst") followed by one per
    language ("PESQ aligned ja")."""
    present = {k for r in rows for k, v in r.metrics.items() if v is not None}
    langs = list(dict.fromkeys(lang for r in rows for lang in r.languages))
    out: list[tuple[str, str | None]] = []
    for label, names in COLUMNS:
        name = next((n for n in names if n in present), None)
        if len(langs) > 1 and label in PER_LANGUAGE and name is not None:
            out.append((f"{label} worst", name))
            out += [(f"{label} {lang}", f"{name}@{lang}") for lang in langs]
        else:
            out.append((label, name))
    return out


def _wanted(label: str, columns: Sequence[str] | None) -> bool:
    """A column asked for by its label, or a per-language column of a label asked for."""
    return columns is None or label in columns or label.rsplit(" ", 1)[0] in columns


def short_provider(p: str) -> str:
    return p.removesuffix("ExecutionProvider") if p.endswith("ExecutionProvider") else p


def group_title(g: GroupSelection, multi_machine: bool) -> str:
    p = short_provider(g.provider)
    return f"{p} on {g.machine_id[:8]} ({g.machine})" if multi_machine else p


@dataclass(frozen=True)
class ProviderTable:
    """One (machine, provider) group for people: its rows with measured ones first, or, when nothing was
    measured there, the reason (one line instead of a row per variant)."""

    group: GroupSelection
    title: str
    rows: tuple[Row, ...]
    reason: str | None  # set when no row was measured (every cell skipped)

    @property
    def measured(self) -> bool:
        return self.reason is None


def provider_tables(selection: Selection, speed: str | None = None) -> list[ProviderTable]:
    """Measured groups first (rows: ok ones by ``speed``, then failed, then skipped), then the groups
    where every cell was skipped."""
    multi = len({g.machine_id for g in selection.groups}) > 1
    measured, skipped = [], []
    for g in selection.groups:
        title = group_title(g, multi)
        if all(r.status == "skipped" for r in g.rows):
            reasons = list(dict.fromkeys(r.reason for r in g.rows if r.reason))
            skipped.append(ProviderTable(g, title, g.rows, "; ".join(reasons) or "skipped (no reason recorded)"))
            continue

        def order(r: Row) -> tuple:
            v = r.value(speed) if speed else None
            return (_STATUS_ORDER.get(r.status, 3), v if is_number(v) else math.inf, r.variant, r.variant_key)

        measured.append(ProviderTable(g, title, tuple(sorted(g.rows, key=order)), None))
    return measured + skipped


def not_measured(tables: Sequence[ProviderTable]) -> list[tuple[str, str]]:
    """(providers, reason): one entry per reason, the providers not measured for it joined by commas."""
    by: dict[str, list[str]] = {}
    for t in tables:
        if not t.measured:
            by.setdefault(str(t.reason), []).append(t.title)
    return [(", ".join(titles), reason) for reason, titles in by.items()]


def not_measured_lines(tables: Sequence[ProviderTable]) -> list[str]:
    return [f"{titles}: {reason}" for titles, reason in not_measured(tables)]


def provider_frame(table: ProviderTable, columns: Sequence[str] | None = None):
    """The readable table of one measured group: name, key, precision, the headline figures present in
    this group, the selection outcome; a status column only when some row is not ok."""
    import pandas as pd

    rows = table.rows
    cols = [(label, name) for label, name in resolve_columns(rows) if name is not None and _wanted(label, columns)]
    show_status = any(r.status != "ok" for r in rows)
    out = []
    for r in rows:
        v = table.group.verdict(r.variant_key)
        rec: dict[str, Any] = {"variant": r.variant, "key": r.variant_key[:KEY_CHARS], "precision": r.precision or ""}
        if show_status:
            rec["status"] = r.status if r.status == "ok" or not r.reason else f"{r.status}: {r.reason}"
        for label, name in cols:
            rec[label] = fmt(r.metrics.get(name)) if r.metrics.get(name) is not None else ""
        rec["selection"] = "WINNER" if v.outcome == "winner" else v.outcome
        out.append(rec)
    return pd.DataFrame(out)


_SCALING = re.compile(r"rtf_threads_(\d+)_median")


def scaling_counts(metrics: dict[str, Any]) -> list[int]:
    """The thread counts a bench record (or row) has RTF figures for, ascending."""
    return sorted(int(m.group(1)) for k in metrics if (m := _SCALING.fullmatch(k)))


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"


def scaling_frame(metrics_by_variant: Sequence[tuple[str, str, dict[str, Any]]]):
    """Thread scaling, one row per (variant, key, metrics): the RTF median at every thread count measured, and
    the speed-up over 1 thread (RTF at 1 / RTF at n); a count that failed reads "failed". None when fewer
    than two counts were measured (records from before scaling, providers other than CPU, scaling off)."""
    import pandas as pd

    have = [(v, k, m) for v, k, m in metrics_by_variant if scaling_counts(m)]
    counts = sorted({n for _, _, m in have for n in scaling_counts(m)})
    if len(counts) < 2:
        return None
    out = []
    for variant, key, m in have:
        rec: dict[str, Any] = {"variant": variant, "key": key[:KEY_CHARS]}
        rtf = {n: m.get(f"rtf_threads_{n}_median") for n in counts}
        for n in counts:
            name = f"rtf_threads_{n}_median"
            rec[f"RTF {_threads(n)}"] = fmt(rtf[n]) if rtf[n] is not None else ("failed" if name in m else "")
        for n in counts:
            if n != 1 and 1 in counts:
                ok = is_number(rtf[1]) and is_number(rtf[n]) and rtf[n] > 0
                rec[f"speed-up {_threads(n)}"] = f"{rtf[1] / rtf[n]:.2f}x" if ok else ""
        out.append(rec)
    return pd.DataFrame(out)


def group_scaling_frame(table: ProviderTable):
    """``scaling_frame`` of one measured group's ok rows, in the group's order (fastest first)."""
    return scaling_frame([(r.variant, r.variant_key, r.metrics) for r in table.rows if r.status == "ok"])


SCALING_NOTE = ("RTF median at each intra-op thread count, CPU provider only (threads size its pool); counts "
                "other than the main one are timed in fewer rounds (bench scaling_repeats), in fresh workers; "
                "speed-up = RTF at 1 thread / RTF at n threads; per-count n and spread in the records "
                "(extra.thread_scaling)")


def row_classes(table: ProviderTable) -> list[str]:
    out = []
    for r in table.rows:
        v = table.group.verdict(r.variant_key)
        out.append("winner" if v.outcome == "winner" else (r.status if r.status != "ok" else ""))
    return out


def group_selection_frame(table: ProviderTable):
    """Why each variant of one measured group won or lost."""
    import pandas as pd

    return pd.DataFrame([{"variant": v.variant, "key": v.variant_key[:KEY_CHARS],
                          "outcome": "WINNER" if v.outcome == "winner" else v.outcome, "reason": v.reason}
                         for v in table.group.verdicts])


def full_frame(rows: Sequence[Row], selection: Selection | None = None):
    """One row per (machine, variant, provider), every metric as a column (CSV)."""
    import pandas as pd

    metric_names: list[str] = []
    for r in rows:
        for k in r.metrics:
            if k not in metric_names:
                metric_names.append(k)
    out = []
    for r in rows:
        v = selection.verdict_of(r) if selection else None
        rec: dict[str, Any] = {"machine_id": r.machine_id, "machine": r.machine, "provider": r.provider,
                               "variant": r.variant, "variant_key": r.variant_key, "precision": r.precision,
                               "status": r.status, "status_reason": r.reason,
                               "selection": v.outcome if v else None, "selection_reason": v.reason if v else None,
                               "quality_from_machine": r.quality_from, "runs": " ".join(r.run_ids)}
        rec.update({k: r.metrics.get(k) for k in metric_names})
        out.append(rec)
    return pd.DataFrame(out)


def summary_frame(rows: Sequence[Row], selection: Selection | None = None, *, machine_column: bool | None = None):
    """Every row with the labelled headline columns and the selection outcome, flat (summary.csv)."""
    import pandas as pd

    cols = resolve_columns(rows)
    if machine_column is None:
        machine_column = len({r.machine_id for r in rows}) > 1
    out = []
    for r in rows:
        v = selection.verdict_of(r) if selection else None
        rec: dict[str, Any] = {}
        if machine_column:
            rec["machine"] = f"{r.machine_id[:8]} {r.machine}"
        rec.update({"provider": short_provider(r.provider), "variant": r.variant, "key": r.variant_key,
                    "precision": r.precision or "",
                    "status": r.status if r.status == "ok" or not r.reason else f"{r.status}: {r.reason}"})
        for label, name in cols:
            if name is not None:
                rec[label] = fmt(r.metrics.get(name)) if r.metrics.get(name) is not None else ""
        rec["selection"] = ("WINNER" if v.outcome == "winner" else v.outcome) if v else ""
        out.append(rec)
    return pd.DataFrame(out)


def selection_frame(selection: Selection):
    """Why each variant won or lost, per (machine, provider), flat (selection.csv)."""
    import pandas as pd

    multi = len({g.machine_id for g in selection.groups}) > 1
    out = []
    for g in selection.groups:
        for v in g.verdicts:
            rec = {"machine": f"{g.machine_id[:8]} {g.machine}"} if multi else {}
            rec.update({"provider": short_provider(g.provider), "variant": v.variant, "key": v.variant_key,
                        "outcome": "WINNER" if v.outcome == "winner" else v.outcome, "reason": v.reason})
            out.append(rec)
    return pd.DataFrame(out)


def to_markdown(df) -> str:
    """DataFrame -> GitHub Markdown (pandas uses tabulate for this)."""
    if df.empty:
        return "_(no rows)_\n"
    return df.to_markdown(index=False) + "\n"


def plain_rows(df) -> list[str]:
    """A DataFrame as Markdown-style rows with single spaces (``| a | b |``), one line per row whatever
    its length: what a CI log shows without wrapping."""
    def cell(v: Any) -> str:
        s = "" if v is None or (isinstance(v, float) and v != v) else str(v)
        return s.replace("|", "/").replace("\n", " ")

    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return lines


def markdown_report(selection: Selection, title: str, speed: str | None,
                    variants=None) -> str:
    """results.md: the winners, one table per measured provider, one line per provider not measured,
    why each variant won or lost, and the variants' names, keys and precision."""
    import pandas as pd

    tabs = provider_tables(selection, speed)
    out = [f"# {title}\n"]
    win = [{"provider": t.title, "winner": t.group.winner.variant if t.group.winner else "-",
            "key": t.group.winner.variant_key[:KEY_CHARS] if t.group.winner else "",
            "why": t.group.explanation} for t in tabs if t.measured]
    out.append("## Winners\n\n" + to_markdown(pd.DataFrame(win)))
    for t in tabs:
        if t.measured:
            out.append(f"## {t.title}\n\n" + to_markdown(provider_frame(t)))
    for t in tabs:
        df = group_scaling_frame(t) if t.measured else None
        if df is not None:
            out.append(f"## Thread scaling: {t.title}\n\n" + to_markdown(df) + f"\n{SCALING_NOTE}.\n")
    skipped = not_measured_lines(tabs)
    if skipped:
        out.append("## Not measured\n\n" + "".join(f"- {s}\n" for s in skipped))
    for t in tabs:
        if t.measured:
            out.append(f"## Why each variant won or lost: {t.title}\n\n" + to_markdown(group_selection_frame(t)))
    if variants is not None and not variants.empty:
        out.append("## Variants\n\n" + to_markdown(variants))
    return "\n".join(out)


def summary_dicts(selection: Selection, speed: str | None, columns: Sequence[str] = COMPACT) -> list[dict[str, Any]]:
    """The per-provider tables as plain data (a build's summary and its --json output): measured groups
    with their compact rows, then one entry per group not measured, with the reason."""
    out = []
    for t in provider_tables(selection, speed):
        g = t.group
        d: dict[str, Any] = {"provider": t.title, "measured": t.measured, "reason": t.reason,
                             "winner": g.winner.variant if g.winner else None,
                             "key": g.winner.variant_key if g.winner else None, "explanation": g.explanation}
        if t.measured:
            df = provider_frame(t, columns)
            d["columns"] = list(df.columns)
            d["rows"] = [[_plain(v) for v in row] for row in df.itertuples(index=False)]
        out.append(d)
    return out


def _plain(v: Any) -> Any:
    return None if isinstance(v, float) and v != v else v
