import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from kopt.cli.main import app
from kopt.core.errors import KoptError, ModelError, VoiceError
from kopt.source.fetch import fetch
from kopt.source.reference import reference
from tests.graphs import tiny_kokoro, wrong_inputs_model

runner = CliRunner()


def _keys(store):
    return sorted(d.name for d in store.root.iterdir() if not d.name.startswith(".") and d.name != "refs") \
        if store.root.exists() else []


def test_fetch_user_model_then_cache_hit(store, tiny_model, tiny_voices_file):
    first = fetch(store, model=tiny_model, voices=tiny_voices_file)
    assert not first.cached
    a = first.artifact
    assert set(a.files) == {"model.onnx", "voices.npz", "vocab.json"}
    assert a.record["extra"]["precision"] == "fp32"
    assert a.record["extra"]["voices"] == ["voice_0", "voice_1"]
    second = fetch(store, model=tiny_model, voices=tiny_voices_file)
    assert second.cached and second.artifact.key == a.key
    # fp32 is its own reference
    ref = reference(store, a)
    assert ref.same_as_base and ref.artifact.key == a.key


def test_reference_of_int8_user_model(tmp_path, store, tiny_voices_file):
    from onnxruntime.quantization import quantize_dynamic

    src = tiny_kokoro(tmp_path / "f.onnx")
    quantize_dynamic(str(src), str(tmp_path / "q.onnx"), per_channel=True)
    base = fetch(store, model=tmp_path / "q.onnx", voices=tiny_voices_file).artifact
    assert base.record["extra"]["precision"] == "int8"
    r = reference(store, base)
    assert not r.cached and not r.same_as_base
    rec = r.artifact.record
    assert rec["parents"] == [base.key] and rec["step"] == "reference"
    assert rec["extra"]["dequantize"]["remaining_quant_ops"] == {}
    assert onnx.load(str(r.artifact.file("model.onnx"))).producer_name == "kopt.reference"
    assert reference(store, base).cached


def _bad_model(bad, kind, tiny_model):
    """A truncated ONNX file, a text file named .onnx, or a valid ONNX graph that is not Kokoro."""
    if kind == "truncated":
        bad.write_bytes(tiny_model.read_bytes()[:2000])
    elif kind == "text":
        bad.write_text("hello\n")
    else:
        onnx.save(wrong_inputs_model(), str(bad))
    return bad


@pytest.mark.parametrize("kind", ["truncated", "text", "wrong_inputs"])
def test_bad_models_fail_cleanly_and_leave_nothing(tmp_path, store, tiny_model, tiny_voices_file, kind):
    bad = _bad_model(tmp_path / "bad.onnx", kind, tiny_model)
    with pytest.raises(ModelError, match="bad.onnx"):
        fetch(store, model=bad, voices=tiny_voices_file)
    assert _keys(store) == []
    tmp = store.root / ".tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_voices_of_wrong_shape(tmp_path, store, tiny_model):
    p = tmp_path / "v.npz"
    np.savez(p, bad=np.zeros((10, 256), np.float32))
    with pytest.raises(VoiceError, match=r"v\.npz: voice 'bad' has shape \(10, 256\)"):
        fetch(store, model=tiny_model, voices=p)
    assert _keys(store) == []


def test_voices_required_with_model(store, tiny_model):
    with pytest.raises(KoptError, match="--voices is required"):
        fetch(store, model=tiny_model)


@pytest.mark.parametrize("kind,needle", [
    ("truncated", "not a readable ONNX model (truncated or corrupt"),
    ("text", "not an ONNX model (it is a text file)"),
    ("wrong_inputs", "not a Kokoro graph"),
])
def test_cli_errors_are_one_line_exit_1(tmp_path, tiny_model, tiny_voices_file, kind, needle):
    import subprocess
    import sys

    from kopt.cli.main import main  # noqa: F401  (the error handler lives in main())

    bad = _bad_model(tmp_path / "bad.onnx", kind, tiny_model)
    art = tmp_path / "arts"
    r = subprocess.run([sys.executable, "-m", "kopt.cli.main", "--artifacts", str(art), "fetch", "--model", str(bad),
                        "--voices", str(tiny_voices_file)], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("kopt: error: ") and str(bad) in lines[0] and needle in lines[0]
    assert not art.exists() or [d for d in art.iterdir() if d.name not in (".tmp", ".locks")] == []


def test_cli_fetch_json_and_cache_hit(tmp_path, tiny_model, tiny_voices_file):
    args = ["--artifacts", str(tmp_path / "a"), "--json", "fetch", "--model", str(tiny_model),
            "--voices", str(tiny_voices_file)]
    r1 = runner.invoke(app, args)
    assert r1.exit_code == 0, r1.output
    d1 = json.loads(r1.stdout)
    r2 = runner.invoke(app, args)
    d2 = json.loads(r2.stdout)
    assert d1["cached"] is False and d2["cached"] is True and d1["key"] == d2["key"]
    r3 = runner.invoke(app, ["--artifacts", str(tmp_path / "a"), "fetch", "--model", str(tiny_model),
                             "--voices", str(tiny_voices_file)])
    assert "cache hit" in r3.output
