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
Nodes left without consumers (the activation quantizers, bias quantization) are removed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from kopt.core.errors import ModelError
from kopt.core.graph import GraphIndex, remove_unread

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


def precision_of(model: onnx.ModelProto) -> str:
    """'int8', 'fp16' or 'fp32', from the ops and initializer types present."""
    ops = {n.op_type for n in model.graph.node}
    if ops & (QUANT_OPS - {"QuantizeLinear"}):
        return "int8"
    counts: Counter = Counter()
    for t in model.graph.initializer:
        counts[t.data_type] += int(np.prod(t.dims)) if t.dims else 1
    if counts[onnx.TensorProto.FLOAT16] > counts[onnx.TensorProto.FLOAT]:
        return "fp16"
    return "fp32"


class _Graph(GraphIndex):
    """The shared use-def index (kopt.core.graph) plus this rewrite's state: new float initializers,
    shared weights, and the nodes to replace or drop."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__(model.graph)
        self.model = model
        self.new_inits: dict[str, np.ndarray] = {}
        self.memo: dict[tuple, str] = {}  # shared quantized weights stay shared once dequantized
        self.replace: dict[int, list[onnx.NodeProto]] = {}  # id(node) -> replacement nodes
        self.drop: set[int] = set()

    def add_init(self, base: str, arr: np.ndarray) -> str:
        name = base
        k = 0
        while name in self.inits or name in self.inputs or name in self.new_inits or name in self.prod:
            k += 1
            name = f"{base}_{k}"
        self.new_inits[name] = arr
        return name

    def shared_init(self, memo_key: tuple, base: str, make) -> str:
        """Name of the float initializer for ``memo_key``; computed once with ``make()``."""
        if memo_key not in self.memo:
            self.memo[memo_key] = self.add_init(base, make())
        return self.memo[memo_key]

    def find_float_const_upstream(self, name: str, numel: int, depth: int = 6) -> np.ndarray | None:
        """Walk producers of ``name`` looking for a float constant with ``numel`` elements."""
        frontier, seen = [name], set()
        for _ in range(depth):
            nxt = []
            for x in frontier:
                if x in seen:
                    continue
                seen.add(x)
                c = self.const(x)
                if c is not None and c.dtype.kind == "f" and c.size == numel:
                    return c
                p = self.prod.get(x)
                if p is not None:
                    nxt.extend(i for i in p.input if i)
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


def _scale_chain(G: _Graph, node: onnx.NodeProto, x_scale: str) -> tuple[list[onnx.NodeProto], str, np.ndarray] | None:
    """From an integer op's output: [Add(bias)] -> Cast -> Mul(scale). Returns
    (chain nodes, final output name, weight scale) or None."""
    chain = []
    out = node.output[0]
    add = G.only_reader(out, "Add")
    if add is not None:
        chain.append(add)
        out = add.output[0]
    cast = G.only_reader(out, "Cast")
    if cast is None:
        return None
    chain.append(cast)
    mul = G.only_reader(cast.output[0], "Mul")
    if mul is None:
        return None
    chain.append(mul)
    other = mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0]
    w_scale = G.const(other)
    if w_scale is None:
        sp = G.prod.get(other)
        if sp is None or sp.op_type != "Mul":
            return None
        cands = [G.const(i) for i in sp.input if i != x_scale]
        cands = [c for c in cands if c is not None]
        if len(cands) != 1:
            return None
        w_scale = cands[0]
    return chain, mul.output[0], w_scale


def _rewrite_matmul_integer(G: _Graph, n: onnx.NodeProto) -> bool:
    dql = G.prod.get(n.input[0])
    w = G.const(n.input[1])
    if dql is None or dql.op_type != "DynamicQuantizeLinear" or w is None:
        return False
    zp = G.const(n.input[3]) if len(n.input) > 3 and n.input[3] else None
    found = _scale_chain(G, n, dql.output[1])
    if found is None:
        return False
    chain, out, scale = found
    if chain[0].op_type == "Add":
        return False  # MatMulInteger never carries an int bias in ORT's output; refuse to guess
    key = ("matmul", n.input[1], _digest(scale), _digest(zp))
    # per-column scale/zp broadcast over the last axis
    wname = G.shared_init(key, n.input[1].replace("_quantized", "") or "W", lambda: _dq(w, scale, zp))
    G.replace[id(n)] = [helper.make_node("MatMul", [dql.input[0], wname], [out], name=n.name.replace("_quant", ""))]
    G.drop.update(id(c) for c in chain)
    return True


def _rewrite_conv_integer(G: _Graph, n: onnx.NodeProto) -> bool:
    dql = G.prod.get(n.input[0])
    w = G.const(n.input[1])
    if dql is None or dql.op_type != "DynamicQuantizeLinear" or w is None:
        return False
    zp = G.const(n.input[3]) if len(n.input) > 3 and n.input[3] else None
    found = _scale_chain(G, n, dql.output[1])
    if found is None:
        return False
    chain, out, scale = found
    key = ("conv", n.input[1], _digest(scale), _digest(zp))
    wname = G.shared_init(key, n.input[1].replace("_quantized", "") or "W", lambda: _dq(w, scale, zp, axis=0))
    inputs = [dql.input[0], wname]
    if chain[0].op_type == "Add":
        add = chain[0]
        bias_in = add.input[1] if add.input[0] == n.output[0] else add.input[0]
        bias = G.find_float_const_upstream(bias_in, w.shape[0])
        if bias is None:
            return False
        b = bias.astype(np.float32).reshape(-1)
        inputs.append(G.shared_init(("bias", _digest(b)), f"{n.name}_bias", lambda: b))
    else:
        # Newer onnxruntime: ConvInteger -> Cast -> Mul(scale) -> Add(Reshape(float bias)) in float.
        add = G.only_reader(out, "Add")
        if add is not None:
            other = add.input[1] if add.input[0] == out else add.input[0]
            bias = _const_through_reshape(G, other)
            if bias is not None and bias.size == w.shape[0] and bias.dtype.kind == "f":
                b = bias.astype(np.float32).reshape(-1)
                inputs.append(G.shared_init(("bias", _digest(b)), f"{n.name}_bias", lambda: b))
                G.drop.add(id(add))
                out = add.output[0]
    conv = helper.make_node("Conv", inputs, [out], name=n.name.replace("_quant", ""))
    conv.attribute.extend(n.attribute)
    G.replace[id(n)] = [conv]
    G.drop.update(id(c) for c in chain)
    return True


def _const_through_reshape(G: _Graph, name: str) -> np.ndarray | None:
    """A constant, or a Reshape/Unsqueeze of one (the bias of a dynamically quantized Conv)."""
    c = G.const(name)
    if c is not None:
        return c
    p = G.prod.get(name)
    if p is not None and p.op_type in ("Reshape", "Unsqueeze") and G.const(p.input[0]) is not None:
        return G.const(p.input[0])
    return None


def _rewrite_dq_lstm(G: _Graph, n: onnx.NodeProto) -> bool:
    ins = list(n.input) + [""] * (12 - len(n.input))
    wq, rq = G.const(ins[1]), G.const(ins[2])
    ws, wz, rs, rz = (G.const(ins[i]) for i in (8, 9, 10, 11))
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

    wname = G.shared_init(("lstm", ins[1], _digest(ws), _digest(wz)), ins[1].replace("_quantized", "") + "_W",
                          lambda: deq(wq, ws, wz))
    rname = G.shared_init(("lstm", ins[2], _digest(rs), _digest(rz)), ins[2].replace("_quantized", "") + "_R",
                          lambda: deq(rq, rs, rz))
    new_in = [ins[0], wname, rname, *ins[3:8]]
    while new_in and not new_in[-1]:
        new_in.pop()
    lstm = helper.make_node("LSTM", new_in, list(n.output), name=n.name.replace("_quant", ""))
    lstm.attribute.extend(n.attribute)
    G.replace[id(n)] = [lstm]
    return True


def _rewrite_dequantize_linear(G: _Graph, n: onnx.NodeProto) -> bool:
    scale = G.const(n.input[1])
    zp = G.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
    axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
    x = G.const(n.input[0])
    if x is not None and scale is not None:
        G.new_inits[n.output[0]] = _dq(x, scale, zp, axis=axis if np.ndim(scale) else None)
        G.drop.add(id(n))
        return True
    p = G.prod.get(n.input[0])
    if p is not None and p.op_type == "Gather" and scale is not None and np.ndim(scale) == 0:
        table = G.const(p.input[0])
        if table is not None and len(G.readers(p.output[0])) == 1:
            tname = G.shared_init(("gather", p.input[0], _digest(scale), _digest(zp)),
                                  p.input[0].replace("_quantized", ""), lambda: _dq(table, scale, zp))
            gather = helper.make_node("Gather", [tname, p.input[1]], [n.output[0]], name=p.name.replace("_quant", ""))
            gather.attribute.extend(p.attribute)
            G.replace[id(n)] = [gather]
            G.drop.add(id(p))
            return True
    if p is not None and p.op_type == "QuantizeLinear":  # activation Q -> DQ pair
        G.replace[id(n)] = [helper.make_node("Identity", [p.input[0]], [n.output[0]], name=n.name + "_bypass")]
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
    m = onnx.ModelProto()
    m.CopyFrom(model)
    G = _Graph(m)
    rep = DequantReport()
    failed: Counter = Counter()
    for n in list(G.g.node):
        fn = _REWRITES.get(n.op_type)
        if fn is None or id(n) in G.drop:
            continue
        if fn(G, n):
            rep.rewritten[n.op_type] += 1
        else:
            failed[n.op_type] += 1
    new_nodes = []
    for n in G.g.node:
        if id(n) in G.drop:
            continue
        new_nodes.extend(G.replace.get(id(n), [n]))
    del G.g.node[:]
    G.g.node.extend(new_nodes)
    for name, arr in G.new_inits.items():
        G.g.initializer.append(numpy_helper.from_array(arr, name))
    before = len(new_nodes)
    _bypass_identities(G.g)
    remove_unread(G.g)
    rep.removed_nodes = before - len(G.g.node)
    left = Counter(n.op_type for n in G.g.node if n.op_type in QUANT_OPS)
    rep.remaining_quant_ops = dict(left)
    if left:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(left.items()))
        raise ModelError(f"{source}: cannot rebuild an fp32 reference: unsupported quantized pattern(s) left ({ops})")
    rep.float_params = sum(int(np.prod(t.dims)) for t in G.g.initializer
                           if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16))
    m.producer_name = "kopt.reference"
    return m, rep


def _bypass_identities(g: onnx.GraphProto) -> None:
    outputs = {o.name for o in g.output}
    rename = {}
    keep = []
    for n in g.node:
        if n.op_type == "Identity" and n.name.endswith("_bypass") and n.output[0] not in outputs:
            rename[n.output[0]] = n.input[0]
        else:
            keep.append(n)

    def resolve(x: str) -> str:
        while x in rename:
            x = rename[x]
        return x

    for n in keep:
        for i, x in enumerate(n.input):
            if x in rename:
                n.input[i] = resolve(x)
    del g.node[:]
    g.node.extend(keep)
