"""snake-lut: a quantized Snake (InstanceNormalization -> Sin, Mul, Add -> [Mul] -> QuantizeLinear) as a
per-channel lookup table read with Clip, Cast and GatherElements.

Tiny graphs shaped like the hybrid model's int8 conv inputs: x [1, C, T] -> InstanceNormalization
(scale and bias graph inputs, as Kokoro's come from the style) -> Snake -> QuantizeLinear ->
DequantizeLinear with scale 1 and zero point 0, so the output is the quantizer's integers. The table
may move an integer by one step where a step falls inside a bin (about 255 / bins of the bins hold
one, and half their values move), never by more: a table in the wrong direction, on the wrong
channel or with a wrong interval moves most values by many steps.
"""

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from kopt.core.errors import KoptError
from kopt.core.passes import get_pass, make_config
from kopt.optimize.snake_lut import build_table, inverse_f, rewrite_snake_lut, snake_f
from tests.graphs import apply_pass, checked_model, int8_conv_group, ort_optimized, run_outputs

C, T = 5, 3000


def _model(per_channel=True, zero_dtype=np.uint8, factor=None, const_affine=False, extra_reader=False,
           float_snake=False, pow_square=False, no_norm=False, dynamic_c=False, conv=False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    lo_q, hi_q = (0, 255) if zero_dtype == np.uint8 else (-128, 127)
    zero = np.full(C, (lo_q + hi_q + 1) // 2, zero_dtype)
    # ranges that cover the bulk of y = z + sin^2 z, with the tails saturating
    scale = rng.uniform(4.0, 9.0, C).astype(np.float32) / 255 * (np.abs(factor.reshape(-1)) if factor is not None else 1)
    inits = {"s": scale if per_channel else np.array(scale.mean(), np.float32),
             "zp": zero if per_channel else np.array(zero[0], zero_dtype),
             "ds": np.array(1.0, np.float32), "dz": np.array(0, zero_dtype)}
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "C" if dynamic_c else C, T])]
    if const_affine:
        inits["gamma"], inits["beta"] = _affine()
    else:
        ins += [helper.make_tensor_value_info("gamma", TensorProto.FLOAT, [C]),
                helper.make_tensor_value_info("beta", TensorProto.FLOAT, [C])]
    z = "x" if no_norm else "z"
    nodes = [] if no_norm else [helper.make_node("InstanceNormalization", ["x", "gamma", "beta"], ["z"],
                                                 epsilon=1e-5, name="/gen/res/SnakeInstanceNormalization")]
    if pow_square:
        inits["two"] = np.array(2.0, np.float32)
        nodes += [helper.make_node("Sin", [z], ["s_"], name="/gen/res/SnakeSin"),
                  helper.make_node("Pow", ["s_", "two"], ["sq"], name="/gen/res/SnakePow")]
    else:
        nodes += [helper.make_node("Sin", [z], ["s_"], name="/gen/res/SnakeSin"),
                  helper.make_node("Mul", ["s_", "s_"], ["sq"], name="/gen/res/SnakeMul")]
    nodes.append(helper.make_node("Add", [z, "sq"], ["y"], name="/gen/res/SnakeAdd"))
    y = "y"
    if factor is not None:
        inits["c"] = factor
        nodes.append(helper.make_node("Mul", ["y", "c"], ["yc"], name="/gen/res/SnakeMul_1"))
        y = "yc"
    outputs = ["out"]
    if float_snake:
        inits["w"] = rng.normal(0, 0.3, (3, C, 3)).astype(np.float32)
        nodes.append(helper.make_node("Conv", [y, "w"], ["out"], kernel_shape=[3], pads=[1, 1], name="/gen/res/Conv"))
    else:
        nodes += [helper.make_node("QuantizeLinear", [y, "s", "zp"], ["q"], name="/gen/res/Q",
                                   **({"axis": 1} if per_channel else {})),
                  helper.make_node("DequantizeLinear", ["q", "ds", "dz"], ["out"], name="/gen/res/DQ")]
    if conv:   # the int8 conv group onnxruntime fuses into QLinearConv
        group, more = int8_conv_group(rng, "out", C, "cout", "/gen/res", 0.5)
        nodes += group
        inits.update(more)
        outputs = ["cout"]
    if extra_reader:
        nodes.append(helper.make_node("Neg", [z], ["negz"], name="/gen/res/Neg"))
        outputs.append("negz")
    return checked_model(nodes, "snake_lut_test", ins, outputs, inits, 19)


def _affine():
    rng = np.random.default_rng(2)
    return rng.uniform(0.5, 2.5, C).astype(np.float32), rng.normal(0, 1, C).astype(np.float32)


def _feeds(model: onnx.ModelProto) -> dict:
    rng = np.random.default_rng(1)
    x = (rng.normal(0, 1, (1, C, T)) * rng.uniform(0.1, 20, (1, C, 1)) + rng.normal(0, 5, (1, C, 1)))
    feeds = {"x": x.astype(np.float32)}
    if any(i.name == "gamma" for i in model.graph.input):
        feeds["gamma"], feeds["beta"] = _affine()
    return feeds


def _ops(path) -> list[str]:
    return sorted(n.op_type for n in onnx.load(str(path)).graph.node)


def _integers(src, out) -> tuple[np.ndarray, np.ndarray]:
    feeds = _feeds(onnx.load(str(src)))
    a = run_outputs(src, feeds)["out"].astype(np.int32)
    b = run_outputs(out, feeds)["out"].astype(np.int32)
    assert a.shape == b.shape
    return a, b


