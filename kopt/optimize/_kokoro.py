"""Finding Kokoro's landmarks in a graph (shared by the optimization passes).

Durations: the predictor's per-token durations flow ``Sigmoid -> ReduceSum -> Div(speed) -> Round
-> Clip(min 1) -> Cast(int64) -> Gather(0)`` into the ``CumSum`` that builds the alignment
(``/encoder/CumSum`` in Kokoro v1.0). The tensor that CumSum reads is "the durations as used for
expansion": int64, shape [seq], frames per token.
"""

from __future__ import annotations

from collections import defaultdict

import onnx
from onnx import helper

from kopt.core.errors import ModelError

_CHAIN_OPS = {"Gather", "Cast", "Clip", "Squeeze", "Reshape", "Mul", "Identity"}


def producers(g: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in g.node for o in n.output if o}


def consumers(g: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in g.node:
        for i in n.input:
            if i:
                out[i].append(n)
    return out


def duration_cumsum(g: onnx.GraphProto, where: str = "<model>") -> onnx.NodeProto:
    """The CumSum that turns per-token durations into frame boundaries; ModelError if none or several."""
    prod = producers(g)
    found = []
    for n in g.node:
        if n.op_type != "CumSum":
            continue
        x = n.input[0]
        for _ in range(6):
            p = prod.get(x)
            if p is None:
                break
            if p.op_type == "Round":
                found.append(n)
                break
            if p.op_type not in _CHAIN_OPS:
                break
            x = p.input[0]
    if len(found) != 1:
        raise ModelError(f"{where}: cannot find Kokoro's duration chain (Round -> Clip -> Cast -> CumSum): "
                         f"found {len(found)} candidates; is this a Kokoro graph?")
    return found[0]


def duration_tensor(g: onnx.GraphProto, where: str = "<model>") -> str:
    """Name of the int64 [seq] durations tensor the alignment is built from."""
    return duration_cumsum(g, where).input[0]


def unique_name(g: onnx.GraphProto, base: str) -> str:
    taken = {o for n in g.node for o in n.output} | {i.name for i in g.input} | {i.name for i in g.initializer}
    taken |= {n.name for n in g.node}
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


def rewire(g: onnx.GraphProto, old: str, new: str, skip: set[str] | None = None) -> int:
    """Point every consumer of ``old`` at ``new``, except nodes producing a tensor named in ``skip``."""
    skip = skip or set()
    n_ = 0
    for n in g.node:
        if skip.intersection(n.output):
            continue
        for k, i in enumerate(n.input):
            if i == old:
                n.input[k] = new
                n_ += 1
    for o in g.output:
        if o.name == old:
            raise ModelError(f"tensor {old!r} is a graph output; cannot rewire it")
    return n_


def const_i64(g: onnx.GraphProto, base: str, values) -> str:
    import numpy as np
    from onnx import numpy_helper

    name = unique_name(g, base)
    g.initializer.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
    return name


def node(g: onnx.GraphProto, op: str, inputs: list[str], base: str, **attrs) -> str:
    out = unique_name(g, base)
    g.node.append(helper.make_node(op, inputs, [out], name=unique_name(g, base + "/" + op), **attrs))
    return out


def topo_sort(g: onnx.GraphProto) -> None:
    """Reorder nodes so each comes after its inputs' producers (appended nodes land where they belong)."""
    have = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    nodes = list(g.node)
    prod_idx = {o: k for k, n in enumerate(nodes) for o in n.output}
    deps = [[prod_idx[i] for i in n.input if i not in have and i in prod_idx] for n in nodes]
    order, state = [], [0] * len(nodes)
    for start in range(len(nodes)):
        if state[start]:
            continue
        stack = [(start, 0)]
        while stack:
            k, j = stack.pop()
            if j == 0:
                if state[k]:
                    continue
                state[k] = 1
            if j < len(deps[k]):
                stack.append((k, j + 1))
                d = deps[k][j]
                if not state[d]:
                    stack.append((d, 0))
            else:
                state[k] = 2
                order.append(nodes[k])
    del g.node[:]
    g.node.extend(order)
