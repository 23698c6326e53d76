"""fp16: weights and compute in float16, fp32 inputs/outputs, fp32 islands where fp16 fails.

Uses onnxruntime's float16 converter (``onnxruntime.transformers.float16``, the onnxconverter-common
algorithm) with ``keep_io_types`` and a node block list built from Kokoro's module paths. A naive
full conversion emits NaN on medium and long sentences (the duration/F0 predictor and the STFT tail
overflow or lose precision), so those groups stay fp32 by default. The result is run on the check
set (short/medium/long) and rejected if any audio sample is NaN or inf.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import TopologicalSortPass
from pydantic import Field

from kokoro_runtime.errors import first_line
from kopt.core.errors import KoptError
from kopt.core.graph import to_proto
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register
from kopt.quantize import common
from kopt.quantize.groups import FP16_FP32_ISLANDS

# Ops that compute shapes, indices or the cumulative alignment: never worth fp16.
OP_BLOCK = ("Range", "CumSum", "Min", "Max", "Upsample", "Round", "Floor", "Ceil", "NonZero", "ScatterND",
             "STFT", "RandomNormalLike", "RandomUniformLike", "Resize")


class Fp16Config(PassConfig):
    keep_fp32: tuple[str, ...] = Field(
        FP16_FP32_ISLANDS,
        description="Node groups (module-path prefixes such as 'predictor', 'generator.istft', or 'op:Sin') "
                    "kept in fp32. Default: the duration/F0 predictor and the generator's DSP tail.")
    op_block_list: tuple[str, ...] = Field(OP_BLOCK, description="Op types always kept in fp32.")
    keep_io_types: bool = Field(True, description="Keep fp32 model inputs and outputs (Casts at the edges).")
    check: bool = Field(True, description="Run the short/medium/long check set and reject non-finite audio.")


@register
class Fp16(Pass):
    name = "fp16"
    version = 1
    config_cls = Fp16Config
    summary = "float16 weights and compute, fp32 I/O, fp32 islands for the predictor and DSP tail"
    config: Fp16Config

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        c = self.config
        block = common.expand_selectors(model, c.keep_fp32)
        out, fixes = to_fp16(model, block, c.op_block_list, c.keep_io_types)
        path = ctx.workdir / "fp16.onnx"
        common.write_input(out, ctx.workdir, path.name)
        rep = common.variant_report(out, path, precision="fp16", fp32_groups=list(c.keep_fp32),
                                     fp32_nodes=len(block), **fixes)
        if c.check:
            voices, rep["voices"] = common.resolve_voices(ctx.voices)
            rep["guard"] = common.guard(path, voices)
        return PassResult(model=out, report=rep)


def to_fp16(model: onnx.ModelProto, block_nodes: list[str], op_block_list: tuple[str, ...] | list[str],
            keep_io_types: bool = True) -> tuple[onnx.ModelProto, dict]:
    """onnxruntime's converter plus the repairs its output needs on Kokoro (see the helpers below):
    the duplicate-writer repair on the converter's protobuf (onnx-ir needs one writer per value),
    then, on onnx-ir, the Cast round trips bypassed and onnx-ir's stable topological sort (the
    converter appends its input Casts after their consumers)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    m = onnx.ModelProto()
    m.CopyFrom(model)
    try:
        out = convert_float_to_float16(m, keep_io_types=keep_io_types, op_block_list=list(op_block_list),
                                       node_block_list=list(block_nodes), disable_shape_infer=False)
    except Exception as e:
        raise KoptError(f"fp16 conversion failed: {first_line(e, 200)}") from e
    dup = _uniquify_node_names(out)
    irm = ir.serde.deserialize_model(out)
    del out
    roundtrips = _drop_cast_roundtrips(irm.graph)
    TopologicalSortPass()(irm)
    return to_proto(irm), {"renamed_duplicate_nodes": dup, "removed_fp16_roundtrips": roundtrips}


def _uniquify_node_names(model: onnx.ModelProto) -> int:
    """The converter can insert the same Cast twice (once per blocked consumer of a value), both
    writing one tensor under one node name; onnxruntime refuses such a graph. Drop exact repeats,
    rename other name clashes. Returns how many nodes were dropped or renamed."""
    seen: set[str] = set()
    producers: dict[str, bytes] = {}
    keep = []
    fixed = 0
    for n in model.graph.node:
        sig = n.SerializeToString()
        if any(o and o in producers for o in n.output):
            if all(producers.get(o) == sig for o in n.output if o):
                fixed += 1
                continue
            raise KoptError(f"fp16 conversion produced two different nodes writing {list(n.output)}")
        for o in n.output:
            if o:
                producers[o] = sig
        if n.name in seen:
            k = 1
            while f"{n.name}_{k}" in seen:
                k += 1
            n.name = f"{n.name}_{k}"
            fixed += 1
        seen.add(n.name)
        keep.append(n)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return fixed


def _is_cast_to(n: ir.Node | None, dtype: ir.DataType) -> bool:
    return n is not None and n.op_type == "Cast" and n.attributes.get_int("to") == dtype


def _drop_cast_roundtrips(g: ir.Graph) -> int:
    """Between two fp32 nodes the converter can insert Cast(fp16) -> Cast(fp32): a lossy round trip
    that flushes small STFT bins to 0 (0/0 = NaN in the phase). The fp32 Cast's readers read the fp32
    value directly instead (onnx-ir's uses); the fp32 Cast goes unless it writes a graph output, and
    so does every Cast nothing reads afterwards. The converter only casts float tensors, so the first
    Cast's input is fp32. Returns pairs bypassed."""
    pairs = [n for n in g if _is_cast_to(n, ir.DataType.FLOAT) and _is_cast_to(n.inputs[0].producer(),
                                                                               ir.DataType.FLOAT16)]
    for n in pairs:
        src = n.inputs[0].producer().inputs[0]
        out = n.outputs[0]
        for use in list(out.uses()):
            use.node.replace_input_with(use.idx, src)
        if not out.is_graph_output():
            g.remove(n, safe=True)
    if pairs:
        dead = [n for n in g if n.op_type == "Cast" and not n.outputs[0].uses() and not n.outputs[0].is_graph_output()]
        g.remove(dead, safe=True)
    return len(pairs)
