"""Voice packs as the runtime reads them: an NPZ of name -> (510, 1, 256) float32 style rows."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .errors import BundleError, VoiceNotFound

ROWS, DIM = 510, 256


def check_voice(name: str, arr: np.ndarray, source: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.shape == (ROWS, DIM):
        a = a.reshape(ROWS, 1, DIM)
    if a.shape != (ROWS, 1, DIM) or a.dtype.kind != "f":
        raise BundleError(f"{source}: voice {name!r} has shape {a.shape} {a.dtype}; expected (510, 1, 256) float32")
    if not np.isfinite(a).all():
        raise BundleError(f"{source}: voice {name!r} contains NaN or inf")
    return np.ascontiguousarray(a, np.float32)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: check_voice(k, z[k], str(p)) for k in sorted(z.files)}
    except FileNotFoundError:
        raise BundleError(f"{p}: voice pack not found") from None
    except (OSError, ValueError) as e:
        raise BundleError(f"{p}: not a readable voice NPZ ({type(e).__name__})") from None


_FASTAPI_TERM = re.compile(r"^\s*([^()+\s]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*$")


def parse_blend(voice: str) -> list[tuple[str, float]]:
    """A blend as (name, weight) pairs. Two spellings: the runtime's ``"a:0.7,b:0.3"`` and
    Kokoro-FastAPI's ``"a(2)+b(1)"`` (``"a+b"``: equal weights). A plain name is one pair."""
    if "+" in voice or "(" in voice:
        items = []
        for term in voice.split("+"):
            m = _FASTAPI_TERM.match(term)
            if not m:
                raise VoiceNotFound(f"voice blend {voice!r}: {term.strip()!r} is not NAME or NAME(WEIGHT)")
            items.append((m.group(1), m.group(2) if m.group(2) is not None else ""))
    else:
        items = [(n.strip(), w.strip()) for n, _, w in (s.strip().partition(":") for s in voice.split(",")
                                                         if s.strip())]
    out = []
    for name, w in items:
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise VoiceNotFound(f"voice blend {voice!r}: weight {w!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise VoiceNotFound(f"voice blend {voice!r}: weight {w!r} must be a finite number >= 0")
        out.append((name, weight))
    if not out or sum(w for _, w in out) <= 0:
        raise VoiceNotFound(f"voice blend {voice!r}: weights must sum above zero")
    return out


def canonical(voices: dict[str, np.ndarray], voice: str) -> str:
    """One spelling per distinct voice (names checked, weights normalised): a cache key."""
    if voice in voices:
        return voice
    parts = _checked(voices, voice)
    total = sum(w for _, w in parts)
    return ",".join(f"{n}:{w / total:.6g}" for n, w in sorted(parts))


def _checked(voices: dict[str, np.ndarray], voice: str) -> list[tuple[str, float]]:
    if not any(c in voice for c in ":,+("):
        raise VoiceNotFound(f"unknown voice {voice!r}; this bundle has: {', '.join(sorted(voices))}")
    parts = parse_blend(voice)
    for name, _ in parts:
        if name not in voices:
            raise VoiceNotFound(f"voice blend {voice!r}: unknown voice {name!r}; this bundle has: "
                                f"{', '.join(sorted(voices))}")
    return parts


def resolve(voices: dict[str, np.ndarray], voice: "str | np.ndarray") -> np.ndarray:
    """A voice name, a blend (``"a:0.7,b:0.3"`` or ``"a(2)+b(1)"``), or a (510,1,256) array."""
    if not isinstance(voice, str):
        return check_voice("<array>", voice, "voice argument")
    if voice in voices:
        return voices[voice]
    parts = _checked(voices, voice)
    total = sum(w for _, w in parts)
    out = sum((w / total) * voices[n].astype(np.float64) for n, w in parts)
    return np.asarray(out, np.float32)
