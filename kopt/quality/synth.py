"""Running a model for scoring: audio for given tokens, voice and speed, plus the per-token
durations when the graph exposes them (output ``durations``) and feeding durations in when it
accepts them (input ``durations``), the names the durations instrumentation pass uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kopt.core.errors import ModelError
from kopt.core.kokoro import DURATIONS, KokoroIO, open_session, style_of

__all__ = ["DURATIONS", "Case", "ModelRunner", "style_for"]


@dataclass(frozen=True)
class Case:
    """One scored utterance: token ids with the boundary 0 at both ends, a voice name, a speed and
    the language the tokens are in."""

    id: str
    tokens: tuple[int, ...]
    voice: str
    speed: float = 1.0
    language: str = "en-us"


def style_for(voices: dict[str, np.ndarray], case: Case) -> np.ndarray:
    """Kokoro's rule: the style row is the number of phoneme tokens (without the two pads)."""
    if case.voice not in voices:
        raise ModelError(f"no voice {case.voice!r}; known: {', '.join(sorted(voices))}")
    return style_of(voices[case.voice], len(case.tokens) - 2).reshape(1, -1)


class ModelRunner:
    """One CPU onnxruntime session over a Kokoro graph, optionally instrumented with durations."""

    def __init__(self, path: str | Path, threads: int = 1, providers: list | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads, True, providers or ["CPUExecutionProvider"])
        self.io = KokoroIO.of(self.session, self.path)
        self.has_durations_out = self.io.sig.durations_out == DURATIONS
        self.has_durations_in = self.io.sig.durations_in

    def __call__(self, case: Case, style: np.ndarray,
                 durations: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        if durations is not None and not self.has_durations_in:
            raise ModelError(f"{self.path}: graph has no 'durations' input to feed")
        feeds = self.io.feeds(np.asarray(case.tokens, np.int64), style, case.speed, durations)
        out = self.session.run(self.io.sig.outputs(with_durations=self.has_durations_out), feeds)
        audio = np.asarray(out[0], np.float32).reshape(-1)
        dur = np.asarray(out[1], np.int64).reshape(-1) if self.has_durations_out else None
        if dur is not None and dur.size == 0:  # an accept-input graph echoes what was fed
            dur = None
        return audio, dur
