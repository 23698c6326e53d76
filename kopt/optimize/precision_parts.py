"""precision_parts: one Kokoro graph cut into the five parts a provider compiles at precisions of
their own (OpenVINO's CPU plugin takes one inference precision per compiled model).

The parts, in the order they run, and the tensors between them:

- **front** (text encoder, durations, F0/N predictors): the model's inputs -> ``asr``, ``f0``, ``n``
  (``frame_stream.find_cut``);
- **decoder** (the frame-rate AdaIN blocks): ``asr, f0, n, style`` -> the values the generator
  reads from outside it (``carries``: the decoder's last block output, the upsampled F0's input,
  the style half its AdaINs read, and any shape glue computed upstream);
- **source** (the harmonic source, its STFT, magnitude and phase): the carries it reads ->
  ``harmonic``, the first input of ``noise_convs.0``;
- **body** (upsampling, resblocks, noise branches): carries and ``harmonic`` -> the first input of
  ``conv_post``;
- **tail** (``conv_post`` and the iSTFT): that tensor (and the carries it reads) -> ``audio``.

Each part keeps the original node names and only the inputs it reads; running them in order on the
same feeds gives the whole model's audio (the durations output, computed in the front, is not
carried). Which parts are fragile in low precision is measured, not assumed: see docs/gpu.md and
``docs/measurements/openvino_mixed.py``.

This is a library, not a registered pass: kopt's runner keeps one Kokoro-signature model per
step, and five graphs of other signatures are not part of its contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx_ir as ir

from kopt.core.errors import ModelError
from kopt.core.graph import Shape, infer_shapes
from kopt.optimize.frame_stream import find_cut

PARTS = ("front", "decoder", "source", "body", "tail")
GENERATOR = "/decoder/decoder/generator/"
# what measured best on OpenVINO's CPU plugin in bf16 (docs/gpu.md): f32 where bf16 gives NaN
# (source) or changes durations (front) or costs PESQ (tail), bf16 where the time goes
MIXED_BF16 = {"front": "f32", "decoder": "bf16", "source": "f32", "body": "bf16", "tail": "f32"}


@dataclass(frozen=True)
class Parts:
    models: dict[str, ir.Model]          # part name -> its graph, in PARTS order
    boundaries: dict[str, str]           # role -> tensor name (asr, f0, n, harmonic, post_in, audio)
    carries: tuple[str, ...]             # the decoder's outputs: what the generator reads from before it

    def inputs(self, part: str) -> list[str]:
        return [v.name or "" for v in self.models[part].graph.inputs]

    def outputs(self, part: str) -> list[str]:
        return [v.name or "" for v in self.models[part].graph.outputs]


def _in_generator(n: ir.Node) -> bool:
    return (n.name or "").startswith(GENERATOR)


def _downstream_of_generator(g: ir.Graph) -> set[ir.Node]:
    """Every node that reads, directly or not, a value a generator node produces."""
    seen: set[ir.Node] = set()
    todo = [n for n in g if _in_generator(n)]
    while todo:
        n = todo.pop()
        for out in n.outputs:
            for user, _ in out.uses():
                if user not in seen:
                    seen.add(user)
                    todo.append(user)
    return seen


def find_boundaries(g: ir.Graph, where: str = "<model>", shapes: dict[str, tuple[int, Shape]] | None = None
                    ) -> tuple[dict[str, ir.Value], list[ir.Value]]:
    """The tensors between the parts by role, and the carries (values the generator reads from
    nodes upstream of it), in graph order. ModelError naming what is missing for a graph that is not
    Kokoro's with its STFT as a Conv (``kopt optimize ... --pass stft-conv``)."""
    found: dict[str, ir.Value] = dict(find_cut(g, shapes, where))
    after = _downstream_of_generator(g)
    carries: list[ir.Value] = []
    for n in g:
        if not _in_generator(n):
            continue
        name = n.name or ""
        if name.startswith(GENERATOR + "noise_convs.0/") and n.inputs and n.inputs[0] is not None:
            found.setdefault("harmonic", n.inputs[0])
        if name.startswith(GENERATOR + "conv_post/") and n.inputs and n.inputs[0] is not None:
            found.setdefault("post_in", n.inputs[0])
        for v in n.inputs:
            p = None if v is None else v.producer()
            if v is not None and p is not None and not _in_generator(p) and p not in after and v not in carries:
                carries.append(v)
    missing = [k for k in ("harmonic", "post_in") if k not in found]
    if not carries:
        missing.append("decoder output read by the generator")
    if missing:
        raise ModelError(f"{where}: not a Kokoro generator to cut into precision parts: no {', '.join(missing)} "
                         f"(nodes named {GENERATOR}noise_convs.0/ and conv_post/; the STFT as a Conv: "
                         "kopt optimize ... --pass stft-conv)")
    found["audio"] = g.outputs[0]
    return found, carries


