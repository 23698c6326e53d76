"""How to feed Kokoro, written once: token padding, the style row, input dtypes, durations.

Kokoro-82M's ONNX graph takes ``tokens`` (or ``input_ids``) int64 [1, n+2] with the boundary token
0 at both ends, ``style`` [1, 256] (row n of a voice pack, n = number of phoneme tokens) and
``speed`` [1] (float32, or int32 in some exports). kopt's ``durations`` pass may add an int64 input
``durations`` (an empty array means "use the predicted ones") and an int64 output with the frames
per token; published bundles name that output ``duration``, as kokoro-onnx reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import BundleError, InvalidInput

STYLE_DIM = 256
MAX_TOKENS = 510          # a voice pack has 510 rows; the model takes at most 510 tokens + 2 pads
TOKEN_NAMES = ("tokens", "input_ids")
DURATIONS = "durations"   # kopt's durations pass: input and (unpublished) output name
DURATION_OUTPUTS = ("duration", "durations")  # per-token frames, published name first
SPEED_MIN, SPEED_MAX = 0.25, 4.0
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int32)": np.int32,
           "tensor(int64)": np.int64, "tensor(double)": np.float64}


def check_speed(speed: object, field: str = "speed") -> float:
    """A finite number in [0.25, 4.0] (OpenAI's range); anything else is an InvalidInput naming ``field``."""
    if isinstance(speed, bool) or not isinstance(speed, (int, float, np.floating, np.integer)):
        raise InvalidInput(field, f"{speed!r} is not a number; use {SPEED_MIN} to {SPEED_MAX}")
    s = float(speed)
    if not math.isfinite(s) or not SPEED_MIN <= s <= SPEED_MAX:
        raise InvalidInput(field, f"{speed!r} is out of range; use a number from {SPEED_MIN} to {SPEED_MAX}")
    return s


def pad(token_ids: Sequence[int]) -> np.ndarray:
    """Phoneme token ids -> int64 [1, n+2] with the boundary token 0 at both ends."""
    ids = [int(t) for t in token_ids]
    if len(ids) > MAX_TOKENS:
        raise InvalidInput("tokens", f"{len(ids)} tokens; the model takes at most {MAX_TOKENS} per call")
    return np.array([[0, *ids, 0]], dtype=np.int64)


def style_row(pack: np.ndarray, n_tokens: int) -> np.ndarray:
    """Kokoro's rule: the style row is the number of phoneme tokens (pads excluded), as float32 [1, 256]."""
    a = np.asarray(pack)
    row = min(max(int(n_tokens), 0), a.shape[0] - 1)
    return np.asarray(a[row], np.float32).reshape(1, STYLE_DIM)


@dataclass(frozen=True)
class Signature:
    """What a Kokoro session's inputs and outputs are called and typed."""

    tokens: str
    style_dtype: Any
    speed_dtype: Any
    audio: str
    durations_in: bool = False
    durations_out: str | None = None
    other_inputs: tuple[str, ...] = ()

    @classmethod
    def of(cls, session: Any, where: str = "<model>") -> "Signature":
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        tok = next((n for n in TOKEN_NAMES if n in inputs), None)
        if tok is None or "style" not in inputs or "speed" not in inputs:
            raise BundleError(f"{where}: not a Kokoro model (inputs {sorted(inputs)}; need tokens or input_ids, "
                              "style, speed)")
        dur_out = next((n for n in DURATION_OUTPUTS if n in outputs[1:]), None)
        other = tuple(n for n in inputs if n not in (tok, "style", "speed", DURATIONS))
        return cls(tokens=tok, style_dtype=_DTYPES.get(inputs["style"].type, np.float32),
                   speed_dtype=_DTYPES.get(inputs["speed"].type, np.float32), audio=outputs[0],
                   durations_in=DURATIONS in inputs, durations_out=dur_out, other_inputs=other)

    def speed_array(self, speed: float) -> np.ndarray:
        if np.issubdtype(self.speed_dtype, np.integer):
            return np.array([int(round(speed))], dtype=self.speed_dtype)
        return np.array([speed], dtype=self.speed_dtype)

    def feeds(self, padded_tokens: np.ndarray, style: np.ndarray, speed: float = 1.0,
              durations: Sequence[int] | np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Feeds for one call: ``padded_tokens`` already has the 0 pads (see ``pad``); ``style`` is one
        row. A graph with a ``durations`` input gets the given durations, or the empty array that
        means "predict them"; giving durations to a graph without that input is an error."""
        feeds = {self.tokens: np.asarray(padded_tokens, np.int64).reshape(1, -1),
                 "style": np.asarray(style).reshape(1, STYLE_DIM).astype(self.style_dtype),
                 "speed": self.speed_array(speed)}
        if durations is not None:
            if not self.durations_in:
                raise InvalidInput("durations", f"this model has no {DURATIONS!r} input to feed")
            feeds[DURATIONS] = np.asarray(durations, np.int64).reshape(-1)
        elif self.durations_in:
            feeds[DURATIONS] = np.zeros(0, np.int64)
        return feeds

    def outputs(self, with_durations: bool = True) -> list[str]:
        return [self.audio] + ([self.durations_out] if with_durations and self.durations_out else [])
