"""Spectral distances (numpy/scipy): log-mel distance, multi-resolution STFT distance and
mel-cepstral distortion; plus the mel filterbank and power mel spectrogram they share (librosa's
conventions: Slaney mel scale and area normalisation, centred frames, periodic Hann window).

Natural (unaligned) audio is compared along a dynamic-time-warping path over frames for the
log-mel distance and MCD; MR-STFT is only meaningful on aligned audio and is cut to the shorter
length otherwise.
"""

from __future__ import annotations

import functools

import numpy as np

from kopt.quality.registry import MetricError, metric


def _hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) Slaney-style mel filters (librosa.filters.mel's defaults)."""
    fmax = sr / 2 if fmax is None else fmax
    freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0, np.minimum(lower, upper))
    w *= (2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels]))[:, None]
    return w


def stft_mag(x: np.ndarray, n_fft: int, hop: int, win: int | None = None) -> np.ndarray:
    """(frames, 1 + n_fft // 2) magnitudes; centred frames (zero padding), periodic Hann window."""
    from scipy.signal import get_window

    win = n_fft if win is None else win
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    x = np.pad(x, n_fft // 2)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    w = np.zeros(n_fft)
    off = (n_fft - win) // 2
    w[off: off + win] = get_window("hann", win, fftbins=True)
    n_frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    return np.abs(np.fft.rfft(x[idx] * w, axis=1))


def mel_power(x: np.ndarray, sr: int, n_fft: int = 1024, hop: int = 240, n_mels: int = 80) -> np.ndarray:
    """(frames, n_mels) mel power spectrogram."""
    s = stft_mag(x, n_fft, hop) ** 2
    return s @ mel_filterbank(sr, n_fft, n_mels).T


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame index pairs of the minimum-cost DTW path between (n, d) and (m, d) feature sequences
    (Euclidean frame cost; steps (1,0), (0,1), (1,1)). Each row is solved in closed form with a
    running minimum, so it costs O(n*m) numpy work, not a Python double loop."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    cost = np.sqrt(np.maximum(sq, 0.0))
    n, m = cost.shape
    acc = np.empty((n, m))
    acc[0] = np.cumsum(cost[0])
    for i in range(1, n):
        prev = acc[i - 1]
        best_from_above = np.minimum(prev, np.concatenate(([np.inf], prev[:-1])))  # (i-1,j) or (i-1,j-1)
        c = cost[i]
        s = np.cumsum(c)
        s_prev = np.concatenate(([0.0], s[:-1]))
        # acc[i, j] = min_k<=j (best_from_above[k] + sum c[k..j]) = s[j] + min_k<=j (best[k] - s_prev[k])
        acc[i] = s + np.minimum.accumulate(best_from_above - s_prev)
    i, j = n - 1, m - 1
    pi, pj = [i], [j]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            k = int(np.argmin((acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])))
            i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
        pi.append(i)
        pj.append(j)
    return np.array(pi[::-1]), np.array(pj[::-1])


def _pair_frames(fa: np.ndarray, fb: np.ndarray, aligned: bool) -> tuple[np.ndarray, np.ndarray]:
    if aligned:
        n = min(len(fa), len(fb))
        return fa[:n], fb[:n]
    ia, ib = dtw_path(fa, fb)
    return fa[ia], fb[ib]


def _check(ref: np.ndarray, deg: np.ndarray) -> None:
    if np.size(ref) == 0 or np.size(deg) == 0:
        raise MetricError("empty audio")


@metric("log_mel", "intrusive", ("log_mel_db",), "numpy/scipy",
        "Mean absolute log-mel difference in dB (80 mels, 1024-point FFT, 10 ms hop); DTW-paired frames on "
        "natural audio")
