"""bind-shapes: static shape binding and token-length buckets.

Always: bind what Kokoro fixes -- batch 1 on ``tokens`` [1, seq], ``style`` [1, 256], ``speed``
[1] -- and propagate shapes (``onnx.shape_inference`` with data propagation), so a following
``fold`` can evaluate the shape arithmetic that depended on them.

With ``bucket = L``: ``tokens`` is [1, L]; callers pad ``[0, ids..., 0]`` with the pad token 0 up to
L. The valid length, (last non-zero position) + 2, is computed in the graph, and padded positions
are masked wherever they could leak into real ones, so the audio equals the unpadded input's:

- attention: each token-level Softmax gets ``-1e9`` on padded keys (exact zero weight);
- convolutions over tokens and run-time quantizers (DynamicQuantizeLinear, DynamicQuantizeLSTM,
  DynamicQuantizeMatMul: one scale per tensor from its min/max over all positions): their inputs
  are zeroed at padded positions, which the quantized range always holds. The mask runs along
  each tensor's token axis, found by symbolic shape inference (``_kokoro.token_axes``), never
  guessed from a size;
- LSTMs over tokens: ``sequence_lens`` = valid length (padded steps output zeros);
- durations: the per-token durations that feed the alignment CumSum are multiplied by the mask, so
  padded tokens get 0 frames.

"Token level" means not downstream of the duration CumSum; frame-level ops are untouched. Assumes
token id 0 is only boundary/pad, as in Kokoro's vocabulary. A bucket is for runtimes that compile one
graph per shape (CoreML, NNAPI, some GPU EPs); on CPU it usually does not pay (docs/benchmark-log.md).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto
from onnx_ir.passes.common import TopologicalSortPass
from pydantic import Field

from kopt.core.errors import ModelError
from kopt.core.graph import Builder, downstream, forget_shapes, rewire, to_proto
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register
from kopt.optimize._kokoro import duration_cumsum, token_axes

MAX_BUCKET = 512  # 510 phoneme tokens + 2 boundary pads
# Ops that quantize an activation at run time with one scale for the whole tensor: input index.
PER_TENSOR_QUANT = {"DynamicQuantizeLinear": 0, "DynamicQuantizeLSTM": 0, "DynamicQuantizeMatMul": 0}


class BindShapesConfig(PassConfig):
    bucket: int | None = Field(
        None, ge=4, le=MAX_BUCKET,
        description="Fixed token length L (pad inputs with 0 to L; pads are masked in the graph). "
                    "None: keep the token length dynamic and bind batch/style/speed only.")


def _dim(v: ir.Value, k: int, default: str) -> int | str:
    """Dim ``k`` of ``v``'s shape: its size, else its symbol, else ``default``."""
    if v.shape is not None and len(v.shape) > k:
        d = v.shape[k]
        return d if isinstance(d, int) else (d.value or default)
    return default


def bind(model: ir.Model, bucket: int | None, where: str = "<model>") -> dict:
    """Bind the inputs' shapes (and, with ``bucket``, mask the pads) in ``model``, in place; drops the
    shapes of every other value (shape inference finds them afresh) and sorts the nodes."""
    g = model.graph
    ins = {v.name: v for v in g.inputs if not v.is_initializer()}
    tok = "tokens" if "tokens" in ins else "input_ids" if "input_ids" in ins else None
    if tok is None or "style" not in ins or "speed" not in ins:
        raise ModelError(f"{where}: not a Kokoro graph (inputs {sorted(ins)})")
    ins[tok].shape = ir.Shape([1, bucket if bucket else _dim(ins[tok], 1, "sequence_length")])
    ins["style"].shape = ir.Shape([1, 256])
    ins["speed"].shape = ir.Shape([1])
    report: dict = {"bucket": bucket}
    if bucket:
        report["masked"] = _mask_pads(model, ins[tok], bucket, where)
    forget_shapes(g)
    TopologicalSortPass()(model)
    return report


