import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from kopt.core.contract import default_style
from kopt.core.contract import test_tokens as sentence_tokens
from kopt.core.errors import ModelError, RecipeError
from kopt.core.passes import PassContext, get_pass, make_config
from kopt.core.recipe import one_variant
from kopt.core.runner import Runner
from kopt.optimize._kokoro import token_axes
from tests.graphs import EMB, FRAME, VOCAB, duration_kokoro_model, run_outputs, tiny_kokoro_model


def _apply(tmp_path, model, **cfg):
    cls = get_pass("bind-shapes")
    res = cls(make_config(cls, cfg)).apply(model, PassContext(workdir=tmp_path))
    out = tmp_path / f"bound-{cfg.get('bucket')}.onnx"
    onnx.save(res.model, str(out))
    return out, res


def _sort(m: onnx.ModelProto) -> None:
    """Put ``m``'s nodes in topological order (onnx-ir's stable sort), in place."""
    from onnx_ir.passes.common import TopologicalSortPass

    irm = ir.serde.deserialize_model(m)
    TopologicalSortPass()(irm)
    del m.graph.node[:]
    m.graph.node.extend(ir.serde.serialize_node(n) for n in irm.graph)


def _feeds(tokens):
    return {"tokens": np.asarray(tokens, np.int64).reshape(1, -1), "style": default_style().reshape(1, 256),
            "speed": np.array([1.0], np.float32)}


def _dims(vi):
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]


def test_bind_without_bucket_keeps_ops_and_outputs(tmp_path):
    src = tmp_path / "in.onnx"
    onnx.save(duration_kokoro_model(), str(src))
    out, res = _apply(tmp_path, duration_kokoro_model())
    m = onnx.load(str(out))
    assert [_dims(i) for i in m.graph.input] == [[1, "sequence_length"], [1, 256], [1]]
    assert sorted(n.op_type for n in m.graph.node) == sorted(n.op_type for n in duration_kokoro_model().graph.node)
    assert res.report["value_infos"] > 0  # shapes were propagated
    tok = sentence_tokens()
    np.testing.assert_array_equal(run_outputs(out, _feeds(tok))["audio"], run_outputs(src, _feeds(tok))["audio"])


