"""frame_stream: one Kokoro graph cut into the three graphs that stream its decoder by frames.

Kokoro's front (text encoder, durations, F0/N predictors) is cheap; its back (decoder and iSTFT
vocoder) is most of the time and works on frames, so the back can run over overlapping windows of
frames while the front runs once per sentence. Two things in the back are not frame-local: its
instance normalizations (mean and variance over the whole time axis) and the harmonic source's
phase (a CumSum of F0 over the sentence). ``build`` makes, from one Kokoro graph:

- **front**: the model's inputs -> ``asr`` [1, C, T] (the aligned features), ``f0`` and ``n``
  [1, 2T]: the three tensors the decoder reads from the encoder (``find_cut``);
- **stats** ("frame-stats"): ``asr, f0, n, style`` -> ``norm{i}_mean`` / ``norm{i}_var`` [1, C, 1]
  of the frame-rate norms (the decoder's own, not the generator's: ``find_norms``), cut where
  they are computed, so it is the back up to its last frame-rate norm and cheap;
- **back**: ``asr, f0, n, style``, the fed norms' ``norm{i}_mean/var``, ``phase_offset`` [1, 1, H]
  and ``carry_at`` int64 [1] -> ``audio`` and ``phase_carry`` [1, 1, H].

The contract of the back, for a window of frames [s, e) of a sentence: feed ``asr[:, :, s:e]``,
``f0[:, 2s:2e]``, ``n[:, 2s:2e]`` (the front's outputs sliced), the sentence's statistics for the
fed norms, and as ``phase_offset`` the previous window's ``phase_carry`` (zeros for the first);
``phase_carry`` is the phase a window starting ``carry_at`` frames after this one's start must be
fed (this window's offset plus its CumSum row just before that frame). Its ``audio`` covers the
window's frames. ``norm{i}`` numbers every normalization of the decoder in graph order, so the
stats graph, the calibration graph (``stats_graph(which="all")``) and the back agree on names.

Which norms the back takes as inputs is ``FrameStreamConfig.fed``: ``"all"`` (the frame-rate
norms from the stats graph, the generator's from per-voice calibration: ``calibrate``) or
``"frame-rate"`` (the generator's norms keep their window's own statistics). The config's overlap
is written into the back's metadata for the runtime's window schedule (``kokoro_runtime.frames``).

This is a library, not a registered pass: kopt's runner keeps one Kokoro-signature model per
step, and a step with three models of other signatures is not part of its contract. ``save``
writes the three graphs under the names the runtime opens.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np
import onnx
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass
from pydantic import Field

from kokoro_runtime.frames import BACK, FRONT, META_FED, META_OVERLAP, STATS
from kopt.core.errors import ModelError
from kopt.core.graph import Builder, Shape, const_int, infer_shapes, rewire, to_proto
from kopt.core.passes import PassConfig

CUT = ("asr", "f0", "n", "style")
GENERATOR = "/generator/"  # node names of the generator's norms (the rest of the decoder's run at frame rate)
MIN_OPSET = 15  # Shape with start/end, which the phase carry uses

Shapes = dict[str, tuple[int, Shape]]


class FrameStreamConfig(PassConfig):
    overlap: int = Field(16, ge=0, description="frames each window shares with the next (the back's receptive "
                                               "field must fit in it)")
    fed: Literal["frame-rate", "all"] = Field("all", description="norms whose statistics the back takes as "
                                                                 "inputs: the decoder's frame-rate ones, or all "
                                                                 "(the generator's from calibration)")


@dataclass(frozen=True)
class Norm:
    """An instance normalization of the decoder: its mean and variance values, the name of its
    ``Sub(x, mean)`` node, and whether it runs at frame rate (not in the generator)."""

    index: int
    mean: ir.Value
    var: ir.Value
    site: str

    @property
    def frame_rate(self) -> bool:
        return GENERATOR not in self.site

    @property
    def names(self) -> tuple[str, str]:
        return f"norm{self.index}_mean", f"norm{self.index}_var"


@dataclass
class FrameStreamGraphs:
    front: ir.Model
    stats: ir.Model
    back: ir.Model
    report: dict


def _decoder(n: ir.Node) -> bool:
    return (n.name or "").startswith("/decoder/")


def _rank(v: ir.Value, shapes: Shapes) -> int | None:
    if v.shape is not None:
        return len(v.shape)
    s = shapes.get(v.name or "")
    return None if s is None else len(s[1])


def find_cut(g: ir.Graph, shapes: Shapes | None = None, where: str = "<model>") -> dict[str, ir.Value]:
    """The tensors the decoder (nodes named ``/decoder/...``) reads from the encoder (``/encoder/...``),
    by role: ``asr`` (the first rank-3 one), ``f0`` and ``n`` (rank 2, read by the decoder's
    ``.../Unsqueeze`` and ``.../Unsqueeze_1``), and the ``style`` input. ModelError naming the ones
    missing, for a graph that is not Kokoro's."""
    shapes = shapes or {}
    out: dict[str, ir.Value] = {}
    style = next((v for v in g.inputs if v.name == "style"), None)
    if style is not None:
        out["style"] = style
    for n in g:
        if not _decoder(n):
            continue
        for v in n.inputs:
            p = None if v is None else v.producer()
            if v is None or p is None or not (p.name or "").startswith("/encoder/"):
                continue
            rank = _rank(v, shapes)
            if rank == 3:
                out.setdefault("asr", v)
            elif rank == 2 and (n.name or "").endswith("/Unsqueeze"):
                out["f0"] = v
            elif rank == 2 and (n.name or "").endswith("/Unsqueeze_1"):
                out["n"] = v
    missing = [k for k in CUT if k not in out]
    if missing:
        raise ModelError(f"{where}: not a Kokoro decoder to stream: no {', '.join(missing)} among the "
                         "decoder's reads from the encoder (/decoder/ nodes reading /encoder/ tensors)")
    return out


