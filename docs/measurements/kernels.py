"""Single-op timings behind the kernel figures in docs/benchmark-log.md: onnxruntime CPU EP, 2 intra-op
threads, the best of 20 runs of one-node graphs on Kokoro's generator shapes.

    .venv/bin/python docs/measurements/kernels.py

Prints: Sin / Cos / Pow(x, 2) / Mul / Add / InstanceNormalization, and LayerNormalization with a
per-channel [1, C, 1] scale and bias (what InstanceNormalization computes), over [1, 128, 41760] at
2 threads and at 1 (Sin, Cos and InstanceNormalization run on one thread either way); a quantized
Snake's tail (Sin, Mul, Add, per-channel QuantizeLinear) against the snake-lut pass's table read
(Clip, Cast to int32, GatherElements from a [1, 128, 2048] uint8 table), whole and op by op;
QuantizeLinear and DequantizeLinear per tensor, per channel along axis 1 and per channel along the
last axis ([1, 128, 51200] vs [1, 51200, 128]); and each generator upsampler as ConvTranspose vs
the polyphase pass's Conv. Not a test: figures move with the machine and its load.
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from kopt.optimize.polyphase import rewrite_polyphase

RNG = np.random.default_rng(0)


def best_ms(model: onnx.ModelProto, feeds: dict, runs: int = 20, threads: int = 2) -> float:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    s.run(None, feeds)
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, feeds)
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def one_node(node, x_type, x_shape, inits=()) -> onnx.ModelProto:
    g = h.make_graph([node], "k", [h.make_tensor_value_info("x", x_type, x_shape)],
                     [h.make_tensor_value_info("y", T.FLOAT if node.op_type != "QuantizeLinear" else T.UINT8, None)],
                     list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", 19)])


def elementwise() -> None:
    shape = [1, 128, 41760]
    x = {"x": RNG.normal(0, 1, shape).astype(np.float32)}
    cases = {
        "Sin": (h.make_node("Sin", ["x"], ["y"]), []),
        "Cos": (h.make_node("Cos", ["x"], ["y"]), []),
        "Pow(x, 2)": (h.make_node("Pow", ["x", "two"], ["y"]), [nh.from_array(np.array(2.0, np.float32), "two")]),
        "Mul(x, x)": (h.make_node("Mul", ["x", "x"], ["y"]), []),
        "Mul(x, [1,C,1])": (h.make_node("Mul", ["x", "a"], ["y"]),
                            [nh.from_array(RNG.random((1, 128, 1)).astype(np.float32), "a")]),
        "Add(x, x)": (h.make_node("Add", ["x", "x"], ["y"]), []),
        "InstanceNorm": (h.make_node("InstanceNormalization", ["x", "g", "b"], ["y"]),
                         [nh.from_array(RNG.random(128).astype(np.float32), "g"),
                          nh.from_array(RNG.random(128).astype(np.float32), "b")]),
        # the same values: onnxruntime broadcasts a [1, C, 1] scale and bias over the last axis
        "LayerNorm [1,C,1]": (h.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1),
                              [nh.from_array(RNG.random((1, 128, 1)).astype(np.float32), "g"),
                               nh.from_array(RNG.random((1, 128, 1)).astype(np.float32), "b")]),
    }
    for name, (node, inits) in cases.items():
        m = one_node(node, T.FLOAT, shape, inits)
        print(f"{name:18s} {shape}: {best_ms(m, x):6.2f} ms (1 thread: {best_ms(m, x, threads=1):6.2f} ms)")


def snake_table() -> None:
    shape, bins = [1, 128, 41760], 2048
    z = {"x": RNG.normal(0, 2, shape).astype(np.float32)}
    u = {"x": RNG.uniform(-50, bins + 50, shape).astype(np.float32)}
    scale = nh.from_array((RNG.random(128) * 0.05 + 0.01).astype(np.float32), "qs")
    zero = nh.from_array(np.full(128, 128, np.uint8), "qz")
    table = nh.from_array(RNG.integers(0, 256, (1, 128, bins)).astype(np.uint8), "table")
    first, last = nh.from_array(np.array(0, np.float32), "first"), nh.from_array(np.array(bins - 1, np.float32), "last")

    def graph(nodes, inits, out_type, x_type=T.FLOAT) -> onnx.ModelProto:
        g = h.make_graph(nodes, "k", [h.make_tensor_value_info("x", x_type, shape)],
                         [h.make_tensor_value_info("y", out_type, None)], inits)
        return h.make_model(g, opset_imports=[h.make_opsetid("", 19)])

    sin_tail = graph([h.make_node("Sin", ["x"], ["s"]), h.make_node("Mul", ["s", "s"], ["p"]),
                      h.make_node("Add", ["x", "p"], ["a"]),
                      h.make_node("QuantizeLinear", ["a", "qs", "qz"], ["y"], axis=1)], [scale, zero], T.UINT8)
    lut = graph([h.make_node("Clip", ["x", "first", "last"], ["c"]), h.make_node("Cast", ["c"], ["i"], to=T.INT32),
                 h.make_node("GatherElements", ["table", "i"], ["y"], axis=2)], [table, first, last], T.UINT8)
    print(f"Snake tail: Sin, Mul, Add, QuantizeLinear  {shape}: {best_ms(sin_tail, z):6.2f} ms "
          f"(1 thread: {best_ms(sin_tail, z, threads=1):6.2f} ms)")
    print(f"snake-lut: Clip, Cast, GatherElements    {shape}: {best_ms(lut, u):6.2f} ms "
          f"(1 thread: {best_ms(lut, u, threads=1):6.2f} ms)")
    index = {"x": np.clip(u["x"], 0, bins - 1).astype(np.int32)}
    for name, m, feeds in (
            ("  Clip", graph([h.make_node("Clip", ["x", "first", "last"], ["y"])], [first, last], T.FLOAT), u),
            ("  Cast to int32", graph([h.make_node("Cast", ["x"], ["y"], to=T.INT32)], [], T.INT32), u),
            ("  GatherElements", graph([h.make_node("GatherElements", ["table", "x"], ["y"], axis=2)], [table],
                                       T.UINT8, T.INT32), index)):
        print(f"{name:40s} {best_ms(m, feeds):6.2f} ms (1 thread: {best_ms(m, feeds, threads=1):6.2f} ms)")


def qdq() -> None:
    for op in ("QuantizeLinear", "DequantizeLinear"):
        for shape, axis, per_channel in (([1, 128, 51200], 1, False), ([1, 128, 51200], 1, True),
                                         ([1, 51200, 128], 2, True)):
            c = shape[axis]
            if per_channel:
                inits = [nh.from_array((RNG.random(c) * 0.1 + 0.01).astype(np.float32), "s"),
                         nh.from_array(np.full(c, 128, np.uint8), "z")]
            else:
                inits = [nh.from_array(np.array(0.05, np.float32), "s"), nh.from_array(np.array(128, np.uint8), "z")]
            node = h.make_node(op, ["x", "s", "z"], ["y"], **({"axis": axis} if per_channel else {}))
            quant = op == "QuantizeLinear"
            x = RNG.normal(0, 1, shape).astype(np.float32) if quant else RNG.integers(0, 255, shape).astype(np.uint8)
            ms = best_ms(one_node(node, T.FLOAT if quant else T.UINT8, shape, inits), {"x": x})
            kind = f"per channel, axis {axis}" if per_channel else "per tensor"
            print(f"{op:16s} {shape} {kind:20s}: {ms:7.2f} ms")


def upsamplers() -> None:
    for name, (ci, co, s, k, p, L) in {"ups.1": (256, 128, 6, 12, 3, 8533), "ups.0": (512, 256, 10, 20, 5, 853)}.items():
        w = nh.from_array(RNG.normal(0, 0.05, (ci, co, k)).astype(np.float32), "W")
        b = nh.from_array(RNG.normal(0, 0.1, co).astype(np.float32), "B")
        node = h.make_node("ConvTranspose", ["x", "W", "B"], ["y"], strides=[s], kernel_shape=[k], pads=[p, p],
                           name=f"/decoder/decoder/generator/{name}/ConvTranspose")
        g = h.make_graph([node], "k", [h.make_tensor_value_info("x", T.FLOAT, [1, ci, L])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, co, "T"])], [w, b])
        m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
        poly, _ = rewrite_polyphase(m)
        x = {"x": RNG.normal(0, 1, (1, ci, L)).astype(np.float32)}
        print(f"{name} [1, {ci}, {L}] -> [1, {co}, ~{L * s}]: ConvTranspose {best_ms(m, x, 10):6.1f} ms, "
              f"polyphase Conv {best_ms(poly, x, 10):6.1f} ms")


if __name__ == "__main__":
    elementwise()
    snake_table()
    qdq()
    upsamplers()
