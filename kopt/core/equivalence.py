"""Equivalence check for passes that must not change the maths.

The input and output models run on the same fixed token sequences (CPU provider, graph
optimizations off so ORT's own fusions hide nothing, one fixed voice style, speed 1) and their
audio is compared sample by sample. A pass declares its tolerance (max abs diff of audio); a larger
diff, or audio of a different length, is a violation and fails the pass.

Models with a fixed token length (bind-shapes buckets) get the sequence padded with the pad token 0
to their length; sequences longer than the bucket are cut to fit (the same cut is fed to both
models). Models with a ``durations`` input (the durations pass) get an empty one: "use your own".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kopt.core.contract import STYLE_DIM, TOKEN_NAMES, default_style, test_tokens
from kopt.core.errors import KoptError, ModelError

DURATIONS = "durations"

# Fixed phoneme strings (Kokoro vocabulary): short, medium (the contract's sentence), long.
SEQUENCES = (
    "hˈaɪ ðˈɛɹ.",
    None,  # the contract's test sentence
    "ðə kwˈɪk bɹˈaʊn fˈɑks dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑɡ. ʃiː sˈɛlz sˈiːʃɛlz baɪ ðə sˈiːʃɔːɹ.",
)


class EquivalenceError(KoptError):
    """A pass that must keep the maths changed the model's output beyond its tolerance."""


def token_sequences(vocab: dict[str, int] | None = None) -> list[np.ndarray]:
    from kopt.source.vocab import default_vocab

    v = vocab or default_vocab()
    out = []
    for s in SEQUENCES:
        if s is None:
            out.append(test_tokens(v))
        else:
            out.append(np.array([0, *[v[c] for c in s if c in v], 0], np.int64))
    return out


@dataclass(frozen=True)
class ModelIO:
    """What it takes to feed a Kokoro model, read from an ORT session (works for .onnx and .ort)."""

    tokens: str
    speed_int: bool
    audio: str
    token_len: int | None  # fixed token length (a bucket), or None when dynamic
    durations_input: bool
    other_inputs: tuple[str, ...]

    def feeds(self, tokens: np.ndarray, style: np.ndarray, speed: float = 1.0) -> dict[str, np.ndarray]:
        tok = np.asarray(tokens, np.int64).reshape(-1)
        if self.token_len is not None:
            if tok.size > self.token_len:
                raise ModelError(f"{tok.size} tokens do not fit the model's fixed length {self.token_len}")
            tok = np.pad(tok, (0, self.token_len - tok.size))
        feeds = {self.tokens: tok.reshape(1, -1),
                 "style": np.asarray(style, np.float32).reshape(1, STYLE_DIM),
                 "speed": (np.array([int(round(speed))], np.int32) if self.speed_int
                           else np.array([speed], np.float32))}
        if self.durations_input:
            feeds[DURATIONS] = np.zeros(0, np.int64)
        return feeds


LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}


