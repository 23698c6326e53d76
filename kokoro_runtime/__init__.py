"""kokoro_runtime: speak text with a Kokoro-82M bundle using only numpy and onnxruntime.

    from kokoro_runtime import open_bundle
    tts = open_bundle("my-bundle")
    audio = tts.synthesize("Hello there.", voice=tts.voices[0])      # float32, 24 kHz
    for chunk in tts.stream("A long text...", voice=tts.voices[0]):   # first audio fast
        ...

English G2P (espeak-ng) is optional: pip install phonemizer espeakng-loader. Without it the
bundle's token cache speaks text made of the words it holds.

This package is copied verbatim into bundles; it imports nothing outside itself but numpy and
onnxruntime (and phonemizer when installed).
"""

from .audio import SAMPLE_RATE, JoinPolicy, to_pcm16, write_wav
from .bundle import Bundle, open_bundle
from .errors import (BundleError, G2PUnavailable, InvalidInput, KokoroError, ProviderUnavailable, RuntimeFailure,
                     SynthesisError, VoiceNotFound)
from .frontend import MAX_TOKENS, Chunk, ChunkPolicy, FrontEnd
from .lexicon import TokenCache
from .textnorm import normalize
from .synth import Synthesizer

__all__ = [
    "SAMPLE_RATE", "MAX_TOKENS", "Bundle", "open_bundle", "Synthesizer", "Chunk", "ChunkPolicy", "JoinPolicy",
    "FrontEnd", "TokenCache", "normalize", "write_wav", "to_pcm16",
    "KokoroError", "RuntimeFailure", "BundleError", "VoiceNotFound", "G2PUnavailable", "InvalidInput",
    "ProviderUnavailable", "SynthesisError",
]
