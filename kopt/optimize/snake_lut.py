"""snake-lut: a quantized Snake as a per-channel lookup table, without Sin.

After ``adain``, ``snake`` (``into_conv = false``) and int8 (the ``hybrid`` pass), every Snake in
front of an int8 conv of Kokoro's generator reads::

    z = InstanceNormalization(x, gamma, beta)                # alpha already inside gamma and beta
    y = Add(z, Mul(Sin(z), Sin(z)))                           # z + sin^2 z
    q = QuantizeLinear(Mul(y, 1/alpha), S, zp)                # the int8 conv's input, per channel

(or with the ``1/alpha`` Mul already in ``S``, by ``quant-scale``). ``q`` is a monotone function of
``z`` alone, channel by channel (``f(z) = z + sin^2 z`` has slope ``1 + sin 2z`` in [0, 2]), so it
steps across the integer range as ``z`` crosses one interval ``[lo_c, hi_c]`` and saturates outside.
The pass cuts that interval into ``bins`` equal bins, tables the quantized ``f`` at each bin's centre
(``[1, C, bins]``, the quantizer's integer type) and reads it with standard ops::

    u  = InstanceNormalization(x, gamma * a, beta * a + b)    # u = (z - lo) / width, per channel
    q' = GatherElements(table, Cast(Clip(u, 0, bins - 1), to=int32), axis=2)

Sin, which onnxruntime's CPU EP runs on one thread, goes with the Muls, the Add and the
QuantizeLinear; ``q'`` feeds the same DequantizeLinear, so the int8 conv still fuses into QLinearConv.
Not equivalent: past a quantization step inside a bin (about 255 / bins of them, the report's
``bins_with_a_step``) ``q'`` is one step off; the variant is judged against the fp32 reference.

What matches: ``match_lut``; anything else stays and is counted in the report. A NaN reaching a
table fails the run (an out-of-range index); the runtime rejects non-finite voices and speeds first.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass
from pydantic import Field

from kopt.core.graph import (
    Builder,
    const_value,
    infer_shapes,
    is_onnx_op,
    match_each,
    only_reader,
    other_input,
)
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register

_INDEX_DTYPES = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16)}


def snake_f(z: np.ndarray) -> np.ndarray:
    """The Snake as the graph computes it after ``snake`` (alpha folded away): ``z + sin(z)^2``."""
    return z + np.sin(z) ** 2


def inverse_f(y: np.ndarray, iters: int = 64) -> np.ndarray:
    """The smallest ``z`` with ``snake_f(z) >= y`` (bisection, float64): ``snake_f`` is non-decreasing
    and ``z <= snake_f(z) <= z + 1``, so the answer lies in ``[y - 1, y]``."""
    lo, hi = y.astype(np.float64) - 1.0, y.astype(np.float64)
    for _ in range(iters):
        mid = (lo + hi) / 2
        up = snake_f(mid) >= y
        hi, lo = np.where(up, mid, hi), np.where(up, lo, mid)
    return hi


def build_table(scale: np.ndarray, zero: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For per-channel quantizer parameters ``scale`` and ``zero`` (``[C]``; ``zero``'s dtype the
    integer type; a scale may be negative, as ``S / c`` is for a factor ``c < 0`` before the
    quantizer): the table ``[C, bins]`` of quantized ``snake_f`` at each bin's centre, and the
    interval ``lo``, ``hi`` (``[C]``, float64) the bins cover, outside which the quantizer saturates."""
    info = np.iinfo(zero.dtype)
    s = scale.astype(np.float64)
    z0 = zero.astype(np.float64)
    ends = np.stack([s * (info.min - z0), s * (info.max - z0)])
    lo, hi = inverse_f(ends.min(axis=0)), inverse_f(ends.max(axis=0))
    width = (hi - lo) / bins
    centre = lo[:, None] + (np.arange(bins, dtype=np.float64)[None, :] + 0.5) * width[:, None]
    return quantize(snake_f(centre), s[:, None], z0[:, None], zero.dtype), lo, hi


