"""durations: expose the predicted per-token durations, and optionally accept them as an input.

Shared contract (kopt.quality feeds reference durations through these exact names):
- ``accept_input = false``: an extra graph output ``durations``, int64, shape [seq]: frames per
  token exactly as used to build the alignment (after Round, Clip and, for bucketed models, the
  pad mask), so ``sum(durations)`` is the number of frames.
- ``accept_input = true``: an extra graph input ``durations``, int64, shape [n]. With n == seq its
  values replace the predicted ones (0 is allowed: the token is skipped); with n == 0 (an empty
  array) the model uses its own predictions, which is what the contract check feeds. Other lengths
  are a caller error. Its graph output ``durations`` is the input itself (ONNX names one value once,
  so the output echoes what was fed; the predictions come from an ``accept_input = false`` copy).

The audio output is unchanged when nothing is fed (the pass is checked for equivalence, exactly).
The edit runs on onnx-ir: the duration tensor's readers, found through its use-def chains, move to
the chosen durations (``_kokoro.rewire``), and its topological sort puts the added nodes in place.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
from onnx_ir.passes.common import TopologicalSortPass
from pydantic import Field

from kopt.core.errors import ModelError
from kopt.core.graph import Builder, fresh_names, rewire, to_proto
from kopt.core.kokoro import DURATIONS
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register
from kopt.optimize._kokoro import duration_cumsum

NAME = DURATIONS  # the name kokoro_runtime.feed feeds and reads
PUBLISHED = "duration"  # the output name kokoro-onnx reads


class DurationsConfig(PassConfig):
    accept_input: bool = Field(
        False, description="Add an int64 [seq] graph input 'durations' that replaces the predicted durations "
                           "(empty array: use the predicted ones) instead of the 'durations' output.")


def _int64(name: str, dim: str) -> ir.Value:
    return ir.Value(name=name, type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape([dim]))


def expose_durations(model: ir.Model, accept_input: bool, where: str = "<model>",
                     output_name: str = NAME) -> dict:
    """Add the durations output (or, ``accept_input``, the input and its echo) to ``model``, in place."""
    g = model.graph
    taken = {v.name for v in g.inputs} | {v.name for v in g.outputs}
    if taken & {NAME, output_name}:
        raise ModelError(f"{where}: the model already has a {NAME!r} or {output_name!r} input or output; "
                         "apply the pass once")
    cs = duration_cumsum(g, where)
    dur = cs.inputs[0]
    if not accept_input:
        out = _int64(output_name, "sequence_length")
        # a fresh node name: a published model (``duration``, from timings) is instrumented again for
        # scoring (``durations``), and onnxruntime refuses two nodes of one name
        g.append(ir.node("Identity", [dur], name=fresh_names(g)("kopt/durations/Identity"), outputs=[out]))
        g.outputs.append(out)
        return {"durations_tensor": dur.name, "added": "output", "output": output_name}
    fed = _int64(NAME, "durations_length")
    g.inputs.append(fed)
    b = Builder(g)
    both = b.node("Concat", [fed, dur], "kopt/durations/concat", axis=0)
    ends = b.node("Shape", [dur], "kopt/durations/seq")
    starts = b.const("kopt/durations/zero", np.array([0], np.int64))
    chosen = b.node("Slice", [both, starts, ends], "kopt/durations/chosen")
    rewire(dur, chosen, keep={both.producer(), ends.producer()})
    g.outputs.append(fed)  # ONNX names one value once: the output echoes the input
    TopologicalSortPass()(model)
    return {"durations_tensor": dur.name, "added": "input+output(echo)"}


@register
class Durations(Pass):
    name = "durations"
    checked = True
    version = 1
    config_cls = DurationsConfig
    summary = ("Expose predicted per-token durations as output 'durations' (int64 [seq]); "
               "accept_input: take them as input 'durations' instead.")
    equivalent = True
    tolerance = 0.0  # the audio path is untouched: bit-exact

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        irm = ir.serde.deserialize_model(model)
        rep = expose_durations(irm, self.config.accept_input, str(ctx.input_path or "<model>"))  # type: ignore[attr-defined]
        model = to_proto(irm)
        return PassResult(model=model, report=rep)


def duration_chain_problem(path) -> str | None:
    """Why the timings/durations passes cannot apply to the model at ``path``, or None if they can."""
    m = ir.serde.deserialize_model(onnx.load(str(path), load_external_data=False))
    try:
        duration_cumsum(m.graph, str(path))
    except ModelError as e:
        return str(e)
    return None


class TimingsConfig(PassConfig):
    pass


@register
class Timings(Pass):
    """What a published bundle ships: the durations as a second output named ``duration``, the name
    kokoro-onnx (0.6 and later) reads for ``create_timed``, and the runtime for word timestamps."""

    name = "timings"
    checked = True
    version = 1
    config_cls = TimingsConfig
    summary = "Expose predicted per-token durations as output 'duration' (int64 [seq]), as kokoro-onnx reads them."
    equivalent = True
    tolerance = 0.0

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        irm = ir.serde.deserialize_model(model)
        rep = expose_durations(irm, False, str(ctx.input_path or "<model>"), output_name=PUBLISHED)
        model = to_proto(irm)
        return PassResult(model=model, report=rep)
