"""Kokoro node groups: which part of the network a node belongs to, from its module path.

Kokoro's exported node names keep the PyTorch module path (``/decoder/decoder/generator/resblocks.3/
convs1.0/Conv``), so a node's group is a dotted name such as ``generator.resblocks.3`` (its convs:
``generator.resblocks.3.convs1.0``). Selectors
match by prefix on dot boundaries: ``generator`` matches every generator group,
``generator.resblocks`` every resblock, ``op:Conv`` every Conv node. Nodes the exporter left
without a module path (shape glue, fused ops named by token) fall into ``other``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable

import onnx

from kopt.core.precision import node_precisions

# (regex on the node name, group name template). First match wins; \1 etc. fill numbered parts.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), g) for p, g in (
    (r"^/encoder/bert_encoder/", "bert.proj"),
    (r"^/encoder/bert/", "bert"),
    (r"^/encoder/text_encoder/", "text_encoder"),
    (r"^/encoder/predictor/duration_proj/", "predictor.duration"),
    (r"^/encoder/predictor/lstm/", "predictor.duration"),
    (r"^/encoder/predictor/text_encoder/", "predictor.text_encoder"),
    (r"^/encoder/predictor/", "predictor.duration"),
    (r"^/encoder/shared/", "predictor.shared"),
    (r"^/encoder/F0(?:\.\d+|_proj)/", "predictor.F0"),
    (r"^/encoder/N(?:\.\d+|_proj)/", "predictor.N"),
    (r"^/encoder/", "predictor.align"),
    (r"^/decoder/decoder/(?:encode|F0_conv|N_conv|asr_res)(?:/|$)", "decoder.encode"),
    (r"^/decoder/decoder/decode\.(\d+)/", r"decoder.decode.\1"),
    (r"^/decoder/decoder/generator/(?:m_source|f0_upsamp)/", "generator.source"),
    (r"^/decoder/decoder/generator/ups\.(\d+)/", r"generator.ups.\1"),
    # each resblock conv is its own sub-group (generator.resblocks.5.convs2.1), so a map can keep one
    # conv of a block in float; the block's prefix still selects all of it
    (r"^/decoder/decoder/generator/resblocks\.(\d+)/(convs[12])\.(\d+)/", r"generator.resblocks.\1.\2.\3"),
    (r"^/decoder/decoder/generator/resblocks\.(\d+)/", r"generator.resblocks.\1"),
    (r"^/decoder/decoder/generator/noise_(?:convs|res)\.(\d+)/", r"generator.noise.\1"),
    (r"^/decoder/decoder/generator/conv_post/", "generator.conv_post"),
    # the STFT of the harmonic source, its magnitude/phase (Pow, Sqrt, Atan, Where) and the iSTFT:
    # top-level generator nodes without a sub-module, plus istft/ and reflection_pad/
    (r"^/decoder/decoder/generator/(?:istft|reflection_pad)/", "generator.istft"),
    (r"^/decoder/decoder/generator/[A-Za-z]+(?:_\d+)?/?$", "generator.istft"),
    (r"^/decoder/decoder/generator/", "generator.glue"),
    (r"^/decoder/", "decoder.glue"),
))

# Parts where fp16 is known to overflow or lose the signal: duration/F0 path and the DSP tail.
# (predictor.align, the integer duration -> frame bookkeeping, is left to the converter's op block
# list: blocking its FusedMatMul too makes onnxruntime 1.31's NchwcTransformer segfault on load.)
FP16_FP32_ISLANDS = ("predictor.text_encoder", "predictor.duration", "predictor.shared", "predictor.F0",
                     "predictor.N", "generator.source", "generator.istft", "generator.conv_post")


def group_of(node_name: str) -> str:
    for pat, tmpl in _RULES:
        m = pat.match(node_name)
        if m:
            return m.expand(tmpl)
    return "other"


def assign(model: onnx.ModelProto) -> dict[str, str]:
    """Node name -> group for every node. Nodes without a module path (ORT's fused or
    transpose-optimizer nodes, named ``Transpose_token_36`` etc.) take the group of the node that
    produces their first float input, so a moved Transpose inside the sine generator stays there."""
    prod = {o: n for n in model.graph.node for o in n.output}
    out: dict[str, str] = {}
    for n in model.graph.node:
        g = group_of(n.name)
        if g == "other":
            for x in n.input:
                p = prod.get(x)
                if p is not None and out.get(p.name, "other") != "other":
                    g = out[p.name]
                    break
        out[n.name] = g
    return out


def _matches(node: onnx.NodeProto, group: str, selector: str) -> bool:
    if selector.startswith("op:"):
        return node.op_type == selector[3:]
    return group == selector or group.startswith(selector + ".")


def matches(node: onnx.NodeProto, selector: str, group: str | None = None) -> bool:
    """Does ``node`` fall under ``selector`` (a group prefix, or ``op:TYPE``)?"""
    return _matches(node, group if group is not None else group_of(node.name), selector)


def select(model: onnx.ModelProto, selectors: Iterable[str], op_types: Iterable[str] | None = None) -> list[str]:
    """Names of nodes matching any selector (and, if given, one of ``op_types``)."""
    sels = list(selectors)
    ops = set(op_types) if op_types is not None else None
    where = assign(model)
    out = []
    for n in model.graph.node:
        if ops is not None and n.op_type not in ops:
            continue
        if any(_matches(n, where[n.name], s) for s in sels):
            out.append(n.name)
    return out


def groups(model: onnx.ModelProto, depth: int | None = None) -> dict[str, list[str]]:
    """Group name (cut to ``depth`` dotted parts, if given) -> node names, in graph order."""
    out: dict[str, list[str]] = defaultdict(list)
    for name, g in assign(model).items():
        if depth is not None:
            g = ".".join(g.split(".")[:depth])
        out[g].append(name)
    return dict(out)


def precision_by_group(model: onnx.ModelProto, depth: int = 2) -> dict[str, dict[str, int]]:
    """Per group, how many weight-bearing compute nodes run in int8 / int4 / fp16 / fp32, by the one
    rule of kopt.core.precision: read from the graph itself, so a report states what the file really
    holds (a QDQ node counts as int8 when its weight comes from a DequantizeLinear of int8 data)."""
    out: dict[str, Counter] = defaultdict(Counter)
    where = assign(model)
    for n, precision in node_precisions(model):
        out[".".join(where[n.name].split(".")[:depth])][precision] += 1
    return {g: dict(sorted(c.items())) for g, c in sorted(out.items())}
