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

from kopt.core.contract import test_tokens
from kopt.core.errors import KoptError, ModelError
from kopt.core.kokoro import KokoroIO, open_session, style_of

# Fixed phoneme strings (Kokoro vocabulary): short, medium (the contract's sentence), long.
SEQUENCES = (
    "hˈaɪ ðˈɛɹ.",
    None,  # the contract's test sentence
    "ðə kwˈɪk bɹˈaʊn fˈɑks dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑɡ. ʃiː sˈɛlz sˈiːʃɛlz baɪ ðə sˈiːʃɔːɹ.",
)


class EquivalenceError(KoptError):
    """A pass that must keep the maths changed the model's output beyond its tolerance."""


def token_sequences(vocab: dict[str, int] | None = None) -> list[np.ndarray]:
    from kopt.core.vocab import default_vocab

    v = vocab or default_vocab()
    out = []
    for s in SEQUENCES:
        if s is None:
            out.append(test_tokens(v))
        else:
            out.append(np.array([0, *[v[c] for c in s if c in v], 0], np.int64))
    return out


def session(path: str | Path, threads: int = 1, optimize: bool | str = False):
    """A CPU session; ``optimize``: False (ORT_DISABLE_ALL), True (ORT's default, all) or a level name."""
    return open_session(path, threads, optimize)


def model_io(sess, path: str | Path = "<model>") -> KokoroIO:
    return KokoroIO.of(sess, path)


def fit(tokens: np.ndarray, length: int | None) -> np.ndarray:
    """Cut a padded sequence [0, ids..., 0] to at most ``length`` tokens, keeping both boundary pads."""
    if length is None or tokens.size <= length:
        return tokens
    return np.concatenate([tokens[: length - 1], [0]]).astype(np.int64)


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
        style = style_of(style_pack, t.size - 2)
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
