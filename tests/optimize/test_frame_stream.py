"""frame_stream: Kokoro's graph cut into front, frame-stats and back, on tiny graphs (tests/stream_graphs.py).

Every model runs in onnxruntime at ORT_DISABLE_ALL on CPU. Tolerances: the split is exact (the same
nodes run on the same values: 0.0); a norm fed its own statistics differs by float rounding of the
statistics' summation (numpy vs onnxruntime: atol 1e-6 on values of order 1); a CumSum carried
over windows adds the offset after summing the window, another summation order (atol 1e-5 on
phases below 10).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from kopt.core.errors import ModelError
from kopt.core.graph import infer_shapes, to_proto
from kopt.optimize import frame_stream as fs
from tests import stream_graphs as sg


def _session(model: onnx.ModelProto | ir.Model, path: Path) -> ort.InferenceSession:
    onnx.save(to_proto(model) if isinstance(model, ir.Model) else model, str(path))
    onnx.checker.check_model(str(path))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _run(sess: ort.InferenceSession, feeds: dict) -> dict[str, np.ndarray]:
    names = {i.name for i in sess.get_inputs()}
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {k: v for k, v in feeds.items() if k in names})))


def _ops(m: ir.Model) -> list[str]:
    return [n.op_type for n in m.graph]


FRONT_OPS = ["Gather", "Split", "Transpose", "Reshape", "Reshape"]


def test_front_then_back_equals_the_whole(tmp_path):
    model = sg.split_kokoro_model()
    shapes = infer_shapes(model)
    front = fs.front_graph(model, shapes)
    back, norms, _ = fs.cut_back(model, shapes)
    back = fs.finish(back, "back")
    assert _ops(front) == FRONT_OPS
    assert [v.name for v in front.graph.outputs] == ["asr", "f0", "n"]
    assert _ops(back) == ["Unsqueeze", "Unsqueeze", "Sub", "Conv", "MatMul", "Add", "Reshape", "Transpose", "Reshape",
                          "Add"]
    assert [v.name for v in back.graph.inputs] == ["asr", "f0", "n", "style"] and norms == []
    feeds = sg.feeds(7)
    whole = _run(_session(model, tmp_path / "m.onnx"), feeds)["audio"]
    feats = _run(_session(front, tmp_path / "front.onnx"), feeds)
    assert feats["asr"].shape == (1, sg.C, 7) and feats["f0"].shape == feats["n"].shape == (1, 14)
    split = _run(_session(back, tmp_path / "back.onnx"), {**feats, "style": feeds["style"]})["audio"]
    assert whole.shape == split.shape == (14,)
    assert np.array_equal(whole, split)


def test_build_yields_the_three_graphs_with_exact_ops():
    graphs = fs.build(sg.stream_kokoro_model())
    assert _ops(graphs.front) == FRONT_OPS
    assert _ops(graphs.stats) == ["Conv", "ReduceMean", "Sub", "Mul", "ReduceMean"]
    assert [v.name for v in graphs.stats.graph.outputs] == ["norm0_mean", "norm0_var"]
    assert _ops(graphs.back) == [
        "Unsqueeze", "Unsqueeze", "Conv", "Sub", "Add", "Sqrt", "Div",            # encode norm: statistics fed
        "MatMul", "Unsqueeze", "Mul", "ConvTranspose", "Transpose", "Mul",
        "CumSum", "Add",                                                          # + phase_offset
        "Mul", "Sin", "Transpose", "Mul", "MatMul", "Reshape", "Add",
        "Sub", "Add", "Sqrt", "Div",                                              # generator norm: fed
        "Tanh", "Reshape",
        "Shape", "Shape", "Div", "Mul", "Sub", "Gather"]                          # phase_carry at carry_at
    assert [v.name for v in graphs.back.graph.inputs] == ["asr", "f0", "n", "style", "norm0_mean", "norm0_var",
                                                          "norm1_mean", "norm1_var", "phase_offset", "carry_at"]
    assert [v.name for v in graphs.back.graph.outputs] == ["audio", "phase_carry"]
    assert graphs.back.metadata_props == {"frame_stream.overlap": "16", "frame_stream.fed": "all"}
    assert {k: graphs.report[k] for k in ("norms", "frame_rate_norms", "fed_norms", "harmonics")} == \
        {"norms": 2, "frame_rate_norms": 1, "fed_norms": 2, "harmonics": sg.H}


def test_frame_rate_config_feeds_only_the_decoders_norms():
    cfg = fs.FrameStreamConfig(fed="frame-rate", overlap=8)
    back = fs.back_graph(sg.stream_kokoro_model(), cfg)
    assert [v.name for v in back.graph.inputs if v.name.startswith("norm")] == ["norm0_mean", "norm0_var"]
    assert _ops(back).count("ReduceMean") == 2  # the generator norm's own mean and variance stay
    assert back.metadata_props["frame_stream.overlap"] == "8"


def test_config_is_frozen_and_typed():
    cfg = fs.FrameStreamConfig()
    assert (cfg.overlap, cfg.fed) == (16, "all")
    with pytest.raises(ValidationError):
        fs.FrameStreamConfig(fed="generator")
    with pytest.raises(ValidationError):
        fs.FrameStreamConfig(window=40)
    with pytest.raises(ValidationError):
        cfg.overlap = 4


def _norm_model(c: int = 3) -> onnx.ModelProto:
    nodes: list = []
    inits: dict = {}
    out = sg._norm(nodes, inits, "x", "/decoder/encode/norm0")
    nodes.append(helper.make_node("Identity", [out], ["y"], name="/decoder/out/Identity"))
    g = helper.make_graph(nodes, "norm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, "T"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, "T"])],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m


def test_a_norm_fed_its_own_statistics_equals_the_unfed_one(tmp_path):
    model = _norm_model()
    fed = ir.serde.deserialize_model(model)
    norms = fs.find_norms(fed.graph)
    assert [(nm.index, nm.site, nm.frame_rate) for nm in norms] == [(0, "/decoder/encode/norm0/Sub", True)]
    added = fs.feed_stats(fed.graph, norms)
    assert [v.name for v in added] == ["norm0_mean", "norm0_var"]
    fs.finish(fed, "norm")
    assert _ops(fed) == ["Sub", "Add", "Sqrt", "Div", "Identity"]
    x = np.random.default_rng(0).standard_normal((1, 3, 50)).astype(np.float32) * 2 + 1
    ref = _run(_session(model, tmp_path / "n.onnx"), {"x": x})["y"]
    got = _run(_session(fed, tmp_path / "fed.onnx"), {"x": x, "norm0_mean": x.mean(axis=2, keepdims=True),
                                                       "norm0_var": x.var(axis=2, keepdims=True)})["y"]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    # the window's own statistics are not the sentence's: a half window fed the whole's differs
    half = _run(_session(model, tmp_path / "n.onnx"), {"x": x[:, :, :25]})["y"]
    assert np.max(np.abs(half - ref[:, :, :25])) > 1e-2


def _cumsum_model() -> onnx.ModelProto:
    g = helper.make_graph(
        [helper.make_node("CumSum", ["rad", "axis"], ["phase"], name="/decoder/source/CumSum"),
         helper.make_node("Identity", ["phase"], ["out"], name="/decoder/out/Identity")], "cumsum",
        [helper.make_tensor_value_info("asr", TensorProto.FLOAT, [1, 1, "T"]),
         helper.make_tensor_value_info("rad", TensorProto.FLOAT, [1, "R", sg.H])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, "R", sg.H])],
        [numpy_helper.from_array(np.array(1, np.int64), "axis")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m


@pytest.mark.parametrize("split,next_start", [(9, 9), (9, 5)])  # abutting windows, and 4 frames of overlap
def test_a_cumsum_carried_over_two_windows_equals_the_whole(tmp_path, split, next_start):
    model = _cumsum_model()
    m = ir.serde.deserialize_model(model)
    asr = next(v for v in m.graph.inputs if v.name == "asr")
    carry = fs.carry_phase(m.graph, asr, infer_shapes(model))
    m.graph.outputs.append(carry)
    fs.finish(m, "cumsum")
    assert _ops(m) == ["CumSum", "Add", "Identity", "Shape", "Shape", "Div", "Mul", "Sub", "Gather"]
    frames = 16
    rad = np.random.default_rng(2).uniform(0, 0.3, (1, 2 * frames, sg.H)).astype(np.float32)
    sess = _session(m, tmp_path / "c.onnx")
    whole = np.cumsum(rad, axis=1)

    def window(a, b, offset, carry_at):
        return _run(sess, {"asr": np.zeros((1, 1, b - a), np.float32), "rad": rad[:, 2 * a:2 * b],
                           "phase_offset": offset, "carry_at": np.array([carry_at], np.int64)})

    first = window(0, split, np.zeros((1, 1, sg.H), np.float32), next_start)
    assert first["phase_carry"].shape == (1, 1, sg.H)
    np.testing.assert_allclose(first["phase_carry"], whole[:, 2 * next_start - 1:2 * next_start], atol=1e-5)
    second = window(next_start, frames, first["phase_carry"], frames - next_start)
    np.testing.assert_allclose(second["out"], whole[:, 2 * next_start:], rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([first["out"][:, :2 * next_start], second["out"]], axis=1), whole,
                               rtol=0, atol=1e-5)
    # without the carry, the second window restarts its phase at zero
    restart = window(next_start, frames, np.zeros((1, 1, sg.H), np.float32), 1)
    assert np.max(np.abs(restart["out"] - whole[:, 2 * next_start:])) > 0.5


def test_a_graph_without_the_decoders_inputs_is_refused_by_name():
    from tests.graphs import tiny_kokoro_model

    with pytest.raises(ModelError, match="no asr, f0, n among the decoder's reads"):
        fs.build(tiny_kokoro_model())
    # a decoder that reads asr but no F0/N curves names just those
    model = sg.split_kokoro_model()
    for node in model.graph.node:
        if node.name.startswith("/decoder/Unsqueeze"):
            node.name = node.name.replace("Unsqueeze", "Expand_dims")
    with pytest.raises(ModelError, match=r"no f0, n among"):
        fs.front_graph(model)


def test_a_back_without_the_harmonic_cumsum_is_refused():
    with pytest.raises(ModelError, match="0 CumSum nodes"):
        fs.back_graph(sg.split_kokoro_model())


def test_pool_stats_is_the_frame_weighted_mean_and_variance():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((1, 2, t)).astype(np.float32) * (1 + t / 10) + t / 5 for t in (10, 30, 5)]
    runs = [(x.shape[2], {"norm3_mean": x.mean(axis=2, keepdims=True), "norm3_var": x.var(axis=2, keepdims=True)})
            for x in xs]
    pooled = fs.pool_stats(runs)
    allx = np.concatenate(xs, axis=2)
    np.testing.assert_allclose(pooled["norm3_mean"], allx.mean(axis=2, keepdims=True), rtol=0, atol=1e-5)
    np.testing.assert_allclose(pooled["norm3_var"], allx.var(axis=2, keepdims=True), rtol=1e-5, atol=1e-5)
    assert pooled["norm3_var"].dtype == np.float32
    with pytest.raises(ValueError, match="no calibration runs"):
        fs.pool_stats([])


def test_calibrate_gives_the_generators_statistics_pooled(tmp_path):
    model = sg.stream_kokoro_model()
    graphs = fs.build(model)
    front = _session(graphs.front, tmp_path / "front.onnx")
    calib = _session(fs.stats_graph(model, "all"), tmp_path / "all.onnx")
    runs, per = [], []
    for n, seed in ((6, 1), (11, 2)):
        feeds = sg.feeds(n, seed)
        feats = {**_run(front, feeds), "style": feeds["style"]}
        runs.append(feats)
        per.append((n, _run(calib, feats)))
    got = fs.calibrate(model, runs)
    assert sorted(got) == ["norm1_mean", "norm1_var"]  # the generator's norm only
    want = fs.pool_stats([(t, {k: s[k] for k in got}) for t, s in per])
    for k in got:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6)


def test_save_writes_the_runtime_names(tmp_path):
    paths = fs.save(fs.build(sg.stream_kokoro_model()), tmp_path / "fs")
    assert sorted(p.name for p in paths.values()) == ["back.onnx", "front.onnx", "stats.onnx"]
    assert (tmp_path / "fs" / "report.json").is_file()


def test_frame_stream_is_no_registered_pass():
    from kopt.core.passes import registry

    assert "frame-stream" not in registry() and "frame_stream" not in registry()
