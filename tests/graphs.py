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


def tiny_kokoro_ort(folder: str | Path) -> tuple[Path, Path]:
    """``tiny_kokoro`` as m.onnx and the same graph saved by onnxruntime in ORT format as m.ort."""
    import onnxruntime as ort

    folder = Path(folder)
    model = tiny_kokoro(folder / "m.onnx")
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(folder / "m.ort")
    so.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    return model, folder / "m.ort"


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


# -- builders for the optimization passes ---------------------------------------------------------

def foldable_kokoro_model(seed: int = 0) -> onnx.ModelProto:
    """``tiny_kokoro_model`` plus work a folder must remove: the output gain computed from two
    Constant nodes (Mul of constants) and a dead Relu whose result nothing reads."""
    m = tiny_kokoro_model(seed=seed)
    g = m.graph
    g.node.insert(0, helper.make_node("Constant", [], ["c_half"], value=numpy_helper.from_array(np.array(0.25, np.float32)),
                                      name="fold/c1"))
    g.node.insert(1, helper.make_node("Constant", [], ["c_two"], value=numpy_helper.from_array(np.array(2.0, np.float32)),
                                      name="fold/c2"))
    g.node.insert(2, helper.make_node("Mul", ["c_half", "c_two"], ["gain2"], name="fold/Mul"))
    g.node.insert(3, helper.make_node("Relu", ["style"], ["dead"], name="dead/Relu"))
    for n in g.node:
        if n.name == "out/gain":
            n.input[1] = "gain2"
    onnx.checker.check_model(m)
    return m


DUR_K = 8  # sigmoid channels summed into a duration (so 1..8 frames per token)
FRAME = 32  # audio samples per frame


