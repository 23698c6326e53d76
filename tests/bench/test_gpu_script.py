"""docs/measurements/gpu.sh off a GPU: it says what it skipped and exits 3, at once, without making a venv,
installing or building anything; and its helper's pure parts (the wheels, the recipes, the summary)."""

import importlib.util
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import onnxruntime as ort
import pytest

from kopt.core.errors import KoptError
from kopt.core.results import append_records, make_record

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "measurements" / "gpu.sh"
_spec = importlib.util.spec_from_file_location("kopt_gpu_helper", SCRIPT.with_name("gpu.py"))
gpu = importlib.util.module_from_spec(_spec)  # docs/measurements/gpu.py, the script's helper
_spec.loader.exec_module(gpu)

SKIPPED = 3


def _fake_smi(tmp_path: Path, body: str) -> dict[str, str]:
    """An environment whose PATH finds a stand-in nvidia-smi first."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + body)
    smi.chmod(0o755)
    import os

    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def _run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    cmd = ["bash", str(SCRIPT), "--no-install", "--python", sys.executable, "--venv", str(tmp_path / "venv"),
           "--store", str(tmp_path / "store"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


def test_no_cuda_device_is_skipped_with_status_3(tmp_path):
    env = _fake_smi(tmp_path, "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\n"
                              "exit 9\n")
    res = _run(tmp_path, env)
    assert res.returncode == SKIPPED, res.stdout + res.stderr
    assert "gpu.sh: skipped: no CUDA device (nvidia-smi lists no GPU: NVIDIA-SMI has failed" in res.stdout
    assert "nothing built or measured (exit 3)" in res.stdout
    assert not (tmp_path / "venv").exists() and not (tmp_path / "store").exists()


def test_check_without_device_also_reports_the_onnxruntime(tmp_path):
    env = _fake_smi(tmp_path, "exit 9\n")
    res = _run(tmp_path, env, "--check")
    assert res.returncode == SKIPPED, res.stdout + res.stderr
    assert "skipped: no CUDA device" in res.stdout
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert f"onnxruntime of {sys.executable}: skipped: onnxruntime-gpu not usable: this onnxruntime is not a GPU " \
               f"build (onnxruntime {ort.__version__}" in res.stdout


def test_gpu_without_onnxruntime_gpu_is_skipped_before_any_build(tmp_path):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime is a GPU build")
    env = _fake_smi(tmp_path, 'if [ "$1" = "-L" ]; then echo "GPU 0: NVIDIA H200 (UUID: GPU-0)"; '
                              'else echo "Driver Version: 580.00  CUDA Version: 13.0"; fi\n')
    res = _run(tmp_path, env)
    assert res.returncode == SKIPPED, res.stdout + res.stderr
    assert "gpu.sh: device: GPU 0: NVIDIA H200" in res.stdout
    assert "gpu.sh: skipped: onnxruntime-gpu not usable: this onnxruntime is not a GPU build" in res.stdout
    assert not (tmp_path / "store").exists()


def test_usage_errors_exit_2(tmp_path):
    import os

    res = _run(tmp_path, dict(os.environ), "--budget", "soon")
    assert res.returncode == 2 and "--budget takes seconds" in res.stderr
    res = _run(tmp_path, dict(os.environ), "--frobnicate")
    assert res.returncode == 2 and "unknown option --frobnicate" in res.stderr
    res = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "Exit status: 0 measured" in res.stdout


def test_onnxruntime_gpu_wheel_follows_the_driver_cuda():
    assert gpu.ort_spec(12) == "onnxruntime-gpu[cuda,cudnn]>=1.21,<1.26"
    assert gpu.ort_spec(13) == gpu.ort_spec(14) == "onnxruntime-gpu[cuda,cudnn]>=1.27"
    assert gpu.ort_spec(11) == gpu.ort_spec(12)


def test_recipes_take_fp16_and_hybrid_from_the_default_recipe(tmp_path):
    made = dict(gpu.recipes(tmp_path, ["short-1", "medium-1"], None, ROOT / "recipes" / "default.toml"))
    assert list(made) == ["fp16", "reference-b192", "hybrid", "fp16-b192"]  # medium-1: 168 tokens + 2 pads
    default = {v["name"]: v for v in tomllib.loads((ROOT / "recipes" / "default.toml").read_text())["variants"]}
    for name in ("fp16", "hybrid"):
        (v,) = tomllib.loads(made[name].read_text())["variants"]
        assert v["passes"] == default[name]["passes"]
    (b,) = tomllib.loads(made["fp16-b192"].read_text())["variants"]
    assert b["passes"] == [{"pass": "bind-shapes", "config": {"bucket": 192}}, {"pass": "fold"},
                           *default["fp16"]["passes"]]
    with pytest.raises(SystemExit, match="unknown text id 'nope'"):
        gpu.bucket_for(["nope"])


def test_refs_from_optimize_output_with_stray_lines(tmp_path):
    from kopt.core.refs import resolve
    from kopt.core.store import ArtifactStore

    store = ArtifactStore(tmp_path / "store")
    (tmp_path / "store" / "abcdef0123456789").mkdir(parents=True)
    out = tmp_path / "fp16.json"
    out.write_text('a library said {hello}\n{\n  "command": "optimize",\n  "variants": [{"name": "fp16", '
                   '"status": "ok", "key": "abcdef0123456789"}, {"name": "bad", "status": "failed", "key": null}]\n}\n')
    assert gpu.set_refs(tmp_path / "store", out) == ["fp16"]
    ref = json.loads((tmp_path / "store" / "refs" / "fp16.json").read_text())
    assert ref == {"key": "abcdef0123456789"}
    with pytest.raises(KoptError):
        resolve(store, "bad")


def test_summary_rows_and_reasons(tmp_path):
    def rec(variant, config, rtf, status="ok", reason=None):
        metrics = {"rtf_median": rtf, "rtf_first_seen_median": rtf and rtf * 10, "load_s": 1.5}
        return make_record("bench", run_id="r", variant={"name": variant}, metrics=metrics if rtf else {},
                           provider={"name": "CUDAExecutionProvider", "config": config, "status": status,
                                     "reason": reason})

    append_records(tmp_path / "res" / "cuda.jsonl", [rec("reference", "cuda", 0.02), rec("fp16", "cuda", 0.01),
                                                     rec("fp16", "tensorrt", None, "failed", "timed out")])
    rows, notes = gpu.summary(tmp_path / "res")
    by = {(r[0], r[1]): r for r in rows}
    assert by[("fp16", "cuda")][-1] == "2.00x" and by[("fp16", "cuda")][5] == "0.1000"
    assert by[("reference", "cuda")][-1] == "1.00x" and by[("fp16", "tensorrt")][2] == "failed"
    assert notes == ["fp16 on tensorrt: failed: timed out"]
