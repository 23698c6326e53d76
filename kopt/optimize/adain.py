"""adain: Kokoro's decomposed adaptive instance norms rewritten as one InstanceNormalization each.

The export spells every AdaIN as element-wise ops over [1, C, T] tensors, T up to ~50k samples in
the generator::

    mean = ReduceMean(x, axes=[2]); d = Sub(x, mean); v = ReduceMean(Mul(d, d), axes=[2])
    n = Div(d, Sqrt(Add(v, eps)))                      # the normalization, sometimes shared
    out = Add(Mul(gamma1, n), beta)                    # gamma1 = gamma + 1, both [1, C, 1]

Each matched ``out`` becomes ``InstanceNormalization(x, Reshape(gamma1, [-1]), Reshape(beta,
[-1]), epsilon=eps)``: one kernel instead of about seven full passes over x (onnxruntime 1.31 CPU,
one AdaIN over [1, 128, 41760]: 2.9 ms instead of 8.8 at 1 thread). A normalization shared by
several AdaINs (ORT's common-subexpression elimination merged those reading the same x) gives each
its own InstanceNormalization: for three over [1, 128, 41760], 8.9 ms instead of 17.4 at 1 thread,
a tie at 2 (8.7 vs 8.4), so they are rewritten too.

The match is exact and conservative: a rank-3 float32 x with a known channel count, both
ReduceMeans over its last axis with keepdims, eps a float32 scalar constant, Mul(d, d) or Pow(d, 2),
commutative operands in either order, gamma1 and beta float32 of static shape [1, C, 1]
(InstanceNormalization's scale and bias are per channel, so they must not vary over the batch).
Anything else is left as it is and counted in the report under a reason. Also left alone:

- AdaINs a CumSum depends on. In Kokoro those are the F0 predictor's: the sine source integrates
  F0 into a phase, so InstanceNormalization's different float rounding grows into
  a phase drift over the utterance (measured: max abs audio diff 0.07 instead of 3e-6), while those
  norms run at frame rate and cost next to nothing.

Rewritten AdaINs that feed a quantizer (QuantizeLinear of a QDQ model, DynamicQuantizeLinear of a
dynamically quantized one) make the pass fail: the rounding change flips quantization steps
(measured max abs audio diff: 0.18 on Kokoro int8-static, 0.22 on Kokoro's own int8 model); apply
adain to the float model, then quantize. Q/DQ nodes themselves are never touched (rewrite_adain on
a QDQ model leaves them as they were). Nodes the rewrite leaves unread are removed.

Shapes come from ONNX shape inference on a weightless copy of the graph. ONNX cannot infer an STFT
output whose signal length is symbolic, which in Kokoro would hide every generator shape, so STFT
outputs get onnxruntime's shape with a fresh symbol for the frame count before a second round.

On Kokoro v1.0's fp32 reference: 65 normalizations read by 70 AdaINs; 63 rewritten, 5 skipped
(CumSum), 2 skipped because ORT's transpose optimizer moved Transposes into their normalization.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from kopt.core.errors import ModelError
from kopt.core.graph import QUANTIZERS, GraphIndex, Shape, infer_shapes, is_op, name_allocator, remove_unread
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register


def _key(n: onnx.NodeProto) -> tuple[str, ...]:
    """A node's identity that survives protobuf re-wrapping: its output names."""
    return tuple(n.output)


