import numpy as np
import onnx
import pytest

from kopt.core.contract import default_style
from kopt.core.contract import test_tokens as sentence_tokens
from kopt.core.errors import RecipeError
from kopt.core.passes import get_pass, make_config
from tests.graphs import apply_pass, foldable_kokoro_model, run, tiny_kokoro_model


def _apply(tmp_path, model, **cfg):
    return apply_pass(tmp_path, "fuse", model, **cfg)


def _ops(path):
    return sorted(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                  for n in onnx.load(str(path)).graph.node)


def test_basic_folds_and_stays_standard_onnx(tmp_path):
    src, out, res = _apply(tmp_path, foldable_kokoro_model(), level="basic")
    # the constant Mul is folded away; ORT keeps the dead Relu (it only removes nodes it rewrites)
    assert _ops(out) == ['Add', 'Conv', 'ConvTranspose', 'Div', 'Gather', 'LSTM', 'LayerNormalization', 'MatMul',
                         'Mul', 'Relu', 'Reshape', 'Squeeze', 'Tanh', 'Tanh', 'Transpose', 'Transpose']
    assert res.report["portable"] is True
    tok, sty = sentence_tokens(), default_style()
    np.testing.assert_allclose(run(out, tok, sty), run(src, tok, sty), atol=1e-5, rtol=0)


def test_extended_uses_ort_contrib_ops(tmp_path):
    src, out, _ = _apply(tmp_path, tiny_kokoro_model(), level="extended")
    # Conv + Tanh fused into ORT's contrib FusedConv
    assert _ops(out) == ['Add', 'ConvTranspose', 'Div', 'Gather', 'LSTM', 'LayerNormalization', 'MatMul', 'Mul',
                         'Reshape', 'Squeeze', 'Tanh', 'Transpose', 'Transpose', 'com.microsoft.FusedConv']
    tok, sty = sentence_tokens(), default_style()
    np.testing.assert_allclose(run(out, tok, sty), run(src, tok, sty), atol=1e-5, rtol=0)


def test_all_is_marked_not_portable_and_keyed_by_cpu(tmp_path):
    cls = get_pass("fuse")
    assert "cpu" in cls(make_config(cls, {"level": "all"})).key_inputs()
    assert cls(make_config(cls, {"level": "extended"})).key_inputs() == {}
    _, _, res = _apply(tmp_path, tiny_kokoro_model(), level="all")
    assert res.report["portable"] is False


def test_unknown_level_is_rejected():
    with pytest.raises(RecipeError, match="level"):
        make_config(get_pass("fuse"), {"level": "turbo"})
