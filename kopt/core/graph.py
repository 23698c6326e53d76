"""Graph plumbing every pass shares, written once. Passes ask this module, never a private index.

Every graph rewrite works on onnx-ir: the constant rule, use-def questions (who reads a value,
what is up- or downstream), fresh names, a builder for constants and nodes, rewiring readers,
dropping the initializers a rewrite released, and serializing back (``to_proto``). Dead code,
topological order and constant lifting are onnx-ir's own passes (``onnx_ir.passes.common``).
And ONNX shape inference on a weightless copy, which every pass that needs shapes uses.

One rule for constants: an initializer is a constant unless a graph input of the same name can
override it (ONNX's rule), and so is the value of a ``Constant`` node.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Collection, Iterable, TypeVar

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper, numpy_helper

from kopt.core.errors import ModelError

ONNX_DOMAINS = ("", "ai.onnx")
_SMALL = 64  # initializers up to this many elements keep their values in the shape-inference copy

Shape = tuple[int | str | None, ...]  # static, symbolic or unknown dims
M = TypeVar("M")
# Ops that round a float activation to integers (ONNX and com.microsoft): a float rewrite upstream
# of one changes its rounding and flips quantization steps.
QUANTIZERS = frozenset({"QuantizeLinear", "DynamicQuantizeLinear", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM"})


# --- on onnx-ir (passes written on its use-def chains) ---

def const_value(v: ir.Value | None) -> np.ndarray | None:
    """The value of ``v`` when it is a constant (the module's rule: an initializer no graph input
    overrides, or a Constant node's output), else None."""
    if v is None or v.is_graph_input():
        return None
    t = ir.convenience.get_const_tensor(v)
    return None if t is None else t.numpy()


def const_int(v: ir.Value | None) -> int | None:
    """``v``'s value when it is a constant integer scalar (or one-element tensor), else None."""
    a = const_value(v)
    return int(a.reshape(-1)[0]) if a is not None and a.size == 1 and a.dtype.kind in "iu" else None


def feeds_a_quantizer(v: ir.Value) -> bool:
    """Does any node downstream of ``v`` (through its uses, onnx-ir's use-def chains) quantize?"""
    return any(n.op_type in QUANTIZERS for n in downstream(v))


def is_onnx_op(n: ir.Node | None, op: str) -> bool:
    """``n`` is the standard-domain ``op``."""
    return n is not None and n.op_type == op and n.domain in ONNX_DOMAINS


def other_input(n: ir.Node, v: ir.Value) -> ir.Value | None:
    """The second input of a binary node, given one (None if ``v`` is not an input of ``n``)."""
    ins = n.inputs
    if len(ins) != 2 or not any(i is v for i in ins):
        return None
    return ins[1] if ins[0] is v else ins[0]


def only_consumer(v: ir.Value, op: str) -> ir.Node | None:
    """The one node reading ``v`` (once) when it is an ``op`` and ``v`` is no graph output."""
    uses = v.uses()
    if len(uses) != 1 or v.is_graph_output():
        return None
    node = next(iter(uses)).node
    return node if node.op_type == op else None


def only_reader(v: ir.Value) -> ir.Node | None:
    """The one node reading ``v`` (in one input slot or several, as Mul(v, v) does) when ``v`` is no
    graph output."""
    readers = {id(u.node): u.node for u in v.uses()}
    return next(iter(readers.values())) if len(readers) == 1 and not v.is_graph_output() else None


def upstream_of(g: ir.Graph, ops: set[str] | frozenset[str]) -> set[ir.Value]:
    """Every value some node of ``g`` of a type in ``ops`` (any domain) depends on, through its
    producers (onnx-ir's use-def chains)."""
    seen: set[ir.Value] = set()
    stack = [i for n in g if n.op_type in ops for i in n.inputs if i is not None]
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        p = v.producer()
        if p is not None:
            stack.extend(i for i in p.inputs if i is not None)
    return seen


def match_each(nodes: Iterable[ir.Node], op: str, match: Callable[[ir.Node], M | str]) -> tuple[list[M], Counter[str]]:
    """``match`` on every standard-domain ``op`` node of ``nodes`` (a graph, in its order): what
    matched, and how many were left alone for each reason (a ``str`` result), for a pass's report."""
    found: list[M] = []
    skipped: Counter[str] = Counter()
    for n in list(nodes):
        if is_onnx_op(n, op):
            m = match(n)
            if isinstance(m, str):
                skipped[m] += 1
            else:
                found.append(m)
    return found, skipped


def fresh_names(g: ir.Graph):
    """A ``fresh(base)`` that returns ``base``, else ``base_1``, ``base_2``, ... the first that no
    node, value or initializer of ``g`` has (nor an earlier call)."""
    taken = {v.name for v in g.inputs} | set(g.initializers) | {n.name for n in g} | \
        {v.name for n in g for v in n.outputs}

    def fresh(base: str) -> str:
        name, k = base, 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

    return fresh


class Builder:
    """Named constants and one-output nodes for ``g``, every name made fresh (``fresh_names``).
    ``make`` returns a node for the caller to place (replacing nodes, or inserting it); ``node``
    appends one whose value is named ``base`` and itself ``base/<op>``."""

    def __init__(self, g: ir.Graph):
        self.g = g
        self.fresh = fresh_names(g)

    def const(self, base: str, arr: np.ndarray) -> ir.Value:
        name = self.fresh(base)
        v = ir.Value(name=name, const_value=ir.tensor(np.asarray(arr), name=name))
        self.g.register_initializer(v)
        return v

    def make(self, op: str, inputs: list[ir.Value | None], name: str, output: str, **attrs) -> ir.Node:
        """A node ``op`` named ``name`` writing one value named ``output`` (both made fresh), not yet
        in the graph."""
        out = ir.Value(name=self.fresh(output))
        return ir.node(op, inputs, attrs or None, name=self.fresh(name), outputs=[out])

    def node(self, op: str, inputs: list[ir.Value | None], base: str, **attrs) -> ir.Value:
        n = self.make(op, inputs, f"{base}/{op}", base, **attrs)
        self.g.append(n)
        return n.outputs[0]


def rewire(old: ir.Value, new: ir.Value, keep: Collection[ir.Node] = ()) -> int:
    """Make every node that reads ``old`` (onnx-ir's uses) read ``new`` instead, except the nodes in
    ``keep`` (those that compute ``new`` from ``old``); how many inputs moved. ModelError if ``old``
    is a graph output."""
    if old.is_graph_output():
        raise ModelError(f"tensor {old.name!r} is a graph output; cannot rewire it")
    moved = 0
    for use in list(old.uses()):
        if use.node not in keep:
            use.node.replace_input_with(use.idx, new)
            moved += 1
    return moved


def downstream(v: ir.Value) -> set[ir.Node]:
    """Every node downstream of ``v``, through onnx-ir's use-def chains."""
    seen: set[ir.Node] = set()
    stack = [v]
    while stack:
        for n in stack.pop().consumers():
            if n not in seen:
                seen.add(n)
                stack.extend(n.outputs)
    return seen


def forget_shapes(g: ir.Graph) -> None:
    """Unset the type and shape of every value that is no graph input or output (what a protobuf
    graph keeps in ``value_info``), for shape inference to find afresh."""
    for v in [*g.initializers.values(), *(o for n in g for o in n.outputs)]:
        if not (v.is_graph_input() or v.is_graph_output()):
            v.type, v.shape = None, None


def drop_unread_initializers(g: ir.Graph, values: Iterable[ir.Value]) -> int:
    """Remove the initializers among ``values`` that nothing reads any more (no node, no graph
    input or output): what a rewrite released by pointing its nodes at new constants. The rest of
    the graph is left as it is. Returns how many went."""
    gone = 0
    for v in {id(v): v for v in values}.values():
        if v.name is not None and v.is_initializer() and not (v.uses() or v.is_graph_input() or v.is_graph_output()) \
                and g.initializers.get(v.name) is v:
            del g.initializers[v.name]
            gone += 1
    return gone


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """``ir.serde.serialize_model``, without a ``value_info`` for each initializer: onnx-ir writes
    one for every initializer whose type it knows (all of them, after deserializing), which a
    protobuf graph does not carry and nothing reads. Unsets those initializers' types in ``model``."""
    for v in model.graph.initializers.values():
        if not (v.is_graph_input() or v.is_graph_output()):
            v.type, v.shape = None, None
    return ir.serde.serialize_model(model)


# --- ONNX shape inference ---

def infer_shapes(model: onnx.ModelProto | ir.Model) -> dict[str, tuple[int, Shape]]:
    """name -> (elem type, shape) for every tensor ONNX shape inference can type.

    Runs on a weightless copy (large initializers become typed graph inputs), so it is quick and
    costs no copy of the weights; from an onnx-ir model, that copy is its nodes serialized. ONNX
    cannot infer an STFT output whose signal length is symbolic, which would hide every shape after
    it, so STFT outputs get onnxruntime's shape with a fresh symbol for the frame count before a
    second round."""
    nodes, inputs, outputs, inits, value_info, opsets, ir_version, functions = _skeleton(model)
    hints: list[onnx.ValueInfoProto] = []
    for _ in range(2):
        skel = helper.make_graph(nodes, "kopt_shapes", inputs, outputs, inits, value_info=[*value_info, *hints])
        probe = helper.make_model(skel, opset_imports=opsets)
        probe.ir_version = ir_version
        probe.functions.extend(functions)
        try:
            inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 -- no inference means no shapes: every match is skipped
            return {}
        shapes = _shape_map(inferred.graph)
        new = _stft_hints(inferred.graph, shapes, len(hints))
        if not new:
            break
        hints += new
    return shapes


def _skeleton(model: onnx.ModelProto | ir.Model) -> tuple:
    """The weightless copy's parts: nodes, graph inputs (large initializers among them, typed),
    outputs, small initializers, value_info, opset imports, IR version and functions."""
    if isinstance(model, ir.Model):
        g = model.graph
        inits, weights = [], []
        for v in g.initializers.values():
            t = v.const_value
            if t is not None and t.size <= _SMALL:
                tp = ir.serde.serialize_tensor(t)
                tp.name = v.name or ""
                inits.append(tp)
            elif t is not None:
                weights.append(helper.make_tensor_value_info(v.name or "", int(t.dtype), list(t.shape.numpy())))
        inputs = [ir.serde.serialize_value(v) for v in g.inputs if not v.is_initializer()] + weights
        outputs = [ir.serde.serialize_value(v) for v in g.outputs]
        ends = set(g.inputs) | set(g.outputs)
        value_info = [ir.serde.serialize_value(v) for n in g for v in n.outputs
                      if v not in ends and v.type is not None]
        return ([ir.serde.serialize_node(n) for n in g], inputs, outputs, inits, value_info,
                [helper.make_opsetid(d, k) for d, k in model.opset_imports.items()], model.ir_version,
                [ir.serde.serialize_function(f) for f in model.functions.values()])
    g = model.graph
    inits, weights = [], []
    for t in g.initializer:
        if int(np.prod(t.dims)) <= _SMALL:
            inits.append(t)
        else:
            weights.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    init_names = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names] + weights
    return (list(g.node), inputs, list(g.output), inits, list(g.value_info), list(model.opset_import),
            model.ir_version, list(model.functions))