def _part(model: ir.Model, inputs: list[ir.Value], outputs: list[ir.Value], part: str,
          shapes: dict[str, tuple[int, Shape]], prune: bool = True) -> ir.Model:
    """The nodes between ``inputs`` and ``outputs``, its inputs and outputs typed (from ``shapes``
    where the graph has no value info); ``prune``: without the inputs it does not read."""
    try:
        sub = ir.convenience.extract(model.graph, inputs, outputs)
    except ValueError as e:
        raise ModelError(f"{part}: the cut is not closed ({e})") from None
    sub.name = part
    read = {v for n in sub for v in n.inputs if v is not None}
    kept = [v for v in sub.inputs if not prune or v in read or v in sub.outputs]
    sub.inputs.clear()
    sub.inputs.extend(kept)
    for v in (*sub.inputs, *sub.outputs):
        known = shapes.get(v.name or "")
        if v.type is None and known is not None:
            v.type = ir.TensorType(ir.DataType(known[0]))
        if v.shape is None and known is not None:
            v.shape = ir.Shape(list(known[1]))
    return ir.Model(sub, ir_version=model.ir_version, producer_name="kopt precision_parts")


def split(model: onnx.ModelProto | ir.Model, where: str = "<model>") -> Parts:
    """The five parts of ``model`` (see the module docstring)."""
    m = ir.serde.deserialize_model(model) if isinstance(model, onnx.ModelProto) else model   # read, never changed
    shapes = infer_shapes(model)
    b, carries = find_boundaries(m.graph, where, shapes)
    enc = [b["asr"], b["f0"], b["n"], b["style"]]
    models = {
        "front": _part(m, list(m.graph.inputs), [b["asr"], b["f0"], b["n"]], "front", shapes, prune=False),
        "decoder": _part(m, enc, carries, "decoder", shapes),
        "source": _part(m, carries, [b["harmonic"]], "source", shapes),
        "body": _part(m, [*carries, b["harmonic"]], [b["post_in"]], "body", shapes),
        "tail": _part(m, [b["post_in"], *carries], [b["audio"]], "tail", shapes),
    }
    names = {k: v.name or "" for k, v in b.items() if k != "style"}
    return Parts(models, names, tuple(v.name or "" for v in carries))


def save(parts: Parts, folder: str | Path) -> dict[str, Path]:
    """``<part>.onnx`` for each part and ``parts.json`` (each part's inputs and outputs, the
    boundaries by role) in ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, m in parts.models.items():
        paths[name] = out / f"{name}.onnx"
        ir.save(m, paths[name])
    layout = {"parts": {p: {"inputs": parts.inputs(p), "outputs": parts.outputs(p)} for p in PARTS},
              "boundaries": parts.boundaries, "carries": list(parts.carries)}
    paths["layout"] = out / "parts.json"
    paths["layout"].write_text(json.dumps(layout, indent=1), encoding="utf-8")
    return paths