class _Graph(GraphIndex):
    """The shared use-def index plus the shapes ONNX shape inference gives (kopt.core.graph)."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__(model.graph)
        self.shapes = infer_shapes(model)

    def shape(self, name: str) -> tuple[int, Shape] | None:
        return self.shapes.get(name)


def _reduces_last_axis(gr: _Graph, rm: onnx.NodeProto, rank: int) -> bool:
    """ReduceMean ``rm`` over an input of ``rank`` reduces exactly its last axis, keeping dims."""
    keepdims = next((a.i for a in rm.attribute if a.name == "keepdims"), 1)
    attr = next((list(a.ints) for a in rm.attribute if a.name == "axes"), None)
    if attr is not None:
        axes = attr
    elif len(rm.input) > 1 and rm.input[1]:
        c = gr.const(rm.input[1])
        if c is None:
            return False
        axes = [int(v) for v in c.reshape(-1)]
    else:
        return False  # no axes: all of them
    return keepdims == 1 and [a % rank for a in axes] == [rank - 1]


class _Norm:
    """A matched normalization n = (x - mean) / sqrt(var + eps) over the last axis of x."""

    def __init__(self, x: str, eps: float, channels: int, nodes: list[onnx.NodeProto]):
        self.x, self.eps, self.channels, self.nodes = x, eps, channels, nodes


def match_norm(gr: _Graph, div: onnx.NodeProto) -> _Norm | str:
    """The normalization ending in ``div``, or the reason it is not one we rewrite."""
    d, s = div.input
    sqrt = gr.prod.get(s)
    add = gr.prod.get(sqrt.input[0]) if is_op(sqrt, "Sqrt") else None
    if not is_op(add, "Add"):
        return "not Div(_, Sqrt(Add(_, _)))"
    var_rm, eps_name = None, None
    for a, b in (add.input, reversed(add.input)):
        if is_op(gr.prod.get(a), "ReduceMean"):
            var_rm, eps_name = gr.prod[a], b
            break
    if var_rm is None:
        return "variance is not a ReduceMean"
    eps = gr.const(eps_name)
    if eps is None or eps.size != 1 or eps.dtype != np.float32 or not np.isfinite(eps).all():
        return "eps is not a float32 scalar constant"
    sq = gr.prod.get(var_rm.input[0])
    squares_d = (is_op(sq, "Mul") and list(sq.input) == [d, d]) or (
        is_op(sq, "Pow") and sq.input[0] == d and (p := gr.const(sq.input[1])) is not None and p.size == 1
        and float(p.reshape(-1)[0]) == 2.0)
    if not squares_d:
        return "variance does not square the Div's numerator"
    sub = gr.prod.get(d)
    if not is_op(sub, "Sub"):
        return "numerator is not Sub(x, ReduceMean(x))"
    x, mean = sub.input
    mean_rm = gr.prod.get(mean)
    if not is_op(mean_rm, "ReduceMean") or mean_rm.input[0] != x:
        return "numerator is not Sub(x, ReduceMean(x))"
    sx = gr.shape(x)
    if sx is None:
        return "shape of x unknown"
    elem, shape = sx
    if elem != TensorProto.FLOAT:
        return "x is not float32"
    if len(shape) != 3:
        return "x is not rank 3"
    if not (_reduces_last_axis(gr, mean_rm, 3) and _reduces_last_axis(gr, var_rm, 3)):
        return "ReduceMean is not over the last axis (keepdims=1)"
    if not isinstance(shape[1], int) or shape[1] < 1:
        return "channel count of x unknown"
    return _Norm(x, float(eps.reshape(-1)[0]), shape[1], [div, sqrt, add, var_rm, sq, sub, mean_rm])


def upstream_of(gr: _Graph, ops: set[str]) -> set[str]:
    """Every tensor some node of a type in ``ops`` (any domain) depends on."""
    seen: set[str] = set()
    stack = [i for n in gr.g.node if n.op_type in ops for i in n.input if i]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        p = gr.prod.get(t)
        if p is not None:
            stack.extend(i for i in p.input if i)
    return seen


def _per_channel(gr: _Graph, name: str, channels: int) -> bool:
    s = gr.shape(name)
    return s is not None and s[0] == TensorProto.FLOAT and s[1] == (1, channels, 1)


def match_affine(gr: _Graph, norm_out: str, mul: onnx.NodeProto, channels: int) -> tuple[str, str, onnx.NodeProto] | str:
    """(gamma1, beta, final Add) for ``Add(Mul(gamma1, n), beta)`` read by ``mul``, or why not."""
    if not is_op(mul, "Mul"):
        return f"normalization read by {mul.op_type}, not Mul"
    scale = gr.other(mul, norm_out)
    if scale is None or scale == norm_out:
        return "normalization read by Mul(n, n)"
    m = mul.output[0]
    readers = gr.cons.get(m, [])
    if len(readers) != 1 or m in gr.outputs or not is_op(readers[0], "Add"):
        return "Mul(gamma, n) is not read by one Add only"
    add = readers[0]
    bias = gr.other(add, m)
    if bias is None or bias == m:
        return "Mul(gamma, n) is not read by one Add only"
    if not (_per_channel(gr, scale, channels) and _per_channel(gr, bias, channels)):
        return "gamma or beta is not float32 of static shape [1, C, 1]"
    return scale, bias, add


def rewrite_adain(model: onnx.ModelProto) -> dict:
    """Rewrite every matched AdaIN in place; returns counts: normalizations and AdaINs matched,
    AdaINs rewritten (and how many of those feed a quantizer), skipped by reason, nodes."""
    gr = _Graph(model)
    g = model.graph
    nodes_before = len(g.node)
    skipped: Counter[str] = Counter()
    norms_matched = shared = adain_matched = 0
    accumulated = upstream_of(gr, {"CumSum"})
    quantized = upstream_of(gr, QUANTIZERS)
    requantized = 0
    plans: dict[tuple[str, ...], tuple[_Norm, str, str, onnx.NodeProto]] = {}  # final Add -> plan
    pattern_nodes: list[onnx.NodeProto] = []
    for div in list(g.node):
        if not is_op(div, "Div") or len(div.input) != 2:
            continue
        sqrt = gr.prod.get(div.input[1])
        add = gr.prod.get(sqrt.input[0]) if is_op(sqrt, "Sqrt") else None
        if not (is_op(add, "Add") and any(gr.const(i) is not None for i in add.input)):
            continue  # no Div(_, Sqrt(Add(_, constant))): not a normalization (e.g. attention's / sqrt(d_k))
        norm = match_norm(gr, div)
        if isinstance(norm, str):
            skipped[f"normalization: {norm}"] += 1
            continue
        norms_matched += 1
        readers = gr.cons.get(div.output[0], [])
        shared += len(readers) > 1
        for mul in readers:
            aff = match_affine(gr, div.output[0], mul, norm.channels)
            if isinstance(aff, str):
                skipped[f"affine: {aff}"] += 1
                continue
            scale, bias, final = aff
            adain_matched += 1
            if final.output[0] in accumulated:
                skipped["adain: feeds a CumSum, which would accumulate its rounding change"] += 1
                continue
            plans[_key(final)] = (norm, scale, bias, final)
            requantized += final.output[0] in quantized
            pattern_nodes += [mul, *norm.nodes]
        if div.output[0] in gr.outputs:
            skipped["affine: normalization is a graph output"] += 1

    if plans:
        fresh = name_allocator(g)

        flat = fresh("kopt/adain/flat")
        g.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), flat))
        new_nodes = []
        for n in g.node:
            plan = plans.get(_key(n))
            if plan is None:
                new_nodes.append(n)
                continue
            norm, scale, bias, final = plan
            base = final.name or final.output[0]
            s, b = fresh(f"{base}/kopt_adain_scale"), fresh(f"{base}/kopt_adain_bias")
            new_nodes += [
                helper.make_node("Reshape", [scale, flat], [s], name=fresh(f"{base}/kopt_adain_scale/Reshape")),
                helper.make_node("Reshape", [bias, flat], [b], name=fresh(f"{base}/kopt_adain_bias/Reshape")),
                helper.make_node("InstanceNormalization", [norm.x, s, b], list(final.output),
                                 name=fresh(f"{base}/kopt_adain/InstanceNormalization"), epsilon=norm.eps),
            ]
        del g.node[:]
        g.node.extend(new_nodes)
    removed = remove_unread(g, pattern_nodes)
    return {"normalizations_matched": norms_matched, "normalizations_shared": shared,
            "adain_matched": adain_matched, "adain_rewritten": len(plans), "adain_requantized": requantized,
            "skipped": dict(sorted(skipped.items())),
            "nodes_removed": removed, "nodes_before": nodes_before, "nodes_after": len(g.node)}


@register
class Adain(Pass):
    name = "adain"
    version = 1
    config_cls = PassConfig
    summary = ("Decomposed AdaIN (ReduceMean/Sub/Mul/Sqrt/Div, then * gamma + beta) as one "
               "InstanceNormalization each; float graphs, before quantization.")
    equivalent = True
    # InstanceNormalization sums mean and variance in another order than the two ReduceMeans: float
    # rounding only. Observed on the real fp32 reference: max abs audio diff 2.6e-6 (check set's
    # medium utterance). The AdaINs of the F0 predictor are left alone because they feed the sine
    # source's CumSum: rewritten, the same rounding accumulates into a phase drift of up to 0.07.
    tolerance = 1e-4

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        report = rewrite_adain(model)
        if report["adain_requantized"]:
            raise ModelError(
                f"{ctx.input_path or '<model>'}: {report['adain_requantized']} of the AdaINs this pass would rewrite "
                "feed a quantizer (QuantizeLinear/DynamicQuantizeLinear: a quantized model): the rewrite's float "
                "rounding flips quantization steps and moves the audio far beyond the pass's tolerance "
                f"({self.tolerance:g}); apply adain to the float model (e.g. the fp32 reference), then quantize")
        onnx.checker.check_model(model)
        return PassResult(model=model, report=report)
