"""`kopt reference`: an fp32 reference graph rebuilt from an int8 one (an fp32 model is its own).

The reference's audio is compared with the int8 model's on the contract's test sentence and the
PESQ-wb between them is recorded (natural audio: the two may differ by a frame of duration)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from kopt.core.base_artifact import PROBE_VOICE_ROW
from kopt.core.codehash import module_code_hash
from kopt.core.contract import check_model
from kopt.core.errors import KoptError
from kopt.core.model import load_model, parameter_count, save_model
from kopt.core.progress import NullProgress
from kopt.core.refs import set_ref
from kopt.core.store import Artifact, ArtifactStore, StepSpec
from kopt.source.dequantize import dequantize
from kopt.source.fetch import load_base_voices

REFERENCE_VERSION = 1

# A ~5 s English sentence in Kokoro phonemes for the int8-vs-fp32 comparison.
COMPARE_PHONEMES = ("ðə kwˈɪk bɹˈaʊn fˈɑks dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑɡ. "
                    "ʃiː sˈɛlz sˈiːʃɛlz baɪ ðə sˈiːʃɔːɹ.")


@dataclass(frozen=True)
class Reference:
    artifact: Artifact
    cached: bool
    same_as_base: bool


def reference(store: ArtifactStore, base: Artifact, progress=None) -> Reference:
    progress = progress or NullProgress()
    precision = base.record.get("extra", {}).get("precision")
    if precision == "fp32":
        set_ref(store, "reference", base.key)
        return Reference(base, True, True)
    if precision == "fp16":
        raise KoptError(f"{base.file('model.onnx')}: an fp16 model cannot serve as the fp32 reference; "
                        "pass the fp32 or int8 export with `kopt fetch --model`")
    model_sha = base.sha256("model.onnx")
    spec = StepSpec("reference", {"version": REFERENCE_VERSION, "method": "dequantize"},
                    {"model": model_sha, "code": module_code_hash(__name__)}, parents=(base.key,))
    with store.lock(spec.key):
        hit = store.get(spec.key)
        if hit is not None:
            set_ref(store, "reference", hit.key)
            return Reference(hit, True, False)
        extra: dict = {"precision": "fp32", "model_sha256_int8": model_sha}
        with store.writing(spec, extra) as tmp:
            with progress.task("dequantizing weights"):
                m = load_model(base.file("model.onnx"))
                fm, rep = dequantize(m, str(base.file("model.onnx")))
                del m
                onnx.checker.check_model(fm)
                out = save_model(fm, tmp / "model.onnx")
                extra["dequantize"] = rep.as_dict()
                extra["parameters"] = parameter_count(fm)
                del fm
            voices = load_base_voices(base)
            style = next(iter(voices.values()))
            with progress.task("contract check"):
                extra["contract"] = check_model(out, style=style[PROBE_VOICE_ROW]).as_dict() | {"path": "model.onnx"}
            with progress.task("comparing with the int8 model"):
                extra["compare_int8"] = compare_audio(base.file("model.onnx"), out, style,
                                                      vocab_path=base.file("vocab.json"))
    art = store.get(spec.key)
    set_ref(store, "reference", art.key)
    return Reference(art, False, False)


def compare_audio(int8_path, fp32_path, style_pack: np.ndarray, vocab_path=None) -> dict:
    """Natural-audio PESQ-wb (16 kHz) of the int8 model against the fp32 one on one sentence."""
    from pesq import pesq
    from scipy.signal import resample_poly

    from kopt.core.kokoro import KokoroIO, open_session, style_of
    from kopt.core.vocab import default_vocab, load_vocab

    vocab = load_vocab(vocab_path) if vocab_path else default_vocab()
    ids = [vocab[c] for c in COMPARE_PHONEMES if c in vocab]
    tokens = np.array([0, *ids, 0], np.int64)
    style = style_of(style_pack, len(ids))
    audio = {}
    for name, path in (("fp32", fp32_path), ("int8", int8_path)):
        sess = open_session(path, threads=0)
        io_ = KokoroIO.of(sess, path)
        audio[name] = np.asarray(sess.run([io_.audio], io_.feeds(tokens, style, 1.0))[0], np.float64).reshape(-1)
    ref, deg = audio["fp32"], audio["int8"]
    n = min(len(ref), len(deg))
    out = {"samples_fp32": int(len(ref)), "samples_int8": int(len(deg)), "tokens": int(len(tokens)),
           "phonemes": COMPARE_PHONEMES}
    try:
        score = float(pesq(16000, resample_poly(ref[:n], 2, 3), resample_poly(deg[:n], 2, 3), "wb"))
        out["pesq_wb_natural"] = round(score, 3)
    except Exception as e:  # pesq refuses audio too short or without speech ("no utterances")
        out["pesq_wb_natural"] = None
        out["pesq_error"] = f"{type(e).__name__}: {e}"
    return out