def find_norms(g: ir.Graph) -> list[Norm]:
    """Every instance normalization of the decoder, in graph order: ``mean = ReduceMean(x)`` read by
    ``d = Sub(x, mean)``, ``var = ReduceMean(Mul(d, d) or Pow(d, _))``. A mean shared by several
    Subs (common subexpressions) is one norm."""
    found: list[Norm] = []
    seen: set[ir.Value] = set()
    for n in g:
        if n.op_type != "Sub" or not _decoder(n) or len(n.inputs) != 2:
            continue
        x, mean = n.inputs
        rm = None if mean is None else mean.producer()
        if mean is None or rm is None or rm.op_type != "ReduceMean" or rm.inputs[0] is not x or mean in seen:
            continue
        var = None
        for u in n.outputs[0].uses():
            if u.node.op_type in ("Mul", "Pow"):
                for u2 in u.node.outputs[0].uses():
                    if u2.node.op_type == "ReduceMean":
                        var = u2.node.outputs[0]
        if var is not None:
            seen.add(mean)
            found.append(Norm(len(found), mean, var, n.name or ""))
    return found


def _stat_value(name: str, like: ir.Value) -> ir.Value:
    return ir.Value(name=name, shape=like.shape or ir.Shape([1, None, 1]), type=ir.TensorType(ir.DataType.FLOAT))


def finish(model: ir.Model, where: str) -> ir.Model:
    """onnx-ir's dead-code removal, then a check that every value a node reads is produced, an
    input or a constant (a cut that left the back reading the front is a ModelError)."""
    RemoveUnusedNodesPass()(model)
    inputs = set(model.graph.inputs)
    for n in model.graph:
        for v in n.inputs:
            if v is not None and v.producer() is None and not v.is_initializer() and v not in inputs:
                raise ModelError(f"{where}: {n.name} reads {v.name}, which the cut leaves unproduced")
    return model


def _load(model: onnx.ModelProto) -> ir.Model:
    return ir.serde.deserialize_model(model)


def _as_output(v: ir.Value, name: str, shapes: Shapes) -> ir.Value:
    s = shapes.get(v.name or "")
    v.name = name
    if v.type is None:
        v.type = ir.TensorType(ir.DataType.FLOAT)
    if v.shape is None and s is not None:
        v.shape = ir.Shape(list(s[1]))
    return v


def front_graph(model: onnx.ModelProto, shapes: Shapes | None = None) -> ir.Model:
    """The model with the decoder's three reads from the encoder as its outputs ``asr, f0, n``."""
    shapes = infer_shapes(model) if shapes is None else shapes
    m = _load(model)
    cut = find_cut(m.graph, shapes)
    m.graph.outputs.clear()
    m.graph.outputs.extend(_as_output(cut[k], k, shapes) for k in ("asr", "f0", "n"))
    return finish(m, "front")


def cut_back(model: onnx.ModelProto, shapes: Shapes) -> tuple[ir.Model, list[Norm], ir.Value]:
    """The back as the graph has it (nothing rewritten, its outputs kept, dead code not yet removed:
    ``finish`` does it): ``asr, f0, n`` replaced by graph inputs of those names beside ``style``,
    the model's other inputs dropped; its norms (``find_norms``) and its new ``asr`` input."""
    m = _load(model)
    g = m.graph
    cut = find_cut(g, shapes)
    new = []
    for k in ("asr", "f0", "n"):
        old = cut[k]
        s = shapes.get(old.name or "")
        v = ir.Value(name=k, shape=old.shape or (ir.Shape(list(s[1])) if s else None),
                     type=old.type or ir.TensorType(ir.DataType.FLOAT))
        old.replace_all_uses_with(v)
        new.append(v)
    g.inputs.clear()
    g.inputs.extend([*new, cut["style"]])
    return m, find_norms(g), new[0]


