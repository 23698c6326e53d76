import numpy as np
import onnx
import pytest

from kopt.core.contract import check_audio, check_model, signature
from kopt.core.errors import ModelError
from tests.graphs import tiny_kokoro, tiny_kokoro_model, wrong_inputs_model


def test_tiny_model_meets_contract(tiny_model):
    rep = check_model(tiny_model)
    assert rep.signature.tokens == "tokens" and rep.signature.speed_dtype == "float32"
    assert rep.audio.samples > 0 and 0 < rep.audio.peak < 1


@pytest.mark.parametrize("token_name,speed_dtype", [("input_ids", "float32"), ("tokens", "int32")])
def test_signature_variants_accepted(tmp_path, token_name, speed_dtype):
    p = tiny_kokoro(tmp_path / "m.onnx", token_name=token_name, speed_dtype=speed_dtype)
    rep = check_model(p)
    assert rep.signature.tokens == token_name and rep.signature.speed_dtype == speed_dtype


def test_truncated_file(tmp_path, tiny_model):
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(tiny_model.read_bytes()[:3000])
    with pytest.raises(ModelError, match=r"trunc\.onnx: not a readable ONNX model \(truncated or corrupt"):
        check_model(bad)


def test_text_file_named_onnx(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("these are my notes, not a model\n")
    with pytest.raises(ModelError, match=r"notes\.onnx: not an ONNX model \(it is a text file\)"):
        check_model(bad)


def test_missing_and_empty(tmp_path):
    with pytest.raises(ModelError, match="file not found"):
        check_model(tmp_path / "nope.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="file is empty"):
        check_model(tmp_path / "empty.onnx")


def test_wrong_inputs(tmp_path):
    p = tmp_path / "image.onnx"
    onnx.save(wrong_inputs_model(), str(p))
    with pytest.raises(ModelError, match=r"image\.onnx: not a Kokoro graph: no token input named 'tokens' or 'input_ids'"):
        check_model(p)


def test_wrong_token_dtype():
    m = tiny_kokoro_model()
    m.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT32
    with pytest.raises(ModelError, match="must be int64"):
        signature(m, "x.onnx")


def test_audio_guards():
    ok = np.sin(np.linspace(0, 100, 24000)).astype(np.float32) * 0.5
    assert check_audio(ok, 20, "m").peak == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(ModelError, match="non-finite"):
        check_audio(np.array([0.1, np.nan, 0.2], np.float32), 5, "m")
    with pytest.raises(ModelError, match="silent"):
        check_audio(np.zeros(24000, np.float32), 5, "m")
    with pytest.raises(ModelError, match="clipped"):
        check_audio(np.sign(ok), 20, "m")
    with pytest.raises(ModelError, match="length blow-up"):
        check_audio(np.tile(ok, 10), 2, "m")
