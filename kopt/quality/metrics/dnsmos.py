"""Reference-free MOS estimate: Microsoft's DNSMOS (P.835 sig/bak/ovrl and P.808) ONNX models,
as shipped in the ``speechmos`` wheel (``speechmos/dnsmos_models/{sig_bak_ovr,model_v8}.onnx``).

speechmos's own ``dnsmos`` module imports librosa (and with it numba) at import time, so kopt
does not import it: it finds the wheel's files with ``importlib.util.find_spec`` and runs them
with onnxruntime directly, reproducing speechmos's procedure (16 kHz, 9.01 s windows hopped by 1 s,
short clips tiled, the P.835 polynomial calibration, the P.808 model on a 120-band log-mel
spectrogram computed here with numpy in librosa's conventions).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from kopt.quality.metrics.intrusive import to_16k
from kopt.quality.metrics.spectral import mel_filterbank, stft_mag
from kopt.quality.registry import MetricError, metric

SR = 16000
INPUT_LENGTH = 9.01
_P_OVR = np.poly1d([-0.06766283, 1.11546468, 0.04602535])
_P_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_P_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])


def models_dir() -> Path:
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise MetricError("DNSMOS needs the speechmos wheel for its ONNX models: pip install --no-deps speechmos")
    d = Path(list(spec.submodule_search_locations)[0]) / "dnsmos_models"
    for f in ("sig_bak_ovr.onnx", "model_v8.onnx"):
        if not (d / f).is_file():
            raise MetricError(f"{d / f}: DNSMOS model missing from the speechmos wheel; reinstall speechmos")
    return d


@functools.lru_cache(maxsize=1)
def _sessions():
    from kopt.core.kokoro import open_session

    d = models_dir()
    return (open_session(d / "sig_bak_ovr.onnx", threads=1), open_session(d / "model_v8.onnx", threads=1))


def p808_features(seg: np.ndarray) -> np.ndarray:
    """speechmos's ``audio_melspec``: 120 mels, n_fft 321, hop 160, power in dB re max, (x+40)/40."""
    n_fft, hop = 321, 160
    s = stft_mag(seg, n_fft, hop) ** 2
    mel = s @ mel_filterbank(SR, n_fft, 120).T
    db = 10 * np.log10(np.maximum(mel, 1e-10)) - 10 * np.log10(max(float(mel.max()), 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return ((db + 40) / 40).astype(np.float32)


@metric("dnsmos", "reference_free", ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"), "speechmos's DNSMOS ONNX models via onnxruntime",
        "DNSMOS P.835 overall/signal/background and P.808 MOS estimates (1..5), no reference needed")
def dnsmos(audio: np.ndarray, sr: int) -> dict[str, float]:
    a = np.clip(to_16k(audio, sr), -1.0, 1.0)
    if a.size == 0 or np.max(np.abs(a)) < 1e-6:
        raise MetricError("silent audio")
    primary, p808 = _sessions()
    n = int(INPUT_LENGTH * SR)
    while len(a) < n:
        a = np.append(a, a)
    hops = int(np.floor(len(a) / SR) - INPUT_LENGTH) + 1
    sig, bak, ovr, p = [], [], [], []
    for i in range(hops):
        seg = a[i * SR: i * SR + n]
        if len(seg) < n:
            continue
        raw = primary.run(None, {"input_1": seg.astype(np.float32)[None, :]})[0][0]
        feats = p808_features(seg[:-160])[None, :, :]
        p.append(float(p808.run(None, {"input_1": feats})[0][0][0]))
        sig.append(_P_SIG(raw[0]))
        bak.append(_P_BAK(raw[1]))
        ovr.append(_P_OVR(raw[2]))
    return {"dnsmos_ovrl": float(np.mean(ovr)), "dnsmos_sig": float(np.mean(sig)),
            "dnsmos_bak": float(np.mean(bak)), "dnsmos_p808": float(np.mean(p))}
