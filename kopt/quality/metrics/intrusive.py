"""PESQ wide-band (``pesq``, ITU-T P.862.2 at 16 kHz) and STOI (``pystoi``)."""

from __future__ import annotations

import numpy as np

from kopt.quality.registry import MetricError, metric

PESQ_RATE = 16000


def to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """Resample to 16 kHz with scipy's polyphase filter (24 kHz -> 16 kHz is 2/3)."""
    from math import gcd

    from scipy.signal import resample_poly

    a = np.asarray(audio, dtype=np.float64).reshape(-1)
    if sr == PESQ_RATE:
        return a
    g = gcd(PESQ_RATE, sr)
    return resample_poly(a, PESQ_RATE // g, sr // g)


def _same_length(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(ref), len(deg))
    if n == 0:
        raise MetricError("empty audio")
    return ref[:n], deg[:n]


@metric("pesq", "intrusive", ("pesq_wb",), "pesq (ITU-T P.862.2 wide-band)",
        "PESQ wide-band MOS-LQO at 16 kHz (1.04..4.64); natural audio is cut to the shorter length, "
        "PESQ aligns time itself")
def pesq_wb(ref: np.ndarray, deg: np.ndarray, sr: int, aligned: bool = True) -> dict[str, float]:
    from pesq import NoUtterancesError, PesqError, pesq

    r, d = _same_length(to_16k(ref, sr), to_16k(deg, sr))
    if np.max(np.abs(r)) < 1e-6 or np.max(np.abs(d)) < 1e-6:
        raise MetricError("PESQ found no utterance in the signal (silent)")
    try:
        return {"pesq_wb": float(pesq(PESQ_RATE, r, d, "wb"))}
    except NoUtterancesError:
        raise MetricError("PESQ found no utterance in the signal") from None
    except PesqError as e:
        raise MetricError(f"PESQ failed: {type(e).__name__}") from None


@metric("stoi", "intrusive", ("stoi", "estoi"), "pystoi", "Short-time objective intelligibility (0..1), and extended STOI")
def stoi(ref: np.ndarray, deg: np.ndarray, sr: int, aligned: bool = True) -> dict[str, float]:
    from pystoi import stoi as _stoi

    r, d = _same_length(np.asarray(ref, np.float64).reshape(-1), np.asarray(deg, np.float64).reshape(-1))
    if np.max(np.abs(r)) < 1e-6:
        raise MetricError("reference is silent")
    return {"stoi": float(_stoi(r, d, sr, extended=False)), "estoi": float(_stoi(r, d, sr, extended=True))}
