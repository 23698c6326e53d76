import numpy as np
import onnx
import pytest

from kopt.core.contract import check_model, default_style
from kopt.core.contract import test_tokens as sentence_tokens
from kopt.core.errors import ModelError
from kopt.core.passes import PassContext, get_pass, make_config
from tests.graphs import duration_kokoro_model, run_outputs, tiny_kokoro_model


def _apply(tmp_path, model, **cfg):
    cls = get_pass("durations")
    res = cls(make_config(cls, cfg)).apply(model, PassContext(workdir=tmp_path))
    out = tmp_path / f"durations-{cfg.get('accept_input', False)}.onnx"
    onnx.save(res.model, str(out))
    return out


def _feeds(tokens):
    return {"tokens": tokens.reshape(1, -1), "style": default_style().reshape(1, 256),
            "speed": np.array([1.0], np.float32)}


def test_durations_output(tmp_path):
    src = tmp_path / "in.onnx"
    onnx.save(duration_kokoro_model(), str(src))
    out = _apply(tmp_path, duration_kokoro_model())
    m = onnx.load(str(out))
    assert [o.name for o in m.graph.output] == ["audio", "durations"]
    assert m.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    tok = sentence_tokens()
    ref = run_outputs(src, _feeds(tok))["audio"]
    got = run_outputs(out, _feeds(tok))
    np.testing.assert_array_equal(got["audio"], ref)  # audio untouched, bit for bit
    d = got["durations"]
    assert d.shape == (tok.size,) and d.dtype == np.int64 and d.min() >= 1
    from tests.graphs import FRAME
    assert int(d.sum()) * FRAME == ref.size  # frames per token, as used for expansion


def test_durations_input_replaces_predictions(tmp_path):
    out = _apply(tmp_path, duration_kokoro_model(), accept_input=True)
    m = onnx.load(str(out))
    assert "durations" in [i.name for i in m.graph.input]
    assert ops_of(m).count("Round") == 1
    tok = sentence_tokens()
    own = run_outputs(_apply(tmp_path, duration_kokoro_model()), _feeds(tok))
    # empty input -> the model's own durations: same audio as the plain model
    empty = run_outputs(out, {**_feeds(tok), "durations": np.zeros(0, np.int64)})
    np.testing.assert_array_equal(empty["audio"], own["audio"])
    # fed durations are used for expansion: one more frame on token 3 -> one frame more audio
    fed = own["durations"].copy()
    fed[3] += 1
    got = run_outputs(out, {**_feeds(tok), "durations": fed})
    from tests.graphs import FRAME
    assert got["audio"].size == own["audio"].size + FRAME
    np.testing.assert_array_equal(got["durations"], fed)  # the output echoes the input
    # zeros drop tokens entirely
    z = own["durations"].copy()
    z[5:] = 0
    assert run_outputs(out, {**_feeds(tok), "durations": z})["audio"].size == int(z.sum()) * FRAME


def ops_of(m):
    return [n.op_type for n in m.graph.node]


def test_contract_accepts_the_durations_input(tmp_path):
    out = _apply(tmp_path, duration_kokoro_model(), accept_input=True)
    rep = check_model(out)
    assert "durations" in rep.signature.extra_inputs and rep.audio.samples > 0


def test_no_duration_chain_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="duration chain"):
        _apply(tmp_path, tiny_kokoro_model())


def test_applying_twice_is_refused(tmp_path):
    m = duration_kokoro_model()
    cls = get_pass("durations")
    m = cls().apply(m, PassContext(workdir=tmp_path)).model
    with pytest.raises(ModelError, match="already has"):
        cls().apply(m, PassContext(workdir=tmp_path))


@pytest.mark.parametrize("accept_input", [False, True])
def test_input_model_untouched_and_no_value_info_for_initializers(tmp_path, accept_input):
    m = duration_kokoro_model()
    before = m.SerializeToString()
    cls = get_pass("durations")
    out = cls(make_config(cls, {"accept_input": accept_input})).apply(m, PassContext(workdir=tmp_path)).model
    assert m.SerializeToString() == before
    assert not {t.name for t in out.graph.initializer} & {v.name for v in out.graph.value_info}


def test_accepting_durations_that_are_a_graph_output_is_refused(tmp_path):
    m = duration_kokoro_model()
    m.graph.output.append(onnx.helper.make_tensor_value_info("dur", onnx.TensorProto.INT64, None))
    with pytest.raises(ModelError, match="'dur' is a graph output; cannot rewire it"):
        _apply(tmp_path, m, accept_input=True)


def test_duration_chain_problem(tmp_path):
    from kopt.optimize.durations import duration_chain_problem

    ok, bad = tmp_path / "ok.onnx", tmp_path / "bad.onnx"
    onnx.save(duration_kokoro_model(), str(ok))
    onnx.save(tiny_kokoro_model(), str(bad))
    assert duration_chain_problem(ok) is None
    assert "cannot find Kokoro's duration chain" in duration_chain_problem(bad)


@pytest.mark.parametrize("accept_input", [False, True])
def test_a_published_model_with_timings_can_be_scored_aligned(tmp_path, accept_input):
    """A bundle's model carries the timings pass's `duration` output; kopt quality instruments it
    again (predicted durations, then accept_input): two passes of this module on one graph. Before the
    onnx-ir port both named a node kopt/durations/Identity and onnxruntime refused the model."""
    cls = get_pass("timings")
    timed = cls(make_config(cls, {})).apply(duration_kokoro_model(), PassContext(workdir=tmp_path)).model
    out = _apply(tmp_path, timed, accept_input=accept_input)
    m = onnx.load(str(out))
    names = [n.name for n in m.graph.node if n.name]
    assert len(names) == len(set(names))
    tok = sentence_tokens()
    own = run_outputs(_apply(tmp_path, duration_kokoro_model()), _feeds(tok))
    feeds = {**_feeds(tok), "durations": own["durations"]} if accept_input else _feeds(tok)
    got = run_outputs(out, feeds)
    np.testing.assert_array_equal(got["audio"], own["audio"])
    np.testing.assert_array_equal(got["durations"], own["durations"])
