"""Provider presets that run in a worker environment of their own (OpenVINO), the presets' variants as
data (cuDNN's conv algorithm search, OpenVINO's precision), first-seen figures, and bucketed models in
the worker."""

import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from kopt.bench.envs import WorkerEnv, cell_availability, probe, source_path
from kopt.bench.run import run_bench
from kopt.bench.settings import BenchSettings
from kopt.bench.variants import Variant
from kopt.bench.worker import Worker
from kopt.core import providers as P
from kopt.core.hashing import sha256_file
from kopt.core.vocab import default_vocab
from tests.graphs import duration_kokoro_model, tiny_kokoro

QUICK = dict(threads=1, warmup=1, repeats=1, ttfa_repeats=0, texts=("short-1", "medium-1"), partition=False,
             scaling_threads=())


def _variant(path, name="a"):
    return Variant(name, name + "-key", path, sha256_file(path))


def test_cuda_search_and_openvino_precision_are_data():
    search = {n: P.get(n).options["cudnn_conv_algo_search"] for n in ("cuda", "cuda-heuristic", "cuda-default")}
    assert search == {"cuda": "EXHAUSTIVE", "cuda-heuristic": "HEURISTIC", "cuda-default": "DEFAULT"}
    ov, bf16 = P.get("openvino"), P.get("openvino-bf16")
    assert ov.ep == bf16.ep == "OpenVINOExecutionProvider" and ov.env == bf16.env == P.OPENVINO_ENV
    assert '"INFERENCE_PRECISION_HINT": "f32"' in ov.options["load_config"]
    assert '"INFERENCE_PRECISION_HINT": "bf16"' in bf16.options["load_config"]
    # OpenVINO sizes its own thread pool: the run's thread count goes into its options; CPU's stay empty
    assert ov.ort_providers(3)[0] == ("OpenVINOExecutionProvider", {**ov.options, "num_of_threads": "3"})
    assert ov.ort_providers()[0] == ("OpenVINOExecutionProvider", dict(ov.options))
    assert P.get("cpu").ort_providers(3) == [("CPUExecutionProvider", {})]
    assert ov.thread_bound and P.get("cpu").thread_bound and not P.get("cuda").thread_bound


def test_bf16_preset_needs_bf16_hardware():
    ep = ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    ok, why = P.availability(P.get("openvino-bf16"), ep, "a build", flags=frozenset({"avx2", "fma"}))
    assert not ok and "avx512_bf16 or amx_bf16" in why
    assert P.availability(P.get("openvino-bf16"), ep, "a build", flags=frozenset({"amx_bf16"})) == (True, None)
    assert P.availability(P.get("openvino"), ep, "a build", flags=frozenset()) == (True, None)


def test_openvino_without_environment_is_skipped_with_what_to_set():
    ok, why = cell_availability(P.get("openvino"), ["CPUExecutionProvider"], {})
    assert not ok
    assert "OpenVINOExecutionProvider is not in this onnxruntime build" in why
    assert "worker_python = { openvino = " in why
    # kopt's own onnxruntime offering the EP (onnxruntime-openvino installed in place) is enough
    assert cell_availability(P.get("openvino"), ["OpenVINOExecutionProvider", "CPUExecutionProvider"], {}) == (True, None)
    broken = {"openvino": WorkerEnv("openvino", "/nowhere/python", error="interpreter /nowhere/python not found")}
    ok, why = cell_availability(P.get("openvino"), ["OpenVINOExecutionProvider"], broken)
    assert not ok and why == "worker environment 'openvino' is not usable: interpreter /nowhere/python not found"


def test_probe_asks_the_interpreter_through_the_worker(tmp_path):
    env = probe("openvino", sys.executable)
    assert env.error is None, env.error
    assert env.onnxruntime == ort.__version__ and "CPUExecutionProvider" in env.providers
    missing = probe("openvino", str(tmp_path / "python"))
    assert missing.error == f"interpreter {tmp_path / 'python'} not found"
    not_python = tmp_path / "false"
    not_python.write_text("#!/bin/sh\necho nope >&2\nexit 4\n")
    not_python.chmod(0o755)
    bad = probe("openvino", str(not_python))
    assert "failed (exit code 4): nope" in bad.error
    root = source_path()
    assert (root / "kopt" / "bench" / "worker.py").is_file() and (root / "kokoro_runtime").is_dir()
    assert not (root / "onnxruntime").exists()


def test_unknown_worker_environment_is_refused():
    with pytest.raises(ValueError, match="unknown worker environment 'openvnio'; presets use: openvino"):
        BenchSettings(worker_python={"openvnio": sys.executable})


