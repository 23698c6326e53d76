"""Tiny graphs with Kokoro's signature (tokens, style, speed -> audio), built in memory.

``tiny_kokoro`` holds Gather, MatMul, LayerNormalization, LSTM, Conv and ConvTranspose, so every
weight-bearing op kopt rewrites has a small stand-in; a few kilobytes of weights, seeded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VOCAB = 178
EMB = 16
HID = 8
UP = 64  # audio samples per token


def tiny_kokoro_model(seed: int = 0, token_name: str = "tokens", speed_dtype: str = "float32",
                      opset: int = 17) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def w(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits = {
        "emb.weight": w(VOCAB, EMB),
        "style_proj.weight": w(256, EMB, scale=0.1),
        "ln.gamma": (1 + w(EMB, scale=0.05)),
        "ln.beta": w(EMB, scale=0.05),
        "lstm.W": w(1, 4 * HID, EMB),
        "lstm.R": w(1, 4 * HID, HID),
        "lstm.B": w(1, 8 * HID, scale=0.1),
        "conv.weight": w(HID, HID, 3),
        "conv.bias": w(HID, scale=0.1),
        "up.weight": w(HID, 1, UP, scale=0.2),
        "up.bias": w(1, scale=0.01),
        "perm_axes": np.array([1], np.int64),
        "flat": np.array([-1], np.int64),
        "gain": np.array(0.5, np.float32),
    }
    speed_in = "speed"
    nodes = []
    if speed_dtype == "int32":
        nodes.append(helper.make_node("Cast", ["speed"], ["speed_f"], to=TensorProto.FLOAT, name="speed_cast"))
        speed_in = "speed_f"
    nodes += [
        helper.make_node("Gather", ["emb.weight", token_name], ["emb"], name="embedding/Gather"),
        helper.make_node("MatMul", ["style", "style_proj.weight"], ["sty"], name="style_proj/MatMul"),
        helper.make_node("Add", ["emb", "sty"], ["h0"], name="add_style"),
        helper.make_node("LayerNormalization", ["h0", "ln.gamma", "ln.beta"], ["h1"], axis=-1, epsilon=1e-5,
                         name="ln/LayerNormalization"),
        helper.make_node("Transpose", ["h1"], ["h1t"], perm=[1, 0, 2], name="lstm/Transpose"),
        helper.make_node("LSTM", ["h1t", "lstm.W", "lstm.R", "lstm.B"], ["y", "", ""], hidden_size=HID,
                         name="lstm/LSTM"),
        helper.make_node("Squeeze", ["y", "perm_axes"], ["y2"], name="lstm/Squeeze"),
        helper.make_node("Transpose", ["y2"], ["y3"], perm=[1, 2, 0], name="lstm/Transpose_1"),
        helper.make_node("Conv", ["y3", "conv.weight", "conv.bias"], ["c1"], pads=[1, 1], kernel_shape=[3],
                         name="decoder/conv/Conv"),
        helper.make_node("Tanh", ["c1"], ["c2"], name="decoder/Tanh"),
        helper.make_node("ConvTranspose", ["c2", "up.weight", "up.bias"], ["u"], strides=[UP], kernel_shape=[UP],
                         name="generator/ups/ConvTranspose"),
        helper.make_node("Reshape", ["u", "flat"], ["u1"], name="flatten"),
        helper.make_node("Div", ["u1", speed_in], ["u2"], name="speed_scale"),
        helper.make_node("Tanh", ["u2"], ["u3"], name="out/Tanh"),
        helper.make_node("Mul", ["u3", "gain"], ["audio"], name="out/gain"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_kokoro",
        [helper.make_tensor_value_info(token_name, TensorProto.INT64, [1, "sequence_length"]),
         helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 256]),
         helper.make_tensor_value_info("speed", TensorProto.INT32 if speed_dtype == "int32" else TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["audio_length"])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="kopt-tests")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def tiny_kokoro(path: str | Path, **kw) -> Path:
    p = Path(path)
    onnx.save(tiny_kokoro_model(**kw), str(p))
    return p


def wrong_inputs_model() -> onnx.ModelProto:
    """Runs fine, but is no Kokoro graph: its input is a float image."""
    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])
    g = helper.make_graph([helper.make_node("Relu", ["pixels"], ["out"])], "not_kokoro", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m


def tiny_voices(n: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"voice_{i}": (rng.standard_normal((510, 1, 256)) * 0.1).astype(np.float32) for i in range(n)}


def run(model_path: str | Path, tokens, style, speed: float = 1.0, disable_opt: bool = True) -> np.ndarray:
    """Run a Kokoro-signature model on CPU (ORT optimizations off, so ORT's fusions hide nothing)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if disable_opt:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    tok_name = "tokens" if "tokens" in names else "input_ids"
    speed_t = next(i.type for i in sess.get_inputs() if i.name == "speed")
    spd = np.array([int(speed)], np.int32) if "int32" in speed_t else np.array([speed], np.float32)
    feeds = {tok_name: np.asarray(tokens, np.int64).reshape(1, -1),
             "style": np.asarray(style, np.float32).reshape(1, 256), "speed": spd}
    return sess.run(None, feeds)[0]
