import numpy as np
import onnx
import pytest

from kopt.core.contract import default_style
from kopt.core.contract import test_tokens as sentence_tokens
from kopt.core.errors import RecipeError
from kopt.core.passes import get_pass, make_config
from tests.graphs import apply_pass, foldable_kokoro_model, run, tiny_kokoro_model


def _apply(tmp_path, model, **cfg):
    return apply_pass(tmp_path, "fold", model, **cfg)


@pytest.mark.parametrize("backend", ["onnxsim", "onnxslim"])
def test_fold_removes_constants_and_dead_nodes(tmp_path, backend):
    src, out, res = _apply(tmp_path, foldable_kokoro_model(), backend=backend)
    ops = sorted(n.op_type for n in onnx.load(str(out)).graph.node)
    # exactly the plain tiny graph's ops: the Constant/Mul/Relu additions are gone
    assert ops == sorted(n.op_type for n in tiny_kokoro_model().graph.node)
    tok, sty = sentence_tokens(), default_style()
    a, b = run(src, tok, sty), run(out, tok, sty)
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, atol=1e-6, rtol=0)  # folding computes the same float ops
    assert res.report["backend"] == backend


def test_fold_leaves_a_folded_graph_alone(tmp_path):
    m = tiny_kokoro_model()
    _, out, _ = _apply(tmp_path, m)
    assert sorted(n.op_type for n in onnx.load(str(out)).graph.node) == sorted(n.op_type for n in m.graph.node)


def test_fold_rejects_unknown_backend():
    with pytest.raises(RecipeError, match="backend"):
        make_config(get_pass("fold"), {"backend": "magic"})
