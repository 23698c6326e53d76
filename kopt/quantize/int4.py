"""int4 (experimental): weight-only block quantization of MatMul (and optionally Gather) weights.

onnxruntime's ``MatMulNBitsQuantizer`` (needs the ``onnx-ir`` package) turns MatMul with a constant
weight into ``MatMulNBits`` and Gather over a constant table into ``GatherBlockQuantized``.
What it covers in Kokoro, honestly: the ALBERT text encoder, the LSTM-adjacent projections and the
AdaIN style MLPs (MatMul), plus embeddings (Gather). Conv/ConvTranspose weights, which are most of
the decoder's parameters and ~59% of its compute, are untouched, so the file shrinks far less than
"4-bit" suggests and the speed barely moves. Algorithms: ``default`` (onnxruntime's block-wise
min/max, i.e. round-to-nearest) and ``hqq``; ``rtn``/``gptq`` go through Intel Neural Compressor,
which kopt does not install: selecting them fails with a message saying so.
"""

from __future__ import annotations

from typing import Literal

import onnx
from pydantic import Field, field_validator

from kokoro_runtime.errors import first_line
from kopt.core.errors import KoptError
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register
from kopt.quantize import common


class Int4Config(PassConfig):
    block_size: int = Field(32, description="Weights per quantization block (power of 2, >= 16).")
    symmetric: bool = Field(True, description="Symmetric blocks (no zero point).")
    accuracy_level: int = Field(4, description="MatMulNBits compute type: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8.")
    algorithm: Literal["default", "hqq", "rtn", "gptq"] = Field("default", description="Weight rounding algorithm.")
    op_types: tuple[str, ...] = Field(("MatMul",), description="MatMul and/or Gather.")
    exclude: tuple[str, ...] = Field(("predictor",), description="Node groups or op:TYPE kept in float.")
    check: bool = Field(True, description="Run the short/medium/long check set and reject non-finite audio.")

    @field_validator("block_size")
    @classmethod
    def _block(cls, v: int) -> int:
        if v < 16 or v & (v - 1):
            raise ValueError(f"{v}: use a power of 2 >= 16")
        return v

    @field_validator("op_types")
    @classmethod
    def _ops(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [o for o in v if o not in ("MatMul", "Gather")]
        if bad:
            raise ValueError(f"{bad} not supported; MatMulNBits covers MatMul and Gather only")
        return v


@register
class Int4(Pass):
    name = "int4"
    version = 1
    config_cls = Int4Config
    summary = "experimental weight-only int4 (MatMulNBits/GatherBlockQuantized); Conv weights stay float"
    config: Int4Config

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        c = self.config  # block_size and op_types are checked by Int4Config, before any build starts
        try:
            import onnx_ir  # noqa: F401
            from onnxruntime.quantization import matmul_nbits_quantizer as mnb
        except ImportError as e:
            raise KoptError(f"int4 needs the 'onnx-ir' package ({e}); pip install onnx-ir") from e
        ops = tuple(c.op_types)
        if c.algorithm == "default":
            algo = mnb.DefaultWeightOnlyQuantConfig(block_size=c.block_size, is_symmetric=c.symmetric,
                                                    accuracy_level=c.accuracy_level, op_types_to_quantize=ops)
        elif c.algorithm == "hqq":
            algo = mnb.HQQWeightOnlyQuantConfig(block_size=c.block_size, op_types_to_quantize=ops)
        else:
            # RTN and GPTQ are Intel Neural Compressor's weight-only algorithms, vendored in
            # onnxruntime.quantization.neural_compressor: no neural-compressor package is needed
            # (and its 3.x releases have no ONNX support).
            algo = (mnb.RTNWeightOnlyQuantConfig(op_types_to_quantize=ops) if c.algorithm == "rtn"
                    else mnb.GPTQWeightOnlyQuantConfig(block_size=c.block_size, op_types_to_quantize=ops))
        excluded = common.expand_selectors(model, c.exclude)
        m = onnx.ModelProto()
        m.CopyFrom(model)
        common.quiet_ort_quant_logging()
        try:
            q = mnb.MatMulNBitsQuantizer(m, bits=4, block_size=c.block_size, is_symmetric=c.symmetric,
                                         accuracy_level=c.accuracy_level, nodes_to_exclude=excluded,
                                         op_types_to_quantize=ops, algo_config=algo)
            q.process()
        except Exception as e:
            raise KoptError(f"int4 quantization failed: {first_line(e, 200)}") from e
        out_model = q.model.model
        path = common.write_input(out_model, ctx.workdir, "int4.onnx")
        rep = common.variant_report(out_model, path, precision="int4-weight-only", algorithm=c.algorithm,
                                     op_types=list(ops), excluded_nodes=len(excluded),
                                     coverage="MatMul/Gather weights only; Conv and ConvTranspose weights stay fp32")
        if c.check:
            voices, rep["voices"] = common.resolve_voices(ctx.voices)
            rep["guard"] = common.guard(path, voices)
        return PassResult(model=out_model, report=rep)
