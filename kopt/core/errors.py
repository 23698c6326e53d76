"""Known errors: the CLI turns each into one line and exit code 1."""

from __future__ import annotations


class KoptError(Exception):
    """An error whose message is meant for the user: one line naming the file or field and what to do."""

    exit_code = 1


class ModelError(KoptError):
    """A model file is unreadable, not ONNX, or not a Kokoro graph."""


class VoiceError(KoptError):
    """A voice file or voice name is wrong."""


class RecipeError(KoptError):
    """A recipe file is malformed."""


class StoreError(KoptError):
    """The artifact store is inconsistent."""
