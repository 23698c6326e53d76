"""Quantization passes on the tiny Kokoro-signature graph (nodes renamed to Kokoro module paths).

Tolerances are max |audio diff| against the float graph on the medium check sentence; the tiny
graph's audio peaks near 0.33, so 1e-3 (fp16), 0.05 (int8) and 0.1 (int4 blocks of 32) are tight
enough that a wrong scale, a lost bias or a dropped node fails them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from kopt.core.errors import KoptError
from kopt.core.model import op_histogram
from kopt.core.passes import PassContext, get_pass, make_config
from kopt.quantize.checkset import check_set
from tests.graphs import run

TOL = {"fp16": 1e-3, "int8-dynamic": 0.05, "int8-static": 0.05, "hybrid": 0.05, "int4": 0.1}


def _apply(name: str, cfg: dict, src: Path, tmp_path: Path, tag: str = "") -> tuple[onnx.ModelProto, dict, Path]:
    cls = get_pass(name)
    wd = tmp_path / f"work-{name}{tag}"
    wd.mkdir()
    res = cls(make_config(cls, cfg)).apply(onnx.load(str(src)), PassContext(workdir=wd, input_path=src))
    out = tmp_path / f"{name}{tag}.onnx"
    onnx.save(res.model, str(out))
    return res.model, res.report, out


def _diff(a: Path, b: Path) -> float:
    u = check_set(None, names=["medium"])[0]
    return float(np.max(np.abs(run(a, u.tokens, u.style) - run(b, u.tokens, u.style))))


def _weight_dtype(model: onnx.ModelProto, node_name: str, idx: int) -> int:
    inits = {t.name: t for t in model.graph.initializer}
    prod = {o: n for n in model.graph.node for o in n.output}
    n = next(x for x in model.graph.node if x.name == node_name)
    w = n.input[idx]
    while w in prod and prod[w].op_type in ("Cast", "DequantizeLinear"):
        if prod[w].op_type == "DequantizeLinear":
            return inits[prod[w].input[0]].data_type
        w = prod[w].input[0]
    return inits[w].data_type


def test_fp16_converts_and_keeps_islands(named_path, tmp_path):
    m, rep, out = _apply("fp16", {}, named_path, tmp_path)
    ops = op_histogram(m)
    assert ops.get("Cast", 0) >= 2  # fp32 I/O at the edges
    assert _weight_dtype(m, "/decoder/decoder/decode.1/conv1/Conv", 1) == onnx.TensorProto.FLOAT16
    # the predictor is an fp32 island by default
    assert _weight_dtype(m, "/encoder/predictor/text_encoder/lstms.0/LSTM", 1) == onnx.TensorProto.FLOAT
    assert m.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert rep["precision_by_group"]["decoder.decode"] == {"fp16": 2}
    assert set(rep["guard"]) == {"short", "medium", "long"}
    assert _diff(named_path, out) < TOL["fp16"]


def _nan_model(tmp_path) -> Path:
    """The tiny graph with sqrt(audio - 1) at the end: NaN wherever |audio| < 1, i.e. everywhere.
    (Overflow cannot be provoked portably: onnxruntime's CPU EP upcasts fp16 element-wise ops.)"""
    from tests.graphs import tiny_kokoro_model
    from tests.quantize.conftest import kokoro_named

    m = kokoro_named(tiny_kokoro_model())
    m.graph.node[-1].output[0] = "pre"
    m.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "one"))
    m.graph.node.extend([
        onnx.helper.make_node("Sub", ["pre", "one"], ["pre1"], name="/decoder/decoder/generator/conv_post/Sub"),
        onnx.helper.make_node("Sqrt", ["pre1"], ["audio"], name="/decoder/decoder/generator/conv_post/Sqrt"),
    ])
    src = tmp_path / "nan.onnx"
    onnx.save(m, str(src))
    return src


def test_guard_rejects_non_finite_audio(tmp_path):
    from kopt.quantize.checkset import guard_finite

    src = _nan_model(tmp_path)
    with pytest.raises(KoptError, match="non-finite audio on the short check sentence"):
        guard_finite(src, check_set(None))


