"""kopt.core.graph: the one constant rule and the use-def helpers on onnx-ir, dropping the
initializers a rewrite released, and onnx-ir's own dead-code removal and topological sort as kopt's
passes use them (outer names read inside a subgraph are kept)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx_ir.passes.common import RemoveUnusedNodesPass, TopologicalSortPass

from kopt.core.graph import Builder, drop_unread_initializers, to_proto


def _model() -> onnx.ModelProto:
    """y = (x + a) * 2; a dead chain z = Relu(Neg(x + b)) with its own initializer b, a Constant c
    only the dead chain reads, value_info for the dead tensors, and w: an initializer that graph
    input w overrides."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    w_in = helper.make_tensor_value_info("w", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    inits = [numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "a"),
             numpy_helper.from_array(np.array([5.0, 5.0], np.float32), "b"),
             numpy_helper.from_array(np.array([2.0, 2.0], np.float32), "two"),
             numpy_helper.from_array(np.array([9.0, 9.0], np.float32), "w")]
    nodes = [helper.make_node("Add", ["x", "a"], ["xa"], name="add"),
             helper.make_node("Constant", [], ["c"], name="c", value=numpy_helper.from_array(np.float32(3.0))),
             helper.make_node("Add", ["x", "b"], ["xb"], name="dead_add"),
             helper.make_node("Mul", ["xb", "c"], ["xbc"], name="dead_mul"),
             helper.make_node("Relu", ["xbc"], ["z"], name="dead_relu"),
             helper.make_node("Mul", ["xa", "two"], ["y0"], name="mul"),
             helper.make_node("Add", ["y0", "w"], ["y"], name="add_w")]
    g = helper.make_graph(nodes, "g", [x, w_in], [y], inits,
                          value_info=[helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("xa", "xb", "z")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _run(m: onnx.ModelProto) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": np.array([1.0, -3.0], np.float32), "w": np.array([0.5, 0.5], np.float32)})[0]


def test_one_rule_for_constants_and_use_def_on_onnx_ir():
    from kopt.core.graph import const_int, const_value, downstream, only_consumer, other_input

    g = ir.serde.deserialize_model(_model()).graph
    v = {o.name: o for n in g for o in n.outputs} | {i.name: i for i in g.inputs} | dict(g.initializers)
    assert const_value(v["a"]).tolist() == [1.0, 2.0]
    assert float(const_value(v["c"])) == 3.0  # a Constant node's value
    assert const_value(v["w"]) is None  # graph input w can override the initializer: not a constant
    assert const_value(v["xa"]) is None and const_int(v["c"]) is None  # a float is no integer
    assert sorted(n.name for n in v["x"].consumers()) == ["add", "dead_add"]
    assert only_consumer(v["xa"], "Mul").name == "mul" and only_consumer(v["xa"], "Add") is None
    add_w = only_consumer(v["y0"], "Add")
    assert add_w.name == "add_w" and other_input(add_w, v["y0"]) is v["w"]
    assert {n.name for n in downstream(v["xa"])} == {"mul", "add_w"}
    assert v["y"].is_graph_output() and not v["y0"].is_graph_output()


def test_full_dead_code_removal_keeps_the_maths():
    m = _model()
    want = _run(m)
    irm = ir.serde.deserialize_model(m)
    RemoveUnusedNodesPass()(irm)
    out = to_proto(irm)
    assert [n.name for n in out.graph.node] == ["add", "mul", "add_w"]  # the dead chain and its Constant c
    assert sorted(t.name for t in out.graph.initializer) == ["a", "two", "w"]
    assert [v.name for v in out.graph.value_info] == ["xa"]
    onnx.checker.check_model(out)
    np.testing.assert_array_equal(_run(out), want)


def test_released_initializers_go_only_when_unread():
    m = _model()
    irm = ir.serde.deserialize_model(m)
    g = irm.graph
    nodes = {n.name: n for n in g}
    a, two, w = g.initializers["a"], g.initializers["two"], g.initializers["w"]
    new_two = Builder(g).const("two", np.array([2.0, 2.0], np.float32))
    assert new_two.name == "two_1"
    nodes["mul"].replace_input_with(1, new_two)
    # two is unread now and goes; a is still read and w is a graph input's: both stay
    assert drop_unread_initializers(g, [two, a, w, two]) == 1
    assert list(g.initializers) == ["a", "b", "w", "two_1"]
    out = to_proto(irm)
    assert not {v.name for v in out.graph.value_info} & set(g.initializers)  # no value_info per initializer
    onnx.checker.check_model(out)
    np.testing.assert_array_equal(_run(out), _run(m))


def test_subgraph_reads_keep_outer_names():
    m = _model()
    then_g = helper.make_graph([helper.make_node("Identity", ["z"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    else_g = helper.make_graph([helper.make_node("Identity", ["y0"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])])
    cond = numpy_helper.from_array(np.array(False), "cond")
    m.graph.initializer.append(cond)
    m.graph.node.insert(0, helper.make_node("If", ["cond"], ["iy"], name="if", then_branch=then_g, else_branch=else_g))
    m.graph.output.append(helper.make_tensor_value_info("iy", TensorProto.FLOAT, [2]))
    irm = ir.serde.deserialize_model(m)
    RemoveUnusedNodesPass()(irm)
    assert len(irm.graph) == 8  # z is read inside the If's branch: nothing is dead
    TopologicalSortPass()(irm)
    names = [n.name for n in irm.graph]
    assert names.index("if") > names.index("dead_relu") and names.index("if") > names.index("mul")
    onnx.checker.check_model(to_proto(irm))
