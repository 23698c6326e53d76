"""Each quantization pass on the real Kokoro reference, built through the runner: the output must
pass the model contract (and each pass's own short/medium/long non-finite guard).
Calibration is cut to 4 sentences to keep each test within a couple of minutes on 2 cores.

Each test builds into its own empty store, so a cached artifact can never stand in for the work the
test claims to check: the step must be built here ("ok"), never reused."""

from __future__ import annotations

import pytest

from kopt.core.model import load_model, op_histogram

CASES = [
    ("fp16", {}, "Cast"),
    ("int8-dynamic", {}, "ConvInteger"),
    ("int8-static", {"calib_sentences": 4}, "QuantizeLinear"),
    ("hybrid", {"calib_sentences": 4}, "QuantizeLinear"),
    ("int4", {}, "com.microsoft.MatMulNBits"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,cfg,op", CASES, ids=[c[0] for c in CASES])
def test_pass_on_real_model_meets_contract(real_store, tmp_path, name, cfg, op):
    from kopt.core.recipe import one_variant
    from kopt.core.runner import Runner
    from kopt.core.store import ArtifactStore

    _st, _base, ref = real_store
    st = ArtifactStore(tmp_path / "artifacts")
    res = Runner(st).run(one_variant(str(ref.file("model.onnx")), [(name, cfg)], name=f"slow-{name}"))[0]
    assert res.status == "ok", res.reason
    assert [s.cached for s in res.steps] == [False]
    rep = res.steps[0].report
    assert rep["precision_by_group"] and rep["size_bytes"] > 0
    if "guard" in rep:
        assert set(rep["guard"]) == {"short", "medium", "long"}
    art = st.get(res.key)
    assert art.record["extra"]["contract"]["audio"]["samples"] > 0
    assert op in op_histogram(load_model(art.file("model.onnx"), load_external_data=False))
