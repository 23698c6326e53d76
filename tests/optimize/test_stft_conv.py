"""stft-conv: ONNX STFT -> strided Conv over a DFT basis, on tiny hand-built graphs (and, slow, on the real model).

Each graph holds one STFT the way Kokoro's generator has it (Hann window of 20 as an input, hop 5,
a real [batch, N] signal), or a variant of it. Outputs are compared with ORT's own STFT kernel at
ORT_DISABLE_ALL within ATOL_ORT, and with a float64 numpy DFT within ATOL_EXACT: on N(0, 1)
signals the STFT values reach ~15, ORT's kernel is off by up to ~4e-5 and the Conv by ~1.5e-6,
while a wrong bin, sign, plane order or frame offset is off by O(1).
"""

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from kopt.core.errors import ModelError
from kopt.core.passes import get_pass
from kopt.optimize.stft_conv import rewrite_stft
from tests.graphs import apply_pass, run_outputs

N_FFT, HOP = 20, 5
ATOL_ORT = 1e-4
ATOL_EXACT = 1e-5
HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
NAME = "/decoder/decoder/generator/STFT"
RANKS = {"spec": 4, "re": 3, "im": 3, "wsum": 1, "dq": 4}  # graph outputs the tests use


def _model(signal_shape=(1, "N"), onesided=1, window=True, frame_length=True, step_input=False,
           window_input=False, extra_nodes=(), extra_inits=None, outputs=("spec",), n_fft=N_FFT,
           reflect_pad=0) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (extra_inits or {}).items()]
    if not step_input:
        inits.append(numpy_helper.from_array(np.array(HOP, np.int64), "step"))
    if window and not window_input:
        win = HANN if n_fft == N_FFT else np.hanning(n_fft).astype(np.float32)
        inits.append(numpy_helper.from_array(win, "window"))
    if frame_length:
        inits.append(numpy_helper.from_array(np.array(n_fft, np.int64), "flen"))
    stft = helper.make_node("STFT", ["signal", "step", "window" if window else "", "flen" if frame_length else ""],
                            ["spec"], name=NAME, onesided=onesided)
    nodes = [stft, *extra_nodes]
    if reflect_pad:  # as Kokoro: the STFT reads Pad(audio, reflect)
        inits.append(numpy_helper.from_array(np.array([0, reflect_pad, 0, reflect_pad], np.int64), "pads"))
        nodes.insert(0, helper.make_node("Pad", ["audio", "pads"], ["signal"], mode="reflect", name="/g/Pad"))
    inputs = [helper.make_tensor_value_info("audio" if reflect_pad else "signal", TensorProto.FLOAT,
                                            list(signal_shape))]
    if step_input:
        inputs.append(helper.make_tensor_value_info("step", TensorProto.INT64, []))
    if window_input:
        inputs.append(helper.make_tensor_value_info("window", TensorProto.FLOAT, [n_fft]))
    g = helper.make_graph(nodes, "stft_test", inputs,
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, [f"{o}{i}" for i in range(RANKS[o])])
                           for o in outputs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def _apply(tmp_path, model):
    src, out, res = apply_pass(tmp_path, "stft-conv", model)
    return src, out, res.report


def _ops(path):
    return sorted(n.op_type for n in onnx.load(str(path)).graph.node)