def _mask_pads(model: ir.Model, tok: ir.Value, L: int, where: str) -> dict:
    """Keep the pad positions of an L-token run from changing the real tokens' results and durations;
    how many nodes of each kind were masked."""
    g = model.graph
    cs = duration_cumsum(g, where)
    frame_level = downstream(cs.outputs[0]) | {cs}
    token_nodes = [n for n in g if n not in frame_level]
    # quantizer inputs that depend on the tokens (the style-only ones have no pads) and their token axes
    tok_level = downstream(tok)
    quant = [(n, PER_TENSOR_QUANT[n.op_type]) for n in token_nodes
             if n.op_type in PER_TENSOR_QUANT and (x := n.inputs[PER_TENSOR_QUANT[n.op_type]]) is not None
             and x.producer() in tok_level]
    axes = token_axes(model, tok.name, {n.inputs[k]: n for n, k in quant}, where) if quant else {}

    b = Builder(g)
    m = _pad_masks(b, tok, L)
    counts = {"softmax": 0, "conv": 0, "lstm": 0, "quantized": 0, "durations": 0}
    for n in token_nodes:
        kind = _mask_node(b, n, m, axes, where)
        if kind:
            counts[kind] += 1
    counts["quantized"] = _zero_quantizer_inputs(b, quant, axes, m.mask_f, L)
    dur = cs.inputs[0]
    masked = b.node("Mul", [dur, m.mask_i], "kopt/pad/durations_masked")
    counts["durations"] = rewire(dur, masked, keep={masked.producer()})
    # the durations pass's output (an Identity on the duration tensor) now reports masked ones too
    if counts["softmax"] == 0 and counts["lstm"] == 0 and counts["conv"] == 0:
        raise ModelError(f"{where}: found no token-level attention, convolution or LSTM to mask")
    return counts


class _PadMasks(NamedTuple):
    """The valid-token masks of one run, each the graph value that holds it."""

    mask_i: ir.Value      # int64 [L]: 1 at a real token (durations)
    mask_f: ir.Value      # float [L]: 1.0 at a real token (convolution and quantizer inputs)
    seq_lens: ir.Value    # int32 [1]: the valid length (LSTM sequence_lens)
    att_add: ir.Value     # float [L]: 0 at a real token, -1e9 at a pad (added before a softmax)


def _pad_masks(b: Builder, tok: ir.Value, L: int) -> _PadMasks:
    """Valid length = last non-zero position + 2 (the closing boundary pad), at most L; and the
    masks made from it."""
    zero = b.const("kopt/pad/zero_i64", np.array(0, np.int64))
    pos1 = b.const("kopt/pad/pos1", np.arange(1, L + 1, dtype=np.int64))
    pos0 = b.const("kopt/pad/pos0", np.arange(0, L, dtype=np.int64))
    one = b.const("kopt/pad/one", np.array(1, np.int64))
    cap = b.const("kopt/pad/L", np.array(L, np.int64))
    is_pad = b.node("Equal", [tok, zero], "kopt/pad/is_zero")
    nz = b.node("Cast", [b.node("Not", [is_pad], "kopt/pad/nonzero")], "kopt/pad/nonzero_i64", to=TensorProto.INT64)
    last = b.node("ReduceMax", [b.node("Mul", [nz, pos1], "kopt/pad/pos_if_real")], "kopt/pad/last", keepdims=0)
    valid = b.node("Min", [b.node("Add", [last, one], "kopt/pad/last_plus_1"), cap], "kopt/pad/valid_len")
    mask_b = b.node("Less", [pos0, valid], "kopt/pad/mask")
    mask_i = b.node("Cast", [mask_b], "kopt/pad/mask_i64", to=TensorProto.INT64)
    mask_f = b.node("Cast", [mask_b], "kopt/pad/mask_f", to=TensorProto.FLOAT)
    shape1 = b.const("kopt/pad/shape1", np.array([1], np.int64))
    seq_lens = b.node("Cast", [b.node("Reshape", [valid, shape1], "kopt/pad/valid_1")], "kopt/pad/seq_lens",
                      to=TensorProto.INT32)
    att_add = b.node("Where", [mask_b, b.const("kopt/pad/zero_f", np.array(0.0, np.float32)),
                               b.const("kopt/pad/neg_f", np.array(-1e9, np.float32))], "kopt/pad/att_add")
    return _PadMasks(mask_i, mask_f, seq_lens, att_add)


