"""Known errors: the CLI turns each into one line and exit code 1 (kopt.core.exits.ExitCode.ERROR)."""

from __future__ import annotations

from kopt.core.exits import ExitCode


class KoptError(Exception):
    """An error whose message is meant for the user: one line naming the file or field and what to do."""

    exit_code = int(ExitCode.ERROR)


class ModelError(KoptError):
    """A model file is unreadable, not ONNX, or not a Kokoro graph."""


class VoiceError(KoptError):
    """A voice file or voice name is wrong."""


class RecipeError(KoptError):
    """A recipe file is malformed."""


class StoreError(KoptError):
    """The artifact store is inconsistent."""
