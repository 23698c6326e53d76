"""Pass.apply: one conversion to onnx-ir and back for an ``on_ir`` pass, its ``requires`` before and
``ensures`` after ``run``, ONNX's checker once for a ``checked`` pass; and the precondition the float
rewrites share (kopt.optimize._float): nothing they would rewrite may feed a quantizer."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from kopt.core.errors import ModelError
from kopt.core.passes import Pass, PassContext, PassResult, registry


def _model(quantized: bool = False) -> onnx.ModelProto:
    """y = Relu(x) (then Q/DQ when ``quantized``)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu")]
    inits = []
    out = "r"
    if quantized:
        inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                 numpy_helper.from_array(np.array(128, np.uint8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["r", "s", "z"], ["q"], name="q"),
                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="dq")]
        out = "dq"
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [2])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


class _Negate(Pass):
    """Puts a Neg after the Relu, on onnx-ir; records what it was given and which hooks ran."""

    name = "test-negate"
    on_ir = True
    checked = True
    calls: list[str] = []

    def requires(self, model, ctx):
        assert isinstance(model, ir.Model)
        self.calls.append("requires")

    def run(self, model, ctx):
        self.calls.append(f"run:{type(model).__name__}")
        relu = next(iter(model.graph))
        neg = ir.node("Neg", [relu.outputs[0]], name="neg")
        neg.outputs[0].type, neg.outputs[0].shape = ir.TensorType(ir.DataType.FLOAT), ir.Shape([2])
        model.graph.append(neg)
        model.graph.outputs[0] = neg.outputs[0]
        return PassResult(model=model, report={"added": 1})

    def ensures(self, model, ctx):
        assert isinstance(model, ir.Model)
        self.calls.append("ensures")
        if not any(n.op_type == "Neg" for n in model.graph):
            raise ModelError("no Neg")


def test_apply_converts_once_each_way_and_runs_the_hooks_in_order(tmp_path):
    _Negate.calls = []
    res = _Negate().apply(_model(), PassContext(workdir=tmp_path))
    assert _Negate.calls == ["requires", "run:Model", "ensures"]
    assert isinstance(res.model, onnx.ModelProto)
    assert [n.op_type for n in res.model.graph.node] == ["Relu", "Neg"] and res.report == {"added": 1}


class _Broken(_Negate):
    """Writes a node reading a value no one produces: ONNX's checker must refuse it."""

    name = "test-broken"

    def run(self, model, ctx):
        dangling = ir.Value(name="nowhere")
        model.graph.append(ir.node("Neg", [dangling], name="neg"))
        return PassResult(model=model)


def test_checked_output_goes_through_the_onnx_checker(tmp_path):
    with pytest.raises(onnx.checker.ValidationError, match="nowhere"):
        _Broken().apply(_model(), PassContext(workdir=tmp_path))


class _Unkept(_Negate):
    name = "test-unkept"

    def run(self, model, ctx):
        return PassResult(model=model)


def test_a_failed_postcondition_stops_the_pass(tmp_path):
    with pytest.raises(ModelError, match="no Neg"):
        _Unkept().apply(_model(), PassContext(workdir=tmp_path))


class _OnProtobuf(Pass):
    name = "test-protobuf"

    def run(self, model, ctx):
        assert isinstance(model, onnx.ModelProto)
        return PassResult(model=model)


def test_a_protobuf_pass_gets_the_protobuf_itself(tmp_path):
    m = _model()
    assert _OnProtobuf().apply(m, PassContext(workdir=tmp_path)).model is m


@pytest.mark.parametrize("name", ["adain", "snake", "stft-conv"])
def test_float_rewrites_share_the_quantizer_precondition(name):
    from kopt.optimize._float import BeforeQuantization

    cls = registry()[name]
    assert issubclass(cls, BeforeQuantization) and cls.on_ir and cls.checked


def test_the_precondition_names_what_feeds_a_quantizer(tmp_path):
    from kopt.optimize._float import BeforeQuantization

    class _ReluRewrite(BeforeQuantization):
        name = "relu-rewrite"
        rewritten = "Relus"

        def rewrites(self, model):
            return [n.outputs[0] for n in model.graph if n.op_type == "Relu"]

        def run(self, model, ctx):
            return PassResult(model=model)

    assert _ReluRewrite().apply(_model(), PassContext(workdir=tmp_path)).model is not None
    with pytest.raises(ModelError, match=r"1 of the Relus this pass would rewrite feed a quantizer.*"
                                         r"apply relu-rewrite to the float model, then quantize"):
        _ReluRewrite().apply(_model(quantized=True), PassContext(workdir=tmp_path))
