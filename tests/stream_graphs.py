"""Tiny graphs with Kokoro's decoder shape, for the frame-stream cut and the runtime's windows.

Kokoro's node names are what the cut reads: the front's nodes are ``/encoder/...``, the back's
``/decoder/...``; the decoder reads ``asr`` [1, C, T] and ``f0``, ``n`` [1, 2T] (through its
``/decoder/Unsqueeze`` and ``/decoder/Unsqueeze_1``) from the encoder, here one frame per token.
``stream_kokoro_model`` has the two things windows break, one frame-rate instance norm and one in
the generator, and the harmonic source's CumSum over F0 rows; everything else is frame-local
(kernel-1 conv, a ConvTranspose with stride = kernel), so with the sentence's statistics and the
carried phase a window's audio is exactly the whole's over its frames.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VOCAB = 20
C = 4          # asr channels
H = 3          # harmonics
SPF = 4        # samples per frame (2 per F0 row)
STYLE = 256


def _model(nodes: list, inits: dict[str, np.ndarray], name: str, opset: int = 17) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "sequence_length"]),
         helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, STYLE]),
         helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["audio_length"])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="kopt-tests")
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def _front(rng: np.random.Generator) -> tuple[list, dict[str, np.ndarray]]:
    """Five nodes: tokens -> asr [1, C, T], f0 [1, 2T] (positive), n [1, 2T]."""
    emb = rng.standard_normal((VOCAB, C + 4)).astype(np.float32)
    emb[:, C:C + 2] = rng.uniform(0.02, 0.2, (VOCAB, 2))  # F0 as a phase step per row, in turns
    inits = {"enc.emb": emb, "enc.split": np.array([C, 2, 2], np.int64), "enc.flat2": np.array([1, -1], np.int64)}
    nodes = [
        helper.make_node("Gather", ["enc.emb", "tokens"], ["/encoder/Gather_output_0"], name="/encoder/Gather"),
        helper.make_node("Split", ["/encoder/Gather_output_0", "enc.split"],
                         ["/encoder/Split_output_0", "/encoder/Split_output_1", "/encoder/Split_output_2"],
                         axis=2, name="/encoder/Split"),
        helper.make_node("Transpose", ["/encoder/Split_output_0"], ["/encoder/Transpose_output_0"], perm=[0, 2, 1],
                         name="/encoder/Transpose"),
        helper.make_node("Reshape", ["/encoder/Split_output_1", "enc.flat2"], ["/encoder/Reshape_output_0"],
                         name="/encoder/Reshape"),
        helper.make_node("Reshape", ["/encoder/Split_output_2", "enc.flat2"], ["/encoder/Reshape_1_output_0"],
                         name="/encoder/Reshape_1"),
    ]
    return nodes, inits


def split_kokoro_model(seed: int = 0) -> onnx.ModelProto:
    """The five-node front and a ten-node frame-local back (no norms, no CumSum): audio [2T] =
    conv(asr) + f0 - n + style projection."""
    rng = np.random.default_rng(seed)
    nodes, inits = _front(rng)
    inits.update({"dec.conv": (rng.standard_normal((2, C, 1)) * 0.5).astype(np.float32),
                  "dec.style": (rng.standard_normal((STYLE, 1)) * 0.1).astype(np.float32),
                  "dec.ax1": np.array([1], np.int64), "dec.flat": np.array([-1], np.int64)})
    nodes += [
        helper.make_node("Unsqueeze", ["/encoder/Reshape_output_0", "dec.ax1"], ["f0u"], name="/decoder/Unsqueeze"),
        helper.make_node("Unsqueeze", ["/encoder/Reshape_1_output_0", "dec.ax1"], ["nu"], name="/decoder/Unsqueeze_1"),
        helper.make_node("Sub", ["f0u", "nu"], ["fn"], name="/decoder/Sub"),                        # [1, 1, 2T]
        helper.make_node("Conv", ["/encoder/Transpose_output_0", "dec.conv"], ["ac"], kernel_shape=[1],
                         name="/decoder/asr_res/Conv"),                                               # [1, 2, T]
        helper.make_node("MatMul", ["style", "dec.style"], ["st"], name="/decoder/style/MatMul"),    # [1, 1]
        helper.make_node("Add", ["fn", "st"], ["fs"], name="/decoder/Add"),
        helper.make_node("Reshape", ["fs", "dec.flat"], ["audio_f"], name="/decoder/Reshape"),
        helper.make_node("Transpose", ["ac"], ["act"], perm=[0, 2, 1], name="/decoder/Transpose"),   # [1, T, 2]
        helper.make_node("Reshape", ["act", "dec.flat"], ["audio_a"], name="/decoder/Reshape_1"),
        helper.make_node("Add", ["audio_f", "audio_a"], ["audio"], name="/decoder/Add_1"),
    ]
    return _model(nodes, inits, "split_kokoro")


def _norm(nodes: list, inits: dict, x: str, base: str) -> str:
    """Kokoro's decomposed instance norm of x over its last axis (opset 17: axes as attributes)."""
    inits[f"{base}.eps"] = np.array(1e-5, np.float32)
    nodes += [
        helper.make_node("ReduceMean", [x], [f"{base}/mean"], axes=[2], keepdims=1, name=f"{base}/ReduceMean"),
        helper.make_node("Sub", [x, f"{base}/mean"], [f"{base}/d"], name=f"{base}/Sub"),
        helper.make_node("Mul", [f"{base}/d", f"{base}/d"], [f"{base}/d2"], name=f"{base}/Mul"),
        helper.make_node("ReduceMean", [f"{base}/d2"], [f"{base}/var"], axes=[2], keepdims=1,
                         name=f"{base}/ReduceMean_1"),
        helper.make_node("Add", [f"{base}/var", f"{base}.eps"], [f"{base}/ve"], name=f"{base}/Add"),
        helper.make_node("Sqrt", [f"{base}/ve"], [f"{base}/sd"], name=f"{base}/Sqrt"),
        helper.make_node("Div", [f"{base}/d", f"{base}/sd"], [f"{base}/out"], name=f"{base}/Div"),
    ]
    return f"{base}/out"


