import numpy as np
import pytest

from kopt.core.errors import VoiceError
from kopt.source.voices import blend, load_voices, save_voices


def test_npz_bin_and_folder(tmp_path):
    rng = np.random.default_rng(0)
    v = rng.standard_normal((510, 1, 256)).astype(np.float32)
    np.savez(tmp_path / "pack.npz", af_a=v, af_b=v * 2)
    v.reshape(510, 256).tofile(tmp_path / "single.bin")
    folder = load_voices(tmp_path)
    assert sorted(folder) == ["af_a", "af_b", "single"]
    np.testing.assert_array_equal(folder["single"], v)
    out = save_voices(folder, tmp_path / "out" if False else tmp_path / "all.npz")
    assert sorted(load_voices(out)) == ["af_a", "af_b", "single"]
    np.testing.assert_allclose(blend(folder, "af_a:0.5,af_b:0.5"), v * 1.5, rtol=1e-6)


def test_voices_v1_style_bin_is_npz(tmp_path):
    v = np.zeros((510, 1, 256), np.float32) + 0.1
    with open(tmp_path / "voices-v1.0.bin", "wb") as f:
        np.savez(f, af_heart=v)
    assert list(load_voices(tmp_path / "voices-v1.0.bin")) == ["af_heart"]


@pytest.mark.parametrize("arr,needle", [
    (np.zeros((10, 256), np.float32), "has shape (10, 256)"),
    (np.zeros((510, 1, 256), np.int32), "has dtype int32"),
    (np.full((510, 1, 256), np.nan, np.float32), "NaN"),
])
def test_bad_voices(tmp_path, arr, needle):
    np.savez(tmp_path / "v.npz", x=arr)
    with pytest.raises(VoiceError) as e:
        load_voices(tmp_path / "v.npz")
    assert needle in str(e.value) and "v.npz" in str(e.value)


def test_raw_bin_wrong_size_and_unknown_blend(tmp_path):
    np.zeros(100, np.float32).tofile(tmp_path / "x.bin")
    with pytest.raises(VoiceError, match="must be 522240 bytes"):
        load_voices(tmp_path / "x.bin")
    with pytest.raises(VoiceError, match="unknown voice"):
        blend({"a": np.zeros((510, 1, 256), np.float32)}, "a:0.5,zz:0.5")
