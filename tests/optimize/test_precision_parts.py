"""precision_parts on a tiny graph named as Kokoro's: which nodes each part holds, what crosses
between them, and the parts run in turn giving the whole model's audio."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from kopt.core.errors import ModelError
from kopt.optimize.precision_parts import PARTS, save, split
from tests.graphs import tiny_kokoro
from tests.stream_graphs import STYLE, parts_kokoro_model

G = "/decoder/decoder/generator/"


def _ops(parts, name):
    return [(n.op_type, n.name) for n in parts.models[name].graph]


def test_each_part_holds_its_nodes_and_reads_only_what_it_needs():
    p = split(parts_kokoro_model())
    assert [n for _, n in _ops(p, "front")] == ["/encoder/Gather", "/encoder/Split", "/encoder/Transpose",
                                                 "/encoder/Reshape", "/encoder/Reshape_1"]
    assert [n for _, n in _ops(p, "decoder")] == [
        "/decoder/decoder/Unsqueeze", "/decoder/decoder/Unsqueeze_1", "/decoder/decoder/encode/conv1/Conv",
        "/decoder/decoder/N_conv/ReduceMean", "/decoder/decoder/decode.0/conv1/Conv",
        "/decoder/decoder/decode.0/Add", "/decoder/Slice"]
    assert _ops(p, "source") == [("Identity", G + "f0_upsamp/Identity"), ("CumSum", G + "m_source/l_sin_gen/CumSum"),
                                 ("Mul", G + "m_source/l_sin_gen/Mul"), ("Sin", G + "m_source/l_sin_gen/Sin"),
                                 ("Atan", G + "Atan"), ("Concat", G + "Concat_3")]
    assert [t for t, _ in _ops(p, "body")] == ["Conv", "MatMul", "Unsqueeze", "LeakyRelu", "Add", "Mul", "LeakyRelu"]
    assert [t for t, _ in _ops(p, "tail")] == ["Conv", "Tanh", "Transpose", "Reshape"]
    assert set(p.carries) == {"x", "f0u", "s"}
    assert p.inputs("front") == ["tokens", "style", "speed"]
    assert p.inputs("decoder") == ["/encoder/Transpose_output_0", "/encoder/Reshape_output_0",
                                   "/encoder/Reshape_1_output_0", "style"]
    assert p.inputs("source") == ["f0u"] and p.outputs("source") == ["har"]
    assert sorted(p.inputs("body")) == ["har", "s", "x"] and p.outputs("body") == ["lr"]
    assert p.inputs("tail") == ["lr"] and p.outputs("tail") == ["audio"]


def test_the_parts_in_turn_give_the_whole_models_audio(tmp_path):
    model = parts_kokoro_model()
    paths = save(split(model), tmp_path / "parts")
    layout = json.loads(paths["layout"].read_text())
    assert list(layout["parts"]) == list(PARTS) and layout["boundaries"]["harmonic"] == "har"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    whole = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    sessions = {k: ort.InferenceSession(str(paths[k]), opts, providers=["CPUExecutionProvider"]) for k in PARTS}
    rng = np.random.default_rng(3)
    for t in (3, 11):
        feeds = {"tokens": rng.integers(0, 20, (1, t)).astype(np.int64),
                 "style": rng.standard_normal((1, STYLE)).astype(np.float32), "speed": np.ones(1, np.float32)}
        env = dict(feeds)
        for k in PARTS:
            spec = layout["parts"][k]
            env.update(zip(spec["outputs"], sessions[k].run(None, {i: env[i] for i in spec["inputs"]})))
        np.testing.assert_array_equal(env["audio"], whole.run(None, feeds)[0])
        assert env["audio"].shape == (2 * t,)


def test_a_graph_without_kokoros_generator_is_refused(tmp_path):
    import onnx

    with pytest.raises(ModelError, match="not a Kokoro"):
        split(onnx.load(str(tiny_kokoro(tmp_path / "tiny.onnx"))), "tiny")


@pytest.mark.slow
def test_the_real_models_parts_give_its_audio_bit_for_bit(real_store, tmp_path):
    """On the real fp32 reference with its STFT as a Conv: five parts with the node counts of
    Kokoro's sections, and run in turn (optimizations off) exactly the whole model's audio."""
    import onnx

    from kopt.core.recipe import one_variant
    from kopt.core.runner import Runner

    st, _, ref = real_store
    res = Runner(st).run(one_variant(ref.key, [("stft-conv", {})], name="stft-conv"))[0]
    assert res.status in ("ok", "cached"), res.reason
    model = onnx.load(res.model_path)
    parts = split(model, "stft-conv")
    sizes = {k: len(parts.models[k].graph) for k in PARTS}
    assert sizes["body"] > sizes["front"] / 2 and sizes["source"] < 100 and sizes["tail"] < 100, sizes
    paths = save(parts, tmp_path / "parts")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 2
    sessions = {k: ort.InferenceSession(str(paths[k]), opts, providers=["CPUExecutionProvider"]) for k in PARTS}
    whole = ort.InferenceSession(res.model_path, opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"tokens": np.array([[0, *rng.integers(1, 170, 30), 0]], np.int64),
             "style": (rng.standard_normal((1, 256)) * 0.1).astype(np.float32), "speed": np.ones(1, np.float32)}
    env = dict(feeds)
    for k in PARTS:
        env.update(zip(parts.outputs(k), sessions[k].run(None, {i: env[i] for i in parts.inputs(k)})))
    np.testing.assert_array_equal(env["audio"], whole.run(None, feeds)[0])