def session(path: str | Path, threads: int = 1, optimize: bool | str = False):
    """A CPU session; ``optimize``: False (ORT_DISABLE_ALL), True (ORT's default, all) or a level name."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    level = "disable" if optimize is False else "all" if optimize is True else optimize
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:
        reason = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: onnxruntime cannot load it: {reason}") from None


def model_io(sess, path: str | Path = "<model>") -> ModelIO:
    ins = {i.name: i for i in sess.get_inputs()}
    tok = next((n for n in TOKEN_NAMES if n in ins), None)
    if tok is None or "style" not in ins or "speed" not in ins:
        raise ModelError(f"{path}: not a Kokoro graph: inputs are {sorted(ins)}")
    shape = ins[tok].shape
    token_len = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
    other = tuple(n for n in ins if n not in (tok, "style", "speed", DURATIONS))
    return ModelIO(tokens=tok, speed_int="int32" in ins["speed"].type, audio=sess.get_outputs()[0].name,
                   token_len=token_len, durations_input=DURATIONS in ins, other_inputs=other)


def fit(tokens: np.ndarray, length: int | None) -> np.ndarray:
    """Cut a padded sequence [0, ids..., 0] to at most ``length`` tokens, keeping both boundary pads."""
    if length is None or tokens.size <= length:
        return tokens
    return np.concatenate([tokens[: length - 1], [0]]).astype(np.int64)


def style_for(style_pack: np.ndarray | None, n_tokens: int) -> np.ndarray:
    if style_pack is None:
        return default_style()
    pack = np.asarray(style_pack, np.float32).reshape(-1, STYLE_DIM)
    return pack[min(max(n_tokens - 2, 0), len(pack) - 1)]


@dataclass(frozen=True)
class EquivalenceReport:
    tolerance: float
    max_abs_diff: float
    ok: bool
    per_sequence: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    reference_level: str = "disable"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(reference: str | Path, candidate: str | Path, tolerance: float,
            style_pack: np.ndarray | None = None, sequences: list[np.ndarray] | None = None,
            threads: int = 1, reference_level: str = "disable") -> EquivalenceReport:
    """Audio of ``candidate`` against ``reference`` on fixed sequences; max abs diff vs ``tolerance``.

    The candidate always runs with ORT's optimizations off. ``reference_level`` is the level the
    reference runs at: "disable" (the default) for passes that rewrite the graph themselves; a
    pass that bakes ORT's own optimizations in (fuse, ort-format) is compared with its input run
    at that same level, which is what the input computes when a runtime loads it that way."""
    seqs = sequences if sequences is not None else token_sequences()
    ra, ca = session(reference, threads, reference_level), session(candidate, threads)
    rio, cio = model_io(ra, reference), model_io(ca, candidate)
    for io_, p in ((rio, reference), (cio, candidate)):
        if io_.other_inputs:
            raise ModelError(f"{p}: unexpected required input(s) {list(io_.other_inputs)}")
    limit = min(x for x in (rio.token_len, cio.token_len, 10**9) if x is not None)
    worst, rows, reason = 0.0, [], None
    for t in seqs:
        t = fit(t, limit)
        style = style_for(style_pack, t.size)
        a = np.asarray(ra.run([rio.audio], rio.feeds(t, style))[0], np.float64).reshape(-1)
        b = np.asarray(ca.run([cio.audio], cio.feeds(t, style))[0], np.float64).reshape(-1)
        row: dict[str, Any] = {"tokens": int(t.size), "samples_reference": int(a.size),
                               "samples_candidate": int(b.size)}
        if a.size != b.size:
            row["max_abs_diff"] = None
            reason = reason or f"audio length differs on {t.size} tokens: {a.size} vs {b.size} samples"
            worst = float("inf")
        elif not np.all(np.isfinite(b)):
            row["max_abs_diff"] = None
            reason = reason or f"non-finite audio on {t.size} tokens"
            worst = float("inf")
        else:
            d = float(np.max(np.abs(a - b))) if a.size else 0.0
            row["max_abs_diff"] = d
            row["peak_reference"] = float(np.max(np.abs(a))) if a.size else 0.0
            worst = max(worst, d)
        rows.append(row)
    ok = reason is None and worst <= tolerance
    if reason is None and not ok:
        reason = f"max abs audio diff {worst:.3g} exceeds the pass tolerance {tolerance:.3g}"
    return EquivalenceReport(tolerance=tolerance, max_abs_diff=worst, ok=ok, per_sequence=rows, reason=reason,
                             reference_level=reference_level)


def check_equivalence(reference: str | Path, candidate: str | Path, tolerance: float, label: str = "",
                      **kw) -> EquivalenceReport:
    rep = compare(reference, candidate, tolerance, **kw)
    if not rep.ok:
        raise EquivalenceError(f"{label or candidate}: output not equivalent to its input: {rep.reason}")
    return rep
