"""fetch, contract check and reference on the real embedded Kokoro model."""

import onnx
import pytest

from kopt.core.contract import check_model
from kopt.source.fetch import EMBEDDED_SHA256, fetch
from kopt.source.reference import reference

pytestmark = pytest.mark.slow


def test_embedded_fetch_is_verified_and_cached(real_store):
    store, base, _ = real_store
    assert base.sha256("model.onnx") == EMBEDDED_SHA256
    ex = base.record["extra"]
    assert ex["precision"] == "int8"
    assert ex["voices"] == ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    assert ex["contract"]["signature"]["tokens"] == "tokens"
    assert ex["contract"]["audio"]["seconds"] > 1.0
    again = fetch(store)
    assert again.cached and again.artifact.key == base.key


def test_fp32_reference_from_int8(real_store):
    store, base, ref = real_store
    ex = ref.record["extra"]
    assert ex["dequantize"]["rewritten"] == {"MatMulInteger": 148, "ConvInteger": 87,
                                             "DynamicQuantizeLSTM": 6, "DequantizeLinear": 4}
    assert 80e6 < ex["parameters"]["float32"] < 83e6  # ~82M float parameters
    size = ref.files["model.onnx"]["size"]
    assert 315e6 < size < 335e6  # ~325 MB
    onnx.checker.check_model(str(ref.file("model.onnx")))
    ops = {n.op_type for n in onnx.load(str(ref.file("model.onnx")), load_external_data=False).graph.node}
    assert not ops & {"MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "DynamicQuantizeLinear"}
    # int8 and fp32 stay close on the same tokens (natural audio; measured 3.24 on this model)
    assert ex["compare_int8"]["pesq_wb_natural"] > 2.8
    rep = check_model(ref.file("model.onnx"))
    assert rep.audio.seconds > 1.0
    assert reference(store, base).cached
