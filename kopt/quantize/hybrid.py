"""hybrid: one precision per node group (int8 / fp16 / fp32), applied as one pass.

The map's keys are group selectors (``generator.resblocks``, ``decoder.decode.2``, ``op:MatMul``);
a node takes the precision of the most specific key that matches it (op:TYPE keys beat module
paths), else ``default``. int8 groups are quantized with static QDQ (same calibration as
int8-static), then fp16 groups are converted with every other node (Q/DQ included) blocked.

The default map is data: ``kopt/quantize/default_map.json``, written from a measured sensitivity run
(``kopt sensitivity``); the file records how it was made.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Literal

import onnx
from pydantic import Field, field_validator, model_validator

from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register
from kopt.quantize import common
from kopt.quantize.groups import assign, matches

Precision = Literal["int8", "fp16", "fp32"]
QUANT_OPS = ("Conv", "ConvTranspose", "MatMul")
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul")


def default_map() -> dict[str, Any]:
    """The shipped map file: {"precision": {...}, "default": ..., "made_by": {...}}."""
    return json.loads((resources.files("kopt.quantize") / "default_map.json").read_text(encoding="utf-8"))


def _default_precision() -> dict[str, Precision]:
    try:
        return dict(default_map()["precision"])
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return {}


class HybridConfig(PassConfig):
    precision: dict[str, Precision] = Field(default_factory=_default_precision,
                                            description="Group selector -> int8 | fp16 | fp32. Default: the "
                                                        "measured map in kopt/quantize/default_map.json.")
    default: Precision = Field("fp32", description="Precision of nodes no key matches.")
    int8_op_types: tuple[str, ...] = Field(("Conv", "ConvTranspose"), description="Op types int8 groups quantize "
                                           "(MatMul costs quality for no speed on Kokoro).")
    calibrate_method: Literal["MinMax", "Entropy", "Percentile"] = Field("MinMax", description="int8 range method.")
    calib_sentences: int = Field(16, description="Calibration utterances.")
    calib_seed: int = Field(0, description="Calibration seed.")
    calibration_cache: str = Field("", description="Activation-range cache file (see int8-static).")
    balance: bool = Field(True, description="Channel-balanced QDQ for the int8 groups (see int8-static's balance).")
    reduce_range: bool = Field(False, description="7-bit weights for the int8 groups (see int8-static's reduce_range: "
                               "for CPUs without VNNI).")
    voices: str = Field("", description="Voice pack for calibration (empty: the embedded model's voices).")
    check: bool = Field(True, description="Run the short/medium/long check set and reject non-finite audio.")

    @field_validator("calib_sentences")
    @classmethod
    def _sentences(cls, v: int) -> int:
        from kopt.quantize.calibration import check_sentences

        return check_sentences(v)

    @model_validator(mode="after")
    def _changes_something(self) -> "HybridConfig":
        if not self.precision and self.default == "fp32":
            raise ValueError("an empty precision map with default fp32 would change nothing; set "
                             "precision (e.g. {\"generator\": \"int8\"}) or run `kopt sensitivity`")
        return self


def resolve(model: onnx.ModelProto, precision: dict[str, str], default: str) -> dict[str, str]:
    """Node name -> precision: the most specific matching key (op:TYPE first, then longest path)."""
    keys = sorted(precision, key=lambda k: (not k.startswith("op:"), -len(k.split("."))))
    where = assign(model)
    out = {}
    for n in model.graph.node:
        g = where[n.name]
        out[n.name] = next((precision[k] for k in keys if matches(n, k, g)), default)
    return out


@register
class Hybrid(Pass):
    name = "hybrid"
    version = 2
    config_cls = HybridConfig
    summary = "per-group precision map (int8 static QDQ / fp16 / fp32); default map from measured sensitivity"
    config: HybridConfig

    def key_inputs(self) -> dict[str, str]:
        return common.calibration_key_inputs(self.config.voices)

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        from kopt.quantize.fp16 import OP_BLOCK, to_fp16
        from kopt.quantize.int8_static import Int8StaticConfig, quantize_static_file

        c = self.config
        per_node = resolve(model, c.precision, c.default)
        int8 = [n.name for n in model.graph.node if per_node[n.name] == "int8" and n.op_type in c.int8_op_types]
        voices, vsrc = common.resolve_voices(ctx.voices, c.voices)
        cur = model
        info: dict[str, Any] = {}
        if int8:
            src = common.write_input(model, ctx.workdir)
            out = ctx.workdir / "hybrid_int8.onnx"
            scfg = Int8StaticConfig(exclude=(), op_types=c.int8_op_types, calibrate_method=c.calibrate_method, calib_sentences=c.calib_sentences,
                                    calib_seed=c.calib_seed, calibration_cache=c.calibration_cache, balance=c.balance,
                                    reduce_range=c.reduce_range, check=False)
            info.update(quantize_static_file(src, out, scfg, voices, int8, []))
            cur = common.load_output(out)
        fp16 = {name for name, p in per_node.items() if p == "fp16"}
        if fp16:
            block = [n.name for n in cur.graph.node if n.name not in fp16]
            cur, fixes = to_fp16(cur, block, tuple(OP_BLOCK) + _QDQ_OPS)
            info["fp16_fixes"] = fixes
        path = common.write_input(cur, ctx.workdir, "hybrid.onnx")
        counts = {p: sum(1 for n in model.graph.node if per_node[n.name] == p and n.op_type in QUANT_OPS)
                  for p in ("int8", "fp16", "fp32")}
        rep = common.variant_report(cur, path, precision="hybrid", precision_map=dict(c.precision),
                                     default=c.default, weight_nodes_by_precision=counts, voices=vsrc, **info)
        if c.check:
            rep["guard"] = common.guard(path, voices)
        return PassResult(model=cur, report=rep)
