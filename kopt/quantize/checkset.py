"""Texts a quantized model must speak, and the guard that rejects one that cannot.

The check sets (``kopt/data/calib/checkset.tsv`` for English, ``checkset-ja.tsv`` for Japanese; read
by kopt.quantize.sentences) hold short, medium and long passages, held out from calibration, already
in Kokoro phonemes. Each is spoken by a voice of its language (the first of the pack by name whose
language it is, else the pack's first voice) with the style row chosen the way Kokoro chooses it
(row = number of phonemes), so runs are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from kopt.core.errors import KoptError
from kopt.core.kokoro import KokoroIO, first_line, open_session, style_of

CHECKSET_FILE = "checkset.tsv"  # English; every language's file: kopt.quantize.sentences.CHECKSETS


@dataclass(frozen=True)
class Utterance:
    name: str
    tokens: np.ndarray  # int64 [seq], padded with 0 at both ends
    style: np.ndarray  # float32 [256]
    speed: float = 1.0
    voice: str = ""
    language: str = "en-us"


def data_text(name: str) -> str:
    """A file of kopt's calibration data folder (kopt/data/calib/), as text."""
    return (resources.files("kopt") / "data" / "calib" / name).read_text(encoding="utf-8")


def tokenize(phonemes: str, vocab: Mapping[str, int] | None = None) -> np.ndarray:
    from kopt.core.vocab import default_vocab

    v = vocab or default_vocab()
    ids = [v[c] for c in phonemes if c in v]
    return np.array([0, *ids, 0], dtype=np.int64)


def voice_for(voices: Mapping[str, np.ndarray] | None, language: str) -> str:
    """The voice that speaks ``language``'s sentences: the first (by name) whose language it is by
    Kokoro's naming convention, else the pack's first voice ("" without a pack)."""
    from kokoro_runtime import lang as rlang

    names = sorted(voices or {})
    want = rlang.get(language).code
    return next((n for n in names if (rlang.of_voice_name(n) or rlang.get(rlang.DEFAULT_LANGUAGE)).code == want),
                names[0] if names else "")


def check_set(voices: Mapping[str, np.ndarray] | None = None, names: Sequence[str] | None = None,
              max_tokens: int | None = None, language: str = "en-us") -> list[Utterance]:
    """The check-set utterances of ``language`` (optionally only the ids or categories in ``names``,
    or cut to ``max_tokens`` tokens), spoken by ``voice_for(voices, language)``, or by a fixed random
    style when no voices are given."""
    from kopt.quantize.sentences import checkset

    voice_name = voice_for(voices, language)
    voice = voices[voice_name] if voices else None
    out = []
    for s in checkset(language).select(names):
        tok = np.array(s.tokens(), dtype=np.int64)
        if max_tokens is not None and len(tok) > max_tokens:
            tok = np.concatenate([tok[: max_tokens - 1], [0]]).astype(np.int64)
        out.append(Utterance(s.id, tok, style_of(voice, len(tok) - 2), 1.0, voice_name, s.language))
    return out


def session(path: str | Path, threads: int = 1, disable_opt: bool = False,
            providers: Sequence[str] = ("CPUExecutionProvider",)):
    return open_session(path, threads, not disable_opt, providers)


def speak(sess: Any, utt: Utterance, extra: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Run one utterance; returns every output by name (audio first in the model's order)."""
    feeds = KokoroIO.of(sess).feeds(utt.tokens, utt.style, utt.speed)
    names = {i.name for i in sess.get_inputs()}
    feeds.update({k: v for k, v in (extra or {}).items() if k in names})
    outs = sess.run(None, feeds)
    return {o.name: v for o, v in zip(sess.get_outputs(), outs)}


def guard_finite(path: str | Path, utterances: Sequence[Utterance], threads: int = 1) -> dict[str, Any]:
    """Run every utterance; raise KoptError naming the first that gives non-finite or empty audio.
    Returns per-utterance sample counts and peaks for the pass report."""
    sess = session(path, threads=threads)
    audio_name = sess.get_outputs()[0].name
    report = {}
    for u in utterances:
        try:
            a = np.asarray(speak(sess, u)[audio_name]).reshape(-1)
        except Exception as e:  # ORT runtime failure is a rejection too
            raise KoptError(f"{path}: inference failed on the {u.name} check sentence "
                            f"({len(u.tokens)} tokens): {first_line(e, 200)}") from e
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if a.size == 0 or bad:
            raise KoptError(f"{path}: rejected: non-finite audio on the {u.name} check sentence "
                            f"({len(u.tokens)} tokens): {bad} NaN/inf of {a.size} samples")
        report[u.name] = {"tokens": int(len(u.tokens)), "samples": int(a.size),
                          "peak": round(float(np.max(np.abs(a))) if a.size else 0.0, 4)}
    return report
