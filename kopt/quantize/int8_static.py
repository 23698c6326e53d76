"""int8-static: QDQ with calibrated activation ranges (onnxruntime ``quantize_static``).

Calibration data comes from kopt's own corpus (kopt.quantize.calibration): sentences across the
voices and speeds, seeded. Samples are fed one at a time (``CalibStridedMinMax=1``) so memory stays
at one sample's tensors; ranges can be saved to and reused from a calibration cache (JSON, onnxruntime's
format). Naive full static QDQ is clearly faster on CPU (QLinearConv) but destroys the audio; the
``exclude`` list (node groups by module path, or ``op:TYPE``) says what stays in float.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import onnx
from pydantic import Field, field_validator, model_validator

from kokoro_runtime.errors import first_line
from kopt.core.errors import KoptError
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register
from kopt.quantize import common
from kopt.quantize.calibration import CalibSpec, KokoroCalibrationReader, calibration_set

# Groups where activations span too wide a range for 8 bits: the duration/F0/N predictor (durations
# and pitch), the harmonic source and the STFT/iSTFT tail, the final conv_post.
DEFAULT_EXCLUDE = ("predictor", "generator.source", "generator.istft", "generator.conv_post")


class Int8StaticConfig(PassConfig):
    per_channel: bool = Field(True, description="One weight scale per output channel.")
    activation_type: Literal["QUInt8", "QInt8"] = Field("QUInt8", description="Activation int8 type "
                                                        "(QUInt8 + QInt8 weights is the fast VNNI path).")
    weight_type: Literal["QInt8", "QUInt8"] = Field("QInt8", description="Weight int8 type.")
    reduce_range: bool = Field(False, description="7-bit weights, balanced ones too (int8 kernels on CPUs "
                               "without VNNI, AVX2 only, saturate 16-bit sums at 8 bits).")
    op_types: tuple[str, ...] = Field(("Conv", "ConvTranspose"), description="Op types to quantize. Conv is where "
                                      "the time goes; static int8 MatMul (ALBERT attention) costs quality.")
    include: tuple[str, ...] = Field((), description="Only quantize nodes in these groups/op:TYPE (empty: all).")
    exclude: tuple[str, ...] = Field(DEFAULT_EXCLUDE, description="Node groups or op:TYPE kept in float.")
    calibrate_method: Literal["MinMax", "Entropy", "Percentile"] = Field("MinMax", description="Range method.")
    percentile: float = Field(99.999, description="Percentile for the Percentile method.")
    calib_sentences: int = Field(16, description="Calibration utterances drawn from kopt/data/calib/sentences.tsv.")
    calib_seed: int = Field(0, description="Seed for sentence, voice and speed choice.")
    calib_speed_min: float = Field(0.9, description="Lowest calibration speed.")
    calib_speed_max: float = Field(1.2, description="Highest calibration speed.")
    calib_max_tokens: int = Field(96, description="Cut calibration sentences to this many tokens (bounds memory).")
    balance: bool = Field(True, description="Channel-balanced QDQ (kopt.quantize.balance): per-channel activation "
                          "steps on Conv inputs/outputs, folded into the weights so QLinearConv still runs.")
    calibration_cache: str = Field("", description="JSON file of activation ranges: reused when it exists "
                                   "(must match the method), written otherwise. Empty: calibrate every time.")
    voices: str = Field("", description="Voice pack for calibration (empty: the embedded model's voices).")
    check: bool = Field(True, description="Run the short/medium/long check set and reject non-finite audio.")

    @field_validator("calib_sentences")
    @classmethod
    def _sentences(cls, v: int) -> int:
        from kopt.quantize.calibration import check_sentences

        return check_sentences(v)

    @model_validator(mode="after")
    def _speeds(self) -> "Int8StaticConfig":
        if not 0 < self.calib_speed_min <= self.calib_speed_max:
            raise ValueError(f"calib_speed_min {self.calib_speed_min} must be > 0 and <= calib_speed_max "
                             f"{self.calib_speed_max}")
        return self


def selected_nodes(model: onnx.ModelProto, c: Int8StaticConfig) -> tuple[list[str], list[str]]:
    include = common.expand_selectors(model, c.include, c.op_types) if c.include else []
    exclude = common.expand_selectors(model, c.exclude)
    return include, exclude


def quantize_static_file(src: Path, out: Path, c: Int8StaticConfig, voices: dict | None,
                         include: list[str], exclude: list[str]) -> dict[str, Any]:
    """Run onnxruntime's quantize_static on a file with kopt's calibration reader."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    from kopt.core.kokoro import KokoroIO, open_session

    spec = CalibSpec(c.calib_sentences, c.calib_seed, c.calib_speed_min, c.calib_speed_max, c.calib_max_tokens)
    utts = calibration_set(voices, spec)
    probe = open_session(src, threads=0)
    reader = KokoroCalibrationReader(utts, KokoroIO.of(probe, src))
    del probe
    cache = Path(c.calibration_cache) if c.calibration_cache else None
    cache_hit = bool(cache and cache.is_file())
    extra = {"CalibStridedMinMax": 1, "ActivationSymmetric": False, "WeightSymmetric": True}
    if c.calibrate_method == "Percentile":
        extra["CalibPercentile"] = c.percentile
    common.quiet_ort_quant_logging()
    try:
        quantize_static(str(src), str(out), calibration_data_reader=reader, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(c.op_types), per_channel=c.per_channel,
                        reduce_range=c.reduce_range, activation_type=common.quant_type(c.activation_type),
                        weight_type=common.quant_type(c.weight_type), nodes_to_quantize=include,
                        nodes_to_exclude=exclude, calibrate_method=getattr(CalibrationMethod, c.calibrate_method),
                        extra_options=extra, calibration_cache_path=cache)
    except Exception as e:
        raise KoptError(f"int8-static quantization failed: {first_line(e, 200)}") from e
    info: dict[str, Any] = {}
    if c.balance:
        info["balance"] = _balance(src, out, utts, reader, c)
    return {**info, "calibration": {"utterances": len(utts), "method": c.calibrate_method, "seed": c.calib_seed,
                            "voices": sorted({u.voice for u in utts}),
                            "speeds": [round(min(u.speed for u in utts), 3), round(max(u.speed for u in utts), 3)],
                            "tokens": [int(min(len(u.tokens) for u in utts)), int(max(len(u.tokens) for u in utts))],
                            "cache": str(cache) if cache else None, "cache_hit": cache_hit}}


