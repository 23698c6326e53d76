"""What precision a model computes in, read from its graph: the one rule behind every place kopt states
it (the fetch record, a bench variant, the bundle manifest, a quantized variant's per-group counts).

A node's precision:
- an integer kernel carries it in its op: int8 for MatMulInteger, ConvInteger, QLinearConv, ...;
  int4 for MatMulNBits and GatherBlockQuantized (onnxruntime's 4-bit block kernels);
- a weight-bearing float op (Conv, ConvTranspose, MatMul, Gemm, LSTM, Gather) has its weight's:
  int8 when the weight is a DequantizeLinear of an 8-bit tensor (QDQ), int4 of a 4-bit one; fp16
  when it is an fp16 initializer or an initializer cast to fp16; fp32 when it is an fp32
  initializer or an fp16 one cast back to fp32 (a block kept in float by the fp16 pass).

A model's precision (:func:`precision_of`) is the one below fp32 its nodes use ("int8", "int4",
"fp16"; fp32 nodes beside it do not count: every quantized Kokoro keeps some), "fp32" when there
is none, and "mixed" when there are several (int4 and int8 nodes, say).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator

import onnx

INTEGER_OPS = {"QLinearConv": "int8", "ConvInteger": "int8", "MatMulInteger": "int8", "QLinearMatMul": "int8",
               "DynamicQuantizeLSTM": "int8", "DynamicQuantizeMatMul": "int8",
               "MatMulNBits": "int4", "GatherBlockQuantized": "int4"}
WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "LSTM", "Gather")
_FOUR_BIT = (onnx.TensorProto.INT4, onnx.TensorProto.UINT4)


def node_precisions(model: onnx.ModelProto) -> Iterator[tuple[onnx.NodeProto, str]]:
    """(node, "int8" | "int4" | "fp16" | "fp32") for every integer kernel and weight-bearing float
    node of ``model``'s main graph, in graph order; other nodes are left out."""
    g = model.graph
    producers = {o: n for n in g.node for o in n.output}
    inits = {t.name: t.data_type for t in g.initializer}
    fp16_vals = {vi.name for vi in list(g.value_info) + list(g.output)
                 if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
    fp16_vals |= {n.output[0] for n in g.node if n.op_type == "Cast"
                  and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in n.attribute)}
    for n in g.node:
        if n.op_type in INTEGER_OPS:
            yield n, INTEGER_OPS[n.op_type]
            continue
        if n.op_type not in WEIGHT_OPS or len(n.input) < 2:
            continue
        w = n.input[0] if n.op_type == "Gather" else n.input[1]
        p = producers.get(w)
        if p is not None and p.op_type == "DequantizeLinear":
            yield n, "int4" if inits.get(p.input[0]) in _FOUR_BIT else "int8"
        elif p is not None and p.op_type == "Cast" and p.input[0] in inits:
            yield n, "fp16" if w in fp16_vals else "fp32"
        elif inits.get(w) == onnx.TensorProto.FLOAT16:
            yield n, "fp16"
        elif inits.get(w) == onnx.TensorProto.FLOAT:
            yield n, "fp32"


def precision_of(model: onnx.ModelProto) -> str:
    """"fp32", "fp16", "int8", "int4" or "mixed" (see the module docstring). Reads initializer types
    only, so a model loaded without its external data will do."""
    counts = Counter(p for _, p in node_precisions(model))
    below = [p for p in ("int4", "int8", "fp16") if counts[p]]
    if not below:
        return "fp32"
    return below[0] if len(below) == 1 else "mixed"
