"""The Kokoro model contract: every model kopt reads or writes must meet it.

Signature: an int64 token input ``tokens`` or ``input_ids`` of shape [1, seq]; a float ``style``
of shape [1, 256]; a ``speed`` of shape [1] (float or int32); one 1-D float output, audio at
24 kHz. Behaviour: the model loads in onnxruntime and speaks a test sentence as finite, non-silent,
unclipped audio of a plausible length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from kokoro_runtime.errors import first_line
from kokoro_runtime.feed import DURATIONS, MAX_TOKENS, STYLE_DIM, TOKEN_NAMES
from kopt.core.errors import ModelError
from kopt.core.model import load_model

SAMPLE_RATE = 24000
__all__ = ["DURATIONS", "MAX_TOKENS", "SAMPLE_RATE", "STYLE_DIM", "TOKEN_NAMES", "Signature", "check_audio",
           "check_model", "default_style", "signature", "test_tokens"]

# "Hello world, this is a test of Kokoro." in Kokoro's phoneme vocabulary (misaki/espeak style),
# padded with the boundary token 0. Fixed so every contract check feeds the same tokens.
TEST_PHONEMES = "həlˈoʊ wˈɜːld, ðɪs ɪz ɐ tˈɛst ʌv kəkˈɔːɹoʊ."

_ONNX_FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}


@dataclass(frozen=True)
class Signature:
    """The signature read from the ONNX file, before any session (the contract's static half).
    Feeding a session is kokoro_runtime.feed's job, through kopt.core.kokoro.KokoroIO."""

    tokens: str
    style: str
    speed: str
    speed_dtype: str  # "float32" or "int32"
    audio: str
    extra_inputs: tuple[str, ...] = ()
    extra_outputs: tuple[str, ...] = ()


def _dims(vi: onnx.ValueInfoProto) -> list:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def signature(model: onnx.ModelProto, path: str | Path = "<model>") -> Signature:
    """The model's Kokoro signature, or a ModelError naming the file and what does not match."""
    g = model.graph
    init_names = {i.name for i in g.initializer}
    inputs = {i.name: i for i in g.input if i.name not in init_names}
    tok = next((n for n in TOKEN_NAMES if n in inputs), None)
    if tok is None:
        raise ModelError(f"{path}: not a Kokoro graph: no token input named 'tokens' or 'input_ids' "
                         f"(inputs are {sorted(inputs)})")
    tt = inputs[tok].type.tensor_type
    if tt.elem_type != onnx.TensorProto.INT64:
        raise ModelError(f"{path}: not a Kokoro graph: input {tok!r} must be int64, "
                         f"got {onnx.TensorProto.DataType.Name(tt.elem_type)}")
    td = _dims(inputs[tok])
    if len(td) != 2 or td[0] not in (1, "?") and not isinstance(td[0], str):
        raise ModelError(f"{path}: not a Kokoro graph: input {tok!r} must have shape [1, seq], got {td}")
    for name in ("style", "speed"):
        if name not in inputs:
            raise ModelError(f"{path}: not a Kokoro graph: missing input {name!r} (inputs are {sorted(inputs)})")
    st = inputs["style"].type.tensor_type
    if st.elem_type not in _ONNX_FLOAT:
        raise ModelError(f"{path}: not a Kokoro graph: input 'style' must be float, "
                         f"got {onnx.TensorProto.DataType.Name(st.elem_type)}")
    sd = _dims(inputs["style"])
    if sd and (len(sd) != 2 or sd[1] not in (STYLE_DIM,) and not isinstance(sd[1], str)):
        raise ModelError(f"{path}: not a Kokoro graph: input 'style' must have shape [1, 256], got {sd}")
    sp = inputs["speed"].type.tensor_type
    if sp.elem_type == onnx.TensorProto.FLOAT:
        sdt = "float32"
    elif sp.elem_type == onnx.TensorProto.INT32:
        sdt = "int32"
    else:
        raise ModelError(f"{path}: not a Kokoro graph: input 'speed' must be float or int32, "
                         f"got {onnx.TensorProto.DataType.Name(sp.elem_type)}")
    extra_in = tuple(n for n in inputs if n not in (tok, "style", "speed"))
    if not g.output:
        raise ModelError(f"{path}: not a Kokoro graph: it has no outputs")
    out = g.output[0]
    ot = out.type.tensor_type
    if ot.elem_type not in _ONNX_FLOAT:
        raise ModelError(f"{path}: not a Kokoro graph: output {out.name!r} must be float audio, "
                         f"got {onnx.TensorProto.DataType.Name(ot.elem_type)}")
    od = _dims(out)
    if od and len(od) != 1:
        raise ModelError(f"{path}: not a Kokoro graph: output {out.name!r} must be 1-D audio, got shape {od}")
    return Signature(tokens=tok, style="style", speed="speed", speed_dtype=sdt, audio=out.name,
                     extra_inputs=extra_in, extra_outputs=tuple(o.name for o in g.output[1:]))


def test_tokens(vocab: dict[str, int] | None = None) -> np.ndarray:
    """Token ids of the fixed test sentence, padded with 0 at both ends."""
    from kopt.core.vocab import default_vocab

    v = vocab or default_vocab()
    ids = [v[c] for c in TEST_PHONEMES if c in v]
    return np.array([0, *ids, 0], dtype=np.int64)


def default_style() -> np.ndarray:
    """The probe style used when no voice is given: row 40 of Kokoro's jf_alpha voice (Apache-2.0),
    shipped as kopt/data/probe_style.npy. A random style makes the real model clip."""
    from importlib import resources

    with (resources.files("kopt") / "data" / "probe_style.npy").open("rb") as f:
        return np.load(f).astype(np.float32).reshape(STYLE_DIM)


@dataclass(frozen=True)
class AudioCheck:
    samples: int
    seconds: float
    rms: float
    peak: float
    clipped_fraction: float


def check_audio(audio: np.ndarray, n_tokens: int, source: str) -> AudioCheck:
    """Guard audio: 1-D, finite, not silent, not clipped, of plausible length. Raises ModelError."""
    a = np.asarray(audio)
    if a.ndim != 1:
        a = a.reshape(-1) if a.size and a.shape[0] == 1 and a.ndim == 2 else a
    if a.ndim != 1:
        raise ModelError(f"{source}: audio output must be 1-D, got shape {list(np.shape(audio))}")
    if a.size == 0:
        raise ModelError(f"{source}: produced empty audio for the test sentence")
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ModelError(f"{source}: produced non-finite audio ({bad} NaN/inf samples of {a.size})")
    a = a.astype(np.float64)
    rms = float(np.sqrt(np.mean(a * a)))
    peak = float(np.max(np.abs(a)))
    if peak < 1e-3 or rms < 1e-4:
        raise ModelError(f"{source}: produced silent audio (peak {peak:.2e}, rms {rms:.2e})")
    clipped = float(np.mean(np.abs(a) >= 0.999))
    if clipped > 0.01:
        raise ModelError(f"{source}: produced clipped audio ({clipped:.1%} of samples at full scale)")
    max_samples = max(n_tokens, 1) * SAMPLE_RATE  # more than 1 s per token is a blow-up
    if a.size > max_samples:
        raise ModelError(f"{source}: produced {a.size / SAMPLE_RATE:.1f} s of audio for {n_tokens} tokens (length blow-up)")
    return AudioCheck(int(a.size), a.size / SAMPLE_RATE, rms, peak, clipped)


@dataclass(frozen=True)
class ContractReport:
    path: str
    signature: Signature
    audio: AudioCheck
    providers: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"path": self.path, "signature": asdict(self.signature), "audio": asdict(self.audio),
                "providers": list(self.providers)}