@pytest.mark.parametrize("name", ["fp16", "int8-dynamic", "int4"])
def test_passes_reject_non_finite_audio(name, tmp_path):
    src = _nan_model(tmp_path)
    with pytest.raises(KoptError, match="rejected: non-finite audio"):
        _apply(name, {}, src, tmp_path)


def test_int8_dynamic_ops_and_tolerance(named_path, tmp_path):
    m, rep, out = _apply("int8-dynamic", {}, named_path, tmp_path)
    ops = op_histogram(m)
    assert ops.get("ConvInteger") == 1 and ops.get("MatMulInteger") == 1
    assert ops.get("com.microsoft.DynamicQuantizeLSTM") == 1
    assert "Conv" not in ops and "LSTM" not in ops
    assert _diff(named_path, out) < TOL["int8-dynamic"]


def test_int8_dynamic_honours_exclusions_and_lstm_flag(named_path, tmp_path):
    m, rep, _ = _apply("int8-dynamic", {"include_lstm": False, "exclude": ["decoder.decode.1"]}, named_path, tmp_path)
    ops = op_histogram(m)
    assert ops.get("LSTM") == 1 and "com.microsoft.DynamicQuantizeLSTM" not in ops
    assert ops.get("Conv") == 1 and "ConvInteger" not in ops  # the excluded conv stays float
    assert ops.get("MatMulInteger") == 1


def test_int8_static_qdq_tolerance_and_exclusions(named_path, tmp_path):
    m, rep, out = _apply("int8-static", {"calib_sentences": 4, "exclude": []}, named_path, tmp_path)
    ops = op_histogram(m)
    assert ops.get("QuantizeLinear", 0) >= 3 and ops.get("DequantizeLinear", 0) >= 6
    assert rep["precision_by_group"]["generator.ups"] == {"int8": 1}
    assert _diff(named_path, out) < TOL["int8-static"]
    m2, rep2, _ = _apply("int8-static", {"calib_sentences": 4, "exclude": ["generator", "op:MatMul"]},
                         named_path, tmp_path, "-ex")
    assert rep2["precision_by_group"]["generator.ups"] == {"fp32": 1}
    assert _weight_dtype(m2, "/decoder/decoder/decode.0/norm1/fc/MatMul", 1) == onnx.TensorProto.FLOAT
    assert _weight_dtype(m2, "/decoder/decoder/decode.1/conv1/Conv", 1) == onnx.TensorProto.INT8


def test_int8_static_calibration_is_deterministic_and_cached(named_path, tmp_path):
    cache = tmp_path / "ranges.json"
    cfg = {"calib_sentences": 3, "calib_seed": 7, "calibration_cache": str(cache)}
    m1, r1, _ = _apply("int8-static", cfg, named_path, tmp_path, "-a")
    assert cache.is_file() and r1["calibration"]["cache_hit"] is False
    first_cache = cache.read_text()
    cache.unlink()
    m2, r2, _ = _apply("int8-static", cfg, named_path, tmp_path, "-b")
    assert cache.read_text() == first_cache  # same seed, same ranges
    m3, r3, _ = _apply("int8-static", cfg, named_path, tmp_path, "-c")
    assert r3["calibration"]["cache_hit"] is True
    inits = lambda m: {t.name: numpy_helper.to_array(t).tobytes() for t in m.graph.initializer}  # noqa: E731
    assert inits(m1) == inits(m2) == inits(m3)


def test_calibration_set_seeded():
    from kopt.quantize.calibration import CalibSpec, calibration_set
    from tests.graphs import tiny_voices

    vs = tiny_voices(3)
    a = calibration_set(vs, CalibSpec(sentences=8, seed=1))
    b = calibration_set(vs, CalibSpec(sentences=8, seed=1))
    c = calibration_set(vs, CalibSpec(sentences=8, seed=2))
    key = lambda us: [(u.tokens.tobytes(), u.voice, u.speed) for u in us]  # noqa: E731
    assert key(a) == key(b) != key(c)
    assert all(0.9 <= u.speed <= 1.2 and len(u.tokens) <= 96 for u in a)
    assert len({u.voice for u in a}) > 1
    with pytest.raises(KoptError, match=r"calib_sentences=1000: use 1 to \d+ \(the sentences in"):
        calibration_set(vs, CalibSpec(sentences=1000))