def log_mel_distance(ref: np.ndarray, deg: np.ndarray, sr: int, aligned: bool = True) -> dict[str, float]:
    _check(ref, deg)
    hop = sr // 100
    a = 10 * np.log10(np.maximum(mel_power(ref, sr, hop=hop), 1e-10))
    b = 10 * np.log10(np.maximum(mel_power(deg, sr, hop=hop), 1e-10))
    floor = max(a.max(), b.max()) - 80.0  # ignore differences far below the loudest bin
    a, b = np.maximum(a, floor), np.maximum(b, floor)
    a, b = _pair_frames(a, b, aligned)
    return {"log_mel_db": float(np.mean(np.abs(a - b)))}


MRSTFT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))  # (fft, hop, window) at 24 kHz


@metric("mrstft", "intrusive", ("mrstft", "mrstft_sc", "mrstft_logmag"), "numpy/scipy",
        "Multi-resolution STFT distance (spectral convergence + mean |log magnitude| difference, averaged "
        "over 3 resolutions); 0 for identical audio; meaningful on aligned audio")
def mrstft_distance(ref: np.ndarray, deg: np.ndarray, sr: int, aligned: bool = True) -> dict[str, float]:
    _check(ref, deg)
    n = min(len(ref), len(deg))
    r, d = np.asarray(ref, np.float64)[:n], np.asarray(deg, np.float64)[:n]
    sc, mag = [], []
    for fft, hop, win in MRSTFT_RESOLUTIONS:
        a = np.maximum(stft_mag(r, fft, hop, win), 1e-7)
        b = np.maximum(stft_mag(d, fft, hop, win), 1e-7)
        sc.append(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12))
        mag.append(np.mean(np.abs(np.log(a) - np.log(b))))
    return {"mrstft": float(np.mean(sc) + np.mean(mag)), "mrstft_sc": float(np.mean(sc)),
            "mrstft_logmag": float(np.mean(mag))}


MCD_COEFFS = 24


def mel_cepstrum(x: np.ndarray, sr: int, n_coeffs: int = MCD_COEFFS, floor: float | None = None) -> np.ndarray:
    """(frames, n_coeffs) mel cepstra c1..cN: DCT-II (orthonormal) of the log mel amplitude spectrum
    (80 mels, 10 ms hop); c0 (energy) left out. Mel power below ``floor`` (default: 80 dB under
    the signal's peak) is raised to it, so silence compares as silence, not as -100 dB noise."""
    from scipy.fft import dct

    p = mel_power(x, sr, hop=sr // 100)
    floor = max(float(p.max()), 1e-20) * 1e-8 if floor is None else floor
    logamp = 0.5 * np.log(np.maximum(p, floor))
    return dct(logamp, type=2, norm="ortho", axis=1)[:, 1: n_coeffs + 1]


@metric("mcd", "intrusive", ("mcd_db",), "numpy/scipy",
        "Mel-cepstral distortion in dB over c1..c24 of an MFCC-style mel cepstrum, on the reference's speech "
        "frames (within 60 dB of its loudest); DTW-paired frames on natural audio")
def mcd(ref: np.ndarray, deg: np.ndarray, sr: int, aligned: bool = True) -> dict[str, float]:
    _check(ref, deg)
    hop = sr // 100
    pr, pd = mel_power(ref, sr, hop=hop), mel_power(deg, sr, hop=hop)
    floor = max(float(pr.max()), float(pd.max()), 1e-20) * 1e-8  # 80 dB under the louder signal's peak
    ca, cb = mel_cepstrum(ref, sr, floor=floor), mel_cepstrum(deg, sr, floor=floor)
    if aligned:
        n = min(len(ca), len(cb))
        ia = ib = np.arange(n)
    else:
        ia, ib = dtw_path(ca, cb)
    energy = pr.sum(1)[ia]
    speech = energy > energy.max() * 1e-6
    if not np.any(speech):
        raise MetricError("reference has no speech frames")
    k = 10.0 / np.log(10.0) * np.sqrt(2.0)
    d = k * np.sqrt(((ca[ia] - cb[ib]) ** 2).sum(1))
    return {"mcd_db": float(np.mean(d[speech]))}
