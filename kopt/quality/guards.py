"""Audio guards: non-finite samples, silence, clipping, length blow-up (the contract's checks,
collected instead of raised), plus the variant's length against the reference's."""

from __future__ import annotations

import numpy as np

from kopt.core.contract import check_audio
from kopt.core.errors import ModelError

LENGTH_RATIO_RANGE = (0.67, 1.5)


def audio_issues(audio: np.ndarray, n_tokens: int, source: str, reference: np.ndarray | None = None) -> list[str]:
    issues = []
    try:
        check_audio(audio, n_tokens, source)
    except ModelError as e:
        issues.append(str(e))
    if reference is not None and len(reference):
        r = len(audio) / len(reference)
        lo, hi = LENGTH_RATIO_RANGE
        if not lo <= r <= hi:
            issues.append(f"{source}: audio is {r:.2f}x the reference's length")
    return issues
