"""int8-dynamic: int8 weights, activations quantized at run time (onnxruntime ``quantize_dynamic``).

Conv becomes ConvInteger, MatMul MatMulInteger (or DynamicQuantizeMatMul), LSTM DynamicQuantizeLSTM.
Measured on this kind of CPU: ConvInteger-heavy graphs are barely faster than fp32, and signed
per-channel weights can be several times slower; the report says what was quantized so the bench
numbers can be read against it.
"""

from __future__ import annotations

from typing import Literal

import onnx
from pydantic import Field

from kokoro_runtime.errors import first_line
from kopt.core.errors import KoptError
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register
from kopt.quantize import common


class Int8DynamicConfig(PassConfig):
    per_channel: bool = Field(False, description="One weight scale per output channel (else per tensor).")
    weight_type: Literal["QInt8", "QUInt8"] = Field("QUInt8", description="Signed or unsigned int8 weights.")
    reduce_range: bool = Field(False, description="7-bit weights (avoids int16 overflow on CPUs without VNNI).")
    op_types: tuple[str, ...] = Field(("Conv", "MatMul"), description="Op types to quantize (Conv, MatMul, Gather, ...).")
    include_lstm: bool = Field(True, description="Quantize LSTM weights too (DynamicQuantizeLSTM).")
    exclude: tuple[str, ...] = Field((), description="Node groups or op:TYPE selectors kept in float.")
    check: bool = Field(True, description="Run the short/medium/long check set and reject non-finite audio.")


@register
class Int8Dynamic(Pass):
    name = "int8-dynamic"
    version = 1
    config_cls = Int8DynamicConfig
    summary = "int8 weights, dynamic int8 activations (ConvInteger/MatMulInteger/DynamicQuantizeLSTM)"
    config: Int8DynamicConfig

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        from onnxruntime.quantization import quantize_dynamic

        c = self.config
        ops = list(dict.fromkeys([*c.op_types, *(["LSTM"] if c.include_lstm else [])]))
        excluded = common.expand_selectors(model, c.exclude)
        src = common.write_input(model, ctx.workdir)
        out = ctx.workdir / "int8_dynamic.onnx"
        common.quiet_ort_quant_logging()
        try:
            quantize_dynamic(str(src), str(out), op_types_to_quantize=ops, per_channel=c.per_channel,
                             reduce_range=c.reduce_range, weight_type=common.quant_type(c.weight_type),
                             nodes_to_exclude=excluded, extra_options={"MatMulConstBOnly": True})
        except Exception as e:
            raise KoptError(f"int8-dynamic quantization failed: {first_line(e, 200)}") from e
        q = common.load_output(out)
        rep = common.variant_report(q, out, precision="int8-dynamic", op_types=ops, excluded_nodes=len(excluded))
        if c.check:
            voices, rep["voices"] = common.resolve_voices(ctx.voices)
            rep["guard"] = common.guard(out, voices)
        return PassResult(model=q, report=rep)
