"""Response formats: raw PCM and WAV by the stdlib, FLAC, MP3 and Opus through soundfile (libsndfile).

Each encoder takes 16-bit mono chunks as they are rendered and returns the bytes to send now.
``pcm``, ``wav`` and ``opus`` (Ogg pages) go out chunk by chunk. libsndfile rewrites the head of a
FLAC or MP3 file when it closes (FLAC's sample count, MP3's Xing frame), so a client given the
bytes as they were first written cannot decode them: those two are sent whole, once rendered.
"""

from __future__ import annotations

import struct

import numpy as np

from ..audio import SAMPLE_RATE

FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")  # OpenAI's list; aac is refused with the reason
CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "flac": "audio/flac", "wav": "audio/wav",
                 "pcm": "audio/pcm", "aac": "audio/aac"}
_SOUNDFILE = {"flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS")}
STREAMS = {"pcm", "wav", "opus"}
UNKNOWN = 0xFFFFFFFF


def unsupported(fmt: str) -> str | None:
    """Why ``fmt`` cannot be served here, or None."""
    if fmt not in FORMATS:
        return f"{fmt!r} is not a format; use one of {', '.join(f for f in FORMATS if f != 'aac')}"
    if fmt == "aac":
        return "aac is not available (libsndfile has no AAC encoder); use mp3, opus, flac, wav or pcm"
    if fmt in _SOUNDFILE:
        try:
            import soundfile as sf
        except ImportError:
            return f"{fmt} needs soundfile (pip install 'kokoro-runtime[serve]'); use wav or pcm"
        major, sub = _SOUNDFILE[fmt]
        if sub not in sf.available_subtypes(major):
            return f"{fmt} is not in this libsndfile ({sf.__libsndfile_version__}); use wav or pcm"
    return None


def wav_header(n_samples: int | None, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A 44-byte PCM WAV header; ``None`` samples (a stream of unknown length) puts 0xFFFFFFFF in
    both sizes, which streaming decoders read as 'until the end'."""
    data = UNKNOWN if n_samples is None else 2 * n_samples
    riff = UNKNOWN if n_samples is None else 36 + data
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate,
            2 * sample_rate, 2, 16) + b"data" + struct.pack("<I", data))


class _Sink:
    """A seekable in-memory file for libsndfile; ``take`` returns what was appended since last time."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.sent = 0

    def write(self, data) -> int:
        b = bytes(data)
        end = self.pos + len(b)
        if end > len(self.buf):
            self.buf.extend(b"\0" * (end - len(self.buf)))
        self.buf[self.pos:end] = b
        self.pos = end
        return len(b)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else len(self.buf) + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        return b""

    def take(self) -> bytes:
        out = bytes(self.buf[self.sent:])
        self.sent = len(self.buf)
        return out


class Encoder:
    """``feed(int16 chunk) -> bytes`` as chunks come, ``close() -> bytes`` at the end."""

    def __init__(self, fmt: str, n_samples: int | None = None, sample_rate: int = SAMPLE_RATE) -> None:
        why = unsupported(fmt)
        if why:
            raise ValueError(why)
        self.fmt = fmt
        self.content_type = CONTENT_TYPES[fmt]
        self._head = wav_header(n_samples, sample_rate) if fmt == "wav" else b""
        self._file = None
        self._held: list[np.ndarray] = []
        if fmt == "opus":
            self._file = self._open(fmt, sample_rate)
        self._rate = sample_rate

    @staticmethod
    def _open(fmt: str, sample_rate: int):
        import soundfile as sf

        major, sub = _SOUNDFILE[fmt]
        sink = _Sink()
        return sink, sf.SoundFile(sink, "w", samplerate=sample_rate, channels=1, format=major, subtype=sub)

    def feed(self, pcm: np.ndarray) -> bytes:
        pcm = np.asarray(pcm, "<i2")
        if self.fmt in ("pcm", "wav"):
            out, self._head = self._head + pcm.tobytes(), b""
            return out
        if self._file is not None:
            sink, f = self._file
            f.write(pcm)
            return sink.take()
        self._held.append(pcm)
        return b""

    def close(self) -> bytes:
        if self.fmt in ("pcm", "wav"):
            out, self._head = self._head, b""
            return out
        if self._file is None:
            self._file = self._open(self.fmt, self._rate)
            self._file[1].write(np.concatenate(self._held) if self._held else np.zeros(0, "<i2"))
        sink, f = self._file
        f.close()
        return sink.take()
