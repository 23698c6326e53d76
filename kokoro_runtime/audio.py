"""Audio helpers: joins between chunks, 16-bit PCM and WAV output (stdlib ``wave``)."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

SAMPLE_RATE = 24000


@dataclass(frozen=True)
class JoinPolicy:
    """How chunks meet. Kokoro pads every call with ~0.25 s of silence before and ~0.7 s after the
    speech; left alone, a chunk boundary inside a sentence would be a one-second hole. So each
    chunk is trimmed to its speech (samples above ``trim_db`` below its peak) plus ``keep_s``,
    faded in and out over ``fade_s`` (raised cosine: no click), and followed by ``clause_gap_s``
    or ``sentence_gap_s`` of silence (none after the last chunk)."""
    trim_db: float = 45.0
    keep_s: float = 0.05
    fade_s: float = 0.005
    clause_gap_s: float = 0.1
    sentence_gap_s: float = 0.3


def speech_bounds(audio: np.ndarray, trim_db: float, keep_s: float,
                  sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """[start, end) of the samples within ``trim_db`` of the peak, widened by ``keep_s``."""
    if audio.size == 0:
        return 0, 0
    mag = np.abs(audio)
    peak = float(mag.max())
    if peak <= 0:
        return 0, 0
    loud = np.flatnonzero(mag >= peak * 10 ** (-trim_db / 20))
    keep = int(round(keep_s * sample_rate))
    return max(0, int(loud[0]) - keep), min(audio.size, int(loud[-1]) + 1 + keep)


def trim_silence(audio: np.ndarray, trim_db: float, keep_s: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    start, end = speech_bounds(audio, trim_db, keep_s, sample_rate)
    return audio[start:end]


def fade_edges(audio: np.ndarray, fade_s: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    n = min(int(round(fade_s * sample_rate)), len(audio) // 2)
    if n <= 0:
        return audio
    out = audio.copy()
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float64))).astype(np.float32)
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out


def silence(seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    return np.zeros(int(round(seconds * sample_rate)), np.float32)


def to_pcm16(audio: np.ndarray) -> bytes:
    a = np.clip(np.nan_to_num(np.asarray(audio, np.float32)), -1.0, 1.0)
    return np.round(a * 32767.0).astype("<i2").tobytes()


def write_wav(path: str | Path | BinaryIO, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    w = wave.open(str(path) if isinstance(path, (str, Path)) else path, "wb")
    with w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(to_pcm16(audio))