def test_bench_skips_openvino_in_an_environment_without_it(tmp_path, tiny_voices_file):
    a = _variant(tiny_kokoro(tmp_path / "a.onnx"))
    # the environment is this interpreter: it starts and answers, but its onnxruntime has no OpenVINO
    s = BenchSettings(**QUICK, providers=("cpu", "openvino", "openvino-bf16"),
                      worker_python={"openvino": sys.executable})
    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has OpenVINO")
    recs = run_bench([a], s, voices_path=str(tiny_voices_file), vocab=default_vocab(), run_id="r")
    by = {r["provider"]["config"]: r for r in recs}
    assert by["cpu"]["provider"]["status"] == "ok"
    for name in ("openvino", "openvino-bf16"):
        p = by[name]["provider"]
        assert p["status"] == "skipped" and p["name"] == "OpenVINOExecutionProvider"
        assert p["reason"].startswith(f"OpenVINOExecutionProvider is not in this onnxruntime build (worker environment "
                                      f"'openvino' ({sys.executable}): onnxruntime {ort.__version__}")
    # first-seen figures: the warm-up round (the first text excluded: the load ran it) and TTFA's first run
    m = by["cpu"]["metrics"]
    assert m["rtf_first_seen_median"] > 0 and m["first_seen_s_max"] > 0
    assert set(by["cpu"]["extra"]["per_text"]["medium-1"]) >= {"first_seen_s"}
    assert "first_seen_s" not in by["cpu"]["extra"]["per_text"]["short-1"]


def test_preset_with_an_environment_runs_its_worker_under_that_interpreter(tmp_path, tiny_voices_file, monkeypatch):
    # a CPU preset that asks for the openvino environment: its worker must run under the named interpreter
    cfg = P.ProviderConfig("cpu-in-env", P.CPU, {}, "test", env=P.OPENVINO_ENV)
    monkeypatch.setitem(P.PRESETS, cfg.name, cfg)
    a = _variant(tiny_kokoro(tmp_path / "a.onnx"))
    s = BenchSettings(**{**QUICK, "ttfa_repeats": 1}, providers=("cpu-in-env",),
                      worker_python={"openvino": sys.executable})
    rec = run_bench([a], s, voices_path=str(tiny_voices_file), vocab=default_vocab(), run_id="r")[0]
    assert rec["provider"]["status"] == "ok", rec["provider"]
    env = rec["extra"]["worker_env"]
    assert env["python"] == sys.executable and env["onnxruntime"] == ort.__version__
    assert rec["metrics"]["rtf_median"] > 0 and rec["metrics"]["ttfa_ms_first"] > 0


def test_worker_pads_a_bucketed_model_and_trims_its_durations(tmp_path, tiny_voices_file):
    from kopt.core.passes import PassContext, get_pass, make_config

    def apply(name, model, **cfg):
        cls = get_pass(name)
        return cls(make_config(cls, cfg)).apply(model, PassContext(workdir=tmp_path)).model

    dyn, bound = tmp_path / "dyn.onnx", tmp_path / "b64.onnx"  # both report per-token durations
    onnx.save(apply("durations", duration_kokoro_model()), str(dyn))
    onnx.save(apply("durations", apply("bind-shapes", duration_kokoro_model(), bucket=64)), str(bound))
    ids = [5, 6, 7, 8, 9, 10, 11]
    outs = {}
    for name, path in (("dyn", dyn), ("b64", bound)):
        w = Worker()
        rep = w.load({"model": str(path), "voices": str(tiny_voices_file), "vocab": default_vocab(), "ep": P.CPU,
                      "providers": P.get("cpu").ort_providers(1), "threads": 1})
        assert rep["providers"][0] == P.CPU
        outs[name] = (rep["token_len"], *w.synth.run_timed(ids, next(iter(w.synth.voices)), 1.0))
    assert outs["dyn"][0] is None and outs["b64"][0] == 64
    np.testing.assert_allclose(outs["b64"][1], outs["dyn"][1], rtol=0, atol=1e-5)  # bind-shapes: masked pads
    assert outs["dyn"][2] is not None and outs["dyn"][2].size == len(ids) + 2
    np.testing.assert_array_equal(outs["b64"][2], outs["dyn"][2])  # cut back to the real tokens
    w = Worker()
    w.load({"model": str(bound), "voices": str(tiny_voices_file), "vocab": default_vocab(), "ep": P.CPU,
            "providers": P.get("cpu").ort_providers(1), "threads": 1})
    with pytest.raises(Exception, match="do not fit the model's fixed length 64"):
        w.synth.run_tokens(list(range(1, 70)), next(iter(w.synth.voices)), 1.0)
