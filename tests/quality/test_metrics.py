"""Metric functions on synthetic signals with known answers."""

import numpy as np
import pytest

from kopt.quality.metrics.spectral import dtw_path, mel_filterbank
from kopt.quality.registry import MetricError, get, registry

SR = 24000


def speechlike(seconds=3.0, seed=0):
    """A voiced, syllable-modulated harmonic signal (PESQ's VAD takes it as speech)."""
    t = np.arange(int(SR * seconds)) / SR
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * ph) / k for k in range(1, 25))
    env = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5
    noise = 0.003 * np.random.default_rng(seed).standard_normal(t.size)  # a little breath noise in every band
    return (0.2 * x * env + noise).astype(np.float32)


@pytest.fixture(scope="module")
def sigs():
    x = speechlike()
    rng = np.random.default_rng(1)
    return {"ref": x, "same": x.copy(), "noisy": x + 0.03 * rng.standard_normal(x.size).astype(np.float32),
            "shift": np.concatenate([np.zeros(2400, np.float32), x[:-2400]])}


def test_registry_names_and_kinds():
    reg = registry()
    assert set(reg) >= {"pesq", "stoi", "log_mel", "mrstft", "mcd", "dnsmos"}
    assert reg["dnsmos"].kind == "reference_free" and reg["pesq"].kind == "intrusive"
    assert reg["stoi"].record_names == ("stoi_aligned", "stoi_natural", "estoi_aligned", "estoi_natural")
    assert reg["dnsmos"].record_names == reg["dnsmos"].produces
    with pytest.raises(Exception, match="choose from"):
        get("nope")


