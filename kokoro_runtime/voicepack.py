"""Voice packs as the runtime reads them: an NPZ of name -> (510, 1, 256) float32 style rows."""

from __future__ import annotations

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


def resolve(voices: dict[str, np.ndarray], voice: "str | np.ndarray") -> np.ndarray:
    """A voice name, a blend spec ``"a:0.7,b:0.3"``, or a (510,1,256) array."""
    if not isinstance(voice, str):
        return check_voice("<array>", voice, "voice argument")
    if voice in voices:
        return voices[voice]
    if ":" not in voice and "," not in voice:
        raise VoiceNotFound(f"unknown voice {voice!r}; this bundle has: {', '.join(sorted(voices))}")
    parts = []
    for item in filter(None, (s.strip() for s in voice.split(","))):
        name, _, w = item.partition(":")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise VoiceNotFound(f"voice blend {voice!r}: weight {w!r} is not a number") from None
        if name not in voices:
            raise VoiceNotFound(f"voice blend {voice!r}: unknown voice {name!r}; this bundle has: "
                                f"{', '.join(sorted(voices))}")
        parts.append((name, weight))
    total = sum(w for _, w in parts)
    if total <= 0 or any(w < 0 for _, w in parts):
        raise VoiceNotFound(f"voice blend {voice!r}: weights must be non-negative and sum above zero")
    out = sum((w / total) * voices[n].astype(np.float64) for n, w in parts)
    return np.asarray(out, np.float32)
