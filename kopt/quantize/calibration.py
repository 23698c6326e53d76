"""Calibration data for static quantization, generated from the corpus kept in the repo.

``kopt/data/calib/sentences.tsv`` holds ordinary English sentences with their Kokoro phonemes,
``sentences-ja.tsv`` Japanese ones (kopt.quantize.sentences reads both). Each calibration sample
pairs one sentence of the spec's languages with a voice (from the base artifact's voices) and a
speed in a range, drawn with a seeded rng, so the same config gives the same samples. A spec of
one language draws exactly as before languages existed (same sentences, voices and speeds).

Memory: onnxruntime's calibrator turns every tensor it watches into a graph output and keeps the
outputs of every sample it has run until the end of ``collect_data`` (gigabytes on Kokoro). The reader below supports ``set_range`` so quantize_static can feed it one
sample at a time (``CalibStridedMinMax=1``): ranges (MinMax) or histograms (Entropy/Percentile)
are merged after each sample and only one sample's tensors are ever held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from kopt.core.errors import KoptError
from kopt.core.kokoro import KokoroIO, style_of
from kopt.quantize.checkset import Utterance, tokenize

SENTENCES_FILE = "sentences.tsv"


def corpus(languages: Sequence[str] = ("en-us",)) -> list[tuple[str, str]]:
    """(text, phonemes) pairs of the calibration corpora of ``languages``, in that order."""
    from kopt.quantize.sentences import calibration_corpus

    return [(s.text, s.phonemes) for lang in languages for s in calibration_corpus(lang).items]


@dataclass(frozen=True)
class CalibSpec:
    sentences: int = 16
    seed: int = 0
    speed_min: float = 0.9
    speed_max: float = 1.2
    max_tokens: int = 96
    languages: tuple[str, ...] = ("en-us",)


def check_sentences(n: int, languages: Sequence[str] = ("en-us",)) -> int:
    """A calibration sentence count the corpus has: the configs' validator (ValueError otherwise)."""
    size = len(corpus(languages))
    if not 1 <= n <= size:
        from kopt.quantize.sentences import CALIBRATION

        files = " + ".join(CALIBRATION.get(lang, lang) for lang in languages)
        raise ValueError(f"{n}: use 1 to {size} (the sentences in kopt/data/calib/{files})")
    return n


def calibration_set(voices: Mapping[str, np.ndarray] | None, spec: CalibSpec) -> list[Utterance]:
    """``spec.sentences`` utterances: sentences, voices and speeds drawn with ``spec.seed``."""
    pairs = corpus(spec.languages)
    try:
        check_sentences(spec.sentences, spec.languages)
    except ValueError as e:
        raise KoptError(f"calib_sentences={e}") from None
    rng = np.random.default_rng(spec.seed)
    order = rng.permutation(len(pairs))[: spec.sentences]
    names = sorted(voices) if voices else [""]
    out = []
    for i, k in enumerate(order):
        text, phon = pairs[int(k)]
        tok = tokenize(phon)
        if len(tok) > spec.max_tokens:
            tok = np.concatenate([tok[: spec.max_tokens - 1], [0]]).astype(np.int64)
        vname = names[int(rng.integers(len(names)))]
        speed = float(np.round(rng.uniform(spec.speed_min, spec.speed_max), 3))
        style = style_of(voices[vname] if voices else None, len(tok) - 2)
        out.append(Utterance(f"calib{i}", tok, style, speed, vname))
    return out


class KokoroCalibrationReader:
    """onnxruntime CalibrationDataReader over utterances; supports ``set_range`` for strided runs."""

    def __init__(self, utterances: Sequence[Utterance], io: KokoroIO):
        # a graph instrumented by the durations pass gets the empty array: "use your own predictions"
        self._feeds = [io.feeds(u.tokens, u.style, u.speed) for u in utterances]
        self._start, self._end = 0, len(self._feeds)
        self._i = 0

    def get_next(self):
        if self._start + self._i >= self._end:
            return None
        f = self._feeds[self._start + self._i]
        self._i += 1
        return f

    def __len__(self) -> int:
        return len(self._feeds)

    def __iter__(self):
        return self

    def __next__(self):
        f = self.get_next()
        if f is None:
            raise StopIteration
        return f

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start, self._end, self._i = start_index, min(end_index, len(self._feeds)), 0

    def rewind(self) -> None:
        self.set_range(0, len(self._feeds))