def test_a_module_in_the_metrics_package_is_found_and_scored_by_default(tmp_path, monkeypatch):
    """Registration needs no list: every module of kopt.quality.metrics is imported, and a quality run
    scores every registered metric unless told otherwise."""
    import sys

    import kopt.quality.metrics as pkg
    from kopt.quality import registry as reg_mod
    from kopt.quality.settings import QualitySettings

    (tmp_path / "tmp_peak.py").write_text(
        "from kopt.quality.registry import metric\n"
        "@metric('tmp_peak', 'reference_free', ('tmp_peak',), 'numpy', 'peak level')\n"
        "def tmp_peak(audio, sr):\n"
        "    return {'tmp_peak': float(abs(audio).max())}\n")
    monkeypatch.setattr(reg_mod, "_REGISTRY", dict(reg_mod._REGISTRY))
    monkeypatch.setattr(pkg, "__path__", [*pkg.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "kopt.quality.metrics.tmp_peak", raising=False)
    assert get("tmp_peak").fn(np.array([0.0, -0.5, 0.25]), SR) == {"tmp_peak": 0.5}
    assert QualitySettings().metrics == tuple(registry()) and "tmp_peak" in QualitySettings().metrics
    monkeypatch.undo()
    sys.modules.pop("kopt.quality.metrics.tmp_peak", None)
    assert "tmp_peak" not in QualitySettings().metrics
    assert QualitySettings().metrics[:6] == ("pesq", "stoi", "log_mel", "mrstft", "mcd", "dnsmos")


def test_pesq_identical_is_max_and_noise_lowers(sigs):
    f = get("pesq").fn
    same = f(sigs["ref"], sigs["same"], SR)["pesq_wb"]
    noisy = f(sigs["ref"], sigs["noisy"], SR)["pesq_wb"]
    assert same > 4.6  # P.862.2's ceiling is 4.64
    assert noisy < same - 1.0


def test_pesq_no_utterance_is_metric_error():
    with pytest.raises(MetricError, match="no utterance"):
        get("pesq").fn(np.zeros(SR * 2, np.float32), np.zeros(SR * 2, np.float32), SR)


def test_stoi(sigs):
    f = get("stoi").fn
    assert f(sigs["ref"], sigs["same"], SR)["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert f(sigs["ref"], sigs["noisy"], SR)["stoi"] < 0.97
    assert f(sigs["ref"], sigs["shift"], SR)["stoi"] < 0.9


@pytest.mark.parametrize("name,key", [("log_mel", "log_mel_db"), ("mrstft", "mrstft"), ("mcd", "mcd_db")])
def test_distances_zero_for_identical_and_grow_with_noise(sigs, name, key):
    f = get(name).fn
    assert f(sigs["ref"], sigs["same"], SR, aligned=True)[key] == pytest.approx(0.0, abs=1e-9)
    assert f(sigs["ref"], sigs["noisy"], SR, aligned=True)[key] > 0.05


@pytest.mark.parametrize("name,key", [("log_mel", "log_mel_db"), ("mcd", "mcd_db")])
def test_dtw_pairing_forgives_a_shift(sigs, name, key):
    f = get(name).fn
    framewise = f(sigs["ref"], sigs["shift"], SR, aligned=True)[key]
    warped = f(sigs["ref"], sigs["shift"], SR, aligned=False)[key]
    assert warped < framewise / 3


def test_dtw_path_recovers_a_repeat():
    a = np.array([[0.0], [1.0], [2.0], [3.0]])
    b = np.array([[0.0], [1.0], [1.0], [2.0], [3.0]])
    ia, ib = dtw_path(a, b)
    assert list(ia) == [0, 1, 1, 2, 3] and list(ib) == [0, 1, 2, 3, 4]


def test_mel_filterbank_shape_and_coverage():
    fb = mel_filterbank(24000, 1024, 80)
    assert fb.shape == (80, 513) and np.all(fb >= 0)
    assert np.all(fb.sum(1) > 0)  # every band has support
    peaks = fb.argmax(1)
    assert np.all(np.diff(peaks) >= 0)  # band centres rise with frequency
    # DNSMOS's P.808 features (120 mels over 161 bins) leave the lowest band empty, as librosa warns too
    dns = mel_filterbank(16000, 321, 120)
    assert dns.shape == (120, 161) and dns[0].sum() == 0 and dns[1].sum() > 0


def test_dnsmos_scores_speech_above_noise(sigs):
    f = get("dnsmos").fn
    clean = f(sigs["ref"], SR)
    noise = f(0.3 * np.random.default_rng(0).standard_normal(SR * 3).astype(np.float32), SR)
    assert set(clean) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
    assert all(1.0 <= v <= 5.0 for v in clean.values())
    assert clean["dnsmos_bak"] > noise["dnsmos_bak"]
    with pytest.raises(MetricError, match="silent"):
        f(np.zeros(SR, np.float32), SR)


def test_one_metric_table_every_quality_output_is_catalogued():
    """The quality registry says how to compute; the catalogue (kopt.select.metrics) what each
    number means. Every name a registered metric declares, as records carry it, is catalogued, and a
    metric returns exactly the names it declares."""
    import numpy as np

    from kopt.quality.registry import registry
    from kopt.select.metrics import CATALOG

    rng = np.random.default_rng(0)
    sr = 24000
    t = np.arange(sr * 2) / sr
    ref = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size))
    deg = ref + 0.01 * rng.standard_normal(t.size)
    for m in registry().values():
        missing = [n for n in m.record_names if n not in CATALOG]
        assert not missing, f"{m.name}: {missing} not in the metric catalogue"
        got = m.fn(ref, deg, sr) if m.kind == "intrusive" else m.fn(deg, sr)
        assert set(got) == set(m.produces), m.name


@pytest.mark.parametrize("name", ["pesq", "stoi", "log_mel", "mrstft", "mcd"])
def test_audio_with_nan_is_a_metric_error_naming_it(sigs, name):
    ref = sigs["ref"]
    deg = ref.copy()
    deg[100:110] = np.nan
    with pytest.raises(MetricError, match="10 of .* samples are NaN or infinite"):
        get(name).fn(ref, deg, SR)