def stream_kokoro_model(seed: int = 0) -> onnx.ModelProto:
    """The five-node front and a back with a frame-rate norm (``/decoder/encode``), a generator norm
    (``/decoder/generator/noise_res``) and the harmonic source's CumSum over F0 rows: audio [4T]."""
    rng = np.random.default_rng(seed)
    nodes, inits = _front(rng)
    inits.update({
        "dec.ax1": np.array([1], np.int64), "dec.ax2": np.array([2], np.int64), "dec.flat": np.array([-1], np.int64),
        "dec.enc_w": (rng.standard_normal((C, C, 1)) * 0.5).astype(np.float32),
        "dec.style_w": (rng.standard_normal((STYLE, C)) * 0.1).astype(np.float32),
        "dec.up_w": (rng.standard_normal((C, 1, SPF)) * 0.3).astype(np.float32),
        "dec.harm": np.arange(1, H + 1, dtype=np.float32).reshape(1, 1, H),
        "dec.two_pi": np.array(2 * np.pi, np.float32),
        "dec.harm_out": (rng.standard_normal((H, SPF // 2)) * 0.3).astype(np.float32),
        "dec.cs_axis": np.array(1, np.int64), "dec.samples": np.array([1, 1, -1], np.int64),
    })
    nodes += [
        helper.make_node("Unsqueeze", ["/encoder/Reshape_output_0", "dec.ax1"], ["f0u"], name="/decoder/Unsqueeze"),
        helper.make_node("Unsqueeze", ["/encoder/Reshape_1_output_0", "dec.ax1"], ["nu"], name="/decoder/Unsqueeze_1"),
        helper.make_node("Conv", ["/encoder/Transpose_output_0", "dec.enc_w"], ["enc_x"], kernel_shape=[1],
                         name="/decoder/encode/Conv"),
    ]
    normed = _norm(nodes, inits, "enc_x", "/decoder/encode/norm")
    nodes += [
        helper.make_node("MatMul", ["style", "dec.style_w"], ["sg"], name="/decoder/encode/fc/MatMul"),
        helper.make_node("Unsqueeze", ["sg", "dec.ax2"], ["sg3"], name="/decoder/encode/fc/Unsqueeze"),
        helper.make_node("Mul", [normed, "sg3"], ["y"], name="/decoder/encode/Mul"),
        helper.make_node("ConvTranspose", ["y", "dec.up_w"], ["up"], strides=[SPF], kernel_shape=[SPF],
                         name="/decoder/generator/ups/ConvTranspose"),                                 # [1, 1, 4T]
        helper.make_node("Transpose", ["f0u"], ["f0t"], perm=[0, 2, 1], name="/decoder/generator/m_source/Transpose"),
        helper.make_node("Mul", ["f0t", "dec.harm"], ["rad"], name="/decoder/generator/m_source/Mul"),
        helper.make_node("CumSum", ["rad", "dec.cs_axis"], ["phase"], name="/decoder/generator/m_source/CumSum"),
        helper.make_node("Mul", ["phase", "dec.two_pi"], ["ang"], name="/decoder/generator/m_source/Mul_1"),
        helper.make_node("Sin", ["ang"], ["sines"], name="/decoder/generator/m_source/Sin"),          # [1, 2T, H]
        helper.make_node("Transpose", ["nu"], ["nt"], perm=[0, 2, 1], name="/decoder/generator/m_source/Transpose_1"),
        helper.make_node("Mul", ["sines", "nt"], ["amp"], name="/decoder/generator/m_source/Mul_2"),
        helper.make_node("MatMul", ["amp", "dec.harm_out"], ["har"], name="/decoder/generator/m_source/MatMul"),
        helper.make_node("Reshape", ["har", "dec.samples"], ["har_s"], name="/decoder/generator/m_source/Reshape"),
        helper.make_node("Add", ["up", "har_s"], ["z"], name="/decoder/generator/Add"),
    ]
    zn = _norm(nodes, inits, "z", "/decoder/generator/noise_res/norm")
    nodes += [
        helper.make_node("Tanh", [zn], ["zt"], name="/decoder/generator/Tanh"),
        helper.make_node("Reshape", ["zt", "dec.flat"], ["audio"], name="/decoder/generator/Reshape"),
    ]
    return _model(nodes, inits, "stream_kokoro")


def tokens(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, (1, n)).astype(np.int64)


def feeds(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    style = (np.random.default_rng(seed + 100).standard_normal((1, STYLE)) * 0.5).astype(np.float32)
    return {"tokens": tokens(n, seed), "style": style, "speed": np.array([1.0], np.float32)}


def parts_kokoro_model(seed: int = 0) -> onnx.ModelProto:
    """The five-node front and a back named as Kokoro's is, for ``precision_parts``: a decoder block
    (``/decoder/decoder/encode``, ``decode.0``) and the style half it slices, a harmonic source
    (``m_source`` CumSum and Sin, their Atan, concatenated: the input of ``noise_convs.0``), a body
    (LeakyRelu of the decoder's output, the noise conv, an AdaIN-like scale from the style half)
    and a tail (``conv_post`` and a Tanh): audio [2T]."""
    rng = np.random.default_rng(seed)
    nodes, inits = _front(rng)
    gen = "/decoder/decoder/generator/"
    inits.update({
        "dec.ax1": np.array([1], np.int64), "dec.two_pi": np.array(2 * np.pi, np.float32),
        "dec.cs_axis": np.array(2, np.int64), "dec.flat": np.array([-1], np.int64),
        "dec.s0": np.array([0], np.int64), "dec.s1": np.array([128], np.int64),
        "dec.enc": (rng.standard_normal((C, C, 1)) * 0.5).astype(np.float32),
        "dec.dec": (rng.standard_normal((C, C, 1)) * 0.5).astype(np.float32),
        "dec.noise": (rng.standard_normal((C, 2, 2)) * 0.5).astype(np.float32),
        "dec.fc": (rng.standard_normal((128, C)) * 0.1).astype(np.float32),
        "dec.post": (rng.standard_normal((2, C, 1)) * 0.5).astype(np.float32),
        "dec.ax2": np.array([2], np.int64),
    })
    nodes += [
        helper.make_node("Unsqueeze", ["/encoder/Reshape_output_0", "dec.ax1"], ["f0u"], name="/decoder/decoder/Unsqueeze"),
        helper.make_node("Unsqueeze", ["/encoder/Reshape_1_output_0", "dec.ax1"], ["nu"],
                         name="/decoder/decoder/Unsqueeze_1"),
        helper.make_node("Conv", ["/encoder/Transpose_output_0", "dec.enc"], ["e"], kernel_shape=[1],
                         name="/decoder/decoder/encode/conv1/Conv"),                                  # [1, C, T]
        helper.make_node("ReduceMean", ["nu"], ["nm"], axes=[2], keepdims=1, name="/decoder/decoder/N_conv/ReduceMean"),
        helper.make_node("Conv", ["e", "dec.dec"], ["d"], kernel_shape=[1], name="/decoder/decoder/decode.0/conv1/Conv"),
        helper.make_node("Add", ["d", "nm"], ["x"], name="/decoder/decoder/decode.0/Add"),           # [1, C, T]
        helper.make_node("Slice", ["style", "dec.s0", "dec.s1", "dec.ax1"], ["s"], name="/decoder/Slice"),  # [1, 128]
        # the harmonic source
        helper.make_node("Identity", ["f0u"], ["fup"], name=gen + "f0_upsamp/Identity"),
        helper.make_node("CumSum", ["fup", "dec.cs_axis"], ["ph"], name=gen + "m_source/l_sin_gen/CumSum"),
        helper.make_node("Mul", ["ph", "dec.two_pi"], ["ang"], name=gen + "m_source/l_sin_gen/Mul"),
        helper.make_node("Sin", ["ang"], ["sines"], name=gen + "m_source/l_sin_gen/Sin"),              # [1, 1, 2T]
        helper.make_node("Atan", ["sines"], ["at"], name=gen + "Atan"),
        helper.make_node("Concat", ["sines", "at"], ["har"], axis=1, name=gen + "Concat_3"),          # [1, 2, 2T]
        # the body
        helper.make_node("Conv", ["har", "dec.noise"], ["nz"], kernel_shape=[2], strides=[2],
                         name=gen + "noise_convs.0/Conv"),                                             # [1, C, T]
        helper.make_node("MatMul", ["s", "dec.fc"], ["gam"], name=gen + "resblocks.0/adain1.0/fc/Gemm_MatMul"),
        helper.make_node("Unsqueeze", ["gam", "dec.ax2"], ["gam3"], name=gen + "resblocks.0/adain1.0/Unsqueeze"),
        helper.make_node("LeakyRelu", ["x"], ["lx"], alpha=0.1, name=gen + "LeakyRelu"),
        helper.make_node("Add", ["lx", "nz"], ["z"], name=gen + "Add"),
        helper.make_node("Mul", ["z", "gam3"], ["zr"], name=gen + "resblocks.0/Mul"),
        helper.make_node("LeakyRelu", ["zr"], ["lr"], alpha=0.01, name=gen + "LeakyRelu_2"),
        # the tail
        helper.make_node("Conv", ["lr", "dec.post"], ["post"], kernel_shape=[1], name=gen + "conv_post/Conv"),
        helper.make_node("Tanh", ["post"], ["pt"], name=gen + "Tanh"),
        helper.make_node("Transpose", ["pt"], ["ptt"], perm=[0, 2, 1], name=gen + "Transpose"),
        helper.make_node("Reshape", ["ptt", "dec.flat"], ["audio"], name=gen + "Reshape"),
    ]
    return _model(nodes, inits, "parts_kokoro")
