"""Finding Kokoro's landmarks in a graph, and the edits the Kokoro passes share; on onnx-ir.

Durations: the predictor's per-token durations flow ``Sigmoid -> ReduceSum -> Div(speed) -> Round
-> Clip(min 1) -> Cast(int64) -> Gather(0)`` into the ``CumSum`` that builds the alignment
(``/encoder/CumSum`` in Kokoro v1.0). The tensor that CumSum reads is "the durations as used for
expansion": int64, shape [seq], frames per token.

The edits (``Builder``, ``rewire``, ``downstream``, ``forget_shapes``, ``to_proto``) are kopt's
shared onnx-ir plumbing, in ``kopt.core.graph``. The token
axes (``token_axes``) come from onnxruntime's symbolic shape inference, whose public entry point
takes a protobuf model: a probe built from the nodes the wanted tensors depend on.
"""

from __future__ import annotations

import contextlib
import tempfile

import onnx
import onnx_ir as ir
from onnx import helper

from kokoro_runtime.errors import first_line
from kopt.core.errors import ModelError

_CHAIN_OPS = {"Gather", "Cast", "Clip", "Squeeze", "Reshape", "Mul", "Identity"}


def duration_cumsum(g: ir.Graph, where: str = "<model>") -> ir.Node:
    """The CumSum that turns per-token durations into frame boundaries; ModelError if none or several."""
    found = []
    for n in g:
        if n.op_type != "CumSum":
            continue
        x = n.inputs[0] if n.inputs else None
        for _ in range(6):
            p = x.producer() if x is not None else None
            if p is None:
                break
            if p.op_type == "Round":
                found.append(n)
                break
            if p.op_type not in _CHAIN_OPS:
                break
            x = p.inputs[0] if p.inputs else None
    if len(found) != 1:
        raise ModelError(f"{where}: cannot find Kokoro's duration chain (Round -> Clip -> Cast -> CumSum): "
                         f"found {len(found)} candidates; is this a Kokoro graph?")
    return found[0]


# -- where the token axis is -----------------------------------------------------------------------

_TOKEN_SYMBOL = "kopt_token_length"


def _node_id(n: onnx.NodeProto) -> str:
    """A probe node's identity, for the names of its stand-ins' inputs: its first non-empty output
    (node names are optional and need not be unique)."""
    return next((o for o in n.output if o), n.name)


def _shape_proxies(n: onnx.NodeProto) -> list[onnx.NodeProto]:
    """Stand-ins, with the same output shapes, for ops that symbolic shape inference does not follow
    through symbolic dims (ConvInteger) or does not know (the contrib ops that onnxruntime's
    quantizer and fusions write); any other node as it is."""
    from onnx import TensorProto

    pre: list[onnx.NodeProto] = []

    def fed(k: int, cast: bool = False, swap: bool = False) -> str:
        """Input k, cast to float and/or with its last two axes swapped (whatever its rank)."""
        x = n.input[k]
        if cast:
            pre.append(helper.make_node("Cast", [x], [f"{_node_id(n)}/kopt_shape_proxy/{k}"], to=TensorProto.FLOAT))
            x = pre[-1].output[0]
        if swap:
            pre.append(helper.make_node("Einsum", [x], [f"{_node_id(n)}/kopt_shape_proxy/{k}/swapped"],
                                        equation="...ij->...ji"))
            x = pre[-1].output[0]
        return x

    ms = n.domain == "com.microsoft"
    flags = {a.name: a.i for a in n.attribute if a.type == onnx.AttributeProto.INT}
    if n.op_type == "ConvInteger" and n.domain in ("", "ai.onnx"):
        stand_in = helper.make_node("Conv", [fed(0, cast=True), fed(1, cast=True)], [n.output[0]])
        stand_in.attribute.extend(n.attribute)  # the same kernel/pads/strides/dilations/group
    elif n.op_type == "MatMulIntegerToFloat" and ms:
        stand_in = helper.make_node("MatMul", [fed(0, cast=True), fed(1, cast=True)], [n.output[0]])
    elif n.op_type == "DynamicQuantizeMatMul" and ms:
        stand_in = helper.make_node("MatMul", [n.input[0], fed(1, cast=True)], [n.output[0]])
    elif n.op_type == "FusedMatMul" and ms and not flags.get("transBatchA") and not flags.get("transBatchB"):
        stand_in = helper.make_node("MatMul", [fed(0, swap=bool(flags.get("transA"))),
                                              fed(1, swap=bool(flags.get("transB")))], [n.output[0]])
    elif n.op_type == "DynamicQuantizeLSTM" and ms:
        # its W is [dirs, input, 4H] and R [dirs, H, 4H]; LSTM's are [dirs, 4H, input] and [dirs, 4H, H]
        stand_in = helper.make_node("LSTM", [n.input[0], fed(1, cast=True, swap=True), fed(2, cast=True, swap=True),
                                             *n.input[3:8]], list(n.output))
        stand_in.attribute.extend(n.attribute)  # hidden_size, direction, ... as LSTM's
    else:
        return [n]
    stand_in.name = n.name
    return [*pre, stand_in]