@pytest.mark.parametrize("kw", [{}, {"per_channel": False}, {"zero_dtype": np.int8}, {"const_affine": True}],
                         ids=["per-channel", "per-tensor", "int8", "constant-affine"])
def test_snake_becomes_a_table(tmp_path, kw):
    src, out, res = apply_pass(tmp_path, "snake-lut", _model(**kw))
    rep = res.report
    assert rep["snake_tabled"] == 1 and rep["skipped"] == {} and rep["table_bytes"] == C * 2048
    affine = [] if kw.get("const_affine") else ["Add", "Mul", "Mul"]   # the new scale and bias, on [C]
    assert _ops(out) == sorted(["InstanceNormalization", "Clip", "Cast", "GatherElements", "DequantizeLinear",
                                *affine])
    a, b = _integers(src, out)
    assert 0.02 < rep["bins_with_a_step"] < 0.2       # about 255 / 2048 of the bins
    assert np.abs(a - b).max() <= 1                  # one step at most
    assert np.count_nonzero(a != b) <= 0.1 * a.size  # and only inside bins that hold a step
    assert (a == a.min()).any() and (a == a.max()).any() and np.array_equal(a.min(), b.min())  # saturated alike


def test_more_bins_fewer_moves(tmp_path):
    src, out, res = apply_pass(tmp_path, "snake-lut", _model(), bins=65536)
    a, b = _integers(src, out)
    assert res.report["bins_with_a_step"] < 0.005
    assert np.abs(a - b).max() <= 1 and np.count_nonzero(a != b) <= 0.005 * a.size


@pytest.mark.parametrize("factor", [np.array([[[0.5], [-2.0], [1.5], [-0.7], [3.0]]], np.float32),
                                    np.array(-1.25, np.float32)], ids=["per-channel-mixed-sign", "negative-scalar"])
def test_factor_before_the_quantizer_goes_into_the_table(tmp_path, factor):
    """The 1/alpha Mul quant-scale leaves (a negative alpha): absorbed, its sign flips the table."""
    src, out, res = apply_pass(tmp_path, "snake-lut", _model(factor=factor))
    assert res.report["snake_tabled"] == 1
    assert "Sin" not in _ops(out) and _ops(out).count("Mul") == 2
    a, b = _integers(src, out)
    assert np.abs(a - b).max() <= 1 and np.count_nonzero(a != b) <= 0.1 * a.size


def test_the_int8_conv_still_fuses_and_agrees(tmp_path):
    """onnxruntime still fuses DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv after the
    table (its optimized model shows it), and the conv's output agrees within one output step on all
    but the values a moved input reaches."""

    src, out, _ = apply_pass(tmp_path, "snake-lut", _model(conv=True))
    sess, optimized = ort_optimized(out, tmp_path / "optimized.onnx")
    assert "QLinearConv" in optimized and "GatherElements" in optimized and "Sin" not in optimized
    feeds = _feeds(onnx.load(str(src)))
    got = sess.run(None, feeds)[0]
    want = run_outputs(src, feeds, disable_opt=False)["cout"]
    err = np.abs(got - want) / 0.5                     # in output steps (os = 0.5)
    assert np.median(err) == 0 and np.percentile(err, 99) <= 2


@pytest.mark.parametrize("kw,reason", [
    ({"float_snake": True}, "Snake output not read by one QuantizeLinear only (a float Snake)"),
    ({"extra_reader": True}, "Snake input has other readers"),
    ({"no_norm": True}, "Snake input not an InstanceNormalization's output"),
    ({"pow_square": True}, "sin is not squared as Mul(s, s)"),
    ({"dynamic_c": True}, "Snake input not of static shape [1, C, T]"),
    ({"factor": np.array([[[0.5], [0.0], [1.5], [1.0], [3.0]]], np.float32)},
     "Snake output scaled by a zero or non-finite factor"),
], ids=["float-snake", "two-readers", "no-norm", "pow", "dynamic-channels", "zero-factor"])
def test_left_alone(kw, reason):
    model = _model(**kw)
    new = ir.serde.deserialize_model(model)
    report = rewrite_snake_lut(new)
    assert report["snake_tabled"] == 0 and report["skipped"] == {reason: 1}
    assert [n.op_type for n in new.graph] == [n.op_type for n in model.graph.node]


def test_inverse_and_table():
    y = np.linspace(-40, 40, 2001)
    z = inverse_f(y)
    assert np.abs(snake_f(z) - y).max() < 1e-9 and np.all(np.diff(z) > 0)
    scale = np.array([0.05, -0.05, 0.2])
    table, lo, hi = build_table(scale, np.array([128, 128, 0], np.uint8), 1024)
    assert table.shape == (3, 1024) and table.dtype == np.uint8 and np.all(lo < hi)
    steps = np.diff(table.astype(np.int32), axis=1)
    assert np.all(steps[0] >= 0) and np.all(steps[1] <= 0) and np.all(steps[2] >= 0)   # monotone, by sign
    assert table[0, 0] == 0 and table[0, -1] == 255 and table[1, 0] == 255 and table[1, -1] == 0
    assert table[2, 0] == 0 and table[2, -1] == 255
    assert np.abs(steps).max() == 1                  # no bin skips a level


def test_config_bounds():
    cls = get_pass("snake-lut")
    assert cls.equivalent is False
    with pytest.raises(KoptError, match="bins"):
        make_config(cls, {"bins": 16})
