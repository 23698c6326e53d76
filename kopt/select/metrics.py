"""The metric catalogue: the one declaration of each metric name a result record carries, as data.

An entry says which way is better (``higher``, ``lower``, or ``zero`` for signed drifts where closer to
zero is better), what it measures (``speed``/``memory`` depend on the machine; ``quality``/``size`` do
not; ``info`` figures are shown, never compared), its label and unit, a default regression threshold
(``rel`` fraction for machine-dependent figures, ``abs`` for quality), whether a change beyond it gates,
and where it is shown: one ``Show`` per view it appears in (``VIEWS``). The report tables, the history
trends and ``kopt quality``'s table take their columns from here, so a new metric is its writer (bench,
or an ``@metric`` function in kopt.quality.metrics) and one entry. Tests check that every entry is
written by a writer and that every name a quality metric declares has an entry. Settings can add or
override entries (everything but ``show``).

Names with a number in them (bench's ``rtf_threads_<n>_median``, one per thread count) are one line of
``FAMILIES``: a pattern, its fields and a label with the number. A quality figure of one language is
its metric's name, ``@`` and the language (``pesq_wb_aligned@ja``, kopt.select.rows): it means what the
metric means, its label names the language.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping

Direction = Literal["higher", "lower", "zero"]
Kind = Literal["speed", "memory", "quality", "size", "info"]
MACHINE_DEPENDENT: frozenset[str] = frozenset({"speed", "memory"})
View = Literal["table", "trend", "quality", "bench"]

# each view, and how it reads the entries shown in it
VIEWS: dict[str, str] = {
    "table": "the report's headline columns (results.md, summary.csv, the HTML tables and cards, the build "
             "summary): entries sharing a heading are one column, showing the first of them (by order) a row "
             "has; a column is placed by its first entry, and its tags are its entries' (TAGS)",
    "trend": "the metrics the history tables, plots and dashboard follow over runs, by order",
    "quality": "kopt quality's table: a cell is its column's entries written one after the other, each by its "
               "template (fmt); a missing value reads '-' after the template's leading text, or is left out "
               "when the entry is optional",
    "bench": "kopt bench's table, after its variant, provider and status columns: cells as in the quality view",
}
TAGS: dict[str, str] = {
    "compact": "one of the few table columns a CI log line has room for",
    "card": "a fact on a winner's card in the HTML page",
    "per_language": "also shown per language (\"PESQ aligned ja\") when the rows cover several; the plain "
                    "column is then the worst language's",
}


@dataclass(frozen=True)
class Show:
    """Where a metric is shown: its view, its place there (ascending ``order``), the column heading (table
    and quality views), the column's ``tags`` (table) and, in the quality view, the template that writes
    the value (``fmt``: str.format with one field; a spec ``a/b`` writes a for true, b for false) and
    whether a missing value is left out (``optional``) rather than written as '-'."""

    view: View
    order: int
    column: str = ""
    tags: frozenset[str] = frozenset()
    fmt: str = "{}"
    optional: bool = False


def table_column(heading: str, order: int, *tags: str) -> Show:
    return Show("table", order, heading, frozenset(tags))


def trend(order: int) -> Show:
    return Show("trend", order)


def quality_column(heading: str, order: int, fmt: str, *, optional: bool = False) -> Show:
    return Show("quality", order, heading, fmt=fmt, optional=optional)


def bench_column(heading: str, order: int, fmt: str) -> Show:
    return Show("bench", order, heading, fmt=fmt)


@dataclass(frozen=True)
class Metric:
    name: str
    direction: Direction
    kind: Kind
    label: str
    unit: str = ""
    rel: float | None = None  # default regression threshold, relative (fraction of the baseline)
    abs: float | None = None  # default regression threshold, absolute (metric units)
    gate: bool = True  # a change beyond the threshold fails a comparison (False: reported as "worse" only)
    show: tuple[Show, ...] = ()  # the views it is shown in

    @property
    def machine_dependent(self) -> bool:
        return self.kind in MACHINE_DEPENDENT

    def goodness(self, value: float) -> float:
        """The value turned so that larger is always better (for dominance and ranking)."""
        if self.direction == "higher":
            return value
        if self.direction == "lower":
            return -value
        return -abs(value)

    def better(self, a: float, b: float) -> bool:
        return self.goodness(a) > self.goodness(b)

    def shown_in(self, view: str) -> Show | None:
        return next((s for s in self.show if s.view == view), None)


# gate=False: reported but not gating by default: single-sample timings (no spread to judge noise by),
# tail percentiles and per-category medians of a few samples; a threshold set for one in the settings
# or with --threshold makes it gate.
ENTRIES: tuple[Metric, ...] = (
    # bench (kopt.bench.run)
    Metric("size_mb", "lower", "size", "size", "MB", rel=0.01,
           show=(table_column("size MB", 10, "compact", "card"), trend(50), bench_column("size MB", 10, "{:.1f}"))),
    Metric("load_s", "lower", "speed", "load", "s", rel=0.10, gate=False,
           show=(table_column("load s", 20), trend(40), bench_column("load s", 20, "{:.2f}"))),
    Metric("first_infer_s", "lower", "speed", "first inference", "s", rel=0.10, gate=False,
           show=(bench_column("1st inf s", 30, "{:.3f}"),)),
    Metric("rtf_median", "lower", "speed", "RTF median", rel=0.05,
           show=(table_column("RTF median", 30, "compact", "card"), trend(10), bench_column("RTF med", 40, "{:.3f}"))),
    Metric("rtf_p90", "lower", "speed", "RTF p90", rel=0.10, gate=False,
           show=(table_column("RTF p90", 40), bench_column("RTF p90", 50, "{:.3f}"))),
    Metric("rtf_short_median", "lower", "speed", "RTF short", rel=0.10, gate=False),
    Metric("rtf_medium_median", "lower", "speed", "RTF medium", rel=0.10, gate=False),
    Metric("rtf_long_median", "lower", "speed", "RTF long", rel=0.10, gate=False),
    Metric("ttfa_ms_median", "lower", "speed", "TTFA median", "ms", rel=0.10,
           show=(table_column("TTFA ms", 60, "compact", "card"), trend(20), bench_column("TTFA ms", 60, "{:.0f}"))),
    Metric("ttfa_ms_p90", "lower", "speed", "TTFA p90", "ms", rel=0.15, gate=False),
    Metric("rss_peak_mb", "lower", "memory", "peak RSS", "MB", rel=0.10,
           show=(table_column("RSS MB", 70, "card"), trend(30), bench_column("peak RSS MB", 70, "{:.0f}"))),
    Metric("rss_loaded_mb", "lower", "memory", "RSS loaded", "MB", rel=0.10, gate=False,
           show=(table_column("RSS MB", 71),)),  # the column's figure where no peak was recorded
    # ratios bench computes within one machine and provider: shown, not compared (their parts are)
    Metric("speedup_vs_baseline", "higher", "info", "speedup", "x",
           show=(table_column("speedup", 50, "compact", "card"), bench_column("speedup", 80, "{:.2f}x"))),
    Metric("size_ratio_vs_baseline", "lower", "info", "size ratio", "x"),
    Metric("rss_ratio_vs_baseline", "lower", "info", "RSS ratio", "x"),
    Metric("ttfa_ratio_vs_baseline", "lower", "info", "TTFA ratio", "x"),
    # quality (kopt.quality): an intrusive metric's figures scored after forcing the reference durations
    # (_aligned) and as spoken (_natural)
    Metric("pesq_wb_aligned", "higher", "quality", "PESQ-wb aligned", abs=0.05,
           show=(table_column("PESQ aligned", 80, "compact", "card", "per_language"), trend(60),
                 quality_column("PESQ-wb", 10, "{:.3f}"))),
    Metric("pesq_wb_natural", "higher", "quality", "PESQ-wb natural", abs=0.05,
           show=(table_column("PESQ natural", 90, "per_language"), trend(70),
                 quality_column("PESQ-wb", 11, " / {:.3f}"))),
    Metric("pesq_wb_aligned_min", "higher", "quality", "PESQ-wb aligned min", abs=0.10),
    Metric("pesq_wb_natural_min", "higher", "quality", "PESQ-wb natural min", abs=0.10),
    Metric("stoi_aligned", "higher", "quality", "STOI aligned", abs=0.01,
           show=(table_column("STOI", 100, "compact", "card", "per_language"), trend(80),
                 quality_column("STOI", 20, "{:.4f}"))),
    Metric("stoi_natural", "higher", "quality", "STOI natural", abs=0.01,
           show=(table_column("STOI", 101), quality_column("STOI", 21, " / {:.4f}"))),
    Metric("estoi_aligned", "higher", "quality", "ESTOI aligned", abs=0.01),
    Metric("estoi_natural", "higher", "quality", "ESTOI natural", abs=0.01),
    Metric("mcd_db_aligned", "lower", "quality", "MCD aligned", "dB", abs=0.20,
           show=(quality_column("MCD dB", 30, "{:.2f}"),)),
    Metric("mcd_db_natural", "lower", "quality", "MCD natural", "dB", abs=0.20,
           show=(quality_column("MCD dB", 31, " / {:.2f}"),)),
    Metric("log_mel_db_aligned", "lower", "quality", "log-mel aligned", "dB", abs=0.10,
           show=(quality_column("log-mel dB", 40, "{:.2f}"),)),
    Metric("log_mel_db_natural", "lower", "quality", "log-mel natural", "dB", abs=0.10,
           show=(quality_column("log-mel dB", 41, " / {:.2f}"),)),
    Metric("mrstft_aligned", "lower", "quality", "MR-STFT aligned", abs=0.02,
           show=(quality_column("MR-STFT", 50, "{:.3f}"),)),
    Metric("mrstft_natural", "lower", "quality", "MR-STFT natural", abs=0.02,
           show=(quality_column("MR-STFT", 51, " / {:.3f}"),)),
    # the two halves of MR-STFT: shown, not compared (their sum, mrstft_*, is)
    Metric("mrstft_sc_aligned", "lower", "info", "MR-STFT spectral convergence aligned"),
    Metric("mrstft_sc_natural", "lower", "info", "MR-STFT spectral convergence natural"),
    Metric("mrstft_logmag_aligned", "lower", "info", "MR-STFT log magnitude aligned"),
    Metric("mrstft_logmag_natural", "lower", "info", "MR-STFT log magnitude natural"),
    Metric("dnsmos_ovrl", "higher", "quality", "DNSMOS OVRL", abs=0.05,
           show=(table_column("DNSMOS", 110, "card"), trend(90), quality_column("DNSMOS ovrl (Δ ref)", 60, "{:.2f}"))),
    Metric("dnsmos_sig", "higher", "quality", "DNSMOS SIG", abs=0.05),
    Metric("dnsmos_bak", "higher", "quality", "DNSMOS BAK", abs=0.05),
    Metric("dnsmos_p808", "higher", "quality", "DNSMOS P.808", abs=0.05),
    Metric("duration_frames_diff", "zero", "quality", "duration drift", "frames", abs=1.0,
           show=(table_column("drift frames", 120), trend(100))),
    Metric("duration_frames_abs", "lower", "quality", "duration drift |abs|", "frames", abs=1.0),
    Metric("gate_pass", "higher", "quality", "quality gate", abs=0.5,
           show=(table_column("gate", 130), trend(110), quality_column("gates", 90, "{:pass/FAIL}"))),
    Metric("guard_issues", "lower", "quality", "guard issues", abs=0.5),
    # figures kopt quality's table shows whose comparison is left to the quality gate (gate_pass) that
    # checks them: the variant's DNSMOS minus the reference's, the share of tokens whose predicted
    # duration changed, the determinism check
    Metric("dnsmos_ovrl_delta", "higher", "info", "DNSMOS OVRL minus the reference's",
           show=(quality_column("DNSMOS ovrl (Δ ref)", 61, " ({:+.2f})", optional=True),)),
    Metric("duration_tokens_changed", "lower", "info", "tokens with a changed duration",
           show=(quality_column("dur. tokens changed", 70, "{:.1%}"),)),
    Metric("bit_identical", "higher", "info", "bit-identical repeat runs",
           show=(quality_column("bit-identical", 80, "{:yes/no}"),)),
)

CATALOG: dict[str, Metric] = {m.name: m for m in ENTRIES}

# pattern: (direction, kind, label with {} for the number, unit, rel, abs); watch-only, like the per-category
# medians: the scaling counts are timed in fewer rounds than the main figure (bench's scaling_repeats)
FAMILIES: dict[str, tuple[Direction, Kind, str, str, float | None, float | None]] = {
    r"rtf_threads_(\d+)_median": ("lower", "speed", "RTF median, {} threads", "", 0.10, None),
}


LANGUAGE_SEP = "@"


def split_language(name: str) -> tuple[str, str | None]:
    """``pesq_wb_aligned@ja`` -> (``pesq_wb_aligned``, ``ja``); a name without a language -> (name, None)."""
    base, sep, lang = name.rpartition(LANGUAGE_SEP)
    return (base, lang) if sep and base and lang else (name, None)


def family(name: str) -> Metric | None:
    """The catalogue entry of a numbered name (``rtf_threads_4_median``), or None."""
    for pattern, (d, k, lab, u, r, a) in FAMILIES.items():
        m = re.fullmatch(pattern, name)
        if m:
            return Metric(name, d, k, lab.format(*m.groups()), u, r, a, gate=False)
    return None


class _CellFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if "/" in format_spec:
            yes, _, no = format_spec.partition("/")
            return yes if value else no
        return super().format_field(value, format_spec)


_CELL = _CellFormatter()


@dataclass(frozen=True)
class Column:
    """One column of a view: its heading and the entries shown in it, in order."""

    heading: str
    entries: tuple[tuple[Metric, Show], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m, _ in self.entries)

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(t for _, s in self.entries for t in s.tags)

    def cell(self, metrics: Mapping[str, Any]) -> str:
        """The column's text for one record's metrics, by its entries' templates (the quality view)."""
        out = []
        for m, s in self.entries:
            v = metrics.get(m.name)
            if v is not None:
                out.append(_CELL.format(s.fmt, v))
            elif not s.optional:
                lead = next((lit for lit, fld, _, _ in _CELL.parse(s.fmt) if fld is not None), "")
                out.append(lead + "-")
        return "".join(out)


