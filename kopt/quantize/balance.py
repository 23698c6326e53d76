"""Channel-balanced QDQ: per-channel activation ranges for QLinearConv, folded into the weights.

QLinearConv takes ONE scale for its input and ONE for its output. Kokoro's generator convs see
activations whose channels differ in range by 10x or more (AdaIN + Snake inputs; residual-branch
outputs), so a per-tensor 8-bit grid leaves the small channels a few levels (the ablation's figures
are in docs/benchmark-log.md, Quantization).

The balanced form gives every channel its own step while the fused kernel still sees one scale:

- input ``x``: ``QuantizeLinear`` per channel (axis 1, steps ``s_c``, one shared zero point) feeds a
  per-tensor ``DequantizeLinear`` (scale ``S``), so the conv sees ``x_c * S / s_c``; the weights'
  input channels are divided by ``S / s_c`` to compensate;
- output ``y``: the weights' output channels and the bias are multiplied by ``Y / t_o`` so every
  channel fills the per-tensor output grid (scale ``Y``), and the ``DequantizeLinear`` after it is
  per channel (steps ``t_o``), which undoes the factor exactly.

onnxruntime still fuses ``DQ -> Conv -> Q`` into QLinearConv (the per-channel Q and DQ sit outside the
fused group), so the graph runs the same kernels. Weights are re-quantized per output channel from the
float model; per-channel ranges come from the same calibration utterances as the per-tensor ones.
A side is balanced only where it is safe: the input's Q/DQ pair feeds this conv alone and its Q is not
another fused op's output Q; the output's DQs feed float ops only (a QDQ op needs one scale). The
rest keeps its per-tensor scale, and the report counts both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import onnx
import onnx_ir as ir

from kopt.core.errors import KoptError
from kopt.core.graph import Builder, drop_unread_initializers

QMAX = 255  # uint8 activations
WMAX = 127  # symmetric int8 weights
WMAX_REDUCED = 64  # onnxruntime's reduced range: 2 x 255 x 64 fits the int16 sums of AVX2's multiply-add
MAX_GAIN = 256.0  # cap on a channel's boost (channels that were ~0 in calibration)
_QDQ_CONSUMERS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "QLinearConv", "QLinearMatMul"}


def channel_ranges(model: onnx.ModelProto, tensors: Sequence[str], feeds: Iterable[Mapping[str, np.ndarray]],
                   threads: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel (axis 1) min and max of ``tensors`` over the calibration feeds, from a float model."""
    import onnxruntime as ort

    from kopt.core.kokoro import options

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for t in tensors:
        if t not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=t))
    # from bytes (the model with its watched tensors as outputs never touches the disk): the runtime's
    # options, onnxruntime's constructor
    sess = ort.InferenceSession(m.SerializeToString(), options(threads, True), providers=["CPUExecutionProvider"])
    del m
    want = set(tensors)
    names = [o.name for o in sess.get_outputs()]
    acc: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for f in feeds:
        for name, v in zip(names, sess.run(None, dict(f))):
            if name not in want:
                continue
            v = np.asarray(v, np.float32)
            if v.ndim < 2:
                raise KoptError(f"balance: tensor {name!r} has rank {v.ndim}; per-channel ranges need axis 1")
            axes = tuple(i for i in range(v.ndim) if i != 1)
            lo, hi = v.min(axis=axes), v.max(axis=axes)
            if name in acc:
                lo, hi = np.minimum(acc[name][0], lo), np.maximum(acc[name][1], hi)
            acc[name] = (lo, hi)
    missing = want - set(acc)
    if missing:
        raise KoptError(f"balance: calibration produced no values for {sorted(missing)[:3]}")
    return acc


