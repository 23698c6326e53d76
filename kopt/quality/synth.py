"""Running a model for scoring: audio for given tokens, voice and speed, plus the per-token
durations when the graph exposes them (output ``durations``) and feeding durations in when it
accepts them (input ``durations``), the names the durations instrumentation pass uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kopt.core.contract import STYLE_DIM
from kopt.core.errors import ModelError

DURATIONS = "durations"


@dataclass(frozen=True)
class Case:
    """One scored utterance: token ids with the boundary 0 at both ends, a voice name and a speed."""

    id: str
    tokens: tuple[int, ...]
    voice: str
    speed: float = 1.0


def style_for(voices: dict[str, np.ndarray], case: Case) -> np.ndarray:
    """Kokoro's rule: the style row is the number of phoneme tokens (without the two pads)."""
    if case.voice not in voices:
        raise ModelError(f"no voice {case.voice!r}; known: {', '.join(sorted(voices))}")
    pack = voices[case.voice]
    row = min(max(len(case.tokens) - 2, 0), len(pack) - 1)
    return np.asarray(pack[row], np.float32).reshape(1, STYLE_DIM)


class ModelRunner:
    """One CPU onnxruntime session over a Kokoro graph, optionally instrumented with durations."""

    def __init__(self, path: str | Path, threads: int = 1, providers: list | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # ORT's own exception types
            msg = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
            raise ModelError(f"{self.path}: onnxruntime cannot load it: {msg}") from None
        ins = {i.name: i for i in self.session.get_inputs()}
        self._tok = "tokens" if "tokens" in ins else "input_ids"
        self._speed_int = "int" in ins["speed"].type
        self._style_f16 = "float16" in ins["style"].type
        outs = [o.name for o in self.session.get_outputs()]
        self._audio = outs[0]
        self.has_durations_out = DURATIONS in outs
        self.has_durations_in = DURATIONS in ins

    def __call__(self, case: Case, style: np.ndarray,
                 durations: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        feeds = {self._tok: np.asarray(case.tokens, np.int64).reshape(1, -1),
                 "style": style.astype(np.float16 if self._style_f16 else np.float32),
                 "speed": (np.array([int(round(case.speed))], np.int32) if self._speed_int
                           else np.array([case.speed], np.float32))}
        if durations is not None:
            if not self.has_durations_in:
                raise ModelError(f"{self.path}: graph has no 'durations' input to feed")
            feeds[DURATIONS] = np.asarray(durations, np.int64).reshape(-1)
        elif self.has_durations_in:
            feeds[DURATIONS] = np.zeros(0, np.int64)  # the pass's contract: empty = use the predicted ones
        names = [self._audio] + ([DURATIONS] if self.has_durations_out else [])
        out = self.session.run(names, feeds)
        audio = np.asarray(out[0], np.float32).reshape(-1)
        dur = np.asarray(out[1], np.int64).reshape(-1) if self.has_durations_out else None
        if dur is not None and dur.size == 0:  # an accept-input graph echoes what was fed
            dur = None
        return audio, dur
