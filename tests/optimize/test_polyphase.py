"""polyphase: strided 1-D ConvTranspose -> Conv + phase interleave, against ORT's own ConvTranspose
at ORT_DISABLE_ALL, on Kokoro's shapes in small (the generator's upsamplers, the predictor's
depthwise pools with output_padding, the iSTFT's single output channel). Activations and weights
are O(1), outputs O(1-10); the rewrite moves them by float rounding (~1e-6) while a wrong tap,
phase or crop is off by O(1)."""

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from kopt.core.passes import get_pass
from kopt.optimize.polyphase import rewrite_polyphase
from tests.graphs import apply_pass, run_outputs

ATOL = 1e-5
NAME = "/decoder/decoder/generator/ups.0/ConvTranspose"


def _model(c_in=6, c_out=4, k=4, s=2, pads=(1, 1), out_pad=0, group=1, bias=True, L=9, **extra):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (c_in, c_out // group, k)).astype(np.float32), "W")]
    ins = ["x", "W"]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.5, c_out).astype(np.float32), "B"))
        ins.append("B")
    attrs = {"strides": [s], "kernel_shape": [k], "pads": list(pads), "group": group, **extra}
    if out_pad:
        attrs["output_padding"] = [out_pad]
    node = helper.make_node("ConvTranspose", ins, ["y"], name=NAME, **attrs)
    g = helper.make_graph([node], "ct", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, "L"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, "T"])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m, {"x": rng.normal(0, 1, (1, c_in, L)).astype(np.float32)}


def _apply(tmp_path, model):
    src, out, res = apply_pass(tmp_path, "polyphase", model)
    return src, out, res.report


@pytest.mark.parametrize("kw", [
    dict(c_in=8, c_out=6, k=20, s=10, pads=(5, 5)),                      # ups.0's stride and kernel
    dict(c_in=8, c_out=4, k=12, s=6, pads=(3, 3)),                       # ups.1's
    dict(c_in=6, c_out=1, k=20, s=5, pads=(0, 0), bias=False),           # the iSTFT's inverse basis
    dict(c_in=6, c_out=6, k=3, s=2, pads=(1, 1), out_pad=1, group=6),    # a depthwise pool
    dict(c_in=6, c_out=4, k=5, s=2, pads=(0, 2), group=2),               # k not a multiple of s, grouped
    dict(c_in=3, c_out=2, k=7, s=3, pads=(2, 1), out_pad=2),
])
def test_conv_transpose_becomes_one_conv_with_the_same_output(tmp_path, kw):
    m, feeds = _model(**kw)
    src, out, rep = _apply(tmp_path, m)
    assert rep["rewritten"] == 1 and rep["skipped"] == {}
    assert sorted(n.op_type for n in onnx.load(str(out)).graph.node) == ["Conv", "Reshape", "Reshape", "Slice",
                                                                         "Transpose"]
    a, b = run_outputs(src, feeds)["y"], run_outputs(out, feeds)["y"]
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, rtol=0, atol=ATOL)
    for L in (1, 2, 17):  # other lengths through the same graph (the crop counts from the end)
        x = np.random.default_rng(L).normal(0, 1, (1, feeds["x"].shape[1], L)).astype(np.float32)
        a, b = run_outputs(src, {"x": x})["y"], run_outputs(out, {"x": x})["y"]
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=0, atol=ATOL)


def test_new_nodes_keep_the_module_path(tmp_path):
    m, _ = _model()
    _, out, _ = _apply(tmp_path, m)
    assert all(n.name.startswith("/decoder/decoder/generator/ups.0/Poly") for n in onnx.load(str(out)).graph.node)


@pytest.mark.parametrize("kw,reason", [
    (dict(s=1, pads=(0, 0)), "stride is not >= 2"),
    (dict(dilations=[2]), "dilation is not 1"),
    (dict(k=3, s=2, pads=(0, 0), out_pad=2), "output_padding reaches past the computed samples"),
])
def test_unsupported_conv_transpose_is_left_alone_with_its_reason(tmp_path, kw, reason):
    m, _ = _model(**kw)
    _, out, rep = _apply(tmp_path, m)
    assert rep["rewritten"] == 0 and rep["skipped"] == {reason: 1}
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["ConvTranspose"]


def test_weights_given_as_an_input_are_left_alone():
    m, _ = _model()
    m.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [6, 4, 4]))
    rep = rewrite_polyphase(ir.serde.deserialize_model(m))
    assert rep["skipped"] == {"weights are not a float32 constant": 1}


def test_conv_transpose_feeding_a_cumsum_is_left_alone(tmp_path):
    m, _ = _model()
    m.graph.node.append(helper.make_node("CumSum", ["y", "axis"], ["phase"], name="/g/CumSum"))
    m.graph.initializer.append(numpy_helper.from_array(np.array(2, np.int64), "axis"))
    m.graph.output.append(helper.make_tensor_value_info("phase", TensorProto.FLOAT, [1, 4, "T"]))
    rep = rewrite_polyphase(ir.serde.deserialize_model(m))
    assert rep["rewritten"] == 0 and rep["skipped"] == {"feeds a CumSum, which would accumulate its rounding change": 1}


@pytest.mark.slow
def test_polyphase_real(real_store):
    """On the real fp32 reference, through the runner: the generator's upsamplers, the iSTFT and two
    pools become Convs, the F0 pool (upstream of the sine source's CumSum) stays, the new nodes stay
    in their module's node group, and the audio is within the pass's tolerance (observed 2.8e-6)."""
    from kopt.core.recipe import one_variant
    from kopt.core.runner import Runner
    from kopt.quantize.groups import assign

    st, _, ref = real_store
    res = Runner(st).run(one_variant(ref.key, [("polyphase", {})], name="polyphase"))[0]
    assert res.status in ("ok", "cached"), res.reason
    rep = res.steps[-1].report
    assert rep["convtranspose_found"] == 6 and rep["rewritten"] == 5
    assert rep["skipped"] == {"feeds a CumSum, which would accumulate its rounding change": 1}
    m = onnx.load(res.model_path, load_external_data=False)
    assert [n.name for n in m.graph.node if n.op_type == "ConvTranspose"] == ["/encoder/F0.1/pool/ConvTranspose"]
    groups = assign(m)
    ups = [n.name for n in m.graph.node if n.name.startswith("/decoder/decoder/generator/ups.")]
    assert len(ups) == 10 and {groups[n] for n in ups} == {"generator.ups.0", "generator.ups.1"}
    assert st.get(res.key).record["extra"]["equivalence"]["max_abs_diff"] <= get_pass("polyphase").tolerance