def _exact_stft(x: np.ndarray, window: np.ndarray, onesided: bool) -> np.ndarray:
    """float64 STFT of a real [batch, N] signal, as [batch, frames, bins, 2] (ONNX STFT's layout)."""
    n_fft = window.size
    frames = (x.shape[1] - n_fft) // HOP + 1
    idx = np.arange(frames)[:, None] * HOP + np.arange(n_fft)
    spec = np.fft.fft(x.astype(np.float64)[:, idx] * window.astype(np.float64), axis=-1)
    spec = spec[..., : n_fft // 2 + 1] if onesided else spec
    return np.stack([spec.real, spec.imag], axis=-1)


def _signal(batch, n, shape_kind, seed=0):
    x = np.random.default_rng(seed).standard_normal((batch, n)).astype(np.float32)
    return x, (x[..., None] if shape_kind == "bn1" else x)


@pytest.mark.parametrize("onesided", [1, 0])
@pytest.mark.parametrize("shape_kind", ["bn", "bn1"])  # [batch, N] (Kokoro, ORT accepts it) and [batch, N, 1]
def test_real_stft_becomes_conv(tmp_path, onesided, shape_kind):
    shape = (2, "N") if shape_kind == "bn" else (2, "N", 1)
    src, out, rep = _apply(tmp_path, _model(shape, onesided=onesided))
    assert _ops(out) == ["Conv", "Reshape", "Reshape", "Transpose"]
    bins = N_FFT // 2 + 1 if onesided else N_FFT
    assert rep["rewritten"] == 1 and rep["skipped"] == {} and rep["stft_requantized"] == 0
    assert rep["nodes"] == [{"node": NAME, "n_fft": N_FFT, "hop": HOP, "bins": bins, "onesided": bool(onesided)}]
    inits = {t.name for t in onnx.load(str(out)).graph.initializer}
    assert not {"step", "window", "flen"} & inits  # only the STFT read them
    for n in (20, 23, 24, 101, 1003):  # one frame; N - n_fft not a multiple of hop; several
        x, feed = _signal(2, n, shape_kind, seed=n)
        ref, got = run_outputs(src, {"signal": feed})["spec"], run_outputs(out, {"signal": feed})["spec"]
        assert got.shape == ref.shape == (2, (n - N_FFT) // HOP + 1, bins, 2)
        np.testing.assert_allclose(got, ref, atol=ATOL_ORT, rtol=0)
        np.testing.assert_allclose(got, _exact_stft(x, HANN, bool(onesided)), atol=ATOL_EXACT, rtol=0)


def test_frame_length_without_window_is_a_rectangular_window(tmp_path):
    src, out, rep = _apply(tmp_path, _model(window=False, n_fft=16))
    assert rep["rewritten"] == 1 and "STFT" not in _ops(out)
    x, feed = _signal(1, 203, "bn", seed=3)
    got = run_outputs(out, {"signal": feed})["spec"]
    np.testing.assert_allclose(got, run_outputs(src, {"signal": feed})["spec"], atol=ATOL_ORT, rtol=0)
    np.testing.assert_allclose(got, _exact_stft(x, np.ones(16), True), atol=ATOL_EXACT, rtol=0)


def test_dc_and_nyquist_imaginary_parts_are_signed_zeros(tmp_path):
    # exactly +FLT_MIN at DC and -FLT_MIN at Nyquist (see ZERO_SIGNS): a downstream atan2 gets
    # the reference's usual phase there, and 0/0 cannot happen
    _, out, _ = _apply(tmp_path, _model())
    _, feed = _signal(1, 500, "bn", seed=4)
    spec = run_outputs(out, {"signal": feed})["spec"]
    tiny = np.finfo(np.float32).tiny
    assert np.all(spec[0, :, 0, 1] == tiny) and np.all(spec[0, :, N_FFT // 2, 1] == -tiny)


def test_kokoro_chain_matches_at_every_ort_level(tmp_path):
    # Pad (reflect) -> STFT -> Transpose -> Gather real/imag, as Kokoro's generator; at ORT_ENABLE_ALL
    # onnxruntime folds the transposes and gathers of the rewritten graph into a Split
    extra = [
        helper.make_node("Transpose", ["spec"], ["spec_t"], perm=[0, 2, 1, 3], name="/g/Transpose_3"),
        helper.make_node("Gather", ["spec_t", "i0"], ["re"], axis=3, name="/g/Gather_4"),
        helper.make_node("Gather", ["spec_t", "i1"], ["im"], axis=3, name="/g/Gather_5"),
    ]
    m = _model(extra_nodes=extra, extra_inits={"i0": np.array(0, np.int64), "i1": np.array(1, np.int64)},
               outputs=("re", "im"), reflect_pad=10)
    src, out, rep = _apply(tmp_path, m)
    assert rep["rewritten"] == 1 and "STFT" not in _ops(out) and "Pad" in _ops(out)
    _, feed = _signal(1, 777, "bn", seed=5)
    ref = run_outputs(src, {"audio": feed})
    for disable in (True, False):
        got = run_outputs(out, {"audio": feed}, disable_opt=disable)
        for k in ("re", "im"):
            assert got[k].shape == ref[k].shape == (1, 11, (777 + 20 - N_FFT) // HOP + 1)
            np.testing.assert_allclose(got[k], ref[k], atol=ATOL_ORT, rtol=0)


def test_new_nodes_stay_in_the_stft_group(tmp_path):
    from kopt.quantize.groups import group_of

    _, out, _ = _apply(tmp_path, _model())
    names = [n.name for n in onnx.load(str(out)).graph.node]
    assert all(n.startswith("/decoder/decoder/generator/Stft") for n in names), names
    assert {group_of(n) for n in names} == {group_of(NAME)} == {"generator.istft"}


def _unchanged(tmp_path, model, reason):
    src, out, rep = _apply(tmp_path, model)
    assert _ops(out) == _ops(src) == ["STFT"]
    assert rep["rewritten"] == 0 and rep["stft_found"] == 1
    assert rep["skipped"] == {reason: 1}, rep["skipped"]
    return src, out


def test_non_constant_frame_step_is_left_alone(tmp_path):
    src, out = _unchanged(tmp_path, _model(step_input=True), "frame_step is not a constant integer")
    _, feed = _signal(1, 60, "bn")
    feeds = {"signal": feed, "step": np.array(HOP, np.int64)}
    np.testing.assert_array_equal(run_outputs(out, feeds)["spec"], run_outputs(src, feeds)["spec"])


def test_non_constant_window_is_left_alone(tmp_path):
    _unchanged(tmp_path, _model(window_input=True), "window is not a constant")


def test_complex_signal_is_left_alone(tmp_path):
    _unchanged(tmp_path, _model((1, "N", 2)), "complex signal ([batch, N, 2])")


def test_signal_of_unknown_layout_is_left_alone(tmp_path):
    _unchanged(tmp_path, _model((1, "N", "C")),
               "signal is not real [batch, N] or [batch, N, 1] (rank or last dim unknown)")


def test_shared_window_stays_for_its_other_reader(tmp_path):
    extra = [helper.make_node("ReduceSum", ["window"], ["wsum"], keepdims=1, name="/g/ReduceSum")]
    src, out, rep = _apply(tmp_path, _model(extra_nodes=extra, outputs=("spec", "wsum")))
    assert rep["rewritten"] == 1
    inits = {t.name for t in onnx.load(str(out)).graph.initializer}
    assert "window" in inits and "step" not in inits
    _, feed = _signal(1, 64, "bn")
    np.testing.assert_allclose(run_outputs(out, {"signal": feed})["wsum"], run_outputs(src, {"signal": feed})["wsum"])


def test_stft_feeding_a_quantizer_fails_with_advice(tmp_path):
    extra = [helper.make_node("QuantizeLinear", ["spec", "q_scale", "q_zp"], ["q"], name="/g/Q"),
             helper.make_node("DequantizeLinear", ["q", "q_scale", "q_zp"], ["dq"], name="/g/DQ")]
    m = _model(extra_nodes=extra, outputs=("dq",),
               extra_inits={"q_scale": np.array(0.05, np.float32), "q_zp": np.array(128, np.uint8)})
    with pytest.raises(ModelError, match="apply stft-conv to the float model"):
        _apply(tmp_path, m)
    rep = rewrite_stft(ir.serde.deserialize_model(m))  # the rewrite itself runs, and counts it
    assert rep["rewritten"] == rep["stft_requantized"] == 1


@pytest.mark.slow
def test_stft_conv_real(real_store):
    """On the real fp32 reference, through the runner: the one STFT becomes a Conv in the STFT's node
    group, and the audio stays within the pass's tolerance on the equivalence sequences (observed 0.078,
    from the phase of near-zero bins; the STFT values themselves move by < 1e-6)."""
    from kopt.core.recipe import one_variant
    from kopt.core.runner import Runner
    from kopt.quantize.groups import assign

    st, _, ref = real_store
    res = Runner(st).run(one_variant(ref.key, [("stft-conv", {})], name="stft-conv"))[0]
    assert res.status in ("ok", "cached"), res.reason
    rep = res.steps[-1].report
    assert rep["stft_found"] == rep["rewritten"] == 1 and rep["stft_requantized"] == 0
    assert rep["nodes"][0]["n_fft"] == 20 and rep["nodes"][0]["hop"] == 5 and rep["nodes"][0]["bins"] == 11
    m = onnx.load(res.model_path, load_external_data=False)
    assert not any(n.op_type == "STFT" for n in m.graph.node)
    groups = assign(m)
    new = [n.name for n in m.graph.node if n.name.startswith("/decoder/decoder/generator/Stft")]
    assert len(new) == 4 and {groups[n] for n in new} == {"generator.istft"}
    assert st.get(res.key).record["extra"]["equivalence"]["max_abs_diff"] <= get_pass("stft-conv").tolerance
