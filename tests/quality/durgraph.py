"""A tiny Kokoro-signature graph with the durations instrumentation's names: output ``durations``
(int64 [seq]) and, with ``accept_input``, input ``durations`` that replaces the predicted ones.

Each token gets ``1 + token % 3`` frames (plus one for ``extra_token``, to make a variant whose
durations drift); a frame is ``UP`` samples of a harmonic tone scaled by the token's table value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

UP = 600
VOCAB = 178


def _pattern() -> np.ndarray:
    t = np.arange(UP) / 24000
    tone = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20))
    return (0.5 * tone / np.max(np.abs(tone))).astype(np.float32).reshape(1, UP)


def durations_model(table: np.ndarray, extra_token: int = -1, accept_input: bool = False) -> onnx.ModelProto:
    i = lambda name, v: numpy_helper.from_array(np.asarray(v), name)  # noqa: E731
    inits = [i("table", table.astype(np.float32)), i("three", np.array(3, np.int64)), i("one", np.array(1, np.int64)),
             i("zero", np.array(0, np.int64)), i("extra", np.array(extra_token, np.int64)), i("flat", np.array([-1], np.int64)),
             i("ax0", np.array([0], np.int64)), i("ax1", np.array([1], np.int64)), i("pattern", _pattern())]
    nodes = [
        helper.make_node("Reshape", ["tokens", "flat"], ["tok"]),
        helper.make_node("Mod", ["tok", "three"], ["m3"]),
        helper.make_node("Add", ["m3", "one"], ["d0"]),
        helper.make_node("Equal", ["tok", "extra"], ["is_extra"]),
        helper.make_node("Cast", ["is_extra"], ["extra_i"], to=TensorProto.INT64),
        helper.make_node("Add", ["d0", "extra_i"], ["pred"]),
    ]
    used = "durations" if accept_input else "pred"
    nodes += [
        helper.make_node("Identity", [used], ["durations_out"]),
        helper.make_node("CumSum", [used, "zero"], ["ends"]),
        helper.make_node("ReduceSum", [used, "ax0"], ["total"], keepdims=0),
        helper.make_node("Range", ["zero", "total", "one"], ["frames"]),
        helper.make_node("Unsqueeze", ["frames", "ax1"], ["frames_c"]),
        helper.make_node("Unsqueeze", ["ends", "ax0"], ["ends_r"]),
        helper.make_node("GreaterOrEqual", ["frames_c", "ends_r"], ["ge"]),
        helper.make_node("Cast", ["ge"], ["ge_i"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["ge_i", "ax1"], ["tok_idx"], keepdims=0),
        helper.make_node("Gather", ["table", "tok"], ["tok_val"]),
        helper.make_node("Gather", ["tok_val", "tok_idx"], ["frame_val"]),
        helper.make_node("Unsqueeze", ["frame_val", "ax1"], ["fv"]),
        helper.make_node("Mul", ["fv", "pattern"], ["frames_audio"]),
        helper.make_node("Reshape", ["frames_audio", "flat"], ["raw"]),
        helper.make_node("ReduceMean", ["style"], ["smean"], keepdims=0),
        helper.make_node("Add", ["raw", "smean"], ["raw2"]),
        helper.make_node("Div", ["raw2", "speed"], ["audio"]),
    ]
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "seq"]),
              helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 256]),
              helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1])]
    if accept_input:
        inputs.append(helper.make_tensor_value_info("durations", TensorProto.INT64, ["seq"]))
    # the output ``durations`` is the predicted ones, or (accept_input) the graph input passed through
    nodes = [n for n in nodes if "durations_out" not in n.output]
    if not accept_input:
        nodes.append(helper.make_node("Identity", ["pred"], ["durations"]))
    g = helper.make_graph(nodes, "tiny_durations", inputs,
                          [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["n"]),
                           helper.make_tensor_value_info("durations", TensorProto.INT64, ["seq"])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def table(seed: int = 0, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = 0.3 + 0.4 * rng.random(VOCAB)
    if noise:
        t = t + noise * np.random.default_rng(seed + 1).standard_normal(VOCAB)
    return t.astype(np.float32)


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    p = Path(path)
    onnx.save(model, str(p))
    return p
