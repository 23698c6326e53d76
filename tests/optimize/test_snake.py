"""snake: x + sin^2(alpha x)/alpha as Sin, Mul, Add with alpha and 1/alpha folded into their neighbours.

Tiny graphs shaped like Kokoro's resblock: InstanceNormalization (an AdaIN after the adain pass) ->
Snake -> Conv with zero padding. Outputs are compared with the unrewritten graph at ORT_DISABLE_ALL
within ATOL: on these inputs the activations are O(1-10) and the rewrite moves them by float
rounding (~1e-6); a wrong factor, a missing 1/alpha or a channel mix-up is off by O(0.1) or more.
"""

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from kopt.core.errors import ModelError
from kopt.core.passes import get_pass
from kopt.optimize.snake import rewrite_snake
from tests.graphs import apply_pass, checked_model, run_outputs

C, T, K = 6, 50, 3
ATOL = 2e-5
PATH = "/decoder/decoder/generator/resblocks.0"


def _model(norm=True, square="pow", inv="reciprocal", extra_reader=False, conv=True, alpha=None,
           quantize=False, exponent=2.0, groups=1) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    a = alpha if alpha is not None else rng.uniform(0.3, 3.0, (1, C, 1)).astype(np.float32)
    inits = {
        "alpha": a,
        "scale": rng.uniform(0.5, 2.0, C).astype(np.float32),
        "bias": rng.normal(0, 1, C).astype(np.float32),
        "w": rng.normal(0, 0.3, (4 * groups, C // groups, K)).astype(np.float32),
        "b": rng.normal(0, 0.1, 4 * groups).astype(np.float32),
        "two": np.array(exponent, np.float32),
    }
    nodes = []
    x = "x"
    if norm:
        nodes.append(helper.make_node("InstanceNormalization", ["in", "scale", "bias"], ["x"], epsilon=1e-5,
                                      name=f"{PATH}/adain1.0/kopt_adain/InstanceNormalization"))
    if inv == "reciprocal":
        nodes.append(helper.make_node("Reciprocal", ["alpha"], ["inv"], name=f"{PATH}/Reciprocal"))
    else:
        inits["inv"] = (np.float32(1.0) / a).astype(np.float32)
    nodes.append(helper.make_node("Mul", ["alpha", x], ["ax"], name=f"{PATH}/Mul"))
    nodes.append(helper.make_node("Sin", ["ax"], ["s"], name=f"{PATH}/Sin"))
    if square == "pow":
        nodes.append(helper.make_node("Pow", ["s", "two"], ["s2"], name=f"{PATH}/Pow"))
    else:
        nodes.append(helper.make_node("Mul", ["s", "s"], ["s2"], name=f"{PATH}/Mul_sq"))
    nodes.append(helper.make_node("Mul", ["inv", "s2"], ["m"], name=f"{PATH}/Mul_1"))
    nodes.append(helper.make_node("Add", [x, "m"], ["y"], name=f"{PATH}/Add"))
    outputs = []
    if conv:
        nodes.append(helper.make_node("Conv", ["y", "w", "b"], ["out"], kernel_shape=[K], pads=[1, 1], group=groups,
                                      name=f"{PATH}/convs1.0/Conv"))
        outputs.append("out")
    else:
        nodes.append(helper.make_node("Relu", ["y"], ["out"], name=f"{PATH}/Relu"))
        outputs.append("out")
    if extra_reader:  # x read by someone else too: alpha cannot move into the norm
        nodes.append(helper.make_node("Neg", [x], ["negx"], name=f"{PATH}/Neg"))
        outputs.append("negx")
    if quantize:
        inits["qs"], inits["qz"] = np.array(0.05, np.float32), np.array(128, np.uint8)
        nodes.append(helper.make_node("QuantizeLinear", ["out", "qs", "qz"], ["q"], name=f"{PATH}/Q"))
        nodes.append(helper.make_node("DequantizeLinear", ["q", "qs", "qz"], ["dq"], name=f"{PATH}/DQ"))
        outputs = ["dq"]
    src = "in" if norm else "x"
    return checked_model(nodes, "snake_test", [helper.make_tensor_value_info(src, TensorProto.FLOAT, [1, C, T])],
                         outputs, inits, 17)


def _apply(tmp_path, model):
    src, out, res = apply_pass(tmp_path, "snake", model)
    return src, out, res.report


def _ops(path):
    return sorted(n.op_type for n in onnx.load(str(path)).graph.node)


def _feeds(model):
    name = model.graph.input[0].name
    return {name: np.random.default_rng(1).normal(0, 3, (1, C, T)).astype(np.float32)}


def _same(src, out, feeds):
    a, b = run_outputs(src, feeds), run_outputs(out, feeds)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=0, atol=ATOL, err_msg=k)
    return a, b


@pytest.mark.parametrize("square", ["pow", "mul"])
@pytest.mark.parametrize("inv", ["reciprocal", "constant"])
def test_resblock_snake_is_sin_mul_add_with_factors_folded(tmp_path, square, inv):
    m = _model(square=square, inv=inv)
    src, out, rep = _apply(tmp_path, m)
    assert _ops(out) == sorted(["Mul", "Mul", "InstanceNormalization", "Sin", "Mul", "Add", "Conv"])
    assert rep["snake_rewritten"] == 1 and rep["alpha_into_norm"] == 1 and rep["reciprocal_into_conv"] == 1
    _same(src, out, _feeds(m))


def test_grouped_conv_gets_each_input_channel_its_factor(tmp_path):
    m = _model(groups=2)
    src, out, rep = _apply(tmp_path, m)
    assert rep["reciprocal_into_conv"] == 1
    _same(src, out, _feeds(m))


def test_no_norm_keeps_alpha_mul_and_no_conv_keeps_reciprocal_mul(tmp_path):
    m = _model(norm=False, conv=False)
    src, out, rep = _apply(tmp_path, m)
    # Mul(alpha, x), Sin, Mul(s, s), Add, Mul(., 1/alpha), Relu
    assert _ops(out) == sorted(["Mul", "Sin", "Mul", "Add", "Mul", "Relu"])
    assert rep["snake_rewritten"] == 1 and rep["alpha_into_norm"] == 0 and rep["reciprocal_into_conv"] == 0
    _same(src, out, _feeds(m))


def test_norm_with_another_reader_keeps_alpha_mul(tmp_path):
    m = _model(extra_reader=True)
    src, out, rep = _apply(tmp_path, m)
    assert rep["alpha_into_norm"] == 0 and rep["reciprocal_into_conv"] == 1
    assert _ops(out).count("InstanceNormalization") == 1
    _same(src, out, _feeds(m))


def test_folded_weights_are_the_only_change_a_wrong_factor_would_show(tmp_path):
    """Negative control: the same rewrite with 1/alpha left out of the Conv is far off."""
    m = _model()
    src, out, _ = _apply(tmp_path, m)
    broken = onnx.load(str(out))
    w_name = next(n for n in broken.graph.node if n.op_type == "Conv").input[1]
    for t in broken.graph.initializer:
        if t.name == w_name:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(m.graph.initializer[3]), w_name))
    bad = tmp_path / "bad.onnx"
    onnx.save(broken, str(bad))
    feeds = _feeds(m)
    assert np.abs(run_outputs(bad, feeds)["out"] - run_outputs(src, feeds)["out"]).max() > 0.1


