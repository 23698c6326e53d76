"""Errors the runtime raises; each message is one line that names the file, field, word or voice.

Everything the public API raises on bad input or a bad bundle is a ``KokoroError``: callers catch
one class. onnxruntime's own exceptions never escape; they are wrapped with their first line.
"""

from __future__ import annotations


class KokoroError(Exception):
    """Base class: a problem the caller can fix (bad bundle, unknown voice, bad input, text the
    runtime cannot speak, a provider this machine lacks) or a failed model call."""


RuntimeFailure = KokoroError  # the name used before 0.2; kept so old callers still catch everything


class BundleError(KokoroError):
    """The bundle directory is missing a file, a file does not match the manifest, or it is malformed."""


class VoiceNotFound(KokoroError):
    """The voice name (or a name in a blend) is not in the bundle, or a blend is malformed."""


class G2PUnavailable(KokoroError):
    """Text holds words the token cache does not know and espeak-ng (the G2P extra) is not installed."""


class InvalidInput(KokoroError):
    """An argument is out of range or of the wrong kind (speed, text, token ids, threads...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ProviderUnavailable(KokoroError):
    """An execution provider was asked for that this onnxruntime build or machine cannot give."""


class SynthesisError(KokoroError):
    """onnxruntime failed while running the model (out of memory, a kernel error, a cancelled run)."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message, cut to ``limit`` characters (its type's
    name when it has no message): what a one-line error shows of a library's exception."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
