"""Typed settings for selection (constraints, objectives) and regression verdicts (thresholds).

Both are pydantic models with ``extra="forbid"`` so a typo in a recipe names the field. A settings
file (TOML or JSON) holds them under ``[select]`` and ``[compare]``; CLI flags override single values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kopt.core.errors import KoptError
from kopt.core.recipe import read_file, validate


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(_Frozen):
    """A constraint on one metric: ``min <= value <= max`` (either side may be left out)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_side(self) -> "Bound":
        if self.min is None and self.max is None:
            raise ValueError("a bound needs min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self


class MetricOverride(_Frozen):
    """Add a metric to the catalogue or change one: direction, kind, default thresholds."""

    direction: Literal["higher", "lower", "zero"] | None = None
    kind: Literal["speed", "memory", "quality", "size", "info"] | None = None
    label: str | None = None
    unit: str | None = None
    rel: float | None = None
    abs: float | None = None
    gate: bool | None = None


class SelectSettings(_Frozen):
    """How ``kopt select`` picks: constraints (all providers, then per provider), the three objectives of
    the Pareto frontier, and the speed tie tolerance used when picking the winner on the frontier."""

    constraints: dict[str, Bound] = Field(default_factory=lambda: {"pesq_wb_aligned": Bound(min=4.0)})
    providers: dict[str, dict[str, Bound]] = Field(
        default_factory=dict, description="Per provider config: extra or replacing constraints.")
    speed: str = "rtf_median"
    quality: str = "pesq_wb_aligned"
    size: str | None = "size_mb"
    speed_tie_rel: float = Field(0.02, ge=0.0, lt=1.0, description=(
        "Frontier variants whose speed is within this fraction of the fastest count as tied on speed; "
        "among them the best quality wins, then the smallest, then the name."))
    quality_across_machines: bool = Field(False, description=(
        "Join quality records measured on another machine (same variant key) when the bench machine has none."))
    metrics: dict[str, MetricOverride] = Field(default_factory=dict)

    def constraints_for(self, provider: str) -> dict[str, Bound]:
        out = dict(self.constraints)
        out.update(self.providers.get(provider, {}))
        return out


class Threshold(_Frozen):
    """A regression threshold: ``rel`` (fraction of the baseline) or ``abs`` (metric units)."""

    rel: float | None = Field(None, ge=0.0)
    abs: float | None = Field(None, ge=0.0)

    @model_validator(mode="after")
    def _one(self) -> "Threshold":
        if (self.rel is None) == (self.abs is None):
            raise ValueError("a threshold is either rel or abs")
        return self


class CompareSettings(_Frozen):
    """How ``kopt compare`` judges: per-metric thresholds (default: the catalogue's, relative for speed
    and memory, absolute for quality), noise awareness, and what to match rows on."""

    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    metrics: list[str] | None = Field(None, description="Only these metrics (default: every catalogued one).")
    noise: bool = Field(True, description="A speed change inside the runs' measured spread is noise, not a regression.")
    allow_missing: bool = Field(False, description="A variant/provider gone from CURRENT is not a regression.")
    match: Literal["name", "key"] = Field("name", description="Match variants by name or by content key.")
    overrides: dict[str, MetricOverride] = Field(default_factory=dict)


class Settings(_Frozen):
    select: SelectSettings = Field(default_factory=SelectSettings)
    compare: CompareSettings = Field(default_factory=CompareSettings)


def load_settings(path: str | Path | None) -> Settings:
    """Read ``[select]``/``[compare]`` from a TOML or JSON file; errors name the file and field."""
    if path is None:
        return Settings()
    data = read_file(path, "settings")
    return validate(Settings, {k: v for k, v in data.items() if k in ("select", "compare")}, str(path))


def parse_bound_flags(mins: list[str], maxs: list[str]) -> tuple[dict[str, Bound], dict[str, dict[str, Bound]]]:
    """``--min [PROVIDER:]METRIC=VALUE`` / ``--max ...`` into (global, per-provider) bounds."""
    raw: dict[tuple[str | None, str], dict[str, float]] = {}
    for side, items in (("min", mins), ("max", maxs)):
        for item in items:
            name, sep, val = item.partition("=")
            if not sep:
                raise KoptError(f"--{side} {item!r}: expected [PROVIDER:]METRIC=VALUE, e.g. pesq_wb_aligned=4.0")
            prov, _, metric = name.rpartition(":")
            try:
                raw.setdefault((prov or None, metric.strip()), {})[side] = float(val)
            except ValueError:
                raise KoptError(f"--{side} {item!r}: {val!r} is not a number") from None
    glob: dict[str, Bound] = {}
    per: dict[str, dict[str, Bound]] = {}
    for (prov, metric), sides in raw.items():
        b = validate(Bound, sides, f"--min/--max {metric}")
        (glob if prov is None else per.setdefault(prov, {}))[metric] = b
    return glob, per


def parse_threshold_flags(items: list[str]) -> dict[str, Threshold]:
    """``--threshold METRIC=5%`` (relative) or ``METRIC=0.05`` (absolute)."""
    out: dict[str, Threshold] = {}
    for item in items:
        name, sep, val = item.partition("=")
        if not sep:
            raise KoptError(f"--threshold {item!r}: expected METRIC=VALUE (absolute) or METRIC=VALUE% (relative)")
        v = val.strip()
        try:
            num = float(v[:-1]) / 100 if v.endswith("%") else float(v)
        except ValueError:
            raise KoptError(f"--threshold {item!r}: {val!r} is not a number") from None
        if num < 0:
            raise KoptError(f"--threshold {item!r}: thresholds are magnitudes, give a value >= 0")
        out[name.strip()] = Threshold(rel=num) if v.endswith("%") else Threshold(abs=num)
    return out
