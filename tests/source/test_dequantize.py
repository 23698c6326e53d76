"""`reference` on a quantize_dynamic'd tiny graph is exact on the weights."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from kopt.core.precision import precision_of
from kopt.source.dequantize import dequantize
from tests.graphs import run, tiny_kokoro


def _quantize(src, dst, **kw):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=kw.pop("weight_type", QuantType.QInt8), **kw)
    return onnx.load(str(dst))


def _inits(m):
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("wtype", ["QInt8", "QUInt8"])
def test_dequantized_weights_equal_scale_times_q_minus_zp(tmp_path, per_channel, wtype):
    from onnxruntime.quantization import QuantType

    src = tiny_kokoro(tmp_path / "f.onnx")
    q = _quantize(src, tmp_path / "q.onnx", per_channel=per_channel, weight_type=getattr(QuantType, wtype))
    ops = {n.op_type for n in q.graph.node}
    assert {"MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM"} <= ops
    assert precision_of(q) == "int8"

    fm, rep = dequantize(q, "q.onnx")
    onnx.checker.check_model(fm)
    assert rep.remaining_quant_ops == {}
    assert rep.rewritten["MatMulInteger"] == 1 and rep.rewritten["ConvInteger"] == 1
    assert rep.rewritten["DynamicQuantizeLSTM"] == 1
    assert {n.op_type for n in fm.graph.node} >= {"MatMul", "Conv", "LSTM", "ConvTranspose", "LayerNormalization"}
    assert not {n.op_type for n in fm.graph.node} & {"DynamicQuantizeLinear", "Cast", "MatMulInteger"}
    assert precision_of(fm) == "fp32"

    qi, fi = _inits(q), _inits(fm)

    def expect(base, axis=None):
        qv = qi[f"{base}_quantized"].astype(np.float64)
        s = qi[f"{base}_scale"].astype(np.float64)
        z = qi[f"{base}_zero_point"].astype(np.float64)
        if axis is not None and s.ndim == 1 and s.size > 1:
            shape = [1] * qv.ndim
            shape[axis] = s.size
            s, z = s.reshape(shape), z.reshape(shape)
        return ((qv - z) * s).astype(np.float32)

    # MatMul: per-column scale/zero point on the last axis
    mm = next(n for n in fm.graph.node if n.op_type == "MatMul")
    np.testing.assert_array_equal(fi[mm.input[1]], expect("style_proj.weight", axis=1))
    # Conv: per output channel on axis 0
    conv = next(n for n in fm.graph.node if n.op_type == "Conv")
    np.testing.assert_array_equal(fi[conv.input[1]], expect("conv.weight", axis=0))
    np.testing.assert_array_equal(fi[conv.input[2]], numpy_helper.to_array(
        next(t for t in onnx.load(str(src)).graph.initializer if t.name == "conv.bias")))
    # LSTM: quantized layout [dirs, in, 4H] -> ONNX layout [dirs, 4H, in]
    lstm = next(n for n in fm.graph.node if n.op_type == "LSTM")
    wq = next(n for n in q.graph.node if n.op_type == "DynamicQuantizeLSTM")
    for qname, sname, zname, fname in ((wq.input[1], wq.input[8], wq.input[9], lstm.input[1]),
                                       (wq.input[2], wq.input[10], wq.input[11], lstm.input[2])):
        s = qi[sname].astype(np.float64)
        z = qi[zname].astype(np.float64)
        s, z = (s[:, None, None], z[:, None, None]) if s.ndim == 1 else (s[:, None, :], z[:, None, :])
        want = ((qi[qname].astype(np.float64) - z) * s).astype(np.float32).transpose(0, 2, 1)
        np.testing.assert_array_equal(fi[fname], want)


def test_reference_computes_like_float_model_with_dequantized_weights(tmp_path):
    """Same maths: the rebuilt graph equals the original float graph carrying the dequantized weights."""
    src = tiny_kokoro(tmp_path / "f.onnx")
    q = _quantize(src, tmp_path / "q.onnx", per_channel=True)
    fm, _ = dequantize(q)
    onnx.save(fm, str(tmp_path / "r.onnx"))
    fi = _inits(fm)
    orig = onnx.load(str(src))
    by_op = {n.op_type: n for n in fm.graph.node}
    swap = {"style_proj.weight": fi[by_op["MatMul"].input[1]], "conv.weight": fi[by_op["Conv"].input[1]],
            "lstm.W": fi[by_op["LSTM"].input[1]], "lstm.R": fi[by_op["LSTM"].input[2]],
            "emb.weight": fi[by_op["Gather"].input[0]]}
    for t in orig.graph.initializer:
        if t.name in swap:
            t.CopyFrom(numpy_helper.from_array(swap[t.name], t.name))
    onnx.save(orig, str(tmp_path / "o.onnx"))
    rng = np.random.default_rng(1)
    for n in (5, 17, 40):
        tokens = np.concatenate([[0], rng.integers(1, 170, n), [0]])
        style = rng.standard_normal(256).astype(np.float32) * 0.1
        a = run(tmp_path / "r.onnx", tokens, style)
        b = run(tmp_path / "o.onnx", tokens, style)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # fp32 rounding only


def test_float_model_passes_through_untouched():
    from tests.graphs import tiny_kokoro_model

    m = tiny_kokoro_model()
    fm, rep = dequantize(m)
    assert sum(rep.rewritten.values()) == 0
    assert [n.op_type for n in fm.graph.node] == [n.op_type for n in m.graph.node]


def _qdq_model():
    """x -> Q -> DQ -> Q -> DQ -> MatMul(., DQ(int8 W)) -> y; x -> Q -> DQ -> xq, a graph output."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)
    wq = rng.integers(-127, 128, (4, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(wq, "w_q"), numpy_helper.from_array(np.array(0.02, np.float32), "w_s"),
             numpy_helper.from_array(np.array(3, np.int8), "w_zp"),
             numpy_helper.from_array(np.array(0.05, np.float32), "a_s"),
             numpy_helper.from_array(np.array(128, np.uint8), "a_zp")]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["W"], name="w/DQ"),
             helper.make_node("QuantizeLinear", ["x", "a_s", "a_zp"], ["q1"], name="a/Q1"),
             helper.make_node("DequantizeLinear", ["q1", "a_s", "a_zp"], ["d1"], name="a/DQ1"),
             helper.make_node("QuantizeLinear", ["d1", "a_s", "a_zp"], ["q2"], name="a/Q2"),
             helper.make_node("DequantizeLinear", ["q2", "a_s", "a_zp"], ["d2"], name="a/DQ2"),
             helper.make_node("MatMul", ["d2", "W"], ["y"], name="mm"),
             helper.make_node("QuantizeLinear", ["x", "a_s", "a_zp"], ["q3"], name="o/Q"),
             helper.make_node("DequantizeLinear", ["q3", "a_s", "a_zp"], ["xq"], name="o/DQ")]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
                           helper.make_tensor_value_info("xq", TensorProto.FLOAT, [2, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m, wq


def test_qdq_graph_gets_float_weights_and_loses_its_activation_pairs(tmp_path):
    from tests.graphs import run_outputs

    m, wq = _qdq_model()
    fm, rep = dequantize(m)
    onnx.checker.check_model(fm)
    assert rep.rewritten == {"DequantizeLinear": 4} and rep.remaining_quant_ops == {}
    # the weight's DQ became the float initializer W; the chained pairs went, the one writing a graph
    # output stays an Identity of x
    assert sorted(n.op_type for n in fm.graph.node) == ["Identity", "MatMul"]
    assert rep.removed_nodes == 5  # the 3 Q and 2 bypassed DQ (W's DQ, now an initializer, is not counted)
    mm = next(n for n in fm.graph.node if n.op_type == "MatMul")
    assert list(mm.input) == ["x", "W"]
    want = ((wq.astype(np.float64) - 3) * np.float64(np.float32(0.02))).astype(np.float32)
    np.testing.assert_array_equal(_inits(fm)["W"], want)
    onnx.save(fm, str(tmp_path / "f.onnx"))
    x = np.random.default_rng(4).standard_normal((2, 4)).astype(np.float32)
    out = run_outputs(tmp_path / "f.onnx", {"x": x})
    np.testing.assert_array_equal(out["xq"], x)
    np.testing.assert_allclose(out["y"], x @ want, rtol=1e-6, atol=1e-6)


def test_unrewritable_integer_op_fails_naming_it():
    # a MatMulInteger whose input no DynamicQuantizeLinear quantizes: no scale to dequantize with
    from onnx import TensorProto, helper

    from kopt.core.errors import ModelError

    g = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "mmi",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [2, 3])],
        [numpy_helper.from_array(np.ones((4, 3), np.uint8), "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match="MatMulInteger x1"):
        dequantize(m, "m.onnx")