def check_model(path: str | Path, style: np.ndarray | None = None, tokens: np.ndarray | None = None,
                providers: tuple[str, ...] = ("CPUExecutionProvider",), threads: int = 0,
                label: str | None = None) -> ContractReport:
    """Run the full contract on a model file; raises ModelError naming the file (or ``label``,
    the name the user knows it by) on any failure."""
    p = Path(path)
    name = label or str(p)
    try:
        model = load_model(p, load_external_data=False)
    except ModelError as e:
        raise ModelError(str(e).replace(str(p), name, 1)) from None
    sig = signature(model, name)
    del model
    from kopt.core.kokoro import KokoroIO, open_session

    try:
        sess = open_session(p, threads, True, providers)
    except ModelError as e:
        raise ModelError(str(e).replace(str(p), name, 1)) from e
    io_ = KokoroIO.of(sess, name)
    if io_.other_inputs:
        raise ModelError(f"{name}: not a Kokoro graph: unexpected required input {io_.other_inputs[0]!r}")
    tok = test_tokens() if tokens is None else np.asarray(tokens, dtype=np.int64)
    sty = default_style() if style is None else np.asarray(style, np.float32).reshape(-1)[:STYLE_DIM]
    try:  # the durations pass's input gets the empty array: "use your own predictions"
        audio = sess.run([io_.audio], io_.feeds(tok, sty, 1.0))[0]
    except Exception as e:  # onnxruntime's own exception types
        raise ModelError(f"{name}: inference failed on the test sentence: {first_line(e)}") from e
    check = check_audio(np.squeeze(audio) if np.ndim(audio) > 1 else audio, len(tok), name)
    return ContractReport(str(p), sig, check, tuple(sess.get_providers()))
