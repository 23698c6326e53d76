import numpy as np
import onnxruntime as ort
import pytest

from kopt.core import providers as P
from kopt.core.errors import KoptError


def test_presets_are_data_with_valid_lookup():
    assert {"cpu", "cuda", "tensorrt", "coreml-all", "coreml-cpu-gpu", "coreml-cpu-only", "coreml-ane"} <= set(P.PRESETS)
    assert P.get("coreml-cpu-gpu").options == {"ModelFormat": "MLProgram", "MLComputeUnits": "CPUAndGPU"}
    assert P.get("cuda").options["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert P.get("cuda").ort_providers() == [("CUDAExecutionProvider", dict(P.get("cuda").options)),
                                             "CPUExecutionProvider"]


def test_unknown_provider_lists_valid_names():
    with pytest.raises(KoptError, match="unknown provider 'gpu'.*cpu, cuda"):
        P.get("gpu")
    with pytest.raises(KoptError, match="'x', 'y'"):
        P.get_many(["cpu", "x", "y"])


def test_fake_unavailable_provider_is_reported_not_raised():
    fake = P.ProviderConfig("fake", "FakeExecutionProvider", {})
    ok, why = P.availability(fake, ["CPUExecutionProvider"])
    assert not ok and "FakeExecutionProvider is not in this onnxruntime build" in why
    assert P.availability(P.get("cpu"), ["CPUExecutionProvider"]) == (True, None)


def test_verify_session_detects_fallback(tiny_model):
    sess = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    assert P.verify_session(sess, P.get("cpu")) is None
    assert "fell back" in P.verify_session(sess, P.get("cuda"))


def test_partition_from_profile_counts_nodes(tiny_model, tmp_path):
    from kopt.core.kokoro import options

    so = options(1, True, profile_prefix=str(tmp_path / "prof"))
    sess = ort.InferenceSession(str(tiny_model), so, providers=P.get("cpu").ort_providers())
    sess.run(None, {"tokens": np.array([[0, 5, 6, 0]], np.int64), "style": np.zeros((1, 256), np.float32),
                    "speed": np.array([1.0], np.float32)})
    part = P.partition_from_profile(sess.end_profiling())
    assert list(part["nodes"]) == ["CPUExecutionProvider"]
    assert part["nodes"]["CPUExecutionProvider"] >= 10
    assert part["ops"]["CPUExecutionProvider"]["LSTM"] == 1