def quantize(y: np.ndarray, scale: np.ndarray, zero: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """QuantizeLinear's integers for ``y`` (round half to even, saturate to ``dtype``), in float64."""
    info = np.iinfo(dtype)
    return np.clip(np.rint(y / scale) + zero, info.min, info.max).astype(dtype)


class _Lut:
    """A matched quantized Snake: its InstanceNormalization, quantizer and effective per-channel
    parameters (the quantizer's scale divided by any constant factor between Snake and quantizer)."""

    def __init__(self, norm: ir.Node, q: ir.Node, scale: np.ndarray, zero: np.ndarray):
        self.norm, self.q, self.scale, self.zero = norm, q, scale, zero


def _factor(mul: ir.Node, y: ir.Value, c: int) -> np.ndarray | str:
    """The constant per-channel factor ``[C]`` that ``mul`` applies to ``y``, or why there is none."""
    k = const_value(other_input(mul, y))
    if k is None or k.dtype != np.float32:
        return "Snake output scaled by a non-constant"
    if k.size == 1:
        k = np.full(c, k.reshape(-1)[0], np.float32)
    elif k.shape in ((1, c, 1), (c, 1)):
        k = k.reshape(-1)
    else:
        return "Snake output scaled by a factor not per channel"
    if not (np.all(np.isfinite(k)) and np.all(k != 0)):
        return "Snake output scaled by a zero or non-finite factor"
    return k


def match_lut(sin: ir.Node, shapes: dict) -> _Lut | str:
    """The quantized Snake around ``sin``, or the reason it is left alone.

    Matched: a standard Sin whose input ``z`` (read by it and one Add only) comes from an
    InstanceNormalization with float32 scale and bias of static shape ``[1, C, T]``, then
    ``Mul(s, s)``, ``Add(z, s*s)`` and a standard ``QuantizeLinear`` (directly or through a Mul by a
    constant non-zero factor, scalar or per channel; a negative one flips the table), each read only
    by the next; the quantizer's scale constant, positive, float32, per tensor or per channel along
    axis 1, its zero point a constant of 8 or 16 bits, no ``block_size``."""
    snake = _snake(sin, shapes)
    if isinstance(snake, str):
        return snake
    norm, add, c = snake
    y, factor = add.outputs[0], np.ones(c, np.float32)
    q = only_reader(y)
    if is_onnx_op(q, "Mul"):    # the 1/alpha Mul snake leaves (into_conv = false), unless quant-scale folded it
        factor = _factor(q, y, c)
        if isinstance(factor, str):
            return factor
        y = q.outputs[0]
        q = only_reader(y)
    quant = _quantizer(q, c)
    if isinstance(quant, str):
        return quant
    scale, zero = quant
    for v in norm.inputs[1:]:
        if v is None or (v.dtype is not None and v.dtype != ir.DataType.FLOAT):
            return "InstanceNormalization scale or bias not float32"
    eff = scale.astype(np.float64) / factor.astype(np.float64)
    if not (np.all(np.isfinite(eff)) and np.all(np.abs(eff) >= 1e-30)):
        return "effective scale too small or large for a table"   # bins / interval must stay a float32
    return _Lut(norm, q, eff, zero)


def _snake(sin: ir.Node, shapes: dict) -> tuple[ir.Node, ir.Node, int] | str:
    """The InstanceNormalization, the ``Add(z, sin(z)^2)`` and the channel count C of the Snake
    around ``sin``, or why it is not one."""
    z = sin.inputs[0]
    norm = z.producer() if z is not None else None
    if not is_onnx_op(norm, "InstanceNormalization") or len(norm.inputs) != 3:
        return "Snake input not an InstanceNormalization's output"
    sq = only_reader(sin.outputs[0])
    if not (is_onnx_op(sq, "Mul") and sq.inputs[0] is sin.outputs[0] and sq.inputs[1] is sin.outputs[0]):
        return "sin is not squared as Mul(s, s)"
    add = only_reader(sq.outputs[0])
    if not is_onnx_op(add, "Add") or other_input(add, sq.outputs[0]) is not z:
        return "sin^2 is not added to the Sin's input"
    readers = {id(u.node) for u in z.uses()}
    if readers != {id(sin), id(add)} or len(list(z.uses())) != 2 or z.is_graph_output():
        return "Snake input has other readers"
    rank_shape = shapes.get(z.name)
    shape = rank_shape[1] if rank_shape else None
    if shape is None or len(shape) != 3 or shape[0] != 1 or not isinstance(shape[1], int):
        return "Snake input not of static shape [1, C, T]"
    return norm, add, shape[1]


def _quantizer(q: ir.Node | None, c: int) -> tuple[np.ndarray, np.ndarray] | str:
    """Per channel of C, the scale and zero point of the quantizer ``q`` the Snake feeds, or why it
    cannot take a table."""
    if not is_onnx_op(q, "QuantizeLinear"):
        return "Snake output not read by one QuantizeLinear only (a float Snake)"
    if q.outputs[0].is_graph_output():
        return "quantized Snake output is a graph output"
    if q.attributes.get_int("block_size", 0):
        return "blocked quantizer"
    if len(q.inputs) < 3 or q.inputs[2] is None:
        return "quantizer without a zero point"
    s, zp = const_value(q.inputs[1]), const_value(q.inputs[2])
    if s is None or zp is None or s.dtype != np.float32 or zp.dtype not in _INDEX_DTYPES:
        return "quantizer scale not a float32 constant or zero point not an 8/16-bit constant"
    if not (np.all(np.isfinite(s)) and np.all(s > 0)):
        return "quantizer scale not positive and finite"
    axis = q.attributes.get_int("axis", 1)
    if s.size == 1 and zp.size == 1:
        scale, zero = np.full(c, s.reshape(-1)[0], np.float32), np.full(c, zp.reshape(-1)[0], zp.dtype)
    elif s.ndim == 1 and s.size == c and zp.shape == s.shape and axis in (1, -2):
        scale, zero = s, zp
    else:
        return "quantizer neither per tensor nor per channel along axis 1"
    return scale, zero


def rewrite_snake_lut(model: ir.Model, bins: int = 2048) -> dict:
    """Replace every matched quantized Snake by its lookup table in place, on onnx-ir; its report."""
    shapes = infer_shapes(model)
    g = model.graph
    nodes_before = len(g)
    luts, skipped = match_each(g, "Sin", lambda n: match_lut(n, shapes))
    table_bytes = 0
    moved = total = 0
    if luts:
        b = Builder(g)
        for lut in luts:
            table, lo, hi = build_table(lut.scale, lut.zero, bins)
            table_bytes += table.nbytes
            m, t = _moved_fraction(lut, lo, hi, bins)
            moved, total = moved + m, total + t
            _rewrite(b, lut, table, lo, hi, bins)
        RemoveUnusedNodesPass()(model)
    return {"sin_found": sum(skipped.values()) + len(luts), "snake_tabled": len(luts), "bins": bins,
            "table_bytes": table_bytes,
            "bins_with_a_step": round(moved / total, 4) if total else 0.0,
            "skipped": dict(sorted(skipped.items())),
            "nodes_before": nodes_before, "nodes_after": len(g)}


def _moved_fraction(lut: _Lut, lo: np.ndarray, hi: np.ndarray, bins: int) -> tuple[int, int]:
    """How many bins hold a quantization step (their two ends quantize differently), of how many."""
    edges = lo[:, None] + np.arange(bins + 1, dtype=np.float64)[None, :] * ((hi - lo) / bins)[:, None]
    q = quantize(snake_f(edges), lut.scale[:, None], lut.zero.astype(np.float64)[:, None], lut.zero.dtype)
    return int(np.count_nonzero(q[:, 1:] != q[:, :-1])), int(q[:, 1:].size)


def _rewrite(b: Builder, lut: _Lut, table: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int) -> None:
    norm, q = lut.norm, lut.q
    path = norm.name.rsplit("/", 1)[0] if norm.name and "/" in norm.name else ""
    base = f"{path}/SnakeLut"   # "<module path>/<Op>": the node stays in its resblock's group

    def node(op: str, inputs: list[ir.Value], **attrs) -> ir.Value:
        n = b.make(op, inputs, f"{base}{op}", f"{base}{op}_output_0", **attrs)
        b.g.insert_before(q, n)
        return n.outputs[0]

    a = bins / (hi - lo)                   # u = a * z + c: bin units, lo at 0
    c = -lo * a
    x_in, gamma, beta = norm.inputs
    g0, b0 = const_value(gamma), const_value(beta)
    # the new InstanceNormalization goes before the quantizer, after everything it reads
    if g0 is not None and b0 is not None:   # constant scale and bias: fold here
        new_gamma = b.const(f"{base}/scale", (g0.astype(np.float64) * a).astype(np.float32))
        new_beta = b.const(f"{base}/bias", (b0.astype(np.float64) * a + c).astype(np.float32))
    else:                                   # Kokoro's: computed from the style vector
        gain = b.const(f"{base}/gain", a.astype(np.float32))
        new_gamma = node("Mul", [gamma, gain])
        new_beta = node("Add", [node("Mul", [beta, gain]), b.const(f"{base}/shift", c.astype(np.float32))])
    u = node("InstanceNormalization", [x_in, new_gamma, new_beta],
             epsilon=norm.attributes.get_float("epsilon", 1e-5))
    clipped = node("Clip", [u, b.const(f"{base}/first", np.array(0.0, np.float32)),
                            b.const(f"{base}/last", np.array(bins - 1, np.float32))])
    index = node("Cast", [clipped], to=ir.DataType.INT32)
    out = node("GatherElements", [b.const(f"{base}/table", table[None]), index], axis=2)
    ir.convenience.replace_all_uses_with(q.outputs[0], out)


class SnakeLutConfig(PassConfig):
    bins: int = Field(2048, ge=256, le=65536,
                      description="Bins per channel in each table (its size is C x bins integers): more bins, "
                                  "fewer values one quantization step off (see the module's docstring).")


@register
class SnakeLut(Pass):
    name = "snake-lut"
    on_ir = True
    checked = True
    version = 1
    config_cls = SnakeLutConfig
    config: SnakeLutConfig
    summary = ("Quantized Snakes (InstanceNormalization -> Sin, Mul, Add -> QuantizeLinear) as per-channel "
               "lookup tables (Clip, Cast, GatherElements): no Sin; int8 QDQ graphs, after quantizing.")
    # a value within a bin that holds a quantization step can land one step off; scored by the
    # quality metrics, as every quantized variant is
    equivalent = False

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        return PassResult(model=model, report=rewrite_snake_lut(model, self.config.bins))
