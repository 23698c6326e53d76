"""Rebuild a float graph from an integer-quantized one by dequantizing its weights.

Rewrites, each exact on the weights (w = scale * (q - zero_point), computed in float64, stored fp32):
- DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(scale)    => MatMul(x, W)
- DynamicQuantizeLinear -> ConvInteger [-> Add(int32 bias)] -> Cast -> Mul(scale)
                                                                   => Conv(x, W, bias)
- com.microsoft.DynamicQuantizeLSTM                                => LSTM, with W/R transposed
  from the quantized layout [dirs, in, 4H] back to ONNX's [dirs, 4H, in]
- Gather(int8 table) -> DequantizeLinear                           => Gather(float table)
- DequantizeLinear(constant)                                       => float initializer
- QuantizeLinear -> DequantizeLinear on activations (QDQ graphs)   => pass-through

The rewrite runs on onnx-ir. Every pattern is matched on the untouched graph first (its use-def
chains: an integer op's scale chain must be read by nothing else); then each replacement takes its
node's place and the readers of the value it stands for are rewired to it, under that value's name.
onnx-ir's dead-code pass then removes what nothing reads any more: the integer ops and their scale
chains, the activation quantizers, bias quantization, the quantized weights (like stft-conv, it
also drops unread optional outputs, such as an LSTM's Y_h and Y_c).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import onnx
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from kopt.core.errors import ModelError
from kopt.core.graph import const_value, only_consumer, to_proto

QUANT_OPS = {"MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "DequantizeLinear", "QuantizeLinear",
             "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulNBits", "DynamicQuantizeMatMul"}


@dataclass
class DequantReport:
    rewritten: Counter = field(default_factory=Counter)
    removed_nodes: int = 0
    float_params: int = 0
    remaining_quant_ops: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"rewritten": dict(self.rewritten), "removed_nodes": self.removed_nodes,
                "float_params": self.float_params, "remaining_quant_ops": self.remaining_quant_ops}


class _Replacement:
    """One node (``op_type`` over ``inputs``, a Value or the name of a new float initializer) whose
    outputs take the place of ``replaces``, the values it stands for, under their names."""

    def __init__(self, op_type: str, inputs: list[ir.Value | str | None], replaces: list[ir.Value], name: str,
                 attributes: Iterable[ir.Attr] = ()):
        self.op_type, self.inputs, self.replaces, self.name = op_type, inputs, replaces, name
        self.attributes = [ir.Attr(a.name, a.type, a.value) for a in attributes]


class _Rewrite:
    """This rewrite's state over the onnx-ir graph: new float initializers, shared weights, and
    what replaces or drops which node. Matching reads the graph only; ``apply`` changes it."""

    def __init__(self, g: ir.Graph):
        self.g = g
        self.taken = set(g.initializers) | {v.name for v in g.inputs} | \
            {v.name for n in g for v in n.outputs if v.name}
        self.new_inits: dict[str, np.ndarray] = {}
        self.memo: dict[tuple, str] = {}  # shared quantized weights stay shared once dequantized
        self.replace: dict[ir.Node, _Replacement] = {}
        self.as_init: dict[ir.Value, str] = {}  # a constant DequantizeLinear's output -> its float initializer
        self.bypass: dict[ir.Node, ir.Node] = {}  # an activation's DequantizeLinear -> its QuantizeLinear
        self.drop: set[ir.Node] = set()

    def add_init(self, base: str, arr: np.ndarray) -> str:
        name = base
        k = 0
        while name in self.taken or name in self.new_inits:
            k += 1
            name = f"{base}_{k}"
        self.new_inits[name] = arr
        return name

    def shared_init(self, memo_key: tuple, base: str, make) -> str:
        """Name of the float initializer for ``memo_key``; computed once with ``make()``."""
        if memo_key not in self.memo:
            self.memo[memo_key] = self.add_init(base, make())
        return self.memo[memo_key]

    def apply(self) -> None:
        """Add the float initializers, put each replacement in its node's place, rewire the readers
        of what it replaces (onnx-ir's use-def chains); what nothing reads any more stays for the
        dead-code pass."""
        g = self.g
        inits = {}
        for name, arr in self.new_inits.items():
            inits[name] = ir.Value(name=name, const_value=ir.tensor(arr, name=name))
            g.register_initializer(inits[name])
        # every new node exists before any rewiring, so rewiring reaches its inputs too
        new = {n: ir.node(r.op_type, [inits[i] if isinstance(i, str) else i for i in r.inputs],
                          {a.name: a for a in r.attributes}, num_outputs=len(r.replaces), name=r.name)
               for n, r in self.replace.items()}
        for n in list(g):
            if n in new:
                ir.convenience.replace_nodes_and_values(g, n, [], [new[n]], self.replace[n].replaces,
                                                        list(new[n].outputs))
            elif n in self.bypass:
                src, out = self.bypass[n].inputs[0], n.outputs[0]  # the Q's input as rewired so far
                if out.is_graph_output():
                    keep = ir.node("Identity", [src], name=n.name + "_bypass")
                    ir.convenience.replace_nodes_and_values(g, n, [], [keep], [out], list(keep.outputs))
                else:
                    out.replace_all_uses_with(src)
        for v, name in self.as_init.items():
            v.replace_all_uses_with(inits[name], replace_graph_outputs=True)

    def find_float_const_upstream(self, v: ir.Value, numel: int, depth: int = 6) -> np.ndarray | None:
        """Walk the producers of ``v`` looking for a float constant with ``numel`` elements."""
        frontier, seen = [v], set()
        for _ in range(depth):
            nxt = []
            for x in frontier:
                if x in seen:
                    continue
                seen.add(x)
                c = const_value(x)
                if c is not None and c.dtype.kind == "f" and c.size == numel:
                    return c
                p = x.producer()
                if p is not None:
                    nxt.extend(i for i in p.inputs if i is not None)
            frontier = nxt
        return None


def _digest(a: np.ndarray | None) -> str:
    if a is None:
        return "-"
    a = np.ascontiguousarray(a)
    return f"{a.dtype}{a.shape}" + hashlib.sha256(a.tobytes()).hexdigest()[:16]


def _dq(q: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int | None = None) -> np.ndarray:
    qf = q.astype(np.float64)
    s = np.asarray(scale, np.float64)
    z = np.zeros_like(s) if zp is None else np.asarray(zp, np.float64)
    if axis is not None and s.ndim == 1 and s.size > 1:
        shape = [1] * q.ndim
        shape[axis] = s.size
        s = s.reshape(shape)
        z = z.reshape(shape)
    return ((qf - z) * s).astype(np.float32)


def _input(n: ir.Node, i: int) -> ir.Value | None:
    """``n``'s input ``i``; None when absent or empty."""
    return n.inputs[i] if len(n.inputs) > i else None


def _name(v: ir.Value | ir.Node | None) -> str:
    return (v.name or "") if v is not None else ""


def _scale_chain(n: ir.Node, x_scale: ir.Value) -> tuple[list[ir.Node], ir.Value, np.ndarray] | None:
    """From an integer op's output: [Add(bias)] -> Cast -> Mul(scale). Returns
    (chain nodes, final output, weight scale) or None."""
    chain = []
    out = n.outputs[0]
    add = only_consumer(out, "Add")
    if add is not None:
        chain.append(add)
        out = add.outputs[0]
    cast = only_consumer(out, "Cast")
    if cast is None:
        return None
    chain.append(cast)
    mul = only_consumer(cast.outputs[0], "Mul")
    if mul is None:
        return None
    chain.append(mul)
    other = mul.inputs[1] if mul.inputs[0] is cast.outputs[0] else mul.inputs[0]
    w_scale = const_value(other)
    if w_scale is None:
        sp = other.producer() if other is not None else None
        if sp is None or sp.op_type != "Mul":
            return None
        cands = [const_value(i) for i in sp.inputs if i is not x_scale]
        cands = [c for c in cands if c is not None]
        if len(cands) != 1:
            return None
        w_scale = cands[0]
    return chain, mul.outputs[0], w_scale


def _integer_operands(n: ir.Node):
    """What a MatMulInteger/ConvInteger fed by DynamicQuantizeLinear dequantizes from: (the DQL, the
    int8 weight, its zero point, the scale chain after the node, its float output, the weight scale),
    or None when the node is not that pattern."""
    dql = n.inputs[0].producer() if n.inputs[0] is not None else None
    w = const_value(_input(n, 1))
    if dql is None or dql.op_type != "DynamicQuantizeLinear" or w is None:
        return None
    zp = const_value(_input(n, 3))
    found = _scale_chain(n, dql.outputs[1])
    if found is None:
        return None
    chain, out, scale = found
    return dql, w, zp, chain, out, scale


def _rewrite_matmul_integer(R: _Rewrite, n: ir.Node) -> bool:
    ops = _integer_operands(n)
    if ops is None:
        return False
    dql, w, zp, chain, out, scale = ops
    if chain[0].op_type == "Add":
        return False  # MatMulInteger never carries an int bias in ORT's output; refuse to guess
    wq = _name(n.inputs[1])
    key = ("matmul", wq, _digest(scale), _digest(zp))
    # per-column scale/zp broadcast over the last axis
    wname = R.shared_init(key, wq.replace("_quantized", "") or "W", lambda: _dq(w, scale, zp))
    R.replace[n] = _Replacement("MatMul", [dql.inputs[0], wname], [out], _name(n).replace("_quant", ""))
    R.drop.update(chain)
    return True


def _rewrite_conv_integer(R: _Rewrite, n: ir.Node) -> bool:
    ops = _integer_operands(n)
    if ops is None:
        return False
    dql, w, zp, chain, out, scale = ops
    wq = _name(n.inputs[1])
    key = ("conv", wq, _digest(scale), _digest(zp))
    wname = R.shared_init(key, wq.replace("_quantized", "") or "W", lambda: _dq(w, scale, zp, axis=0))
    inputs: list[ir.Value | str | None] = [dql.inputs[0], wname]
    if chain[0].op_type == "Add":
        add = chain[0]
        bias_in = add.inputs[1] if add.inputs[0] is n.outputs[0] else add.inputs[0]
        bias = R.find_float_const_upstream(bias_in, w.shape[0]) if bias_in is not None else None
        if bias is None:
            return False
        b = bias.astype(np.float32).reshape(-1)
        inputs.append(R.shared_init(("bias", _digest(b)), f"{_name(n)}_bias", lambda: b))
    else:
        # Newer onnxruntime: ConvInteger -> Cast -> Mul(scale) -> Add(Reshape(float bias)) in float.
        add = only_consumer(out, "Add")
        if add is not None:
            other = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
            bias = _const_through_reshape(other)
            if bias is not None and bias.size == w.shape[0] and bias.dtype.kind == "f":
                b = bias.astype(np.float32).reshape(-1)
                inputs.append(R.shared_init(("bias", _digest(b)), f"{_name(n)}_bias", lambda: b))
                R.drop.add(add)
                out = add.outputs[0]
    R.replace[n] = _Replacement("Conv", inputs, [out], _name(n).replace("_quant", ""), n.attributes.values())
    R.drop.update(chain)
    return True


def _const_through_reshape(v: ir.Value | None) -> np.ndarray | None:
    """A constant, or a Reshape/Unsqueeze of one (the bias of a dynamically quantized Conv)."""
    c = const_value(v)
    if c is not None:
        return c
    p = v.producer() if v is not None else None
    if p is not None and p.op_type in ("Reshape", "Unsqueeze"):
        return const_value(p.inputs[0])
    return None


def _rewrite_dq_lstm(R: _Rewrite, n: ir.Node) -> bool:
    ins = list(n.inputs) + [None] * (12 - len(n.inputs))
    wq, rq = const_value(ins[1]), const_value(ins[2])
    ws, wz, rs, rz = (const_value(ins[i]) for i in (8, 9, 10, 11))
    if wq is None or rq is None or ws is None or rs is None:
        return False

    def deq(q: np.ndarray, s: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        # quantized layout [dirs, in, 4H]; scale/zp per direction [dirs] or per channel [dirs, 4H]
        s = np.asarray(s, np.float64)
        z = np.zeros_like(s) if z is None else np.asarray(z, np.float64)
        if s.ndim == 1:
            s, z = s[:, None, None], z[:, None, None]
        else:
            s, z = s[:, None, :], z[:, None, :]
        f = (q.astype(np.float64) - z) * s
        return np.ascontiguousarray(f.transpose(0, 2, 1)).astype(np.float32)  # -> [dirs, 4H, in]

    w_in, r_in = _name(ins[1]), _name(ins[2])
    wname = R.shared_init(("lstm", w_in, _digest(ws), _digest(wz)), w_in.replace("_quantized", "") + "_W",
                          lambda: deq(wq, ws, wz))
    rname = R.shared_init(("lstm", r_in, _digest(rs), _digest(rz)), r_in.replace("_quantized", "") + "_R",
                          lambda: deq(rq, rs, rz))
    new_in = [ins[0], wname, rname, *ins[3:8]]
    while new_in and new_in[-1] is None:
        new_in.pop()
    R.replace[n] = _Replacement("LSTM", new_in, list(n.outputs), _name(n).replace("_quant", ""),
                                n.attributes.values())
    return True


def _rewrite_dequantize_linear(R: _Rewrite, n: ir.Node) -> bool:
    scale = const_value(_input(n, 1))
    zp = const_value(_input(n, 2))
    axis = n.attributes.get_int("axis", 1)
    x = const_value(n.inputs[0])
    if x is not None and scale is not None:
        out = n.outputs[0]
        R.new_inits[out.name] = _dq(x, scale, zp, axis=axis if np.ndim(scale) else None)
        R.as_init[out] = out.name
        R.drop.add(n)
        return True
    p = n.inputs[0].producer() if n.inputs[0] is not None else None
    if p is not None and p.op_type == "Gather" and scale is not None and np.ndim(scale) == 0:
        table = const_value(p.inputs[0])
        if table is not None and len(p.outputs[0].uses()) == 1:
            t_in = _name(p.inputs[0])
            tname = R.shared_init(("gather", t_in, _digest(scale), _digest(zp)),
                                  t_in.replace("_quantized", ""), lambda: _dq(table, scale, zp))
            R.replace[n] = _Replacement("Gather", [tname, p.inputs[1]], [n.outputs[0]],
                                        _name(p).replace("_quant", ""), p.attributes.values())
            R.drop.add(p)
            return True
    if p is not None and p.op_type == "QuantizeLinear":  # activation Q -> DQ pair
        R.bypass[n] = p
        return True
    return False


_REWRITES = {
    "MatMulInteger": _rewrite_matmul_integer,
    "ConvInteger": _rewrite_conv_integer,
    "DynamicQuantizeLSTM": _rewrite_dq_lstm,
    "DequantizeLinear": _rewrite_dequantize_linear,
}


def dequantize(model: onnx.ModelProto, source: str = "<model>") -> tuple[onnx.ModelProto, DequantReport]:
    """Return a float copy of ``model`` and what was rewritten. Raises ModelError if an integer op
    is left that kopt cannot rewrite (naming the op), so no half-float model is produced."""
    irm = ir.serde.deserialize_model(model)
    g = irm.graph
    R = _Rewrite(g)
    rep = DequantReport()
    failed: Counter = Counter()
    nodes = list(g)
    for n in nodes:
        fn = _REWRITES.get(n.op_type)
        if fn is None or n in R.drop:
            continue
        if fn(R, n):
            rep.rewritten[n.op_type] += 1
        else:
            failed[n.op_type] += 1
    R.apply()
    before = sum(n not in R.drop for n in nodes)  # each replaced node by one, the dropped ones gone
    # the integer ops, the activation quantizers, their chains and the quantized weights nothing reads
    RemoveUnusedNodesPass()(irm)
    irm.producer_name = "kopt.reference"
    m = to_proto(irm)
    rep.removed_nodes = before - len(m.graph.node)
    left = Counter(n.op_type for n in m.graph.node if n.op_type in QUANT_OPS)
    rep.remaining_quant_ops = dict(left)
    if left:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(left.items()))
        raise ModelError(f"{source}: cannot rebuild an fp32 reference: unsupported quantized pattern(s) left ({ops})")
    rep.float_params = sum(int(np.prod(t.dims)) for t in m.graph.initializer
                           if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16))
    return m, rep