def duration_kokoro_model(seed: int = 0, opset: int = 17) -> onnx.ModelProto:
    """A tiny Kokoro with the real graph's duration machinery, for the durations and bind-shapes passes.

    tokens -> embedding -> self-attention (additive mask from a Where, like ALBERT's) -> Conv over
    tokens -> bidirectional LSTM over tokens -> + style -> duration head
    ``Sigmoid -> ReduceSum -> Div(speed) -> Round -> Clip(min 1) -> Cast(int64) -> Gather(0)`` ->
    ``CumSum`` -> alignment matrix [T, F] -> expand features to frames (MatMul) -> Conv ->
    ConvTranspose -> audio. Every token-mixing op (attention, Conv, LSTM) sees padded positions,
    so a token-length bucket that does not mask them changes the audio.
    """
    rng = np.random.default_rng(seed)

    def w(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    H2 = 2 * HID
    inits = {
        "emb.weight": w(VOCAB, EMB), "wq": w(EMB, EMB), "wk": w(EMB, EMB), "wv": w(EMB, EMB),
        "att_scale": np.array(EMB ** -0.5, np.float32), "zero_f": np.array(0.0, np.float32),
        "neg_f": np.array(-1e4, np.float32), "one_i": np.array(1, np.int64),
        "tconv.weight": w(EMB, EMB, 3), "tconv.bias": w(EMB, scale=0.1),
        "lstm.W": w(2, 4 * HID, EMB), "lstm.R": w(2, 4 * HID, HID), "lstm.B": w(2, 8 * HID, scale=0.1),
        "feat_shape": np.array([1, -1, H2], np.int64), "style_proj.weight": w(256, H2, scale=0.1),
        "one_ax": np.array([1], np.int64), "dur.weight": w(H2, DUR_K, scale=1.0), "dur.bias": w(DUR_K, scale=0.5),
        "sum_axes": np.array([-1], np.int64), "clip_min": np.array(1.0, np.float32),
        "idx0": np.array(0, np.int64), "axis0": np.array(0, np.int64), "idx_last": np.array(-1, np.int64),
        "ax1": np.array([1], np.int64), "ax0": np.array([0], np.int64),
        "dconv.weight": w(HID, H2, 3), "dconv.bias": w(HID, scale=0.1),
        "up.weight": w(HID, 1, FRAME, scale=0.2), "up.bias": w(1, scale=0.01),
        "flat": np.array([-1], np.int64), "gain": np.array(0.5, np.float32),
    }
    N = helper.make_node
    nodes = [
        N("Gather", ["emb.weight", "tokens"], ["emb"], name="/encoder/bert/embeddings/Gather"),
        # attention with an all-zero additive mask built the way the export builds it
        N("Shape", ["tokens"], ["tok_shape"], name="/encoder/bert/Shape"),
        N("ConstantOfShape", ["tok_shape"], ["ones"], name="/encoder/bert/ConstantOfShape",
          value=numpy_helper.from_array(np.array([1], np.int64))),
        N("Equal", ["ones", "one_i"], ["keep"], name="/encoder/bert/Equal"),
        N("Where", ["keep", "zero_f", "neg_f"], ["att_mask"], name="/encoder/bert/Where_2"),
        N("MatMul", ["emb", "wq"], ["q"], name="/encoder/bert/attention/q"),
        N("MatMul", ["emb", "wk"], ["k"], name="/encoder/bert/attention/k"),
        N("MatMul", ["emb", "wv"], ["v"], name="/encoder/bert/attention/v"),
        N("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="/encoder/bert/attention/Transpose"),
        N("MatMul", ["q", "kt"], ["qk"], name="/encoder/bert/attention/MatMul"),
        N("Mul", ["qk", "att_scale"], ["qks"], name="/encoder/bert/attention/Mul"),
        N("Add", ["qks", "att_mask"], ["scores"], name="/encoder/bert/attention/Add"),
        N("Softmax", ["scores"], ["probs"], axis=-1, name="/encoder/bert/attention/Softmax"),
        N("MatMul", ["probs", "v"], ["att"], name="/encoder/bert/attention/MatMul_1"),
        N("Add", ["emb", "att"], ["h0"], name="/encoder/bert/Add"),
        # conv over tokens
        N("Transpose", ["h0"], ["h0t"], perm=[0, 2, 1], name="/encoder/text_encoder/Transpose"),
        N("Conv", ["h0t", "tconv.weight", "tconv.bias"], ["tc"], pads=[1, 1], kernel_shape=[3],
          name="/encoder/text_encoder/cnn.0/Conv"),
        N("LeakyRelu", ["tc"], ["tc1"], alpha=0.2, name="/encoder/text_encoder/cnn.0/LeakyRelu"),
        N("Transpose", ["tc1"], ["tcs"], perm=[2, 0, 1], name="/encoder/text_encoder/Transpose_1"),
        # bidirectional LSTM over tokens
        N("LSTM", ["tcs", "lstm.W", "lstm.R", "lstm.B"], ["ly", "", ""], hidden_size=HID, direction="bidirectional",
          name="/encoder/predictor/lstm/LSTM"),
        N("Transpose", ["ly"], ["lyt"], perm=[2, 0, 1, 3], name="/encoder/predictor/lstm/Transpose"),
        N("Reshape", ["lyt", "feat_shape"], ["feat0"], name="/encoder/predictor/lstm/Reshape"),
        N("MatMul", ["style", "style_proj.weight"], ["sty"], name="/encoder/predictor/style/MatMul"),
        N("Unsqueeze", ["sty", "one_ax"], ["sty3"], name="/encoder/predictor/style/Unsqueeze"),
        N("Add", ["feat0", "sty3"], ["feat"], name="/encoder/predictor/Add"),
        # the duration chain, as in Kokoro's export
        N("MatMul", ["feat", "dur.weight"], ["dlin"], name="/encoder/predictor/duration_proj/MatMul"),
        N("Add", ["dlin", "dur.bias"], ["dlog"], name="/encoder/predictor/duration_proj/Add"),
        N("Sigmoid", ["dlog"], ["dsig"], name="/encoder/predictor/Sigmoid"),
        N("ReduceSum", ["dsig", "sum_axes"], ["dsum"], keepdims=0, name="/encoder/predictor/ReduceSum"),
        N("Div", ["dsum", "speed"], ["ddiv"], name="/encoder/Div"),
        N("Round", ["ddiv"], ["dround"], name="/encoder/Round"),
        N("Clip", ["dround", "clip_min"], ["dclip"], name="/encoder/Clip"),
        N("Cast", ["dclip"], ["dcast"], to=TensorProto.INT64, name="/encoder/Cast"),
        N("Gather", ["dcast", "idx0"], ["dur"], axis=0, name="/encoder/Gather"),
        # alignment: token t covers frames [cs[t] - dur[t], cs[t])
        N("CumSum", ["dur", "axis0"], ["cs"], name="/encoder/CumSum"),
        N("Gather", ["cs", "idx_last"], ["total"], axis=0, name="/encoder/Gather_1"),
        N("Range", ["idx0", "total", "one_i"], ["frames"], name="/encoder/Range"),
        N("Sub", ["cs", "dur"], ["starts"], name="/encoder/Sub"),
        N("Unsqueeze", ["frames", "ax0"], ["frames2"], name="/encoder/Unsqueeze"),
        N("Unsqueeze", ["starts", "ax1"], ["starts2"], name="/encoder/Unsqueeze_1"),
        N("Unsqueeze", ["cs", "ax1"], ["ends2"], name="/encoder/Unsqueeze_2"),
        N("GreaterOrEqual", ["frames2", "starts2"], ["ge"], name="/encoder/GreaterOrEqual"),
        N("Less", ["frames2", "ends2"], ["lt"], name="/encoder/Less"),
        N("And", ["ge", "lt"], ["alnb"], name="/encoder/And"),
        N("Cast", ["alnb"], ["aln"], to=TensorProto.FLOAT, name="/encoder/Cast_4"),
        N("Transpose", ["feat"], ["featt"], perm=[0, 2, 1], name="/encoder/Transpose"),
        N("MatMul", ["featt", "aln"], ["expanded"], name="/encoder/MatMul"),
        # decoder over frames
        N("Conv", ["expanded", "dconv.weight", "dconv.bias"], ["dc"], pads=[1, 1], kernel_shape=[3],
          name="/decoder/conv/Conv"),
        N("Tanh", ["dc"], ["dct"], name="/decoder/Tanh"),
        N("ConvTranspose", ["dct", "up.weight", "up.bias"], ["u"], strides=[FRAME], kernel_shape=[FRAME],
          name="/decoder/generator/ConvTranspose"),
        N("Reshape", ["u", "flat"], ["u1"], name="/decoder/flatten"),
        N("Tanh", ["u1"], ["u2"], name="/decoder/out/Tanh"),
        N("Mul", ["u2", "gain"], ["audio"], name="/decoder/out/gain"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_kokoro_durations",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "sequence_length"]),
         helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 256]),
         helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["audio_length"])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="kopt-tests")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def checked_model(nodes: list, name: str, inputs: list, outputs: list[str], inits: dict[str, np.ndarray],
                  opset: int, out_types: dict[str, int] | None = None) -> onnx.ModelProto:
    """A checked opset-``opset`` model (IR 9) of ``nodes``: ``inputs`` value infos, ``outputs`` named
    rank-3 tensors (float unless ``out_types`` says), ``inits`` as initializers."""
    types = out_types or {}
    g = helper.make_graph(nodes, name, inputs,
                          [helper.make_tensor_value_info(o, types.get(o, TensorProto.FLOAT), ["d0", "d1", "d2"])
                           for o in outputs],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def int8_conv_group(rng: np.random.Generator, x: str, channels: int, out: str, prefix: str,
                    out_scale: float) -> tuple[list, dict[str, np.ndarray]]:
    """The QDQ group onnxruntime fuses into QLinearConv, reading the float ``x`` ([1, channels, T],
    a DequantizeLinear's output): int8 per-channel weights [4, channels, 3] (seeded by ``rng``),
    Conv, then QuantizeLinear / DequantizeLinear on a uint8 grid of step ``out_scale`` into ``out``.
    Its nodes and initializers."""
    w = rng.normal(0, 0.3, (4, channels, 3)).astype(np.float32)
    ws = (np.abs(w).max(axis=(1, 2)) / 127).astype(np.float32)
    inits = {"wq": np.round(w / ws[:, None, None]).astype(np.int8), "ws": ws, "wz": np.zeros(4, np.int8),
             "os": np.array(out_scale, np.float32), "oz": np.array(128, np.uint8)}
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0, name=f"{prefix}/DQw"),
             helper.make_node("Conv", [x, "wd"], ["cy"], kernel_shape=[3], pads=[1, 1], name=f"{prefix}/Conv"),
             helper.make_node("QuantizeLinear", ["cy", "os", "oz"], ["cq"], name=f"{prefix}/Qy"),
             helper.make_node("DequantizeLinear", ["cq", "os", "oz"], [out], name=f"{prefix}/DQy")]
    return nodes, inits


