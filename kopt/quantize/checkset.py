"""Texts a quantized model must speak, and the guard that rejects one that cannot.

The check set (``kopt/data/calib/checkset.tsv``) holds a short, a medium and a long passage, held
out from calibration, already in Kokoro phonemes. Each is paired with a voice style row chosen the
way Kokoro chooses it (row = number of phonemes) so runs are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from kopt.core.contract import STYLE_DIM, default_style
from kokoro_runtime.errors import first_line
from kopt.core.errors import KoptError

CHECKSET_FILE = "checkset.tsv"


@dataclass(frozen=True)
class Utterance:
    name: str
    tokens: np.ndarray  # int64 [seq], padded with 0 at both ends
    style: np.ndarray  # float32 [256]
    speed: float = 1.0
    voice: str = ""


def _data_text(name: str) -> str:
    return (resources.files("kopt") / "data" / "calib" / name).read_text(encoding="utf-8")


def tokenize(phonemes: str, vocab: Mapping[str, int] | None = None) -> np.ndarray:
    from kopt.source.vocab import default_vocab

    v = vocab or default_vocab()
    ids = [v[c] for c in phonemes if c in v]
    return np.array([0, *ids, 0], dtype=np.int64)


def style_for(voice: np.ndarray | None, n_phonemes: int) -> np.ndarray:
    if voice is None:
        return default_style()
    v = np.asarray(voice, np.float32).reshape(-1, STYLE_DIM)
    return v[min(max(n_phonemes, 0), len(v) - 1)].copy()


def check_set(voices: Mapping[str, np.ndarray] | None = None, names: Sequence[str] | None = None,
              max_tokens: int | None = None) -> list[Utterance]:
    """The check-set utterances (optionally only ``names``, or cut to ``max_tokens`` tokens),
    spoken by the first voice (sorted by name) or by a fixed random style when no voices are given."""
    voice_name, voice = (sorted(voices.items())[0] if voices else ("", None))
    out = []
    for line in _data_text(CHECKSET_FILE).splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _text, phon = line.split("\t")
        if names is not None and name not in names:
            continue
        tok = tokenize(phon)
        if max_tokens is not None and len(tok) > max_tokens:
            tok = np.concatenate([tok[: max_tokens - 1], [0]]).astype(np.int64)
        out.append(Utterance(name, tok, style_for(voice, len(tok) - 2), 1.0, voice_name))
    return out


def session(path: str | Path, threads: int = 1, disable_opt: bool = False, providers: Sequence[str] = ("CPUExecutionProvider",)):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if disable_opt:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=list(providers))


def feeds_for(sess: Any, utt: Utterance, extra: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    names = {i.name: i for i in sess.get_inputs()}
    tok = "tokens" if "tokens" in names else "input_ids"
    spd_int = "int32" in names["speed"].type
    f = {tok: utt.tokens.reshape(1, -1).astype(np.int64),
         "style": utt.style.reshape(1, STYLE_DIM).astype(np.float32),
         "speed": np.array([int(round(utt.speed))], np.int32) if spd_int else np.array([utt.speed], np.float32)}
    if "durations" in names:  # durations-instrumented graph: empty = its own predictions
        f["durations"] = np.zeros(0, np.int64)
    for k, v in (extra or {}).items():
        if k in names:
            f[k] = v
    return f


def speak(sess: Any, utt: Utterance, extra: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Run one utterance; returns every output by name (audio first in the model's order)."""
    outs = sess.run(None, feeds_for(sess, utt, extra))
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