@pytest.mark.parametrize("bucket", [48, 64, 128])
def test_bucket_audio_equals_unpadded_audio(tmp_path, bucket):
    src = tmp_path / "in.onnx"
    onnx.save(duration_kokoro_model(), str(src))
    out, res = _apply(tmp_path, duration_kokoro_model(), bucket=bucket)
    m = onnx.load(str(out))
    assert _dims(m.graph.input[0]) == [1, bucket]
    assert res.report["masked"] == {"softmax": 1, "conv": 1, "lstm": 1, "quantized": 0, "durations": 2}
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("ReduceMax") == 1 and ops.count("Less") == 2  # valid length + mask (+ the alignment's Less)
    lstm = next(n for n in m.graph.node if n.op_type == "LSTM")
    assert lstm.input[4]  # sequence_lens wired
    tok = sentence_tokens()
    padded = np.pad(tok, (0, bucket - tok.size))
    want = run_outputs(src, _feeds(tok))["audio"]
    got = run_outputs(out, _feeds(padded))["audio"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    # the same padding fed to the unmasked model makes sound for the pads (what the masks prevent)
    assert run_outputs(src, _feeds(padded))["audio"].size > want.size


def test_bucket_then_durations_reports_zero_for_pads(tmp_path):
    out, _ = _apply(tmp_path, duration_kokoro_model(), bucket=64)
    cls = get_pass("durations")
    m = cls().apply(onnx.load(str(out)), PassContext(workdir=tmp_path)).model
    p = tmp_path / "bd.onnx"
    onnx.save(m, str(p))
    tok = sentence_tokens()
    res = run_outputs(p, _feeds(np.pad(tok, (0, 64 - tok.size))))
    d = res["durations"]
    assert d.shape == (64,) and (d[tok.size:] == 0).all() and (d[: tok.size] >= 1).all()
    assert int(d.sum()) * FRAME == res["audio"].size


def test_runner_proves_bucket_equivalence(tmp_path, store):
    src = tmp_path / "in.onnx"
    onnx.save(duration_kokoro_model(), str(src))
    res = Runner(store).run(one_variant(str(src), [("bind-shapes", {"bucket": 64})]))[0]
    assert res.status == "ok", res.reason
    eq = store.get(res.key).record["extra"]["equivalence"]
    assert eq["max_abs_diff"] <= 1e-6 and len(eq["per_sequence"]) == 3


def test_bucket_needs_the_duration_chain(tmp_path):
    with pytest.raises(ModelError, match="duration chain"):
        _apply(tmp_path, tiny_kokoro_model(), bucket=64)


def test_bucket_bounds():
    with pytest.raises(RecipeError, match="bucket"):
        make_config(get_pass("bind-shapes"), {"bucket": 1000})


# -- int8 graphs: run-time quantizers take one scale per tensor, so pads must not reach them ------

MAX_POS = 160


def _int8_model(tmp_path) -> onnx.ModelProto:
    """``duration_kokoro_model`` with learned position embeddings added to the token embeddings
    (as ALBERT's, in Kokoro), through onnxruntime's ``quantize_dynamic``: DynamicQuantizeLinear
    feeding MatMulInteger and ConvInteger, and a DynamicQuantizeLSTM, like the shipped int8 Kokoro.
    The position embeddings grow with the position, so the pad rows past the sentence widen the
    per-tensor range of the first quantizer, as the real model's pads do."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from kopt.quantize.common import quiet_ort_quant_logging

    m = duration_kokoro_model()
    g = m.graph
    rng = np.random.default_rng(1)
    pos = (rng.standard_normal((MAX_POS, 16)) * (0.2 + 0.05 * np.arange(MAX_POS))[:, None]).astype(np.float32)
    g.initializer.extend([numpy_helper.from_array(pos, "pos.weight"), numpy_helper.from_array(np.array(1, np.int64), "k1")])
    N = helper.make_node
    for n in g.node:
        for k, i in enumerate(n.input):
            if i == "emb":
                n.input[k] = "emb_pos"
    g.node.extend([
        N("Shape", ["tokens"], ["tshape"], name="/encoder/bert/embeddings/Shape"),
        N("Gather", ["tshape", "k1"], ["tlen"], axis=0, name="/encoder/bert/embeddings/Gather_len"),
        N("Range", ["idx0", "tlen", "one_i"], ["pos_ids"], name="/encoder/bert/embeddings/Range"),
        N("Gather", ["pos.weight", "pos_ids"], ["pos_emb"], name="/encoder/bert/embeddings/position_embeddings/Gather"),
        N("Add", ["emb", "pos_emb"], ["emb_pos"], name="/encoder/bert/embeddings/Add"),
    ])
    _sort(m)
    onnx.checker.check_model(m)
    src, dst = tmp_path / "f32.onnx", tmp_path / "int8.onnx"
    onnx.save(m, str(src))
    quiet_ort_quant_logging()
    quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Conv", "LSTM"], weight_type=QuantType.QUInt8)
    return onnx.load(str(dst))


def _padded_vs_unpadded(tmp_path, model, bucket):
    src = tmp_path / "src.onnx"
    onnx.save(model, str(src))
    out, res = _apply(tmp_path, model, bucket=bucket)
    tok = sentence_tokens()
    want = run_outputs(src, _feeds(tok))["audio"]
    got = run_outputs(out, _feeds(np.pad(tok, (0, bucket - tok.size))))["audio"]
    return want, got, res, onnx.load(str(out))


@pytest.mark.parametrize("bucket", [48, 64, 128])
def test_int8_bucket_audio_equals_unpadded_audio(tmp_path, bucket):
    model = _int8_model(tmp_path)
    ops = [n.op_type for n in model.graph.node]
    assert {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM"} <= set(ops)
    want, got, res, m = _padded_vs_unpadded(tmp_path, model, bucket)
    assert got.shape == want.shape
    # the real positions quantize to the same integers; what could be left is float rounding of
    # other shapes (observed: 0.0). Without the zeroing: 0.33 at bucket 64, 0.38 at 128.
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    # 3 token-level DynamicQuantizeLinear (q/k/v input, conv input, duration head input) + the LSTM's X
    assert res.report["masked"] == {"softmax": 1, "conv": 1, "lstm": 1, "quantized": 4, "durations": 2}
    # zeroed: every quantizer input that comes from the tokens; not: the style's and the decoder's
    prod = {o: n for n in m.graph.node for o in n.output}
    quant = {n.name: n.input[0] for n in m.graph.node if n.op_type in ("DynamicQuantizeLinear", "DynamicQuantizeLSTM")}
    zeroed = {k for k, x in quant.items() if x in prod and prod[x].op_type == "Mul" and "pad_zeroed" in x}
    assert sorted(set(quant) - zeroed) == ["expanded_QuantizeLinear", "style_QuantizeLinear"]


def test_int8_bucket_equal_to_a_channel_count(tmp_path):
    """Bucket 16 = the embedding width: the conv quantizer's input [1, 16 channels, 16 tokens] has
    two axes of size 16 and only the symbolic token dim tells them apart."""
    model = _int8_model(tmp_path)
    src = tmp_path / "src.onnx"
    onnx.save(model, str(src))
    out, res = _apply(tmp_path, model, bucket=16)
    m = onnx.load(str(out))
    shapes = {t.name: numpy_helper.to_array(t).tolist() for t in m.graph.initializer if "mask_shape" in t.name}
    assert shapes == {"kopt/pad/mask_shape_3d_axis1": [1, 16, 1], "kopt/pad/mask_shape_3d_axis2": [1, 1, 16],
                      "kopt/pad/mask_shape_3d_axis0": [16, 1, 1]}
    tok = np.concatenate([sentence_tokens()[:9], [0]])
    want = run_outputs(src, _feeds(tok))["audio"]
    got = run_outputs(out, _feeds(np.pad(tok, (0, 16 - tok.size))))["audio"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_token_axes_are_symbolic():
    """Every axis that runs over the tokens, by the inferred dim, not by size: the attention
    scores [1, T, T] have two; a tensor of the style only has none."""
    m = ir.serde.deserialize_model(duration_kokoro_model())
    by_out = {n.outputs[0].name: n for n in m.graph}
    wanted = {by_out[t].outputs[0]: by_out[t] for t in ("emb", "qk", "h0t", "tcs", "ly", "feat")}
    got = {v.name: axes for v, axes in token_axes(m, "tokens", wanted).items()}
    assert got == {"emb": (3, (1,)), "qk": (3, (1, 2)), "h0t": (3, (2,)), "tcs": (3, (0,)), "ly": (4, (0,)),
                   "feat": (3, (1,))}
    with pytest.raises(ModelError, match=r"token axis of 'sty3', input of Add '/encoder/predictor/Add': "
                                         r"its inferred shape is \[1, 1, 16\]"):
        token_axes(m, "tokens", {by_out["sty3"].outputs[0]: by_out["feat"]})


def test_token_axes_failure_is_one_error_and_writes_nothing_here(tmp_path, monkeypatch):
    """An op symbolic shape inference does not know leaves the shape unknown: a ModelError naming
    the tensor, and onnxruntime's debug model is not left in the current directory."""
    x = helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    m = helper.make_model(helper.make_graph(
        [helper.make_node("Cast", ["tokens"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("Mystery", ["f"], ["y"], domain="kopt.test", name="mystery")], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("kopt.test", 1)])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match=r"cannot find the token axis of 'y', input of Mystery 'mystery': its "
                                         r"inferred shape is unknown \(symbolic shape inference failed"):
        irm = ir.serde.deserialize_model(m)
        token_axes(irm, "tokens", {irm.graph[1].outputs[0]: irm.graph[1]})
    assert list(tmp_path.iterdir()) == []


def test_int8_bucket_after_ort_fusions(tmp_path):
    """After ``fuse`` (ORT's extended fusions) the quantizers are DynamicQuantizeMatMul and
    DynamicQuantizeLinear -> MatMulIntegerToFloat, with a FusedMatMul upstream: contrib ops that
    symbolic shape inference follows only through kopt's stand-ins."""
    from kopt.optimize.fuse import optimize_offline

    src, fused = tmp_path / "q.onnx", tmp_path / "fused.onnx"
    onnx.save(_int8_model(tmp_path), str(src))
    optimize_offline(src, fused, "extended")
    model = onnx.load(str(fused))
    assert {"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "FusedMatMul"} <= {n.op_type for n in model.graph.node}
    want, got, res, _ = _padded_vs_unpadded(tmp_path, model, 64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    assert res.report["masked"]["quantized"] == 4


def _quantizer_probe(through: str) -> onnx.ModelProto:
    """A per-token duration head whose DynamicQuantizeLinear reads a token-dependent tensor with no
    token axis to find: pooled over the tokens (``pool``) or made by an op no shape inference
    knows (``opaque``). tokens -> embedding -> ... -> DynamicQuantizeLinear -> MatMulInteger ->
    Sigmoid -> ReduceSum -> Div(speed) -> Round -> Clip -> Cast -> CumSum."""
    rng = np.random.default_rng(0)
    C = 16
    N = helper.make_node
    inits = [numpy_helper.from_array((rng.standard_normal((VOCAB, C)) * 0.3).astype(np.float32), "emb"),
             numpy_helper.from_array(rng.integers(0, 255, (C, 4)).astype(np.uint8), "w_q"),
             numpy_helper.from_array(np.array(128, np.uint8), "w_zp"),
             numpy_helper.from_array(np.array([-1], np.int64), "last"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one_f"),
             numpy_helper.from_array(np.array(0, np.int64), "axis0")]
    mid = (N("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0, name="/encoder/pool") if through == "pool" else
           N("Mystery", ["x"], ["y"], domain="kopt.test", name="/encoder/mystery"))
    nodes = [
        N("Gather", ["emb", "tokens"], ["x"], name="/encoder/Gather"), mid,
        N("DynamicQuantizeLinear", ["y"], ["yq", "ys", "yz"], name="/encoder/head/QuantizeLinear"),
        N("MatMulInteger", ["yq", "w_q", "yz", "w_zp"], ["hi"], name="/encoder/head/MatMulInteger"),
        N("Cast", ["hi"], ["hf"], to=TensorProto.FLOAT, name="/encoder/head/Cast"),
        N("Mul", ["hf", "ys"], ["h"], name="/encoder/head/Mul"),
        N("Sigmoid", ["h"], ["hs"], name="/encoder/Sigmoid"),
        N("ReduceSum", ["hs", "last"], ["d0"], keepdims=0, name="/encoder/ReduceSum"),
        N("Div", ["d0", "speed"], ["d1"], name="/encoder/Div"),
        N("Round", ["d1"], ["d2"], name="/encoder/Round"),
        N("Clip", ["d2", "one_f"], ["d3"], name="/encoder/Clip"),
        N("Cast", ["d3"], ["dur"], to=TensorProto.INT64, name="/encoder/Cast"),
        N("CumSum", ["dur", "axis0"], ["cs"], name="/encoder/CumSum"),
        N("Cast", ["cs"], ["audio"], to=TensorProto.FLOAT, name="/decoder/Cast"),
    ]
    g = helper.make_graph(
        nodes, "quantizer_probe",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "sequence_length"]),
         helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 256]),
         helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("kopt.test", 1)])


@pytest.mark.parametrize("through,shape", [("pool", r"\[1, 16\]"), ("opaque", "unknown")])
def test_bucket_refuses_a_quantizer_input_without_token_axis(tmp_path, through, shape):
    with pytest.raises(ModelError, match=rf"token axis of 'y', input of DynamicQuantizeLinear "
                                         rf"'/encoder/head/QuantizeLinear': its inferred shape is {shape}"):
        _apply(tmp_path, _quantizer_probe(through), bucket=64)


# -- refusals, and what the pass leaves in and around the graph -------------------------------------

def test_bucket_refuses_an_lstm_that_has_sequence_lens(tmp_path):
    m = duration_kokoro_model()
    lstm = next(n for n in m.graph.node if n.op_type == "LSTM")
    lstm.input.append("given_lens")
    m.graph.initializer.append(numpy_helper.from_array(np.array([5], np.int32), "given_lens"))
    with pytest.raises(ModelError, match=r"LSTM '/encoder/predictor/lstm/LSTM' already has sequence_lens"):
        _apply(tmp_path, m, bucket=64)


def test_bucket_refuses_durations_that_are_a_graph_output(tmp_path):
    m = duration_kokoro_model()
    m.graph.output.append(helper.make_tensor_value_info("dur", TensorProto.INT64, None))
    with pytest.raises(ModelError, match="'dur' is a graph output; cannot rewire it"):
        _apply(tmp_path, m, bucket=64)


def test_int8_bucket_refuses_a_conv_integer_fed_by_no_quantizer(tmp_path):
    m = _int8_model(tmp_path)
    conv = next(n for n in m.graph.node if n.op_type == "ConvInteger")
    x = conv.input[0]
    m.graph.node.append(helper.make_node("Identity", [x], [x + "_copy"], name="copy"))
    conv.input[0] = x + "_copy"
    _sort(m)
    with pytest.raises(ModelError, match=r"ConvInteger '.*' over tokens is not fed by a DynamicQuantizeLinear"):
        _apply(tmp_path, m, bucket=64)


def test_input_model_untouched_and_shapes_inferred_afresh(tmp_path):
    """The pass edits a copy (onnx-ir's); a stale value_info is dropped and inferred again, and no
    value_info names an initializer (onnx-ir would write one per initializer)."""
    m = duration_kokoro_model()
    m.graph.value_info.append(helper.make_tensor_value_info("emb", TensorProto.FLOAT, [7, 7, 7]))
    before = m.SerializeToString()
    _, res = _apply(tmp_path, m, bucket=64)
    assert m.SerializeToString() == before
    vi = {v.name: v for v in res.model.graph.value_info}
    assert _dims(vi["emb"]) == [1, 64, EMB]
    assert not {t.name for t in res.model.graph.initializer} & set(vi)