def shown(view: str, catalog: Mapping[str, Metric] = CATALOG) -> list[tuple[Metric, Show]]:
    """The entries shown in ``view``, by their order there."""
    return sorted(((m, s) for m in catalog.values() if (s := m.shown_in(view)) is not None), key=lambda e: e[1].order)


def columns(view: str, catalog: Mapping[str, Metric] = CATALOG) -> list[Column]:
    """The columns of ``view``: entries grouped by heading, each column placed by its first entry."""
    by: dict[str, list[tuple[Metric, Show]]] = {}
    for m, s in shown(view, catalog):
        by.setdefault(s.column or m.label, []).append((m, s))
    return [Column(heading, tuple(entries)) for heading, entries in by.items()]


class Catalog:
    """The built-in table plus overrides (from settings); unknown names give None, not a guess."""

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._m = dict(CATALOG)
        for name, fields in (overrides or {}).items():
            fields = {k: v for k, v in dict(fields).items() if v is not None}
            known = self._m.get(name) or family(name)
            if known is not None:
                self._m[name] = replace(known, **fields)
            else:
                if "direction" not in fields:
                    raise ValueError(f"metric {name!r} is not in the catalogue: give its direction (higher/lower/zero)")
                fields.setdefault("kind", "quality")
                fields.setdefault("label", name)
                self._m[name] = Metric(name=name, **fields)

    def get(self, name: str) -> Metric | None:
        found = self._m.get(name) or family(name)
        if found is None:
            base, lang = split_language(name)
            if lang is not None and (meta := self._m.get(base) or family(base)) is not None:
                return replace(meta, name=name, label=f"{meta.label} ({lang})")
        return found

    def require(self, name: str) -> Metric:
        m = self.get(name)
        if m is None:
            from kopt.core.errors import KoptError

            raise KoptError(f"unknown metric {name!r}; known: {', '.join(sorted(self._m))} "
                            "(add it under [metrics] in the settings with its direction)")
        return m

    def names(self) -> list[str]:
        return list(self._m)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
