"""Quantization passes fail with their cause and fall back only on the one expected condition."""

from __future__ import annotations

import onnx
import pytest

from kopt.core.errors import KoptError, VoiceError
from kopt.core.passes import PassContext, get_pass, make_config
from kopt.quantize import common


def test_missing_embedded_package_is_the_only_fallback(monkeypatch):
    import kopt.source.fetch as fetch

    monkeypatch.setattr(fetch, "embedded_voices", lambda: None)
    assert common.resolve_voices(None) == (None, common.NO_VOICES)
    assert "not installed" in common.NO_VOICES
    assert common.voices_key() == "none"


def test_corrupt_embedded_voice_pack_is_an_error_not_random_style(monkeypatch, tmp_path):
    import kopt.source.fetch as fetch

    bad = tmp_path / "voices_ja.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    monkeypatch.setattr(fetch, "embedded_voices", lambda: bad)
    with pytest.raises(VoiceError, match="voices_ja.npz: not a readable npz voice pack"):
        common.resolve_voices(None)


def test_pass_report_says_which_voices_it_checked_with(named_path, tmp_path, monkeypatch):
    import kopt.source.fetch as fetch

    monkeypatch.setattr(fetch, "embedded_voices", lambda: None)
    cls = get_pass("int8-dynamic")
    (tmp_path / "w").mkdir()
    res = cls(make_config(cls, {})).apply(onnx.load(str(named_path)), PassContext(workdir=tmp_path / "w"))
    assert res.report["voices"] == common.NO_VOICES
    assert set(res.report["guard"]) == {"short", "medium", "long"}


def test_quantizer_failure_keeps_its_cause(named_path, tmp_path, monkeypatch):
    import onnxruntime.quantization as q

    boom = RuntimeError("weight 'w' has no scale\nsecond line of detail")

    def fail(*a, **k):
        raise boom

    monkeypatch.setattr(q, "quantize_dynamic", fail)
    cls = get_pass("int8-dynamic")
    (tmp_path / "w").mkdir()
    with pytest.raises(KoptError) as ei:
        cls(make_config(cls, {})).apply(onnx.load(str(named_path)), PassContext(workdir=tmp_path / "w"))
    assert str(ei.value) == "int8-dynamic quantization failed: weight 'w' has no scale"
    assert ei.value.__cause__ is boom
