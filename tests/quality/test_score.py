"""Aligned and natural scoring on tiny graphs with the durations input/output names."""

import json

import pytest
from pydantic import ValidationError

from kopt.core.passes import Pass, PassConfig, PassResult
from kopt.quality import align
from kopt.quality.score import check_gates, score_variant
from kopt.quality.settings import QualityGates, QualitySettings
from kopt.quality.synth import Case
from tests.graphs import tiny_voices
from tests.quality.durgraph import durations_model, save, table

CASES = [Case("c1", (0, 50, 83, 156, 51, 16, 65, 102, 4, 0), "voice_0"),
         Case("c2", (0, 43, 135, 56, 16, 50, 69, 3, 16, 46, 50, 57, 4, 0), "voice_0")]
FAST = ("pesq", "stoi", "log_mel", "mrstft", "mcd")


class _Cfg(PassConfig):
    accept_input: bool = False


class FakeDurationsPass(Pass):
    """Stands in for the durations pass: rebuilds the tiny graph (same table, same extra token) with
    a durations output and, with accept_input, a durations input."""

    name = "durations"
    config_cls = _Cfg

    def run(self, model, ctx):
        from onnx import numpy_helper

        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        return PassResult(model=durations_model(inits["table"], int(inits["extra"]), self.config.accept_input))


@pytest.fixture
def with_pass(monkeypatch):
    import kopt.core.passes as passes

    real = passes.get_pass
    monkeypatch.setattr(passes, "get_pass", lambda n: FakeDurationsPass if n == "durations" else real(n))


@pytest.fixture
def models(tmp_path):
    ref = save(durations_model(table()), tmp_path / "ref.onnx")
    same = save(durations_model(table()), tmp_path / "same.onnx")
    drift = save(durations_model(table(noise=0.02), extra_token=50), tmp_path / "drift.onnx")
    return ref, same, drift


def test_identical_variant_scores_max_aligned_and_natural(models, with_pass, tmp_path):
    ref, same, _ = models
    r = score_variant(same, ref, CASES, tiny_voices(1), metrics=FAST, cache_dir=tmp_path / "c")
    assert r["aligned"], r["align_reason"]
    m = r["metrics"]
    for k in ("log_mel_db_aligned", "mcd_db_aligned", "mrstft_aligned", "log_mel_db_natural"):
        assert m[k] == pytest.approx(0.0, abs=1e-9), k
    assert m["stoi_aligned"] == pytest.approx(1.0, abs=1e-6)
    assert m["duration_tokens_changed"] == 0.0
    assert r["determinism"]["bit_identical"] is True
    assert not r["guard_issues"]


def test_drifting_variant_is_aligned_by_reference_durations(models, with_pass, tmp_path):
    ref, _, drift = models
    r = score_variant(drift, ref, CASES, tiny_voices(1), metrics=FAST, cache_dir=tmp_path / "c")
    assert r["aligned"]
    c1 = r["cases"][0]
    # token 50 gets an extra frame in the variant: natural audio is 600 samples longer, aligned is not
    assert c1["samples_natural"] == c1["samples_ref"] + 600
    assert c1["samples_aligned"] == c1["samples_ref"]
    assert c1["duration_frames_diff"] == 1.0 and c1["duration_token_abs_diff_max"] == 1.0
    m = r["metrics"]
    assert 0 < m["duration_tokens_changed"] < 0.2
    assert m["mrstft_aligned"] > 0  # the table noise is still measured
    assert m["mrstft_aligned"] < m["mrstft_natural"]  # but misalignment no longer is
    gates = check_gates(r, QualityGates(pesq_wb_aligned_min=None, stoi_aligned_min=0.5, dnsmos_ovrl_delta_min=None,
                                        duration_frames_changed_max=0.0))
    assert not gates["pass"]
    assert [c["gate"] for c in gates["checks"] if not c["pass"]] == ["duration_frames_changed_max"]


def test_without_durations_pass_aligned_is_reported_unavailable(tmp_path, monkeypatch):
    import kopt.core.passes as passes
    from kopt.core.errors import KoptError

    def no_pass(n):
        raise KoptError(f"unknown pass {n!r}")

    monkeypatch.setattr(passes, "get_pass", no_pass)
    from tests.graphs import tiny_kokoro

    m = tiny_kokoro(tmp_path / "t.onnx")
    r = score_variant(m, m, CASES[:1], {"voice_0": tiny_voices(1)["voice_0"]}, metrics=("log_mel",))
    assert r["aligned"] is False and "durations pass is not available" in r["align_reason"]
    assert r["metrics"]["log_mel_db_natural"] == 0.0
    assert "log_mel_db_aligned" not in r["metrics"]
    assert r["metrics"]["duration_frames_diff"] == 0.0  # from audio length


def test_instrumented_is_cached_by_content(models, with_pass, tmp_path):
    _, _, drift = models
    a = align.instrumented(drift, True, tmp_path / "c")
    b = align.instrumented(drift, True, tmp_path / "c")
    assert a == b and a.parent == tmp_path / "c"
    ins, outs = align.graph_io(a)
    assert "durations" in ins and "durations" in outs
    ref = models[0]
    assert align.instrumented(ref, False, tmp_path / "c") == ref  # already has the output


def test_settings_forbid_unknown_and_validate_metric_names():
    with pytest.raises(ValidationError, match="metricz"):
        QualitySettings(metricz=("pesq",))
    with pytest.raises(Exception, match="choose from"):
        QualitySettings(metrics=("pesq", "nope"))
    s = QualitySettings(gates={"pesq_wb_aligned_min": 4.0})
    assert json.loads(s.model_dump_json())["gates"]["pesq_wb_aligned_min"] == 4.0
