"""polyphase: a strided 1-D ConvTranspose as one Conv over its input, its phases interleaved.

A ConvTranspose with stride s and kernel k writes output sample ``q*s + r`` (before cropping) from
input samples ``q - a`` through kernel tap ``a*s + r``, for a = 0..m-1, m = ceil(k / s). So each
output phase r is an ordinary convolution of the input with m taps, and all s phases are one Conv
with s output channels per ConvTranspose output channel::

    c = Conv(x, Wp, Bp, pads=[m-1, m-1])        # [1, O*s, L+m-1]; channel o*s + r is phase r of output o
    y = Slice(Reshape(Transpose(Reshape(c, [0, O, s, -1]), perm=[0, 1, 3, 2]), [0, O, -1]), pads[0], -e)

with ``Wp[o*s + r, c, m-1-a] = W[c, o, a*s + r]`` (taps past k are zeros), ``Bp[o*s + r] = B[o]``,
and the crop ``e = m*s - k + pads[1] - output_padding`` samples from the end, so the output has
ConvTranspose's length ``(L-1)*s + k - pads[0] - pads[1] + output_padding`` exactly. Groups map
group by group (each output channel's s phases stay inside its group).

Why: onnxruntime's CPU ConvTranspose is a GEMM followed by a col2im scatter, and never runs int8
(QDQ ConvTranspose runs in float); the Conv is one GEMM over the input and a transpose, and can be
a QLinearConv. Left alone: ConvTransposes a CumSum depends on (Kokoro's F0 predictor pool: the sine
source integrates F0 into a phase, so float rounding there becomes a phase drift). What matches:
``match``; anything else stays and is counted in the report.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from kopt.core.graph import Builder, const_value, match_each, upstream_of
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register

# Kokoro's sine source integrates F0 into a phase (CumSum): a rounding change upstream of it grows into a
# phase drift over the utterance.
ACCUMULATED = "feeds a CumSum, which would accumulate its rounding change"


class _Plan:
    def __init__(self, node: ir.Node, w: np.ndarray, b: np.ndarray, stride: int, pads: tuple[int, int],
                 out_pad: int, group: int):
        self.node, self.w, self.b, self.stride, self.pads, self.out_pad, self.group = \
            node, w, b, stride, pads, out_pad, group

    @property
    def taps(self) -> int:
        return -(-self.w.shape[2] // self.stride)

    @property
    def crop_end(self) -> int:
        return self.taps * self.stride - self.w.shape[2] + self.pads[1] - self.out_pad


def match(n: ir.Node) -> _Plan | str:
    """The rewrite plan for ConvTranspose ``n``, or the reason it is left alone.

    Matched: a default-domain ConvTranspose over a rank-3 input (1-D), float32 constant weights and
    bias, stride >= 2, dilation 1, auto_pad NOTSET, no output_shape attribute, and a crop that stays
    inside the computed samples (``e >= 0``)."""
    w = const_value(n.inputs[1]) if len(n.inputs) > 1 else None
    if w is None or w.dtype != np.float32:
        return "weights are not a float32 constant"
    if w.ndim != 3:
        return "not 1-D (weights are not rank 3)"
    has_bias = len(n.inputs) > 2 and n.inputs[2] is not None
    b = const_value(n.inputs[2]) if has_bias else None
    if has_bias and (b is None or b.dtype != np.float32):
        return "bias is not a float32 constant"
    attrs = n.attributes
    if attrs.get_string("auto_pad", "NOTSET") not in ("NOTSET", ""):
        return "auto_pad is set"
    if "output_shape" in attrs:
        return "output_shape is given"
    if list(attrs.get_ints("dilations", [1])) != [1]:
        return "dilation is not 1"
    strides = list(attrs.get_ints("strides", [1]))
    if len(strides) != 1 or strides[0] < 2:
        return "stride is not >= 2"
    pads = list(attrs.get_ints("pads", [0, 0]))
    out_pad = list(attrs.get_ints("output_padding", [0]))
    group = attrs.get_int("group", 1)
    if len(pads) != 2 or len(out_pad) != 1 or min(pads) < 0 or w.shape[0] % group:
        return "pads, output_padding or group do not fit a 1-D ConvTranspose"
    if w.shape[2] != attrs.get_ints("kernel_shape", [w.shape[2]])[0]:
        return "kernel_shape differs from the weights"
    c_out = w.shape[1] * group
    plan = _Plan(n, w, b if b is not None else np.zeros(c_out, np.float32), strides[0], (pads[0], pads[1]),
                 out_pad[0], group)
    if plan.crop_end < 0:
        return "output_padding reaches past the computed samples"
    return plan


def polyphase_weights(w: np.ndarray, stride: int, group: int) -> np.ndarray:
    """Conv weights [O*s, C/group, m] from ConvTranspose weights [C, O/group, k]."""
    c_in, o_per, k = w.shape
    m = -(-k // stride)
    padded = np.zeros((c_in, o_per, m * stride), np.float32)
    padded[:, :, :k] = w
    taps = padded.reshape(c_in, o_per, m, stride)           # [c, o, a, r] = W[c, o, a*s + r]
    c_per = c_in // group
    out = np.empty((group, o_per, stride, c_per, m), np.float32)
    for g in range(group):
        blk = taps[g * c_per:(g + 1) * c_per]               # [c, o, a, r]
        out[g] = blk.transpose(1, 3, 0, 2)[..., ::-1]       # [o, r, c, m-1-a]
    return out.reshape(group * o_per * stride, c_per, m)


def rewrite_polyphase(model: ir.Model) -> dict:
    """Rewrite every matched ConvTranspose in place, on onnx-ir; its report."""
    g = model.graph
    nodes_before = len(g)
    accumulated = upstream_of(g, {"CumSum"})
    plans, skipped = match_each(g, "ConvTranspose", lambda n: match(n) if n.outputs[0] not in accumulated else ACCUMULATED)
    rewritten = []
    if plans:
        builder = Builder(g)
        for plan in plans:
            n = plan.node
            new = _replacement(builder, plan)
            ir.convenience.replace_nodes_and_values(g, n, [n], new, [n.outputs[0]], [new[-1].outputs[0]])
            rewritten.append({"node": n.name, "stride": plan.stride, "kernel": int(plan.w.shape[2]),
                              "taps": plan.taps, "group": plan.group})
        RemoveUnusedNodesPass()(model)
    return {"convtranspose_found": len(plans) + sum(skipped.values()), "rewritten": len(rewritten),
            "nodes": rewritten, "skipped": dict(sorted(skipped.items())),
            "nodes_before": nodes_before, "nodes_after": len(g)}


def _replacement(b: Builder, plan: _Plan) -> list[ir.Node]:
    n = plan.node
    s, m = plan.stride, plan.taps
    c_out = plan.w.shape[1] * plan.group
    # "<module path>/Poly<Op>": the exporter's "<path>/<Op>" form keeps these nodes in the
    # ConvTranspose's node group (kopt/quantize/groups.py)
    path = f"{n.name.rsplit('/', 1)[0]}/Poly" if n.name and "/" in n.name else "Poly"

    init = b.const

    def node(op: str, inputs: list[ir.Value], **attrs) -> ir.Node:
        return b.make(op, inputs, f"{path}{op}", f"{path}{op}_output_0", **attrs)

    conv = node("Conv", [n.inputs[0], init(f"{path}/weight", polyphase_weights(plan.w, s, plan.group)),
                         init(f"{path}/bias", np.repeat(plan.b.astype(np.float32), s))],
                kernel_shape=[m], pads=[m - 1, m - 1], group=plan.group)
    phases = node("Reshape", [conv.outputs[0], init(f"{path}/phases_shape", np.array([0, c_out, s, -1], np.int64))])
    inter = node("Transpose", [phases.outputs[0]], perm=[0, 1, 3, 2])
    flat = node("Reshape", [inter.outputs[0], init(f"{path}/flat_shape", np.array([0, c_out, -1], np.int64))])
    end = -plan.crop_end if plan.crop_end else np.iinfo(np.int64).max
    crop = node("Slice", [flat.outputs[0], init(f"{path}/start", np.array([plan.pads[0]], np.int64)),
                          init(f"{path}/end", np.array([end], np.int64)), init(f"{path}/axis", np.array([2], np.int64))])
    return [conv, phases, inter, flat, crop]


@register
class Polyphase(Pass):
    name = "polyphase"
    on_ir = True
    checked = True
    version = 1
    config_cls = PassConfig
    summary = ("Strided 1-D ConvTranspose as one Conv over its input with its phases interleaved "
               "(a Conv runs int8 on onnxruntime's CPU EP, a ConvTranspose does not); float graphs.")
    equivalent = True
    # the same products summed in another order: float rounding only
    tolerance = 1e-4

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        return PassResult(model=model, report=rewrite_polyphase(model))