def token_axes(model: ir.Model, tok: str, wanted: dict[ir.Value, ir.Node],
               where: str = "<model>") -> dict[ir.Value, tuple[int, tuple[int, ...]]]:
    """For each value in ``wanted`` (value -> the node that reads it, for messages): its rank and
    the axes that run over the token positions.

    Found symbolically, never from sizes (a bucket of 128 or 256 equals channel counts): the token
    input ``tok`` gets the dimension ``[1, kopt_token_length]``, onnxruntime's symbolic shape
    inference runs over the nodes the wanted values depend on (their producers, back through
    onnx-ir's use-def chains), and an axis is a token axis when its inferred dim is exactly that
    symbol. That inference takes a protobuf model: the probe is those nodes serialized, with stand-ins
    for the ops it does not follow. Broadcasts of two different symbolic dims are merged
    (``auto_merge``), e.g. Kokoro's position embeddings ``Min(512, tokens)`` with ``tokens``: true for
    every bucket up to 512. ModelError naming the node when a value's shape is unknown or has no token
    axis.
    """
    inferred, failure = _infer_symbolic(_token_probe(model, tok, wanted))
    out: dict[ir.Value, tuple[int, tuple[int, ...]]] = {}
    for v, n in wanted.items():
        vi = inferred.get(v.name)
        shape = vi.type.tensor_type.shape if vi is not None and vi.type.tensor_type.HasField("shape") else None
        axes = tuple(k for k, d in enumerate(shape.dim) if d.dim_param == _TOKEN_SYMBOL) if shape else ()
        if not axes:
            got = ("unknown" if shape is None else
                   "[" + ", ".join(d.dim_param or str(d.dim_value) for d in shape.dim) + "]")
            raise ModelError(f"{where}: cannot find the token axis of {v.name!r}, input of {n.op_type} "
                             f"{n.name or ''!r}: its inferred shape is {got}{failure}")
        out[v] = (len(shape.dim), axes)
    return out


def _token_probe(model: ir.Model, tok: str, wanted: dict[ir.Value, ir.Node]) -> onnx.ModelProto:
    """The nodes the ``wanted`` values depend on, as a protobuf model whose token input is
    ``[1, kopt_token_length]`` and whose outputs are the wanted values."""
    g = model.graph
    need: set[ir.Node] = set()
    stack = list(wanted)
    while stack:
        p = stack.pop().producer()
        if p is None or p in need:
            continue
        need.add(p)
        stack.extend(i for i in p.inputs if i is not None)
    kept = [n for n in g if n in need]
    used = {i for n in kept for i in n.inputs if i is not None}

    sub = helper.make_graph([], "kopt_token_axes", [], [])
    for v in g.inputs:
        if v.name == tok:
            sub.input.append(helper.make_tensor_value_info(tok, int(v.dtype), [1, _TOKEN_SYMBOL]))
        elif v in used and not v.is_initializer():
            sub.input.append(ir.serde.serialize_value(v))
    for v in g.initializers.values():
        if v in used:
            t = ir.serde.serialize_tensor(v.const_value)
            t.name = v.name
            sub.initializer.append(t)
    for n in kept:
        sub.node.extend(_shape_proxies(ir.serde.serialize_node(n)))
    sub.output.extend(helper.make_tensor_value_info(v.name, onnx.TensorProto.FLOAT, None) for v in wanted)
    probe = helper.make_model(sub, opset_imports=[helper.make_opsetid(d, k) for d, k in model.opset_imports.items()])
    probe.ir_version = model.ir_version
    return probe


def _infer_symbolic(probe: onnx.ModelProto) -> tuple[dict[str, onnx.ValueInfoProto], str]:
    """Value name -> inferred value info by onnxruntime's symbolic shape inference, and why it
    failed ("" when it did not)."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    # The public entry point only. On an incomplete inference it saves a debug model into the
    # current directory and raises; run it in a scratch directory so nothing lands in the user's.
    failure = ""
    with tempfile.TemporaryDirectory(prefix="kopt-shapes-") as scratch, contextlib.chdir(scratch):
        try:
            inferred_model = SymbolicShapeInference.infer_shapes(probe, int_max=2**31 - 1, auto_merge=True,
                                                                 guess_output_rank=False, verbose=0)
        except Exception as e:  # noqa: BLE001 -- onnxruntime raises a bare Exception when incomplete
            inferred_model = None
            failure = f" (symbolic shape inference failed: {type(e).__name__}: {first_line(e, 200)})"
    graph = inferred_model.graph if inferred_model is not None else None
    inferred = {vi.name: vi for vi in [*graph.value_info, *graph.output]} if graph is not None else {}
    return inferred, failure
