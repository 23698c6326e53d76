"""Errors the runtime raises; each message is one line that names the file, word or voice."""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Base class: a problem the user can fix (bad bundle, unknown voice, text the runtime cannot speak)."""


class BundleError(RuntimeFailure):
    """The bundle directory is missing a file, a file does not match the manifest, or it is malformed."""


class VoiceNotFound(RuntimeFailure):
    """The voice name is not in the bundle."""


class G2PUnavailable(RuntimeFailure):
    """Text holds words the token cache does not know and espeak-ng (the G2P extra) is not installed."""
