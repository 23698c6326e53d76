"""Channel-balanced QDQ on a tiny Kokoro-signature graph whose conv input and output channels span
100x in range (as AdaIN/Snake activations and residual branches do in Kokoro's generator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kopt.core.env import int8_dot
from kopt.core.passes import PassContext, get_pass, make_config
from kopt.quantize.balance import shared_zero_point
from kopt.quantize.checkset import check_set
from tests.graphs import ort_optimized, run

C, V = 16, 180
NAME = "/decoder/decoder/generator/resblocks.3/convs{}.0/Conv"


def _graph(two_convs: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    ch_in = np.geomspace(0.05, 5.0, C).astype(np.float32)[rng.permutation(C)]  # input channel ranges
    ch_out = np.geomspace(0.02, 2.0, C).astype(np.float32)[rng.permutation(C)]  # output row scales
    w = rng.standard_normal((C, C, 3)).astype(np.float32) / np.sqrt(3 * C) / ch_in[None, :, None]
    w = (w * ch_out[:, None, None]).astype(np.float32)
    inits = [numpy_helper.from_array(rng.standard_normal((V, C)).astype(np.float32), "emb"),
             numpy_helper.from_array(ch_in.reshape(1, C, 1), "gain_in"),
             numpy_helper.from_array(w, "w1"), numpy_helper.from_array((0.1 * ch_out).astype(np.float32), "b1"),
             numpy_helper.from_array((1.0 / ch_out).reshape(1, C, 1).astype(np.float32), "unscale"),
             numpy_helper.from_array(np.array([-1], np.int64), "flat"),
             numpy_helper.from_array(rng.standard_normal((256, 1)).astype(np.float32) * 0.01, "sty_w")]
    nodes = [helper.make_node("Gather", ["emb", "tokens"], ["e"], name="/encoder/text_encoder/embedding/Gather"),
             helper.make_node("Transpose", ["e"], ["et"], perm=[0, 2, 1], name="/decoder/decoder/generator/T"),
             helper.make_node("Mul", ["et", "gain_in"], ["x"], name="/decoder/decoder/generator/resblocks.3/Mul"),
             helper.make_node("Conv", ["x", "w1", "b1"], ["y"], pads=[1, 1], kernel_shape=[3], name=NAME.format(1))]
    last = "y"
    if two_convs:  # conv -> conv: the first one's output feeds a quantized op, so it must stay per-tensor
        inits.append(numpy_helper.from_array(np.eye(C, dtype=np.float32)[:, :, None], "w2"))
        nodes.append(helper.make_node("Conv", ["y", "w2"], ["y2"], kernel_shape=[1], name=NAME.format(2)))
        last = "y2"
    nodes += [helper.make_node("Mul", [last, "unscale"], ["z"], name="/decoder/decoder/generator/resblocks.3/Mul_1"),
              helper.make_node("Reshape", ["z", "flat"], ["zf"], name="/decoder/decoder/generator/Reshape"),
              helper.make_node("MatMul", ["style", "sty_w"], ["s"], name="/decoder/decoder/generator/sty/MatMul"),
              helper.make_node("ReduceSum", ["s"], ["s1"], keepdims=0, name="/decoder/decoder/generator/sty/Sum"),
              helper.make_node("Mul", ["s1", "speed"], ["s2"], name="/decoder/decoder/generator/sty/Mul"),
              helper.make_node("Add", ["zf", "s2"], ["audio"], name="/decoder/decoder/generator/out")]
    g = helper.make_graph(nodes, "tiny_balance",
                          [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "n"]),
                           helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 256]),
                           helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["m"])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def _quantize(src: Path, tmp_path: Path, balance: bool, tag: str, reduce_range: bool = False) -> tuple[Path, dict]:
    cls = get_pass("int8-static")
    cfg = make_config(cls, {"calib_sentences": 6, "exclude": [], "balance": balance, "check": False,
                            "reduce_range": reduce_range})
    wd = tmp_path / f"work-{tag}"
    res = cls(cfg).apply(onnx.load(str(src)), PassContext(workdir=wd, input_path=src))
    out = tmp_path / f"{tag}.onnx"
    onnx.save(res.model, str(out))
    return out, res.report


def _snr_db(src: Path, q: Path, fused: bool = True) -> float:
    """Output SNR of ``q`` against ``src``: with ``fused``, through onnxruntime's QLinearConv kernel;
    without, the QDQ arithmetic itself (DequantizeLinear then a float Conv)."""
    u = check_set(None, names=["medium"])[0]
    a, b = run(src, u.tokens, u.style, disable_opt=True), run(q, u.tokens, u.style, disable_opt=not fused)
    return float(10 * np.log10(np.sum(a ** 2) / np.sum((a - b) ** 2)))


def _fused_qlinearconv(path: Path, tmp_path: Path) -> int:
    return ort_optimized(path, tmp_path / (path.stem + ".opt.onnx"), extended_only=True)[1].count("QLinearConv")


def test_balanced_qdq_keeps_small_channels_and_still_fuses(tmp_path):
    src = tmp_path / "tiny.onnx"
    onnx.save(_graph(), str(src))
    plain, rep_plain = _quantize(src, tmp_path, False, "plain")
    bal, rep_bal = _quantize(src, tmp_path, True, "bal")
    assert "balance" not in rep_plain
    assert rep_bal["balance"]["inputs"] == 1 and rep_bal["balance"]["outputs"] == 1
    snr_plain, snr_bal = _snr_db(src, plain), _snr_db(src, bal)
    # every channel is weighted equally in the output, so per-tensor steps drown the small ones
    assert snr_bal > snr_plain + 10, (snr_plain, snr_bal)
    exact = _snr_db(src, bal, fused=False)
    seven, _ = _quantize(src, tmp_path, True, "bal7", reduce_range=True)
    snr_seven = _snr_db(src, seven)
    print(f"SNR plain {snr_plain:.1f} dB, balanced {snr_bal:.1f} dB (QDQ arithmetic {exact:.1f} dB), "
          f"balanced 7-bit weights {snr_seven:.1f} dB; int8 dot product: {int8_dot()}")
    assert exact > 25
    # 7-bit weights cannot saturate the int16 sums of AVX2 kernels: the fused conv keeps the QDQ's quality
    assert snr_seven > 25 and snr_seven > exact - 3
    if int8_dot() in ("vnni", "amx"):  # 32-bit sums: full 8-bit weights lose nothing in the kernel
        assert snr_bal > exact - 3
    # onnxruntime still runs the conv as one QLinearConv: the per-channel Q/DQ sit outside the group
    assert _fused_qlinearconv(plain, tmp_path) == _fused_qlinearconv(bal, tmp_path) == _fused_qlinearconv(seven, tmp_path) == 1
    m = onnx.load(str(bal))
    axes = {n.op_type: next((a.i for a in n.attribute if a.name == "axis"), None) for n in m.graph.node
            if n.op_type in ("QuantizeLinear",) and n.input[0] == "x"}
    assert axes == {"QuantizeLinear": 1}


def test_output_feeding_a_quantized_op_stays_per_tensor(tmp_path):
    src = tmp_path / "tiny2.onnx"
    onnx.save(_graph(two_convs=True), str(src))
    q, rep = _quantize(src, tmp_path, True, "two")
    plain, _ = _quantize(src, tmp_path, False, "two-plain")
    b = rep["balance"]
    # conv1's output Q is conv2's input Q: neither may take per-channel steps (QLinearConv needs a
    # scalar output zero point). conv1's input and conv2's output are balanced.
    assert b["convs"] == 2 and b["inputs"] == 1 and b["outputs"] == 1
    assert _fused_qlinearconv(q, tmp_path) == _fused_qlinearconv(plain, tmp_path) == 2
    assert _snr_db(src, q) > _snr_db(src, plain) + 1


@pytest.mark.parametrize("lo,hi", [([-1.0, -0.01], [1.0, 0.01]), ([0.0, -0.2], [4.0, 0.05])])
def test_shared_zero_point_covers_every_channel(lo, hi):
    z, steps = shared_zero_point(np.array(lo), np.array(hi))
    assert 0 < z < 255
    assert np.all(-z * steps <= np.minimum(lo, 0) + 1e-12)
    assert np.all((255 - z) * steps >= np.maximum(hi, 0) - 1e-12)
    assert steps.max() / steps.min() > 5  # each channel gets its own step
