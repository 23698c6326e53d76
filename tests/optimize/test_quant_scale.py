"""quant-scale: a constant positive Mul read only by a QuantizeLinear folded into the quantizer's scale.

Tiny QDQ graphs shaped like the hybrid model's conv inputs: x [1, C, T] -> Mul(x, c) ->
QuantizeLinear (per tensor, or per channel as the channel balancing leaves it) -> DequantizeLinear.
The quantizer's integers may differ only where x * c / s sits within a float32 ulp of a half step,
and then by one step: so the dequantized outputs agree within one step (STEP_ATOL of the widest
channel's step) on all but a few elements. A wrong fold (s * c instead of s / c, a channel mix-up)
moves most elements by many steps.
"""

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from kopt.core.graph import infer_shapes
from kopt.core.passes import get_pass
from kopt.optimize.quant_scale import rewrite_quant_scale
from tests.graphs import apply_pass, checked_model, int8_conv_group, ort_optimized, run_outputs

C, T = 6, 400
RNG_SEED = 0


def _model(factor=None, per_axis_q=False, extra_reader=False, factor_shape=(1, C, 1), conv=False) -> onnx.ModelProto:
    rng = np.random.default_rng(RNG_SEED)
    c = factor if factor is not None else rng.uniform(0.2, 5.0, factor_shape).astype(np.float32)
    inits = {"c": c}
    if per_axis_q:
        inits["s"] = rng.uniform(0.01, 0.05, C).astype(np.float32)
        inits["z"] = np.full(C, 128, np.uint8)
        q_attrs = {"axis": 1}
    else:
        inits["s"], inits["z"] = np.array(0.03, np.float32), np.array(128, np.uint8)
        q_attrs = {}
    inits["ds"], inits["dz"] = np.array(0.03, np.float32), np.array(128, np.uint8)
    nodes = [helper.make_node("Mul", ["x", "c"], ["m"], name="/gen/Mul"),
             helper.make_node("QuantizeLinear", ["m", "s", "z"], ["q"], name="/gen/Q", **q_attrs)]
    outputs = ["q"]
    if extra_reader:
        nodes.append(helper.make_node("Neg", ["m"], ["negm"], name="/gen/Neg"))
        outputs.append("negm")
    if conv:  # the int8 conv group onnxruntime fuses into QLinearConv
        group, more = int8_conv_group(rng, "xd", C, "out", "/gen", 0.05)
        nodes += [helper.make_node("DequantizeLinear", ["q", "ds", "dz"], ["xd"], name="/gen/DQ"), *group]
        inits.update(more)
        outputs = ["out"]
    return checked_model(nodes, "quant_scale_test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, T])],
                         outputs, inits, 19, {"q": TensorProto.UINT8})


def _feeds():
    return {"x": np.random.default_rng(1).normal(0, 2, (1, C, T)).astype(np.float32)}


def _ops(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _q(path):
    return next(n for n in onnx.load(str(path)).graph.node if n.op_type == "QuantizeLinear" and n.name == "/gen/Q")


def _init(path, name):
    return next(numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer if t.name == name)


def _assert_same_integers(src, out):
    a = run_outputs(src, _feeds())["q"].astype(np.int32)
    b = run_outputs(out, _feeds())["q"].astype(np.int32)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1                   # a tie may round the other way, by one step
    assert np.count_nonzero(a != b) <= a.size // 200   # and ties are rare


@pytest.mark.parametrize("per_axis_q", [False, True], ids=["per-tensor-q", "per-axis-q"])
def test_per_channel_factor_moves_into_the_scale(tmp_path, per_axis_q):
    src, out, res = apply_pass(tmp_path, "quant-scale", _model(per_axis_q=per_axis_q))
    assert res.report["folded"] == 1 and res.report["now_per_axis"] == (0 if per_axis_q else 1)
    assert _ops(out) == ["QuantizeLinear"]            # the Mul is gone
    q = _q(out)
    assert q.input[0] == "x"
    assert {a.name: a.i for a in q.attribute}.get("axis", 1) == 1
    c = _init(src, "c").reshape(-1)
    s_old = np.broadcast_to(_init(src, "s"), (C,))
    np.testing.assert_allclose(_init(out, q.input[1]), s_old / c, rtol=1e-6)
    assert _init(out, q.input[2]).tolist() == [128] * C
    _assert_same_integers(src, out)


def test_scalar_factor_keeps_a_per_tensor_scale(tmp_path):
    src, out, res = apply_pass(tmp_path, "quant-scale", _model(factor=np.array(2.5, np.float32)))
    assert res.report["folded"] == 1 and res.report["now_per_axis"] == 0
    q = _q(out)
    assert _init(out, q.input[1]).shape == () and float(_init(out, q.input[1])) == pytest.approx(0.03 / 2.5)
    _assert_same_integers(src, out)


def test_the_fused_conv_still_fuses_and_agrees(tmp_path):
    """After the fold, onnxruntime still fuses DQ -> Conv -> Q into QLinearConv (its optimized model
    shows it), and the int8 conv's output agrees with the unfolded graph within one output step."""

    src, out, res = apply_pass(tmp_path, "quant-scale", _model(per_axis_q=True, conv=True))
    assert res.report["folded"] == 1 and "Mul" not in _ops(out)
    sess, optimized = ort_optimized(out, tmp_path / "optimized.onnx")
    assert "QLinearConv" in optimized
    got = sess.run(None, _feeds())[0]
    want = run_outputs(src, _feeds(), disable_opt=False)["out"]
    assert np.abs(got - want).max() <= 0.05 * 1.01      # one step of the output grid (os = 0.05)
    assert np.count_nonzero(got != want) <= got.size // 50


@pytest.mark.parametrize("kwargs,reason", [
    ({"factor": np.array([[[1.0], [-2.0], [1.0], [1.0], [1.0], [1.0]]], np.float32)},
     "factor not a positive finite float32"),
    ({"factor": np.array(0.0, np.float32)}, "factor not a positive finite float32"),
    ({"extra_reader": True}, "Mul has other readers"),
    ({"per_axis_q": True, "factor_shape": (1, 1, T)}, "per-axis scale along another axis"),
    ({"factor_shape": (1, C, T)}, "factor varies along more than one axis"),
], ids=["negative", "zero", "two-readers", "other-axis", "full-tensor"])
def test_left_alone(tmp_path, kwargs, reason):
    model = _model(**kwargs)
    new = ir.serde.deserialize_model(model)
    report = rewrite_quant_scale(new)
    assert report["folded"] == 0 and report["skipped"] == {reason: 1}
    assert [n.op_type for n in new.graph] == [n.op_type for n in model.graph.node]


def test_unknown_rank_is_left_alone():
    """Without the input's rank a [1, C, 1] factor's axis is unknown (it could be axis 2 of a rank-4
    tensor): no fold."""
    model = _model()
    model.graph.input[0].type.tensor_type.ClearField("shape")
    assert "x" not in {k for k, (_, s) in infer_shapes(model).items() if s}
    report = rewrite_quant_scale(ir.serde.deserialize_model(model))
    assert report["skipped"] == {"rank of the Mul's input unknown": 1}


def test_registered_and_not_equivalent():
    cls = get_pass("quant-scale")
    assert cls.equivalent is False and cls.describe()["name"] == "quant-scale"