def _shape_map(g: onnx.GraphProto) -> dict[str, tuple[int, Shape]]:
    out = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            out[vi.name] = (tt.elem_type, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                                for d in tt.shape.dim))
    for t in g.initializer:
        out[t.name] = (t.data_type, tuple(t.dims))
    return out


def _stft_hints(g: onnx.GraphProto, shapes: dict, start: int) -> list[onnx.ValueInfoProto]:
    """Output shapes ONNX leaves unset for STFT over a symbolic-length signal: [batch, frames, bins,
    2], bins = frame_length // 2 + 1 when onesided (as onnxruntime computes it)."""
    small = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    hints: list[onnx.ValueInfoProto] = []
    for n in g.node:
        if not (n.op_type == "STFT" and n.domain in ONNX_DOMAINS) or n.output[0] in shapes or n.input[0] not in shapes:
            continue
        elem, sig = shapes[n.input[0]]
        length = None
        if len(n.input) > 3 and n.input[3] in small:
            length = int(small[n.input[3]].reshape(-1)[0])
        elif len(n.input) > 2 and n.input[2] in shapes and len(shapes[n.input[2]][1]) == 1:
            length = shapes[n.input[2]][1][0]
        if len(sig) not in (2, 3) or not isinstance(length, int):  # ORT also reads [batch, length]
            continue
        onesided = next((a.i for a in n.attribute if a.name == "onesided"), 1)
        bins = length // 2 + 1 if onesided else length
        hints.append(helper.make_tensor_value_info(n.output[0], elem,
                                                   [sig[0], f"kopt_stft_frames_{start + len(hints)}", bins, 2]))
    return hints
