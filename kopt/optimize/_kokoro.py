"""Finding Kokoro's landmarks in a graph (shared by the optimization passes).

Durations: the predictor's per-token durations flow ``Sigmoid -> ReduceSum -> Div(speed) -> Round
-> Clip(min 1) -> Cast(int64) -> Gather(0)`` into the ``CumSum`` that builds the alignment
(``/encoder/CumSum`` in Kokoro v1.0). The tensor that CumSum reads is "the durations as used for
expansion": int64, shape [seq], frames per token.
"""

from __future__ import annotations

import contextlib
import tempfile

import onnx
from onnx import helper

from kokoro_runtime.errors import first_line
from kopt.core.errors import ModelError
from kopt.core.graph import node_id, producers, unique_name

_CHAIN_OPS = {"Gather", "Cast", "Clip", "Squeeze", "Reshape", "Mul", "Identity"}


def duration_cumsum(g: onnx.GraphProto, where: str = "<model>") -> onnx.NodeProto:
    """The CumSum that turns per-token durations into frame boundaries; ModelError if none or several."""
    prod = producers(g)
    found = []
    for n in g.node:
        if n.op_type != "CumSum":
            continue
        x = n.input[0]
        for _ in range(6):
            p = prod.get(x)
            if p is None:
                break
            if p.op_type == "Round":
                found.append(n)
                break
            if p.op_type not in _CHAIN_OPS:
                break
            x = p.input[0]
    if len(found) != 1:
        raise ModelError(f"{where}: cannot find Kokoro's duration chain (Round -> Clip -> Cast -> CumSum): "
                         f"found {len(found)} candidates; is this a Kokoro graph?")
    return found[0]


def duration_tensor(g: onnx.GraphProto, where: str = "<model>") -> str:
    """Name of the int64 [seq] durations tensor the alignment is built from."""
    return duration_cumsum(g, where).input[0]


def rewire(g: onnx.GraphProto, old: str, new: str, skip: set[str] | None = None) -> int:
    """Point every consumer of ``old`` at ``new``, except nodes producing a tensor named in ``skip``."""
    skip = skip or set()
    n_ = 0
    for n in g.node:
        if skip.intersection(n.output):
            continue
        for k, i in enumerate(n.input):
            if i == old:
                n.input[k] = new
                n_ += 1
    for o in g.output:
        if o.name == old:
            raise ModelError(f"tensor {old!r} is a graph output; cannot rewire it")
    return n_


def const_i64(g: onnx.GraphProto, base: str, values) -> str:
    import numpy as np
    from onnx import numpy_helper

    name = unique_name(g, base)
    g.initializer.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
    return name


def node(g: onnx.GraphProto, op: str, inputs: list[str], base: str, **attrs) -> str:
    out = unique_name(g, base)
    g.node.append(helper.make_node(op, inputs, [out], name=unique_name(g, base + "/" + op), **attrs))
    return out


# -- where the token axis is -----------------------------------------------------------------------

_TOKEN_SYMBOL = "kopt_token_length"


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
            pre.append(helper.make_node("Cast", [x], [f"{node_id(n)}/kopt_shape_proxy/{k}"], to=TensorProto.FLOAT))
            x = pre[-1].output[0]
        if swap:
            pre.append(helper.make_node("Einsum", [x], [f"{node_id(n)}/kopt_shape_proxy/{k}/swapped"],
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


def token_axes(model: onnx.ModelProto, tok: str, wanted: dict[str, onnx.NodeProto],
               where: str = "<model>") -> dict[str, tuple[int, tuple[int, ...]]]:
    """For each tensor in ``wanted`` (tensor -> the node that reads it, for messages): its rank and
    the axes that run over the token positions.

    Found symbolically, never from sizes (a bucket of 128 or 256 equals channel counts): the token
    input gets the dimension ``[1, kopt_token_length]``, onnxruntime's symbolic shape inference runs
    over the nodes the wanted tensors depend on, and an axis is a token axis when its inferred dim
    is exactly that symbol. Broadcasts of two different symbolic dims are merged (``auto_merge``),
    e.g. Kokoro's position embeddings ``Min(512, tokens)`` with ``tokens``: true for every bucket
    up to 512. ModelError naming the node when a tensor's shape is unknown or has no token axis.
    """
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    g = model.graph
    prod = producers(g)
    need: set[str] = set()
    stack = list(wanted)
    while stack:
        t = stack.pop()
        p = prod.get(t)
        if p is None or node_id(p) in need:
            continue
        need.add(node_id(p))
        stack.extend(i for i in p.input if i)
    kept = [n for n in g.node if node_id(n) in need]

    sub = helper.make_graph([], "kopt_token_axes", [], [])
    used = {i for n in kept for i in n.input}
    inits = {i.name for i in g.initializer}
    for vi in g.input:
        if vi.name == tok:
            sub.input.append(helper.make_tensor_value_info(tok, vi.type.tensor_type.elem_type, [1, _TOKEN_SYMBOL]))
        elif vi.name in used and vi.name not in inits:
            sub.input.append(vi)
    sub.initializer.extend(i for i in g.initializer if i.name in used)
    for n in kept:
        sub.node.extend(_shape_proxies(n))
    sub.output.extend(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in wanted)
    probe = helper.make_model(sub, opset_imports=list(model.opset_import))
    probe.ir_version = model.ir_version

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

    out: dict[str, tuple[int, tuple[int, ...]]] = {}
    for t, n in wanted.items():
        vi = inferred.get(t)
        shape = vi.type.tensor_type.shape if vi is not None and vi.type.tensor_type.HasField("shape") else None
        axes = tuple(k for k, d in enumerate(shape.dim) if d.dim_param == _TOKEN_SYMBOL) if shape else ()
        if not axes:
            got = ("unknown" if shape is None else
                   "[" + ", ".join(d.dim_param or str(d.dim_value) for d in shape.dim) + "]")
            raise ModelError(f"{where}: cannot find the token axis of {t!r}, input of {n.op_type} {n.name!r}: "
                             f"its inferred shape is {got}{failure}")
        out[t] = (len(shape.dim), axes)
    return out
