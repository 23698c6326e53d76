"""snake: Kokoro's Snake activations in three passes over their tensor instead of five.

The generator's resblocks apply Snake to every AdaIN output, exported as::

    y = Add(x, Mul(Reciprocal(alpha), Pow(Sin(Mul(alpha, x)), 2)))      # x + sin^2(alpha x) / alpha

with ``alpha`` a float32 constant [1, C, 1]; ``y`` feeds a Conv. With ``z = alpha * x`` it is
``y = (z + sin^2 z) / alpha``, and every factor can go where it costs nothing:

- ``z``: when ``x`` is an InstanceNormalization's output read only by this Snake (``adain`` makes
  every generator AdaIN one), alpha multiplies its per-channel scale and bias ([C], not [1, C, T]);
- ``sin^2 z`` is ``Mul(s, s)``: onnxruntime's Pow with exponent 2 is a slower kernel;
- ``1 / alpha`` (``into_conv``): when ``y`` is read by one Conv only, whose weights are a constant, it
  scales the weights' input channels (exact: zero padding stays zero); otherwise it stays a Mul.

So 5 ops over [1, C, T] (Mul, Sin, Pow, Mul, Add) become 3 (Sin, Mul, Add). What matches:
``match_snake``; what cannot move stays, and the report counts both.

A Snake that feeds a quantizer makes the pass fail, as adain does: apply it to the float model,
then quantize. Before int8 keep ``into_conv`` off: folded into the weights, 1/alpha widens the
per-output-channel weight ranges the quantizer sees; the Mul it leaves goes into the quantizer's
scale (``quant-scale``) or a table (``snake-lut``) instead.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass
from pydantic import Field

from kopt.core.errors import ModelError
from kopt.core.graph import (
    Builder,
    const_value,
    feeds_a_quantizer,
    is_onnx_op,
    match_each,
    only_reader,
    other_input,
)
from kopt.core.passes import PassConfig, PassContext, PassResult, register
from kopt.optimize._float import BeforeQuantization


def _reciprocal(v: ir.Value | None) -> np.ndarray | None:
    """The value of a constant, or of ``Reciprocal(constant)`` computed as onnxruntime does (1 / a in float32)."""
    c = const_value(v)
    if c is not None:
        return c
    p = v.producer() if v is not None else None
    if is_onnx_op(p, "Reciprocal"):
        a = const_value(p.inputs[0])
        if a is not None and a.dtype == np.float32:
            return (np.float32(1.0) / a).astype(np.float32)
    return None


class _Snake:
    """A matched Snake: y = x + inv * sin(alpha * x)^2, and where its factors can go."""

    def __init__(self, x: ir.Value, alpha: np.ndarray, inv: np.ndarray, nodes: list[ir.Node], y: ir.Value):
        self.x, self.alpha, self.inv, self.nodes, self.y = x, alpha, inv, nodes, y
        self.norm: ir.Node | None = None  # the InstanceNormalization that absorbs alpha
        self.conv: ir.Node | None = None  # the Conv whose weights absorb 1/alpha


def match_snake(sin: ir.Node) -> _Snake | str:
    """The Snake around ``sin``, or the reason it is left alone.

    Matched exactly: ``alpha`` float32 of shape [1, C, 1] or [C, 1], every element non-zero and
    finite; the reciprocal a constant or ``Reciprocal(alpha)`` equal to 1/alpha within float32
    rounding; exponent 2; commutative operands in either order; every intermediate read only by the
    next op and no graph output; Kokoro's Sin, not the sine source's (which reads a Transpose)."""
    mul_a = sin.inputs[0].producer() if sin.inputs[0] is not None else None
    if not is_onnx_op(mul_a, "Mul"):
        return "Sin does not read Mul(alpha, x)"
    x = alpha = None
    for a, b in (mul_a.inputs, reversed(mul_a.inputs)):
        c = const_value(a)
        if c is not None and const_value(b) is None:
            alpha, x = c, b
            break
    if alpha is None:
        return "Sin does not read Mul(constant alpha, x)"
    if alpha.dtype != np.float32 or alpha.ndim not in (2, 3) or alpha.shape[-1] != 1 or \
            (alpha.ndim == 3 and alpha.shape[0] != 1):
        return "alpha is not float32 [1, C, 1] or [C, 1]"
    if not (np.isfinite(alpha).all() and (alpha != 0).all()):
        return "alpha has a zero or non-finite element"
    if only_reader(mul_a.outputs[0]) is not sin:
        return "alpha * x has other readers"
    sq = only_reader(sin.outputs[0])
    s = sin.outputs[0]
    if is_onnx_op(sq, "Pow"):
        p = const_value(sq.inputs[1]) if sq.inputs[0] is s else None
        if p is None or p.size != 1 or float(p.reshape(-1)[0]) != 2.0:
            return "sin is not squared (Pow exponent is not a constant 2)"
    elif not (is_onnx_op(sq, "Mul") and sq.inputs[0] is s and sq.inputs[1] is s):
        return "sin is not squared (no Pow(s, 2) or Mul(s, s))"
    mul_inv = only_reader(sq.outputs[0])
    if not is_onnx_op(mul_inv, "Mul"):
        return "sin^2 is not scaled by a Mul"
    inv = _reciprocal(other_input(mul_inv, sq.outputs[0]))
    if inv is None or inv.shape != alpha.shape or inv.dtype != np.float32:
        return "sin^2 is not scaled by 1/alpha"
    if not np.allclose(inv.astype(np.float64) * alpha, 1.0, rtol=0, atol=4e-7):
        return "the scale of sin^2 is not 1/alpha"
    add = only_reader(mul_inv.outputs[0])
    if not is_onnx_op(add, "Add") or other_input(add, mul_inv.outputs[0]) is not x:
        return "sin^2 / alpha is not added to x"
    return _Snake(x, alpha.reshape(-1), inv.reshape(-1), [mul_a, sin, sq, mul_inv, add], add.outputs[0])


def _absorbing_norm(sn: _Snake) -> ir.Node | None:
    """The InstanceNormalization producing x, when the Snake's Mul and Add are its only readers."""
    p = sn.x.producer()
    if not is_onnx_op(p, "InstanceNormalization") or len(p.inputs) != 3 or sn.x.is_graph_output():
        return None
    readers = {id(u.node) for u in sn.x.uses()}
    return p if readers == {id(sn.nodes[0]), id(sn.nodes[4])} and len(list(sn.x.uses())) == 2 else None