def _balance(src: Path, out: Path, utts, reader: KokoroCalibrationReader, c: Int8StaticConfig) -> dict[str, Any]:
    """Re-scale the quantized Convs of ``out`` to per-channel activation steps (in place), on onnx-ir."""
    import onnx_ir as ir

    from kopt.core.graph import to_proto
    from kopt.core.model import load_model, save_model
    from kopt.quantize import balance

    q = ir.serde.deserialize_model(load_model(out))
    plans, skipped = balance.plan(q, [n.name for n in q.graph if n.op_type == "Conv"])
    plans = [p for p in plans if p.conv.name]
    skipped = {k: v for k, v in skipped.items() if not v.startswith("not quantized")}
    tensors = sorted({t for p in plans for t in p.watched()})
    f = load_model(src)
    cache = Path(c.calibration_cache + ".channels.npz") if c.calibration_cache else None
    ranges = balance.load_ranges(cache) if cache is not None and cache.is_file() else {}
    todo = [t for t in tensors if t not in ranges]
    if todo:
        reader.rewind()
        ranges.update(balance.channel_ranges(f, todo, list(reader)))
        if cache is not None:
            balance.save_ranges(cache, ranges)
    rep = balance.apply(q, ir.serde.deserialize_model(f), plans, ranges, c.reduce_range)
    del f
    save_model(to_proto(q), out)
    return {**rep, "convs": len(plans), "skipped": len(skipped),
            "skipped_examples": dict(list(skipped.items())[:3])}


@register
class Int8Static(Pass):
    name = "int8-static"
    version = 2
    config_cls = Int8StaticConfig
    summary = "QDQ int8 with calibrated activations (QLinearConv on CPU); predictor and DSP tail in float"
    config: Int8StaticConfig

    def key_inputs(self) -> dict[str, str]:
        return common.calibration_key_inputs(self.config.voices)

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        c = self.config
        include, exclude = selected_nodes(model, c)
        if c.include and not include:
            raise KoptError(f"int8-static: include={list(c.include)} matches no {list(c.op_types)} node")
        voices, vsrc = common.resolve_voices(ctx.voices, c.voices)
        src = common.write_input(model, ctx.workdir)
        out = ctx.workdir / "int8_static.onnx"
        info = quantize_static_file(src, out, c, voices, include, exclude)
        q = common.load_output(out)
        rep = common.variant_report(q, out, precision="int8-static", voices=vsrc, excluded=list(c.exclude),
                                     excluded_nodes=len(exclude), included=list(c.include), **info)
        if c.check:
            rep["guard"] = common.guard(out, voices)
        return PassResult(model=q, report=rep)
