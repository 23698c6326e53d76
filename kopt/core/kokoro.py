"""Running Kokoro from kopt: onnxruntime sessions and feeds through the runtime's own code.

How to feed Kokoro (token padding, the style row, input dtypes, the optional ``durations`` input) is
written once, in ``kokoro_runtime.feed``; how to open a session (threads, optimization level, .ort
loading, no silent provider fallback) once, in ``kokoro_runtime.session``. This module adds only
what kopt needs on top, and turns the runtime's errors into kopt's (one line, exit 1):

- ``options`` / ``open_session``: the runtime's factory with kopt's level names and ModelError;
- ``KokoroIO``: the runtime's ``Signature`` plus the fixed token length of a bind-shapes bucket;
- ``style_of``: the runtime's style-row rule on a voice pack of any layout (or the probe style).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kokoro_runtime.errors import KokoroError, first_line
from kokoro_runtime.feed import DURATIONS, MAX_TOKENS, STYLE_DIM, TOKEN_NAMES, Signature, style_row
from kokoro_runtime.session import make_session, session_options
from kopt.core.errors import KoptError, ModelError

__all__ = ["DURATIONS", "MAX_TOKENS", "STYLE_DIM", "TOKEN_NAMES", "KokoroIO", "first_line", "open_session",
           "options", "style_of"]

# kopt's names for ORT's optimization levels (pass configs and records use them) -> the runtime's
LEVELS = {"disable": "disabled", "basic": "basic", "extended": "extended", "all": "all"}


def _level(optimize: bool | str) -> bool | str:
    if isinstance(optimize, bool):
        return optimize
    if optimize not in LEVELS:
        raise KoptError(f"optimization level {optimize!r}: use one of {', '.join(LEVELS)}")
    return LEVELS[optimize]


def options(threads: int = 1, optimize: bool | str = True, **kw: Any) -> Any:
    """SessionOptions from the runtime's one factory; ``optimize``: True (all), False (none) or a
    level name (disable, basic, extended, all); ``kw``: ort_format, profile_prefix, config."""
    try:
        return session_options(threads, _level(optimize), **kw)
    except KokoroError as e:
        raise KoptError(str(e)) from e


def open_session(path: str | Path, threads: int = 1, optimize: bool | str = True,
                 providers: Sequence[Any] = ("CPUExecutionProvider",), fallback: bool = False,
                 opts: Any = None) -> Any:
    """An InferenceSession through the runtime's factory: a model onnxruntime cannot load is a
    ModelError naming the file, a provider it lacks a KoptError (never a silent CPU fallback unless
    ``fallback``)."""
    try:
        return make_session(path, list(providers), threads, _level(optimize), fallback=fallback,
                            options=opts, error=ModelError)
    except KokoroError as e:
        raise KoptError(str(e)) from e


@dataclass(frozen=True)
class KokoroIO:
    """A session's Kokoro signature (the runtime's) and its fixed token length, if it has one."""

    sig: Signature
    token_len: int | None  # a bind-shapes bucket, or None when the token axis is dynamic

    @classmethod
    def of(cls, session: Any, where: str | Path = "<model>") -> "KokoroIO":
        try:
            sig = Signature.of(session, str(where))
        except KokoroError as e:
            raise ModelError(str(e)) from e
        shape = next(i.shape for i in session.get_inputs() if i.name == sig.tokens)
        token_len = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        return cls(sig, token_len)

    @property
    def audio(self) -> str:
        return self.sig.audio

    @property
    def other_inputs(self) -> tuple[str, ...]:
        return self.sig.other_inputs

    def feeds(self, tokens: np.ndarray, style: np.ndarray, speed: float = 1.0,
              durations: Sequence[int] | np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Feeds for one call; ``tokens`` already carries the boundary pads, and is padded with the
        pad token 0 to a bucket's fixed length (ModelError when it does not fit)."""
        tok = np.asarray(tokens, np.int64).reshape(-1)
        if self.token_len is not None:
            if tok.size > self.token_len:
                raise ModelError(f"{tok.size} tokens do not fit the model's fixed length {self.token_len}")
            tok = np.pad(tok, (0, self.token_len - tok.size))
        try:
            return self.sig.feeds(tok, style, speed, durations)
        except KokoroError as e:
            raise ModelError(str(e)) from e


def style_of(pack: np.ndarray | None, n_phonemes: int) -> np.ndarray:
    """The style row for ``n_phonemes`` phoneme tokens (pads excluded) as float32 [256], by the
    runtime's rule, from a pack of any layout ([510, 256], [510, 1, 256], flat); the probe style
    (kopt.core.contract.default_style) when there is no pack."""
    if pack is None:
        from kopt.core.contract import default_style

        return default_style()
    return style_row(np.asarray(pack, np.float32).reshape(-1, STYLE_DIM), n_phonemes).reshape(STYLE_DIM)
