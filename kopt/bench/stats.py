"""Small order statistics for timings: median, percentiles, spread."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """{"median", "p10", "p90", "min", "max", "std", "n"}; None everywhere for an empty list."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"median": None, "p10": None, "p90": None, "min": None, "max": None, "std": None, "n": 0}
    return {"median": float(np.median(v)), "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90)),
            "min": float(v.min()), "max": float(v.max()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size)}


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return float(num) / float(den)
