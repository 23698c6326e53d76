"""Voice packs: .pt with and without torch, packing, blending, the `kopt voices` commands."""

import numpy as np
import pytest
from typer.testing import CliRunner

from kopt.core.errors import VoiceError
from kopt.source import voices as V


def _voice(seed=0):
    return (np.random.default_rng(seed).standard_normal((510, 1, 256)) * 0.1).astype(np.float32)


def test_pt_read_without_torch_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    v = _voice(1)
    torch.save(torch.from_numpy(v), tmp_path / "af_test.pt")
    # a view into a larger storage: offset and strides must be honoured
    big = torch.from_numpy(np.stack([_voice(2), v]))
    torch.save(big[1], tmp_path / "af_view.pt")
    torch.save(torch.from_numpy(v).half(), tmp_path / "af_half.pt")
    np.testing.assert_array_equal(V._load_pt_without_torch(tmp_path / "af_test.pt"), v)
    np.testing.assert_array_equal(V._load_pt_without_torch(tmp_path / "af_view.pt"), v)
    np.testing.assert_array_equal(V._load_pt_without_torch(tmp_path / "af_half.pt"), v.astype(np.float16).astype(np.float32))
    loaded = V.load_voices(tmp_path)  # with torch installed this takes torch's path
    assert sorted(loaded) == ["af_half", "af_test", "af_view"]
    np.testing.assert_array_equal(loaded["af_test"], v)


def test_pt_reader_runs_no_code(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"voice": torch.zeros(3), "fn": print}, tmp_path / "evil.pt")
    with pytest.raises(VoiceError, match="cannot read torch voice pack without torch"):
        V._load_pt_without_torch(tmp_path / "evil.pt")


def test_pt_without_torch_when_torch_is_missing(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    torch.save(torch.from_numpy(_voice(3)), tmp_path / "bf_x.pt")
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *a, **kw):
        if name == "torch":
            raise ImportError("no torch here")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    np.testing.assert_array_equal(V.load_voices(tmp_path / "bf_x.pt")["bf_x"], _voice(3))


def test_not_a_pt(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a zip at all")
    with pytest.raises(VoiceError, match="x.pt"):
        V._load_pt_without_torch(tmp_path / "x.pt")


def test_pack_rejects_duplicates_and_blend_rules(tmp_path):
    np.savez(tmp_path / "a.npz", af_a=_voice(0), af_b=_voice(1))
    np.savez(tmp_path / "b.npz", af_a=_voice(2))
    with pytest.raises(VoiceError, match="'af_a' is already defined"):
        V.pack([tmp_path / "a.npz", tmp_path / "b.npz"])
    vs = V.pack([tmp_path / "a.npz"])
    out = V.add_blend(vs, "mix", "af_a:3,af_b:1")
    np.testing.assert_allclose(out["mix"], 0.75 * _voice(0) + 0.25 * _voice(1), rtol=1e-5, atol=1e-7)
    # the runtime's other spelling (Kokoro-FastAPI's) gives the same voice
    np.testing.assert_array_equal(V.add_blend(vs, "mix", "af_a(3)+af_b(1)")["mix"], out["mix"])
    with pytest.raises(VoiceError, match="already a voice"):
        V.add_blend(vs, "af_a", "af_b:1")
    for spec, msg in [("af_a:x", "not a number"), ("af_a:-1", ">= 0"), (":1", "no voice name"),
                      ("af_a:0", "sum above zero"), ("ghost:1", "unknown voice"), ("af_a(1)+(2)", "is not NAME or NAME")]:
        with pytest.raises(VoiceError, match=msg):
            V.blend(vs, spec)


def test_cli_list_pack_blend(tmp_path):
    from kopt.cli.main import app

    np.savez(tmp_path / "a.npz", af_a=_voice(0))
    _voice(1).reshape(510, 256).tofile(tmp_path / "af_b.bin")
    r = CliRunner().invoke(app, ["voices", "list", str(tmp_path / "a.npz"), str(tmp_path / "af_b.bin")])
    assert r.exit_code == 0, r.output
    assert "af_a" in r.output and "af_b" in r.output
    out = tmp_path / "all.npz"
    r = CliRunner().invoke(app, ["voices", "pack", str(tmp_path / "a.npz"), str(tmp_path / "af_b.bin"),
                                 "-o", str(out), "--blend", "mix=af_a:0.5,af_b:0.5"])
    assert r.exit_code == 0, r.output
    assert sorted(V.load_voices(out)) == ["af_a", "af_b", "mix"]
    r = CliRunner().invoke(app, ["voices", "blend", "af_a:0.7,af_b:0.3", "--voices", str(tmp_path / "a.npz"),
                                 "--voices", str(tmp_path / "af_b.bin"), "--name", "m2", "-o",
                                 str(tmp_path / "m.npz"), "--only"])
    assert r.exit_code == 0, r.output
    assert list(V.load_voices(tmp_path / "m.npz")) == ["m2"]


def test_cli_unknown_voice_is_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    np.savez(tmp_path / "a.npz", af_a=_voice(0))
    kopt = Path(sys.executable).parent / "kopt"
    r = subprocess.run([str(kopt), "voices", "blend", "af_a:1,zz:1", "--voices", str(tmp_path / "a.npz"),
                        "--name", "m", "-o", str(tmp_path / "o.npz")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "unknown voice(s) zz" in r.stderr
    assert not (tmp_path / "o.npz").exists()
