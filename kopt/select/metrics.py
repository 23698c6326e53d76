"""The metric catalogue: what each metric name in a result record means, as data.

Each entry says which way is better (``higher``, ``lower``, or ``zero`` for signed drifts where closer to
zero is better), what it measures (``speed``/``memory`` depend on the machine; ``quality``/``size`` do
not), its unit and a default regression threshold (``rel`` fraction for machine-dependent figures,
``abs`` for quality). Settings can add or override entries, so a new metric from bench/quality needs a
line here or in a recipe, never code. Names with a number in them (bench's ``rtf_threads_<n>_median``,
one per thread count) are one line of ``FAMILIES``: a pattern, its fields and a label with the number.
A quality figure of one language is its metric's name, ``@`` and the language (``pesq_wb_aligned@ja``,
kopt.select.rows): it means what the metric means, its label names the language.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping

Direction = Literal["higher", "lower", "zero"]
Kind = Literal["speed", "memory", "quality", "size", "info"]
MACHINE_DEPENDENT: frozenset[str] = frozenset({"speed", "memory"})


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


# name: (direction, kind, label, unit, rel, abs)
_TABLE: dict[str, tuple[Direction, Kind, str, str, float | None, float | None]] = {
    "size_mb":               ("lower",  "size",    "size",            "MB",     0.01, None),
    "load_s":                ("lower",  "speed",   "load",            "s",      0.10, None),
    "first_inference_s":     ("lower",  "speed",   "first inference", "s",      0.10, None),
    "first_infer_s":         ("lower",  "speed",   "first inference", "s",      0.10, None),
    "rtf_median":            ("lower",  "speed",   "RTF median",      "",       0.05, None),
    "rtf_p90":               ("lower",  "speed",   "RTF p90",         "",       0.10, None),
    "rtf_short_median":      ("lower",  "speed",   "RTF short",       "",       0.10, None),
    "rtf_medium_median":     ("lower",  "speed",   "RTF medium",      "",       0.10, None),
    "rtf_long_median":       ("lower",  "speed",   "RTF long",        "",       0.10, None),
    "ttfa_ms":               ("lower",  "speed",   "TTFA",            "ms",     0.10, None),
    "ttfa_ms_median":        ("lower",  "speed",   "TTFA median",     "ms",     0.10, None),
    "ttfa_ms_p90":           ("lower",  "speed",   "TTFA p90",        "ms",     0.15, None),
    "rss_mb":                ("lower",  "memory",  "RSS",             "MB",     0.10, None),
    "rss_peak_mb":           ("lower",  "memory",  "peak RSS",        "MB",     0.10, None),
    "rss_loaded_mb":         ("lower",  "memory",  "RSS loaded",      "MB",     0.10, None),
    # ratios bench computes within one machine and provider: shown, not compared (their parts are)
    "speedup_vs_baseline":   ("higher", "info",    "speedup",         "x",      None, None),
    "size_ratio_vs_baseline": ("lower", "info",    "size ratio",      "x",      None, None),
    "rss_ratio_vs_baseline": ("lower",  "info",    "RSS ratio",       "x",      None, None),
    "ttfa_ratio_vs_baseline": ("lower", "info",    "TTFA ratio",      "x",      None, None),
    "pesq_wb_aligned":       ("higher", "quality", "PESQ-wb aligned", "",       None, 0.05),
    "pesq_wb_natural":       ("higher", "quality", "PESQ-wb natural", "",       None, 0.05),
    "pesq_wb":               ("higher", "quality", "PESQ-wb",         "",       None, 0.05),
    "stoi":                  ("higher", "quality", "STOI",            "",       None, 0.01),
    "mcd_db":                ("lower",  "quality", "MCD",             "dB",     None, 0.20),
    "mel_distance":          ("lower",  "quality", "mel distance",    "",       None, 0.05),
    "duration_drift_frames": ("zero",   "quality", "duration drift",  "frames", None, 1.0),
    "snr_db":                ("higher", "quality", "SNR",             "dB",     None, 1.0),
    # names kopt.quality writes (aligned: scored after forcing the reference durations; natural: as spoken)
    "pesq_wb_aligned_min":   ("higher", "quality", "PESQ-wb aligned min", "",   None, 0.10),
    "pesq_wb_natural_min":   ("higher", "quality", "PESQ-wb natural min", "",   None, 0.10),
    "stoi_aligned":          ("higher", "quality", "STOI aligned",    "",       None, 0.01),
    "stoi_natural":          ("higher", "quality", "STOI natural",    "",       None, 0.01),
    "estoi_aligned":         ("higher", "quality", "ESTOI aligned",   "",       None, 0.01),
    "estoi_natural":         ("higher", "quality", "ESTOI natural",   "",       None, 0.01),
    "mcd_db_aligned":        ("lower",  "quality", "MCD aligned",     "dB",     None, 0.20),
    "mcd_db_natural":        ("lower",  "quality", "MCD natural",     "dB",     None, 0.20),
    "log_mel_db_aligned":    ("lower",  "quality", "log-mel aligned", "dB",     None, 0.10),
    "log_mel_db_natural":    ("lower",  "quality", "log-mel natural", "dB",     None, 0.10),
    "mrstft_aligned":        ("lower",  "quality", "MR-STFT aligned", "",       None, 0.02),
    "mrstft_natural":        ("lower",  "quality", "MR-STFT natural", "",       None, 0.02),
    # the two halves of MR-STFT: shown, not compared (their sum, mrstft_*, is)
    "mrstft_sc_aligned":     ("lower",  "info",    "MR-STFT spectral convergence aligned", "", None, None),
    "mrstft_sc_natural":     ("lower",  "info",    "MR-STFT spectral convergence natural", "", None, None),
    "mrstft_logmag_aligned": ("lower",  "info",    "MR-STFT log magnitude aligned", "", None, None),
    "mrstft_logmag_natural": ("lower",  "info",    "MR-STFT log magnitude natural", "", None, None),
    "duration_frames_diff":  ("zero",   "quality", "duration drift",  "frames", None, 1.0),
    "duration_frames_abs":   ("lower",  "quality", "duration drift |abs|", "frames", None, 1.0),
    "gate_pass":             ("higher", "quality", "quality gate",    "",       None, 0.5),
    "guard_issues":          ("lower",  "quality", "guard issues",    "",       None, 0.5),
    "dnsmos_ovrl":           ("higher", "quality", "DNSMOS OVRL",     "",       None, 0.05),
    "dnsmos_sig":            ("higher", "quality", "DNSMOS SIG",      "",       None, 0.05),
    "dnsmos_bak":            ("higher", "quality", "DNSMOS BAK",      "",       None, 0.05),
    "dnsmos_p808":           ("higher", "quality", "DNSMOS P.808",    "",       None, 0.05),
}

# Reported but not gating by default: single-sample timings (no spread to judge noise by), tail
# percentiles and per-category medians of a few samples. A threshold set for one in the settings or
# with --threshold makes it gate.
WATCH_ONLY = frozenset({"load_s", "first_inference_s", "first_infer_s", "rtf_p90", "ttfa_ms_p90", "rtf_short_median",
                        "rtf_medium_median", "rtf_long_median", "rss_loaded_mb"})

CATALOG: dict[str, Metric] = {n: Metric(n, d, k, lab, u, r, a, n not in WATCH_ONLY)
                              for n, (d, k, lab, u, r, a) in _TABLE.items()}

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