def _absorbing_conv(sn: _Snake) -> ir.Node | None:
    """The one float Conv reading y as its input, with constant float32 weights of matching channels."""
    conv = only_reader(sn.y)
    if not is_onnx_op(conv, "Conv") or conv.inputs[0] is not sn.y:
        return None
    w = const_value(conv.inputs[1]) if len(conv.inputs) > 1 else None
    if w is None or w.dtype != np.float32 or w.ndim < 3:
        return None
    groups = conv.attributes.get_int("group", 1)
    return conv if w.shape[1] * groups == sn.alpha.size else None


def _input_gain(w: np.ndarray, gain: np.ndarray, groups: int) -> np.ndarray:
    """Conv weights [O, I/groups, k...] with input channel c scaled by gain[c]."""
    o, i = w.shape[0], w.shape[1]
    per = np.stack([gain[(k // (o // groups)) * i:(k // (o // groups) + 1) * i] for k in range(o)])
    return (w.astype(np.float64) * per.reshape(o, i, *[1] * (w.ndim - 2))).astype(np.float32)


def find_snakes(g: ir.Graph) -> tuple[list[_Snake], Counter[str]]:
    """Every matched Snake of ``g`` (nothing is rewritten), and the Sins left alone by reason."""
    return match_each(g, "Sin", match_snake)


def rewrite_snake(model: ir.Model, into_conv: bool = True) -> dict:
    """Rewrite every matched Snake of ``model`` in place, on onnx-ir (none when one feeds a
    quantizer); its report. ``into_conv``: fold 1/alpha into the next Conv's weights where it can
    (else it stays a Mul)."""
    g = model.graph
    nodes_before = len(g)
    snakes, skipped = find_snakes(g)
    requantized = sum(feeds_a_quantizer(sn.y) for sn in snakes)
    folded_norm = folded_conv = 0
    if snakes and not requantized:
        builder = Builder(g)
        for sn in snakes:
            sn.norm, sn.conv = _absorbing_norm(sn), _absorbing_conv(sn) if into_conv else None
            _rewrite(builder, sn)
            folded_norm += sn.norm is not None
            folded_conv += sn.conv is not None
        RemoveUnusedNodesPass()(model)
    return {"sin_found": sum(skipped.values()) + len(snakes), "snake_rewritten": 0 if requantized else len(snakes),
            "snake_requantized": requantized, "alpha_into_norm": folded_norm,
            "reciprocal_into_conv": folded_conv, "skipped": dict(sorted(skipped.items())),
            "nodes_before": nodes_before, "nodes_after": len(g)}


def _rewrite(b: Builder, sn: _Snake) -> None:
    mul_a, sin, _sq, _mul_inv, add = sn.nodes
    path = sin.name.rsplit("/", 1)[0] if sin.name and "/" in sin.name else ""
    # "<module path>/Snake<Op>": the exporter's "<path>/<Op>" form, so kopt's node groups keep these
    # nodes in their resblock's group (kopt/quantize/groups.py)
    base = f"{path}/Snake"

    init = b.const

    def node(op: str, inputs: list[ir.Value], **attrs) -> ir.Node:
        n = b.make(op, inputs, f"{base}{op}", f"{base}{op}_output_0", **attrs)
        b.g.insert_before(add, n)
        return n

    new: list[ir.Node] = []
    if sn.norm is not None:
        a = init(f"{base}/alpha", sn.alpha.astype(np.float32))
        x_in, scale, bias = sn.norm.inputs
        new_scale = node("Mul", [scale, a])
        new_bias = node("Mul", [bias, a])
        z = node("InstanceNormalization", [x_in, new_scale.outputs[0], new_bias.outputs[0]],
                 epsilon=sn.norm.attributes.get_float("epsilon", 1e-5)).outputs[0]
        new += [new_scale, new_bias]
    else:
        z = mul_a.outputs[0]  # alpha * x stays a Mul
    s = node("Sin", [z]).outputs[0]
    sq = node("Mul", [s, s]).outputs[0]
    w = node("Add", [z, sq]).outputs[0]
    if sn.conv is not None:
        conv = sn.conv
        weights = const_value(conv.inputs[1])
        folded = _input_gain(weights, sn.inv, conv.attributes.get_int("group", 1))
        conv.replace_input_with(1, init(f"{conv.inputs[1].name}/snake", folded))
        conv.replace_input_with(0, w)
    else:
        inv = init(f"{base}/reciprocal", sn.inv.reshape((1, -1, 1)).astype(np.float32))
        y = node("Mul", [w, inv]).outputs[0]
        ir.convenience.replace_all_uses_with(sn.y, y)
        if sn.y.is_graph_output():  # not matched (see only_reader); kept for safety
            raise ModelError("snake: a Snake output is a graph output")


class SnakeConfig(PassConfig):
    into_conv: bool = Field(True, description="Fold 1/alpha into the next Conv's weights (else it stays a Mul "
                            "over the Snake's output). Turn off before int8: see the module's docstring.")


@register
class Snake(BeforeQuantization):
    name = "snake"
    version = 1
    config_cls = SnakeConfig
    config: SnakeConfig
    summary = ("Snake activations (x + sin^2(alpha x)/alpha) as Sin, Mul, Add: alpha into the AdaIN's "
               "InstanceNormalization, 1/alpha into the next Conv's weights; float graphs, before quantization.")
    equivalent = True
    # alpha * x is computed inside InstanceNormalization and 1/alpha inside the Conv's sums: float
    # rounding only.
    tolerance = 1e-4

    rewritten = "Snakes"
    after = " (after adain)"

    def rewrites(self, model: ir.Model) -> list[ir.Value]:
        return [sn.y for sn in find_snakes(model.graph)[0]]

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        return PassResult(model=model, report=rewrite_snake(model, self.config.into_conv))