def stats_graph(model: onnx.ModelProto, which: Literal["frame-rate", "all"] = "frame-rate",
                shapes: Shapes | None = None) -> ir.Model:
    """``asr, f0, n, style`` -> ``norm{i}_mean/var`` of the frame-rate norms (the frame-stats pass)
    or of all of them (``"all"``: the calibration graph, as costly as the back)."""
    shapes = infer_shapes(model) if shapes is None else shapes
    m, norms, _ = cut_back(model, shapes)
    chosen = [nm for nm in norms if which == "all" or nm.frame_rate]
    if not chosen:
        raise ModelError("no frame-rate instance normalization in the decoder: nothing for the stats graph")
    m.graph.outputs.clear()
    for nm in chosen:
        for v, name in zip((nm.mean, nm.var), nm.names):
            m.graph.outputs.append(_as_output(v, name, {}))
            if v.shape is None:
                v.shape = ir.Shape([1, None, 1])
    return finish(m, "stats")


def feed_stats(g: ir.Graph, norms: Sequence[Norm]) -> list[ir.Value]:
    """Make each of ``norms`` read its mean and variance from new graph inputs ``norm{i}_mean/var``
    instead of its ReduceMeans (left for dead-code removal); the new inputs."""
    added = []
    for nm in norms:
        for old, name in zip((nm.mean, nm.var), nm.names):
            v = _stat_value(name, old)
            old.replace_all_uses_with(v)
            g.inputs.append(v)
            added.append(v)
    return added


def carry_phase(g: ir.Graph, frames_of: ir.Value, shapes: Shapes) -> ir.Value:
    """Add the input ``phase_offset`` [1, 1, H] to the decoder's CumSum (the harmonic source's
    phase, [1, rows, H] over axis 1, rows a whole number per frame of ``frames_of`` [1, C, T]) and
    return a new value ``phase_carry``: the offset phase at row ``carry_at * rows / T - 1``, where
    ``carry_at`` is a new int64 [1] input (frames)."""
    sums = [n for n in g if n.op_type == "CumSum" and _decoder(n)]
    if len(sums) != 1:
        raise ModelError(f"the decoder has {len(sums)} CumSum nodes; the phase carry needs exactly one "
                         "(the harmonic source's)")
    cumsum = sums[0]
    cs = cumsum.outputs[0]
    shape = cs.shape or (ir.Shape(list(shapes[cs.name][1])) if cs.name in shapes else None)
    axis = const_int(cumsum.inputs[1])
    if shape is None or len(shape) != 3 or not isinstance(shape[2], int) or axis not in (1, -2):
        raise ModelError(f"{cumsum.name}: the phase carry needs a CumSum over axis 1 of [1, rows, H] with H "
                         f"static (shape {shape}, axis {axis})")
    harmonics = shape[2]
    b = Builder(g)
    offset = ir.Value(name="phase_offset", shape=ir.Shape([1, 1, harmonics]), type=ir.TensorType(ir.DataType.FLOAT))
    carry_at = ir.Value(name="carry_at", shape=ir.Shape([1]), type=ir.TensorType(ir.DataType.INT64))
    add = b.make("Add", [cs, offset], "/stream/phase_offset/Add", "/stream/phase")
    g.insert_after(cumsum, add)
    phase = add.outputs[0]
    rewire(cs, phase, keep=[add])
    rows = b.node("Shape", [phase], "/stream/rows", start=1, end=2)
    frames = b.node("Shape", [frames_of], "/stream/frames", start=2, end=3)
    per = b.node("Div", [rows, frames], "/stream/rows_per_frame")
    at = b.node("Mul", [carry_at, per], "/stream/carry_row")
    row = b.node("Sub", [at, b.const("/stream/one", np.array([1], np.int64))], "/stream/carry_index")
    carry = b.node("Gather", [phase, row], "/stream/carry", axis=1)
    carry.name, carry.type, carry.shape = "phase_carry", ir.TensorType(ir.DataType.FLOAT), ir.Shape([1, 1, harmonics])
    g.inputs.extend([offset, carry_at])
    return carry


