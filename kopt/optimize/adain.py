"""adain: Kokoro's decomposed adaptive instance norms rewritten as one InstanceNormalization each.

The export spells every AdaIN as element-wise ops over [1, C, T] tensors (T up to ~50k samples)::

    mean = ReduceMean(x, axes=[2]); d = Sub(x, mean); v = ReduceMean(Mul(d, d), axes=[2])
    n = Div(d, Sqrt(Add(v, eps)))                      # the normalization, sometimes shared
    out = Add(Mul(gamma1, n), beta)                    # gamma1 = gamma + 1, both [1, C, 1]

Each matched ``out`` becomes ``InstanceNormalization(x, Reshape(gamma1, [-1]), Reshape(beta, [-1]),
epsilon=eps)``, one kernel instead of about seven passes over x; a shared normalization gives each of
its AdaINs its own. What matches: ``find_adain``. Left alone and counted in the report: the rest,
and AdaINs a CumSum depends on (Kokoro's F0 predictor: the sine source integrates F0 into a phase,
so a rounding change grows into a drift). A rewrite feeding a quantizer makes the pass refuse the
model (``kopt.optimize._float``): apply it to the float model, then quantize.

Dead-code removal (onnx-ir's) drops what nothing reads any more, unread optional outputs (an LSTM's
Y_h, Y_c) included. ONNX infers no STFT output for a symbolic signal length, so those get
onnxruntime's shape before a second round of shape inference.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx_ir as ir
from onnx import TensorProto
from onnx_ir.passes.common import RemoveUnusedNodesPass

from kopt.core.graph import (
    Builder,
    Shape,
    const_value,
    feeds_a_quantizer,
    infer_shapes,
    is_onnx_op,
    only_consumer,
    other_input,
    upstream_of,
)
from kopt.core.passes import PassConfig, PassContext, PassResult, register
from kopt.optimize._float import BeforeQuantization

Shapes = dict[str, tuple[int, Shape]]


def _producer(v: ir.Value | None) -> ir.Node | None:
    return None if v is None else v.producer()


def _reduces_last_axis(rm: ir.Node, rank: int) -> bool:
    """ReduceMean ``rm`` over an input of ``rank`` reduces exactly its last axis, keeping dims."""
    keepdims = rm.attributes.get_int("keepdims", 1)
    attr = rm.attributes.get_ints("axes")
    if attr is not None:
        axes = list(attr)
    elif len(rm.inputs) > 1 and rm.inputs[1] is not None:
        c = const_value(rm.inputs[1])
        if c is None:
            return False
        axes = [int(v) for v in c.reshape(-1)]
    else:
        return False  # no axes: all of them
    return keepdims == 1 and [a % rank for a in axes] == [rank - 1]


class _Norm:
    """A matched normalization n = (x - mean) / sqrt(var + eps) over the last axis of x."""

    def __init__(self, x: ir.Value, eps: float, channels: int):
        self.x, self.eps, self.channels = x, eps, channels


def match_norm(shapes: Shapes, div: ir.Node) -> _Norm | str:
    """The normalization ending in ``div``, or the reason it is not one we rewrite."""
    d, s = div.inputs
    sqrt = _producer(s)
    add = _producer(sqrt.inputs[0]) if is_onnx_op(sqrt, "Sqrt") else None
    if not is_onnx_op(add, "Add"):
        return "not Div(_, Sqrt(Add(_, _)))"
    var_rm, eps_v = None, None
    for a, b in (add.inputs, reversed(add.inputs)):
        if is_onnx_op(_producer(a), "ReduceMean"):
            var_rm, eps_v = a.producer(), b
            break
    if var_rm is None:
        return "variance is not a ReduceMean"
    eps = const_value(eps_v)
    if eps is None or eps.size != 1 or eps.dtype != np.float32 or not np.isfinite(eps).all():
        return "eps is not a float32 scalar constant"
    sq = _producer(var_rm.inputs[0])
    squares_d = (is_onnx_op(sq, "Mul") and len(sq.inputs) == 2 and all(i is d for i in sq.inputs)) or (
        is_onnx_op(sq, "Pow") and sq.inputs[0] is d and (p := const_value(sq.inputs[1])) is not None
        and p.size == 1 and float(p.reshape(-1)[0]) == 2.0)
    if not squares_d:
        return "variance does not square the Div's numerator"
    sub = _producer(d)
    if not is_onnx_op(sub, "Sub"):
        return "numerator is not Sub(x, ReduceMean(x))"
    x, mean = sub.inputs
    mean_rm = _producer(mean)
    if not is_onnx_op(mean_rm, "ReduceMean") or mean_rm.inputs[0] is not x:
        return "numerator is not Sub(x, ReduceMean(x))"
    sx = shapes.get(x.name)
    if sx is None:
        return "shape of x unknown"
    elem, shape = sx
    if elem != TensorProto.FLOAT:
        return "x is not float32"
    if len(shape) != 3:
        return "x is not rank 3"
    if not (_reduces_last_axis(mean_rm, 3) and _reduces_last_axis(var_rm, 3)):
        return "ReduceMean is not over the last axis (keepdims=1)"
    if not isinstance(shape[1], int) or shape[1] < 1:
        return "channel count of x unknown"
    return _Norm(x, float(eps.reshape(-1)[0]), shape[1])


def _per_channel(shapes: Shapes, v: ir.Value, channels: int) -> bool:
    s = shapes.get(v.name)
    return s is not None and s[0] == TensorProto.FLOAT and s[1] == (1, channels, 1)


def match_affine(shapes: Shapes, norm_out: ir.Value, mul: ir.Node,
                 channels: int) -> tuple[ir.Value, ir.Value, ir.Node] | str:
    """(gamma1, beta, final Add) for ``Add(Mul(gamma1, n), beta)`` read by ``mul``, or why not."""
    if not is_onnx_op(mul, "Mul"):
        return f"normalization read by {mul.op_type}, not Mul"
    scale = other_input(mul, norm_out)
    if scale is None or scale is norm_out:
        return "normalization read by Mul(n, n)"
    m = mul.outputs[0]
    add = only_consumer(m, "Add")
    if not is_onnx_op(add, "Add"):
        return "Mul(gamma, n) is not read by one Add only"
    bias = other_input(add, m)
    if bias is None or bias is m:
        return "Mul(gamma, n) is not read by one Add only"
    if not (_per_channel(shapes, scale, channels) and _per_channel(shapes, bias, channels)):
        return "gamma or beta is not float32 of static shape [1, C, 1]"
    return scale, bias, add


class _Found:
    """What matching found: the AdaINs to rewrite (final Add -> (normalization, gamma1, beta)), in
    graph order, and the counts for the report."""

    def __init__(self):
        self.plans: dict[ir.Node, tuple[_Norm, ir.Value, ir.Value]] = {}
        self.skipped: Counter[str] = Counter()
        self.norms = self.shared = self.adains = 0


def find_adain(model: ir.Model) -> _Found:
    """Match every AdaIN of ``model`` (nothing is rewritten).

    Matched exactly: x rank-3 float32 with a known channel count, both ReduceMeans over its last axis
    with keepdims, eps a float32 scalar constant, Mul(d, d) or Pow(d, 2), commutative operands in
    either order, gamma1 and beta float32 of static shape [1, C, 1] (InstanceNormalization's scale
    and bias are per channel, so they must not vary over the batch)."""
    g = model.graph
    found = _Found()
    skipped = found.skipped
    divs = [n for n in g if is_onnx_op(n, "Div") and len(n.inputs) == 2]
    if divs:
        shapes = infer_shapes(model)
        accumulated = upstream_of(g, {"CumSum"})
    for div in divs:
        sqrt = _producer(div.inputs[1])
        add = _producer(sqrt.inputs[0]) if is_onnx_op(sqrt, "Sqrt") else None
        if not (is_onnx_op(add, "Add") and any(const_value(i) is not None for i in add.inputs)):
            continue  # no Div(_, Sqrt(Add(_, constant))): not a normalization (e.g. attention's / sqrt(d_k))
        norm = match_norm(shapes, div)
        if isinstance(norm, str):
            skipped[f"normalization: {norm}"] += 1
            continue
        found.norms += 1
        n_out = div.outputs[0]
        readers = [u.node for u in n_out.uses()]  # one per input slot, as a Mul(n, n) reads it twice
        found.shared += len(readers) > 1
        for mul in readers:
            aff = match_affine(shapes, n_out, mul, norm.channels)
            if isinstance(aff, str):
                skipped[f"affine: {aff}"] += 1
                continue
            scale, bias, final = aff
            found.adains += 1
            if final.outputs[0] in accumulated:
                skipped["adain: feeds a CumSum, which would accumulate its rounding change"] += 1
                continue
            found.plans[final] = (norm, scale, bias)
        if n_out.is_graph_output():
            skipped["affine: normalization is a graph output"] += 1
    return found


def rewrite_adain(model: ir.Model) -> dict:
    """Rewrite every matched AdaIN of ``model`` in place, on onnx-ir; its counts: normalizations
    and AdaINs matched, AdaINs rewritten (and how many of those feed a quantizer), skipped by reason,
    nodes."""
    g = model.graph
    nodes_before = len(g)
    found = find_adain(model)
    plans = found.plans
    requantized = sum(feeds_a_quantizer(final.outputs[0]) for final in plans)
    nodes_removed = 0
    if plans:
        b = Builder(g)
        flat = b.const("kopt/adain/flat", np.array([-1], np.int64))
        for final in [n for n in g if n in plans]:  # in graph order, so fresh names number as they did
            norm, scale, bias = plans[final]
            base = final.name or final.outputs[0].name
            rs = b.make("Reshape", [scale, flat], f"{base}/kopt_adain_scale/Reshape", f"{base}/kopt_adain_scale")
            rb = b.make("Reshape", [bias, flat], f"{base}/kopt_adain_bias/Reshape", f"{base}/kopt_adain_bias")
            inorm = ir.node("InstanceNormalization", [norm.x, rs.outputs[0], rb.outputs[0]], {"epsilon": norm.eps},
                            name=b.fresh(f"{base}/kopt_adain/InstanceNormalization"))
            # the InstanceNormalization takes the final Add's place and its output's name
            ir.convenience.replace_nodes_and_values(g, final, [final], [rs, rb, inorm],
                                                    [final.outputs[0]], [inorm.outputs[0]])
        # the normalizations, Mul(gamma1, n) and their constants go when nothing else reads them
        nodes_rewired = len(g)
        RemoveUnusedNodesPass()(model)
        nodes_removed = nodes_rewired - len(g)
    return {"normalizations_matched": found.norms, "normalizations_shared": found.shared,
            "adain_matched": found.adains, "adain_rewritten": len(plans), "adain_requantized": requantized,
            "skipped": dict(sorted(found.skipped.items())),
            "nodes_removed": nodes_removed, "nodes_before": nodes_before, "nodes_after": len(g)}


@register
class Adain(BeforeQuantization):
    name = "adain"
    version = 1
    config_cls = PassConfig
    summary = ("Decomposed AdaIN (ReduceMean/Sub/Mul/Sqrt/Div, then * gamma + beta) as one "
               "InstanceNormalization each; float graphs, before quantization.")
    equivalent = True
    # InstanceNormalization sums mean and variance in another order than the two ReduceMeans: float
    # rounding only (the F0 predictor's AdaINs, whose rounding the sine source would accumulate, stay).
    tolerance = 1e-4
    rewritten = "AdaINs"
    why = ("the rewrite's float rounding flips quantization steps and moves the audio far beyond the pass's "
           f"tolerance ({tolerance:g})")

    def rewrites(self, model: ir.Model) -> list[ir.Value]:
        return [final.outputs[0] for final in find_adain(model).plans]

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        return PassResult(model=model, report=rewrite_adain(model))
