"""kokoro_runtime: speak text with a Kokoro-82M bundle using only numpy and onnxruntime.

    from kokoro_runtime import load, open_bundle
    tts = load("my-bundle")                                          # = open_bundle("my-bundle").synthesizer()
    audio = tts.synthesize("Hello there.", voice=tts.voices[0])      # float32, 24 kHz
    for chunk in tts.stream("A long text...", voice=tts.voices[0]):   # first audio fast
        ...

English G2P (espeak-ng) is optional: pip install phonemizer espeakng-loader. Without it the
bundle's token cache speaks text made of the words it holds. The HTTP server and the ``say``
daemon are the ``serve`` extra (Starlette, uvicorn, soundfile, prometheus-client).

This package is copied into bundles; its core imports nothing outside itself but numpy and
onnxruntime (and phonemizer when installed). Names are imported on first use, so
``python -m kokoro_runtime say`` starts without loading numpy or onnxruntime.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

_EXPORTS = {
    "SAMPLE_RATE": "audio", "JoinPolicy": "audio", "to_pcm16": "audio", "write_wav": "audio",
    "Bundle": "bundle", "open_bundle": "bundle", "load": "bundle",
    "KokoroError": "errors", "RuntimeFailure": "errors", "BundleError": "errors", "VoiceNotFound": "errors",
    "G2PUnavailable": "errors", "InvalidInput": "errors", "ProviderUnavailable": "errors",
    "SynthesisError": "errors",
    "MAX_TOKENS": "frontend", "Chunk": "frontend", "ChunkPolicy": "frontend", "FrontEnd": "frontend",
    "TokenCache": "lexicon", "normalize": "textnorm", "Synthesizer": "synth", "Rendered": "synth",
    "Word": "synth", "Signature": "feed",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'kokoro_runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