def back_graph(model: onnx.ModelProto, config: FrameStreamConfig | None = None,
               shapes: Shapes | None = None) -> ir.Model:
    """The back (see the module docstring): the decoder from ``asr, f0, n, style``, the fed norms'
    statistics and the phase carry; outputs the model's audio and ``phase_carry``."""
    config = config or FrameStreamConfig()
    shapes = infer_shapes(model) if shapes is None else shapes
    if model.opset_import and min(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < MIN_OPSET:
        raise ModelError(f"the phase carry needs opset {MIN_OPSET} or later (Shape with start/end)")
    m, norms, asr = cut_back(model, shapes)
    g = m.graph
    audio = g.outputs[0]
    feed_stats(g, [nm for nm in norms if config.fed == "all" or nm.frame_rate])
    carry = carry_phase(g, asr, shapes)
    g.outputs.clear()
    g.outputs.extend([audio, carry])
    m.metadata_props[META_OVERLAP] = str(config.overlap)
    m.metadata_props[META_FED] = config.fed
    return finish(m, "back")


def build(model: onnx.ModelProto, config: FrameStreamConfig | None = None) -> FrameStreamGraphs:
    """The front, stats and back graphs of ``model`` (each from its own copy), and a report: norms
    found, how many run at frame rate, how many the back takes as inputs, harmonics, nodes."""
    config = config or FrameStreamConfig()
    shapes = infer_shapes(model)
    front = front_graph(model, shapes)
    stats = stats_graph(model, "frame-rate", shapes)
    back = back_graph(model, config, shapes)
    norms = find_norms(_load(model).graph)
    fed = [v.name for v in back.graph.inputs if (v.name or "").startswith("norm")]
    offset = next(v for v in back.graph.inputs if v.name == "phase_offset")
    report = {"norms": len(norms), "frame_rate_norms": sum(nm.frame_rate for nm in norms), "fed_norms": len(fed) // 2,
              "harmonics": offset.shape[2] if offset.shape else None, "config": config.model_dump(mode="json"),
              "nodes": {"model": len(model.graph.node), "front": len(front.graph), "stats": len(stats.graph),
                        "back": len(back.graph)}}
    return FrameStreamGraphs(front, stats, back, report)


def save(graphs: FrameStreamGraphs, folder: str | Path) -> dict[str, Path]:
    """Write the three graphs into ``folder`` under the runtime's names (checked by ONNX's checker),
    with ``report.json``; name -> path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, m in ((FRONT, graphs.front), (STATS, graphs.stats), (BACK, graphs.back)):
        p = out / name
        onnx.save(to_proto(m), str(p))
        onnx.checker.check_model(str(p))
        paths[name] = p
    (out / "report.json").write_text(json.dumps(graphs.report, indent=1, sort_keys=True), encoding="utf-8")
    return paths


# --- calibration: per-voice statistics for the norms no cheap pass computes exactly ---

def pool_stats(runs: Sequence[tuple[int, Mapping[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """Frame-weighted pooling of per-sentence statistics: (frames, {norm{i}_mean, norm{i}_var}) for
    each run -> the mean and variance of all their frames together (E[x^2] - mean^2), float32."""
    if not runs:
        raise ValueError("no calibration runs to pool")
    total = sum(t for t, _ in runs)
    pooled: dict[str, np.ndarray] = {}
    for k in runs[0][1]:
        if not k.endswith("_mean"):
            continue
        v = k[: -len("_mean")] + "_var"
        mean = sum(t * np.asarray(s[k], np.float64) for t, s in runs) / total
        ex2 = sum(t * (np.asarray(s[v], np.float64) + np.asarray(s[k], np.float64) ** 2) for t, s in runs) / total
        pooled[k], pooled[v] = np.asarray(mean, np.float32), np.asarray(ex2 - mean ** 2, np.float32)
    return pooled


def calibrate(model: onnx.ModelProto, runs: Sequence[Mapping[str, np.ndarray]], threads: int = 1) -> dict[str, np.ndarray]:
    """The generator's norms' statistics for one voice: the calibration graph (``stats_graph``,
    ``"all"``) on each run (the front's ``asr, f0, n`` and the ``style`` row of that voice for that
    sentence), pooled over the runs' frames (``pool_stats``). The frame-rate norms are left out:
    the stats graph computes those exactly for each sentence."""
    from kopt.core.kokoro import open_session

    shapes = infer_shapes(model)
    calib = stats_graph(model, "all", shapes)
    generator = {name for nm in find_norms(_load(model).graph) if not nm.frame_rate
                 for name in nm.names}
    with tempfile.TemporaryDirectory(prefix="kopt-frame-stream-") as tmp:
        path = Path(tmp) / "calibration.onnx"
        onnx.save(to_proto(calib), str(path))
        sess = open_session(path, threads=threads)
        names = [o.name for o in sess.get_outputs()]
        got = []
        for r in runs:
            feeds = {k: np.asarray(r[k], np.float32) for k in CUT}
            stats = dict(zip(names, sess.run(None, feeds)))
            got.append((int(feeds["asr"].shape[2]), {k: v for k, v in stats.items() if k in generator}))
        del sess
    return pool_stats(got)
