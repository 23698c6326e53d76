import numpy as np
import onnx
import pytest

from kopt.core.contract import default_style
from kopt.core.contract import test_tokens as sentence_tokens
from kopt.core.equivalence import model_io, session
from kopt.core.errors import RecipeError
from kopt.core.passes import PassContext, get_pass, make_config
from kopt.core.recipe import one_variant
from kopt.core.runner import Runner
from tests.graphs import run, tiny_kokoro_model


def test_ort_file_loads_without_optimization_and_matches(tmp_path):
    src = tmp_path / "in.onnx"
    onnx.save(tiny_kokoro_model(), str(src))
    cls = get_pass("ort-format")
    (tmp_path / "w").mkdir()
    res = cls(make_config(cls, {"level": "extended", "repeats": 1})).apply(
        onnx.load(str(src)), PassContext(workdir=tmp_path / "w", input_path=src))
    assert res.model is None and res.path.suffix == ".ort"
    assert res.path.read_bytes()[4:8] == b"ORTM"  # flatbuffer file identifier of the ORT format
    assert res.report["session_s_onnx_default"] > 0 and res.report["session_s_ort_disabled"] > 0
    sess = session(res.path, optimize=False)
    io_ = model_io(sess, res.path)
    tok, sty = sentence_tokens(), default_style()
    got = sess.run([io_.audio], io_.feeds(tok, sty))[0]
    want = session(src, optimize="extended").run(["audio"], io_.feeds(tok, sty))[0]
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    np.testing.assert_allclose(got, run(src, tok, sty), atol=1e-4, rtol=0)


def test_runner_checks_the_ort_output_and_refuses_passes_after_it(tmp_path, store):
    src = tmp_path / "in.onnx"
    onnx.save(tiny_kokoro_model(), str(src))
    ok = Runner(store).run(one_variant(str(src), [("ort-format", {"repeats": 0})]))[0]
    assert ok.status == "ok", ok.reason
    assert ok.model_path.endswith("model.ort")
    rec = store.get(ok.key).record
    assert rec["extra"]["contract"]["audio"]["samples"] > 0
    assert rec["extra"]["equivalence"]["reference_level"] == "extended"
    bad = Runner(store).run(one_variant(str(src), [("ort-format", {"repeats": 0}), ("fold", {})]))[0]
    assert bad.status == "failed" and "ort-format" in bad.reason and "last" in bad.reason


def test_bad_level_rejected():
    with pytest.raises(RecipeError, match="level"):
        make_config(get_pass("ort-format"), {"level": "max"})