def save_ranges(path, ranges: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Per-channel ranges as an npz (``name|lo``, ``name|hi``), written atomically."""
    import os
    from pathlib import Path

    p = Path(path)
    tmp = p.with_name(p.name + ".tmp.npz")
    np.savez(tmp, **{f"{k}|lo": v[0] for k, v in ranges.items()}, **{f"{k}|hi": v[1] for k, v in ranges.items()})
    os.replace(tmp, p)


def load_ranges(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(path) as z:
        names = {k.rsplit("|", 1)[0] for k in z.files}
        return {n: (z[f"{n}|lo"], z[f"{n}|hi"]) for n in names}


def shared_zero_point(lo: np.ndarray, hi: np.ndarray) -> tuple[int, np.ndarray]:
    """One uint8 zero point for all channels and each channel's step: the zero point that minimises the
    mean log step (the grid every channel gets, given that all must share where 0 falls)."""
    lo = np.minimum(np.asarray(lo, np.float64), 0.0)
    hi = np.maximum(np.asarray(hi, np.float64), 0.0)
    z = np.arange(1, QMAX, dtype=np.float64)[:, None]
    steps = np.maximum(-lo[None, :] / z, hi[None, :] / (QMAX - z))
    top = steps.max(axis=1, keepdims=True)
    steps = np.maximum(steps, top / MAX_GAIN)  # dead channels: bounded gain, not infinite
    best = int(np.argmin(np.log(np.maximum(steps, 1e-30)).mean(axis=1)))
    return int(z[best, 0]), steps[best].astype(np.float64)


def _scalar(v: ir.Value | None) -> bool:
    """``v`` is a one-element initializer (a per-tensor scale or zero point)."""
    return v is not None and v.is_initializer() and v.const_value is not None and v.const_value.size == 1


def _producer(v: ir.Value | None) -> ir.Node | None:
    return None if v is None else v.producer()


def _is(n: ir.Node | None, op: str) -> bool:
    return n is not None and n.op_type == op


@dataclass
class Plan:
    """One Conv of a QDQ model and the Q/DQ nodes around it; ``q_x`` (the input side) and ``q_y``
    with ``dq_ys`` (the output side) are set only for the sides that can be balanced."""

    conv: ir.Node
    dq_w: ir.Node
    dq_b: ir.Node | None
    dq_x: ir.Node
    q_x: ir.Node | None = None
    q_y: ir.Node | None = None
    dq_ys: list[ir.Node] = field(default_factory=list)

    def watched(self) -> list[str]:
        """The float tensors whose per-channel ranges the balanced sides need."""
        return ([self.q_x.inputs[0].name] if self.q_x is not None else []) + \
            ([self.conv.outputs[0].name] if self.q_y is not None else [])


def plan(qdq: ir.Model, nodes: Sequence[str]) -> tuple[list[Plan], dict[str, str]]:
    """For each named Conv in the QDQ model: the Q/DQ nodes around it (found through onnx-ir's
    use-def chains) and which sides can be balanced. Returns (plans, skipped: node -> reason)."""
    by_name = {n.name: n for n in qdq.graph}
    plans, skipped = [], {}
    for name in nodes:
        conv = by_name.get(name)
        if conv is None or conv.op_type != "Conv":
            skipped[name] = "not a Conv in the quantized graph"
            continue
        dq_x, dq_w = _producer(conv.inputs[0]), _producer(conv.inputs[1])
        if not (_is(dq_x, "DequantizeLinear") and _is(dq_w, "DequantizeLinear")):
            skipped[name] = "not quantized (no DequantizeLinear on its input/weight)"
            continue
        q_x = _producer(dq_x.inputs[0])
        dq_b = _producer(conv.inputs[2]) if len(conv.inputs) > 2 else None
        outs = conv.outputs[0].uses()
        q_y = next(iter(outs)).node if len(outs) == 1 else None
        p = Plan(conv, dq_w, dq_b, dq_x)
        src = _producer(q_x.inputs[0]) if q_x is not None else None
        in_group = src is not None and any(_is(_producer(i), "DequantizeLinear")
                                           for i in src.inputs)  # that Q is a fused op's output Q
        if (_is(q_x, "QuantizeLinear") and len(q_x.outputs[0].uses()) == 1
                and len(dq_x.outputs[0].uses()) == 1 and _scalar(q_x.inputs[1]) and not in_group):
            p.q_x = q_x
        if _is(q_y, "QuantizeLinear") and _scalar(q_y.inputs[1]):
            dq_ys = [u.node for u in q_y.outputs[0].uses()]
            if dq_ys and all(d.op_type == "DequantizeLinear" for d in dq_ys) and not any(
                    c.op_type in _QDQ_CONSUMERS for d in dq_ys for c in d.outputs[0].consumers()):
                p.q_y, p.dq_ys = q_y, dq_ys
        if p.q_x is None and p.q_y is None:
            skipped[name] = "neither side can take per-channel steps (shared Q/DQ or a QDQ consumer)"
            continue
        plans.append(p)
    return plans, skipped


class _Edit:
    """What a balancing rewrite adds (initializers under fresh names, ``Builder.const``), what it
    releases (the constants its nodes stop reading, dropped when nothing else reads them) and its
    report."""

    def __init__(self, g: ir.Graph):
        self.b = Builder(g)
        self.released: list[ir.Value] = []
        self.report = {"inputs": 0, "outputs": 0, "max_gain_in": 1.0, "max_gain_out": 1.0}

    def point(self, node: ir.Node, slot: int, base: str, arr: np.ndarray) -> ir.Value:
        """Make input ``slot`` of ``node`` a new constant named after ``base`` (releasing the old one)."""
        old = node.inputs[slot]
        if old is not None:
            self.released.append(old)
        v = self.b.const(base, arr)
        node.replace_input_with(slot, v)
        return v


def _const(v: ir.Value | None) -> np.ndarray | None:
    return None if v is None or not v.is_initializer() or v.const_value is None else v.const_value.numpy()


def apply(qdq: ir.Model, float_model: ir.Model, plans: Sequence[Plan],
          ranges: Mapping[str, tuple[np.ndarray, np.ndarray]], reduce_range: bool = False) -> dict[str, Any]:
    """Rewrite the planned convs in ``qdq`` in place; weights and bias come from ``float_model``.
    Per conv: the input side, the output side, then the weights and bias requantized (7-bit with
    ``reduce_range``); last, the scales, zero points and weights nothing reads any more go.

    Balanced inputs fill the whole uint8 range in every channel, so on CPUs without VNNI (AVX2's
    16-bit multiply-add) full 8-bit weights saturate the fused QLinearConv more often than plain
    per-tensor inputs do; ``reduce_range`` avoids that."""
    g = qdq.graph
    f_nodes = {n.name: n for n in float_model.graph}
    ed = _Edit(g)
    for p in plans:
        conv = p.conv
        fconv = f_nodes.get(conv.name)
        w = _const(fconv.inputs[1]) if fconv is not None and len(fconv.inputs) > 1 else None
        if w is None:
            raise KoptError(f"balance: conv {conv.name!r} has no float weight initializer in the source model")
        W = w.astype(np.float64)
        n_out = W.shape[0]
        b = _const(fconv.inputs[2]) if len(fconv.inputs) > 2 else None
        bias = b.astype(np.float64) if b is not None else np.zeros(n_out)
        W, x_scale = _balance_input(ed, p, W, ranges)
        W, bias = _balance_output(ed, p, W, bias, ranges)
        _requantize(ed, p, fconv, W, bias, x_scale, WMAX_REDUCED if reduce_range else WMAX)
    drop_unread_initializers(g, ed.released)
    return ed.report


def _balance_input(ed: _Edit, p: Plan, W: np.ndarray,
                   ranges: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, float]:
    """Input side: per-channel Q (steps s_c) -> per-tensor DQ (S); weights / (S / s_c). Returns the
    weights and the input's per-tensor scale."""
    q_x, dq_x, conv = p.q_x, p.dq_x, p.conv
    if q_x is None:
        return W, float(_const(dq_x.inputs[1]))
    x = q_x.inputs[0].name
    lo, hi = ranges[x]
    z, steps = shared_zero_point(lo, hi)
    if len(steps) != W.shape[1] * _groups(conv):
        raise KoptError(f"balance: {conv.name!r} input has {len(steps)} channels, weight expects "
                        f"{W.shape[1] * _groups(conv)}")
    S = float(steps.max())
    gain = S / steps
    if _groups(conv) == 1:
        W = W / gain.reshape([1, -1] + [1] * (W.ndim - 2))
    else:
        W = W / _grouped(gain, conv, W).reshape(W.shape[0], W.shape[1], *[1] * (W.ndim - 2))
    ed.point(q_x, 1, x + "_bal_step", steps.astype(np.float32))
    ed.point(q_x, 2, x + "_bal_zp", np.full(len(steps), z, np.uint8))
    _set_axis(q_x, 1)
    ed.point(dq_x, 1, x + "_bal_S", np.array(S, np.float32))
    ed.point(dq_x, 2, x + "_bal_z", np.array(z, np.uint8))
    ed.report["inputs"] += 1
    ed.report["max_gain_in"] = max(ed.report["max_gain_in"], round(float(gain.max()), 2))
    return W, S


def _balance_output(ed: _Edit, p: Plan, W: np.ndarray, bias: np.ndarray,
                    ranges: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Output side: weights and bias * (Y / t_o); per-tensor Q (Y) -> per-channel DQ (t_o)."""
    q_y = p.q_y
    if q_y is None:
        return W, bias
    y = p.conv.outputs[0].name
    lo, hi = ranges[y]
    zy, t = shared_zero_point(lo, hi)
    Y = float(t.max())
    u = Y / t
    W = W * u.reshape([-1] + [1] * (W.ndim - 1))
    bias = bias * u
    ed.point(q_y, 1, y + "_bal_Y", np.array(Y, np.float32))
    ed.point(q_y, 2, y + "_bal_zy", np.array(zy, np.uint8))
    step = ed.b.const(y + "_bal_step", t.astype(np.float32))
    zp = ed.b.const(y + "_bal_zp", np.full(len(t), zy, np.uint8))
    for d in p.dq_ys:
        ed.released.extend(i for i in d.inputs[1:3] if i is not None)
        d.replace_input_with(1, step)
        d.replace_input_with(2, zp)
        _set_axis(d, 1)
    ed.report["outputs"] += 1
    ed.report["max_gain_out"] = max(ed.report["max_gain_out"], round(float(u.max()), 2))
    return W, bias


def _requantize(ed: _Edit, p: Plan, fconv: ir.Node, W: np.ndarray, bias: np.ndarray, x_scale: float,
                wmax: int) -> None:
    """Weights: symmetric int8 per output channel from the balanced float values; bias: int32 at
    the input scale times the weight scale."""
    n_out = W.shape[0]
    flat = np.abs(W.reshape(n_out, -1)).max(axis=1)
    w_scale = np.where(flat > 0, flat / wmax, 1.0)
    Wq = np.clip(np.round(W / w_scale.reshape([-1] + [1] * (W.ndim - 1))), -wmax, wmax).astype(np.int8)
    w_name = fconv.inputs[1].name
    ed.point(p.dq_w, 0, w_name + "_bal_q", Wq)
    ed.point(p.dq_w, 1, w_name + "_bal_scale", w_scale.astype(np.float32))
    ed.point(p.dq_w, 2, w_name + "_bal_wzp", np.zeros(n_out, np.int8))
    _set_axis(p.dq_w, 0)
    if p.dq_b is not None:
        b_name = fconv.inputs[2].name
        b_scale = (x_scale * w_scale).astype(np.float32)
        bq = np.clip(np.round(bias / b_scale.astype(np.float64)), -(2 ** 31 - 1), 2 ** 31 - 1).astype(np.int32)
        ed.point(p.dq_b, 0, b_name + "_bal_bq", bq)
        ed.point(p.dq_b, 1, b_name + "_bal_bscale", b_scale)
        ed.point(p.dq_b, 2, b_name + "_bal_bzp", np.zeros(n_out, np.int32))
        _set_axis(p.dq_b, 0)
    elif p.q_y is not None and np.any(bias != 0):
        raise KoptError(f"balance: {p.conv.name!r} has a float bias but no quantized bias input")


def _groups(conv: ir.Node) -> int:
    return conv.attributes.get_int("group", 1)


def _grouped(gain: np.ndarray, conv: ir.Node, W: np.ndarray) -> np.ndarray:
    """Per-(output channel, input channel within its group) gains for a grouped conv."""
    g = _groups(conv)
    n_out, n_in = W.shape[0], W.shape[1]
    per_group_out = n_out // g
    return np.stack([gain[(o // per_group_out) * n_in:(o // per_group_out + 1) * n_in] for o in range(n_out)])


def _set_axis(node: ir.Node, axis: int) -> None:
    node.attributes["axis"] = ir.Attr("axis", ir.AttributeType.INT, axis)