def apply_pass(tmp_path: Path, name: str, model: onnx.ModelProto, **cfg):
    """Run registered pass ``name`` (config ``cfg``) as the runner would, from a saved input: returns
    (input path, output path, PassResult)."""
    from kopt.core.passes import PassContext, get_pass, make_config

    src = tmp_path / "in.onnx"
    onnx.save(model, str(src))
    (tmp_path / "w").mkdir(exist_ok=True)
    cls = get_pass(name)
    res = cls(make_config(cls, cfg)).apply(onnx.load(str(src)), PassContext(workdir=tmp_path / "w", input_path=src))
    out = tmp_path / "out.onnx"
    onnx.save(res.model, str(out))
    return src, out, res


def ort_optimized(model_path: str | Path, saved: str | Path, extended_only: bool = False):
    """A CPU session of ``model_path`` at onnxruntime's default level (``extended_only``: EXTENDED),
    and the op types of the optimized graph it writes to ``saved`` (what its kernels run)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if extended_only:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(saved)
    sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    return sess, [n.op_type for n in onnx.load(str(saved), load_external_data=False).graph.node]


def run_outputs(model_path: str | Path, feeds: dict, disable_opt: bool = True) -> dict[str, np.ndarray]:
    """All outputs of a model by name (CPU, ORT optimizations off unless asked)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if disable_opt:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def busy_kokoro_model(size: int = 1024, seed: int = 0) -> onnx.ModelProto:
    """``tiny_kokoro`` plus a [size, size] x [size, size] MatMul fed from the style input (so
    onnxruntime cannot fold it away) whose result is added times zero: the same audio, but each
    call takes tens of milliseconds, so a server test can hold an instance busy or leave mid-stream."""
    m = tiny_kokoro_model(seed=seed)
    g = m.graph
    g.initializer.extend([numpy_helper.from_array(np.array([size, size], np.int64), "busy.shape"),
                          numpy_helper.from_array(np.array(0.0, np.float32), "busy.zero")])
    g.node.extend([
        helper.make_node("ReduceMean", ["style"], ["busy.s"], keepdims=0, name="busy/ReduceMean"),
        helper.make_node("Expand", ["busy.s", "busy.shape"], ["busy.x"], name="busy/Expand"),
        helper.make_node("MatMul", ["busy.x", "busy.x"], ["busy.y"], name="busy/MatMul"),
        helper.make_node("MatMul", ["busy.y", "busy.y"], ["busy.y2"], name="busy/MatMul_1"),
        helper.make_node("ReduceSum", ["busy.y2"], ["busy.r"], keepdims=0, name="busy/ReduceSum"),
        helper.make_node("Mul", ["busy.r", "busy.zero"], ["busy.z"], name="busy/Mul"),
    ])
    out = g.output[0].name
    for n in g.node:
        if out in n.output:
            n.output[list(n.output).index(out)] = "busy.audio"
    g.node.append(helper.make_node("Add", ["busy.audio", "busy.z"], [out], name="busy/Add"))
    onnx.checker.check_model(m)
    return m