def _mask_node(b: Builder, n: ir.Node, m: _PadMasks, axes: dict, where: str) -> str | None:
    """Keep the pads out of one token-level node: a softmax gets -1e9 added at them, a convolution's
    input is zeroed there, a recurrent op gets sequence_lens. Which of the counts it adds to (None:
    none; a ConvInteger counts when its quantizer's input is zeroed, by _zero_quantizer_inputs)."""
    name = n.name or ""
    if n.op_type == "Softmax":
        x = n.inputs[0]
        n.replace_input_with(0, b.node("Add", [x, b.node("CastLike", [m.att_add, x], f"{name}/pad_add")],
                                       f"{name}/pad_masked"))
        return "softmax"
    if n.op_type == "Conv":
        x = n.inputs[0]
        n.replace_input_with(0, b.node("Mul", [x, b.node("CastLike", [m.mask_f, x], f"{name}/pad_mask")],
                                       f"{name}/pad_zeroed"))
        return "conv"
    if n.op_type == "ConvInteger":
        # its input is zeroed before its quantizer, below, like every run-time quantizer's
        p = n.inputs[0].producer() if n.inputs[0] is not None else None
        if p is None or p.op_type != "DynamicQuantizeLinear":
            raise ModelError(f"{where}: ConvInteger {name!r} over tokens is not fed by a "
                             "DynamicQuantizeLinear; cannot mask its padded positions")
        return "conv" if p.inputs[0] in axes else None
    if n.op_type in ("LSTM", "GRU", "RNN", "DynamicQuantizeLSTM"):
        if len(n.inputs) < 5:
            n.resize_inputs(5)
        if n.inputs[4] is not None:
            raise ModelError(f"{where}: {n.op_type} {name!r} already has sequence_lens; cannot bucket it")
        n.replace_input_with(4, m.seq_lens)
        return "lstm"
    return None


def _zero_quantizer_inputs(b: Builder, quant: list[tuple[ir.Node, int]],
                           axes: dict[ir.Value, tuple[int, tuple[int, ...]]], mask_f: ir.Value, L: int) -> int:
    """Multiply each run-time quantizer's input by the [L] pad mask laid along its token axes
    (Reshape to [1, .., L, .., 1]; one Mul per token axis, e.g. two for a [1, T, T] tensor)."""
    mask_at: dict[tuple[int, int], ir.Value] = {}
    for n, k in quant:
        x = n.inputs[k]
        rank, token_axes_ = axes[x]
        for a in token_axes_:
            if (rank, a) not in mask_at:
                shape = b.const(f"kopt/pad/mask_shape_{rank}d_axis{a}",
                                np.array([L if i == a else 1 for i in range(rank)], np.int64))
                mask_at[rank, a] = b.node("Reshape", [mask_f, shape], f"kopt/pad/mask_{rank}d_axis{a}")
            x = b.node("Mul", [x, mask_at[rank, a]], f"{n.name or ''}/pad_zeroed")
        n.replace_input_with(k, x)
    return len(quant)


@register
class BindShapes(Pass):
    name = "bind-shapes"
    checked = True
    version = 2  # 2: inputs of run-time quantizers zeroed at pads (int8 buckets)
    config_cls = BindShapesConfig
    summary = ("Bind batch 1, style [1,256], speed [1] and propagate shapes; with bucket=L a fixed token "
               "length L whose pad positions are masked (0 frames, no attention, no LSTM/conv leak, zeros "
               "into run-time quantizers).")
    equivalent = True
    # Padded runs reorder no sums over real data, but kernels pick other blockings for other
    # shapes; observed diffs are float-rounding size. A leak of pads moves durations: audio length differs.
    tolerance = 1e-3

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        bucket = self.config.bucket  # type: ignore[attr-defined]
        irm = ir.serde.deserialize_model(model)
        rep = bind(irm, bucket, str(ctx.input_path or "<model>"))
        model = to_proto(irm)
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        known = sum(1 for v in inferred.graph.value_info
                    if v.type.tensor_type.HasField("shape")
                    and all(d.HasField("dim_value") for d in v.type.tensor_type.shape.dim))
        rep["static_value_infos"] = known
        rep["value_infos"] = len(inferred.graph.value_info)
        return PassResult(model=inferred, report=rep)