def test_hybrid_applies_precision_map(named_path, tmp_path):
    cfg = {"precision": {"generator": "int8", "decoder.decode": "fp16"}, "calib_sentences": 3}
    m, rep, out = _apply("hybrid", cfg, named_path, tmp_path)
    pg = rep["precision_by_group"]
    assert pg["generator.ups"] == {"int8": 1}
    assert pg["decoder.decode"] == {"fp16": 2}
    assert pg["predictor.text_encoder"] == {"fp32": 1}
    assert _diff(named_path, out) < TOL["hybrid"]


@pytest.mark.parametrize("reduce_range,wmax", [(False, 127), (True, 64)])
def test_hybrid_int8_weights_take_reduce_range(named_path, tmp_path, reduce_range, wmax):
    """reduce_range reaches the int8 groups (balanced or not): weights within onnxruntime's reduced range
    (|q| <= 64, so 2 x 255 x 64 fits AVX2's 16-bit sums), for CPUs without VNNI."""
    cfg = {"precision": {"generator": "int8"}, "calib_sentences": 3, "reduce_range": reduce_range}
    m, _, out = _apply("hybrid", cfg, named_path, tmp_path, tag=str(reduce_range))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    weights = [inits[n.input[0]] for n in m.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].dtype == np.int8]
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) == wmax
    assert _diff(named_path, out) < TOL["hybrid"]


def test_hybrid_most_specific_key_wins(named_model):
    from kopt.quantize.hybrid import resolve

    p = resolve(named_model, {"decoder": "fp16", "decoder.decode.1": "int8", "op:MatMul": "fp32"}, "fp32")
    assert p["/decoder/decoder/decode.1/conv1/Conv"] == "int8"
    assert p["/decoder/decoder/decode.0/Add"] == "fp16"
    assert p["/decoder/decoder/decode.0/norm1/fc/MatMul"] == "fp32"
    assert p["/encoder/predictor/text_encoder/lstms.0/LSTM"] == "fp32"


def test_int4_covers_matmul_and_gather_only(named_path, tmp_path):
    m, rep, out = _apply("int4", {"op_types": ["MatMul", "Gather"], "exclude": []}, named_path, tmp_path)
    ops = op_histogram(m)
    assert ops.get("com.microsoft.MatMulNBits") == 1 and ops.get("com.microsoft.GatherBlockQuantized") == 1
    assert ops.get("Conv") == 1 and ops.get("ConvTranspose") == 1  # Conv weights untouched
    assert _diff(named_path, out) < TOL["int4"]


def test_int4_rejects_bad_config(named_path, tmp_path):
    with pytest.raises(KoptError, match="power of 2"):
        _apply("int4", {"block_size": 24}, named_path, tmp_path)
    with pytest.raises(KoptError, match="MatMul and Gather only"):
        _apply("int4", {"op_types": ["Conv"]}, named_path, tmp_path, "-b")


@pytest.mark.parametrize("algorithm", ["rtn", "hqq"])
def test_int4_algorithms_run_with_onnxruntimes_vendored_code(named_path, tmp_path, algorithm):
    # RTN/GPTQ are Intel Neural Compressor's algorithms vendored in onnxruntime.quantization:
    # they must work without the (ONNX-less) neural-compressor package.
    m, rep, out = _apply("int4", {"algorithm": algorithm, "exclude": []}, named_path, tmp_path, f"-{algorithm}")
    ops = {n.op_type for n in m.graph.node}
    assert "MatMulNBits" in ops and "MatMul" not in ops
    assert _diff(named_path, out) < TOL["int4"]
