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
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper
from pydantic import Field

from kopt.core.errors import ModelError
from kopt.core.graph import topo_sort
from kopt.core.kokoro import DURATIONS
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register
from kopt.optimize._kokoro import const_i64, duration_cumsum, node, rewire

NAME = DURATIONS  # the name kokoro_runtime.feed feeds and reads
PUBLISHED = "duration"  # the output name kokoro-onnx reads


class DurationsConfig(PassConfig):
    accept_input: bool = Field(
        False, description="Add an int64 [seq] graph input 'durations' that replaces the predicted durations "
                           "(empty array: use the predicted ones) instead of the 'durations' output.")


def expose_durations(model: onnx.ModelProto, accept_input: bool, where: str = "<model>",
                     output_name: str = NAME) -> dict:
    g = model.graph
    taken = {i.name for i in g.input} | {o.name for o in g.output}
    if taken & {NAME, output_name}:
        raise ModelError(f"{where}: the model already has a {NAME!r} or {output_name!r} input or output; "
                         "apply the pass once")
    cs = duration_cumsum(g, where)
    dur = cs.input[0]
    if not accept_input:
        g.node.append(helper.make_node("Identity", [dur], [output_name], name="kopt/durations/Identity"))
        g.output.append(helper.make_tensor_value_info(output_name, TensorProto.INT64, ["sequence_length"]))
        return {"durations_tensor": dur, "added": "output", "output": output_name}
    g.input.append(helper.make_tensor_value_info(NAME, TensorProto.INT64, ["durations_length"]))
    both = node(g, "Concat", [NAME, dur], "kopt/durations/concat", axis=0)
    ends = node(g, "Shape", [dur], "kopt/durations/seq")
    starts = const_i64(g, "kopt/durations/zero", [0])
    chosen = node(g, "Slice", [both, starts, ends], "kopt/durations/chosen")
    rewire(g, dur, chosen, skip={chosen, both, ends})
    g.output.append(helper.make_tensor_value_info(NAME, TensorProto.INT64, ["durations_length"]))
    topo_sort(g)
    return {"durations_tensor": dur, "added": "input+output(echo)"}


@register
class Durations(Pass):
    name = "durations"
    version = 1
    config_cls = DurationsConfig
    summary = ("Expose predicted per-token durations as output 'durations' (int64 [seq]); "
               "accept_input: take them as input 'durations' instead.")
    equivalent = True
    tolerance = 0.0  # the audio path is untouched: bit-exact

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        rep = expose_durations(model, self.config.accept_input, str(ctx.input_path or "<model>"))  # type: ignore[attr-defined]
        onnx.checker.check_model(model)
        return PassResult(model=model, report=rep)


def duration_chain_problem(path) -> str | None:
    """Why the timings/durations passes cannot apply to the model at ``path``, or None if they can."""
    m = onnx.load(str(path), load_external_data=False)
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
    version = 1
    config_cls = TimingsConfig
    summary = "Expose predicted per-token durations as output 'duration' (int64 [seq]), as kokoro-onnx reads them."
    equivalent = True
    tolerance = 0.0

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        rep = expose_durations(model, False, str(ctx.input_path or "<model>"), output_name=PUBLISHED)
        onnx.checker.check_model(model)
        return PassResult(model=model, report=rep)