@pytest.mark.parametrize("kw,reason", [
    ({"exponent": 3.0}, "sin is not squared (Pow exponent is not a constant 2)"),
    ({"alpha": np.zeros((1, C, 1), np.float32)}, "alpha has a zero or non-finite element"),
    ({"alpha": np.ones((1, 1, C), np.float32)}, "alpha is not float32 [1, C, 1] or [C, 1]"),
])
def test_not_a_snake_is_left_alone_with_its_reason(tmp_path, kw, reason):
    m = _model(**kw)
    src, out, rep = _apply(tmp_path, m)
    assert rep["snake_rewritten"] == 0 and rep["skipped"] == {reason: 1}
    assert _ops(out) == _ops(src)


def test_snake_feeding_a_quantizer_fails_with_advice(tmp_path):
    with pytest.raises(ModelError, match="feed a quantizer.*apply snake to the float model"):
        _apply(tmp_path, _model(quantize=True))


def test_rewrite_snake_on_a_graph_without_sin_changes_nothing():
    m = _model()
    m.graph.node.remove(next(n for n in m.graph.node if n.op_type == "Sin"))
    irm = ir.serde.deserialize_model(m)
    rep = rewrite_snake(irm)
    assert rep["sin_found"] == 0 and rep["snake_rewritten"] == 0
    assert len(irm.graph) == len(m.graph.node)


@pytest.mark.slow
def test_snake_real(real_store):
    """On the real fp32 reference after adain, through the runner: all 48 generator Snakes lose both
    full-size Muls and their Pow, the new nodes stay in their resblock's node group, and the audio stays
    within the pass's tolerance (observed 2.0e-6)."""
    from kopt.core.recipe import one_variant
    from kopt.core.runner import Runner
    from kopt.quantize.groups import assign

    st, _, ref = real_store
    res = Runner(st).run(one_variant(ref.key, [("adain", {}), ("snake", {})], name="adain-snake"))[0]
    assert res.status in ("ok", "cached"), res.reason
    rep = res.steps[-1].report
    assert rep["snake_rewritten"] == rep["alpha_into_norm"] == rep["reciprocal_into_conv"] == 48
    assert rep["snake_requantized"] == 0 and rep["sin_found"] == 51
    m = onnx.load(res.model_path, load_external_data=False)
    assert sum(n.op_type == "Pow" for n in m.graph.node) == 2  # the STFT magnitude's, not a Snake's
    groups = assign(m)
    sins = [n.name for n in m.graph.node if n.op_type == "Sin" and "/Snake" in n.name]
    assert len(sins) == 48
    assert all(groups[n].startswith(("generator.resblocks", "generator.noise")) for n in sins)
    assert st.get(res.key).record["extra"]["equivalence"]["max_abs_diff"] <= get_pass("snake").tolerance
