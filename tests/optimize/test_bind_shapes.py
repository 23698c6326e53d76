import numpy as np
import onnx
import pytest

from kopt.core.contract import default_style
from kopt.core.contract import test_tokens as sentence_tokens
from kopt.core.errors import ModelError, RecipeError
from kopt.core.passes import PassContext, get_pass, make_config
from kopt.core.recipe import one_variant
from kopt.core.runner import Runner
from tests.graphs import FRAME, duration_kokoro_model, run_outputs, tiny_kokoro_model


def _apply(tmp_path, model, **cfg):
    cls = get_pass("bind-shapes")
    res = cls(make_config(cls, cfg)).run(model, PassContext(workdir=tmp_path))
    out = tmp_path / f"bound-{cfg.get('bucket')}.onnx"
    onnx.save(res.model, str(out))
    return out, res


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
    assert res.report["masked"] == {"softmax": 1, "conv": 1, "lstm": 1, "durations": 2}
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
    m = cls().run(onnx.load(str(out)), PassContext(workdir=tmp_path)).model
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
