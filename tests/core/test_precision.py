"""One precision rule (kopt.core.precision) on tiny graphs: integer kernels by op (MatMulNBits is int4,
not int8), QDQ weights by their data's bit width, fp16 weights direct or cast, and the model-level
label every caller (fetch record, bench variant, bundle manifest, per-group counts) states."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kopt.core.precision import node_precisions, precision_of
from kopt.quantize.groups import precision_by_group
from tests.graphs import tiny_kokoro_model

RNG = np.random.default_rng(0)


def _model(nodes, inits, opsets=(("", 21),), tensors=()):
    """x [1, 4] float through ``nodes`` to y; ``inits`` name -> array, plus ready ``tensors``."""
    g = helper.make_graph(nodes, "p", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "m"])],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()] + list(tensors))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    m.ir_version = 10
    onnx.checker.check_model(m)
    return m


def _w(dtype=np.float32):
    return RNG.normal(0, 0.3, (4, 4)).astype(dtype)


def fp32():
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="/decoder/mm")], {"w": _w()})


def fp16_with_an_fp32_block():
    """An fp16 MatMul (its input cast down) and a block kept in float: fp16 weights cast back to fp32."""
    return _model([helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16, name="c0"),
                   helper.make_node("MatMul", ["x16", "w16"], ["h16"], name="/decoder/mm16"),
                   helper.make_node("Cast", ["h16"], ["h"], to=TensorProto.FLOAT, name="c1"),
                   helper.make_node("Cast", ["v16"], ["v"], to=TensorProto.FLOAT, name="c2"),
                   helper.make_node("MatMul", ["h", "v"], ["y"], name="/decoder/mm32")],
                  {"w16": _w(np.float16), "v16": _w(np.float16)})


def qdq(bits: int):
    """A MatMul whose weight is a DequantizeLinear of int8 (or int4) data: static QDQ quantization."""
    q = np.clip(np.round(_w() * 20), -7, 7)
    data = numpy_helper.from_array(q.astype(np.int8), "wq")
    if bits == 4:
        data = helper.make_tensor("wq", TensorProto.INT4, [4, 4], q.astype(np.int8).flatten().tolist())
    return _model([helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"], name="dq"),
                   helper.make_node("MatMul", ["x", "wd"], ["y"], name="/decoder/mm")],
                  {"ws": np.array(0.05, np.float32)}, tensors=[data])


def matmul_integer():
    """Dynamic int8: MatMulInteger over DynamicQuantizeLinear, as quantize_dynamic writes it."""
    return _model([helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], name="dql"),
                   helper.make_node("MatMulInteger", ["xq", "wq", "xz", "wz"], ["acc"], name="/decoder/mmi"),
                   helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT, name="cast"),
                   helper.make_node("Mul", ["accf", "xs"], ["y"], name="scale")],
                  {"wq": np.ones((4, 4), np.int8), "wz": np.zeros(4, np.int8)})


def matmul_nbits(with_int8: bool = False):
    """onnxruntime's 4-bit MatMulNBits (com.microsoft), optionally followed by an int8 MatMulInteger."""
    nodes = [helper.make_node("MatMulNBits", ["x", "b", "s"], ["y" if not with_int8 else "h"], domain="com.microsoft",
                              K=4, N=4, bits=4, block_size=16, name="/encoder/bert/nbits")]
    inits = {"b": np.zeros((4, 1, 8), np.uint8), "s": np.ones(4, np.float32)}
    if with_int8:
        nodes += [helper.make_node("DynamicQuantizeLinear", ["h"], ["hq", "hs", "hz"], name="dql"),
                  helper.make_node("MatMulInteger", ["hq", "wq", "hz", "wz"], ["acc"], name="/decoder/mmi"),
                  helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT, name="cast"),
                  helper.make_node("Mul", ["accf", "hs"], ["y"], name="scale")]
        inits |= {"wq": np.ones((4, 4), np.int8), "wz": np.zeros(4, np.int8)}
    return _model(nodes, inits, opsets=(("", 21), ("com.microsoft", 1)))


@pytest.mark.parametrize("build,expected", [
    (fp32, "fp32"),
    (fp16_with_an_fp32_block, "fp16"),        # the fp32 block beside it does not make it "mixed"
    (lambda: qdq(8), "int8"),
    (lambda: qdq(4), "int4"),
    (matmul_integer, "int8"),
    (matmul_nbits, "int4"),                    # a 4-bit kernel, not int8
    (lambda: matmul_nbits(with_int8=True), "mixed"),
    (tiny_kokoro_model, "fp32"),
])
def test_model_precision(build, expected):
    assert precision_of(build()) == expected


def test_node_precisions_and_the_per_group_counts_agree():
    m = fp16_with_an_fp32_block()
    assert [(n.name, p) for n, p in node_precisions(m)] == [("/decoder/mm16", "fp16"), ("/decoder/mm32", "fp32")]
    assert precision_by_group(m) == {"decoder.glue": {"fp16": 1, "fp32": 1}}
    m = matmul_nbits(with_int8=True)
    assert [(n.name, p) for n, p in node_precisions(m)] == [("/encoder/bert/nbits", "int4"), ("/decoder/mmi", "int8")]
    assert precision_by_group(m) == {"bert": {"int4": 1}, "decoder.glue": {"int8": 1}}


def test_read_from_a_file_without_its_weights(tmp_path):
    """Callers load models with load_external_data=False: only initializer types are read."""
    from kopt.core.model import load_model

    p = tmp_path / "m.onnx"
    onnx.save_model(fp16_with_an_fp32_block(), str(p), save_as_external_data=True, size_threshold=0,
                    location="m.onnx.data")
    assert precision_of(load_model(p, load_external_data=False)) == "fp16"
