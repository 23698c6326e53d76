import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kopt.bench.handle import CellFailed, WorkerHandle
from kopt.bench.run import run_bench
from kopt.bench.settings import BenchSettings
from kopt.bench.textset import load_textset
from kopt.bench.variants import Variant
from kopt.core.hashing import sha256_file
from kopt.core.results import append_records, read_records
from kopt.core.vocab import default_vocab
from tests.graphs import tiny_kokoro, tiny_voices

FAKE = str(Path(__file__).with_name("fake_worker.py"))
QUICK = dict(providers=("cpu", "cuda"), threads=1, warmup=0, repeats=2, ttfa_repeats=1, texts=("short-1", "medium-1"))


@pytest.fixture
def voices_npz(tmp_path):
    p = tmp_path / "voices.npz"
    np.savez(p, **tiny_voices())
    return p


def variant(path: Path, name: str) -> Variant:
    return Variant(name, name + "-key", path, sha256_file(path))


def test_textset_is_versioned_and_tokens_match_vocab():
    ts = load_textset()
    assert ts.version >= 1 and len(ts.sha256) == 64
    assert {i.category for i in ts.items} == {"short", "medium", "long"}
    vocab = default_vocab()
    for it in ts.items:
        assert it.tokens[0] == 0 and it.tokens[-1] == 0 and len(it.tokens) <= 512
        assert list(it.tokens[1:-1]) == [vocab[c] for c in it.phonemes if c in vocab]
    assert len(ts.ttfa_text) > 200


def test_bench_tiny_records_metrics_and_skips(tmp_path, voices_npz):
    a = variant(tiny_kokoro(tmp_path / "a.onnx", seed=0), "a")
    b = variant(tiny_kokoro(tmp_path / "b.onnx", seed=1), "b")
    recs = run_bench([a, b], BenchSettings(**QUICK), voices_path=str(voices_npz), vocab=default_vocab(), run_id="r1")
    by = {(r["variant"]["name"], r["provider"]["config"]): r for r in recs}
    assert len(recs) == 4
    ok = by[("b", "cpu")]
    assert ok["provider"]["status"] == "ok", ok["provider"]
    m = ok["metrics"]
    for k in ("size_mb", "load_s", "first_infer_s", "rtf_median", "rtf_p90", "ttfa_ms_median", "rss_peak_mb",
              "speedup_vs_baseline"):
        assert m[k] is not None and m[k] > 0, k
    assert m["rtf_p90"] >= m["rtf_median"]
    assert ok["spread"]["rtf"]["n"] == 4  # 2 texts x 2 repeats
    assert by[("a", "cpu")]["metrics"]["speedup_vs_baseline"] == 1.0
    assert ok["inputs"]["text_set_sha256"] == load_textset().sha256 and ok["threads"] == 1
    assert ok["extra"]["partition"]["nodes"]["CPUExecutionProvider"] > 0
    assert ok["machine"]["cores"] >= 1 and ok["versions"]["onnxruntime"]
    sk = by[("a", "cuda")]["provider"]
    assert sk["status"] == "skipped" and "CUDAExecutionProvider" in sk["reason"]
    # schema round trip
    path = append_records(tmp_path / "res.jsonl", recs)
    back = read_records(path)
    assert [r.as_dict() for r in back] == json.loads(json.dumps(recs, sort_keys=True, default=str))


@pytest.mark.parametrize("mode,reason", [("crash", "SIGABRT"), ("hang", "timed out"), ("exit", "exit code 3")])
def test_misbehaving_worker_fails_its_cell_only(tmp_path, voices_npz, mode, reason):
    good = variant(tiny_kokoro(tmp_path / "good.onnx"), "good")
    s = BenchSettings(**{**QUICK, "providers": ("cpu",), "timeout_s": 3, "ttfa_repeats": 0, "partition": False})
    recs = run_bench([good], s, voices_path=str(voices_npz), vocab=default_vocab(), run_id="r",
                     worker_argv=[sys.executable, FAKE, mode])
    assert recs[0]["provider"]["status"] == "failed"
    assert reason in recs[0]["provider"]["reason"]
    # the real worker next to a broken one: a run goes on
    from kopt.bench import run as runmod

    real = runmod.WorkerHandle
    calls = []

    def handle(argv, memory_mb, timeout_s, environ=None):
        calls.append(1)
        return real([sys.executable, FAKE, mode] if len(calls) == 1 else None, memory_mb, timeout_s, environ)

    runmod.WorkerHandle = handle
    try:
        bad = variant(tiny_kokoro(tmp_path / "bad.onnx", seed=3), "bad")
        recs = run_bench([bad, good], s, voices_path=str(voices_npz), vocab=default_vocab(), run_id="r")
    finally:
        runmod.WorkerHandle = real
    st = {r["variant"]["name"]: r["provider"]["status"] for r in recs}
    assert st == {"bad": "failed", "good": "ok"}
    assert recs[1]["metrics"]["rtf_median"] > 0


def test_thread_scaling_records_rtf_at_every_count(tmp_path, voices_npz):
    """Main measurement at 2 threads, scaling at 1 (and at a count no machine has: skipped); only the CPU
    cell scales. No timing is compared: only that the figures exist, with the right counts."""
    a = variant(tiny_kokoro(tmp_path / "a.onnx", seed=0), "a")
    b = variant(tiny_kokoro(tmp_path / "b.onnx", seed=1), "b")
    s = BenchSettings(**{**QUICK, "threads": 2, "scaling_threads": (1, 2, 4096), "scaling_repeats": 1,
                         "ttfa_repeats": 0, "partition": False})
    recs = run_bench([a, b], s, voices_path=str(voices_npz), vocab=default_vocab(), run_id="r")
    by = {(r["variant"]["name"], r["provider"]["config"]): r for r in recs}
    for name in ("a", "b"):
        r = by[(name, "cpu")]
        assert r["provider"]["status"] == "ok", r["provider"]
        m, ts = r["metrics"], r["extra"]["thread_scaling"]
        assert m["rtf_threads_1_median"] > 0 and m["rtf_threads_2_median"] == m["rtf_median"]
        assert "rtf_threads_4096_median" not in m
        assert set(ts) == {"1", "2", "4096"}
        assert ts["1"]["status"] == "ok" and ts["1"]["n"] == 1 * 2 and ts["1"]["repeats"] == 1  # 1 round x 2 texts
        assert ts["2"]["main"] and ts["2"]["n"] == 2 * 2 and ts["2"]["repeats"] == 2
        assert ts["1"]["speedup_vs_1"] == 1.0 and ts["2"]["speedup_vs_1"] > 0
        assert ts["4096"]["status"] == "skipped" and "cores" in ts["4096"]["reason"]
        assert r["spread"]["rtf_threads_1"]["n"] == 2 and r["spread"]["rtf_threads_2"]["n"] == 4
        assert r["threads"] == 2
    skipped = by[("a", "cuda")]
    assert "thread_scaling" not in (skipped.get("extra") or {})
    assert not any(k.startswith("rtf_threads_") for k in skipped["metrics"])


def test_scaling_failure_keeps_the_main_figures(tmp_path, voices_npz, monkeypatch):
    """The worker started for the extra thread count crashes: the cell's main record stays ok, and the
    scaling entry says why that count has no figure."""
    from kopt.bench import run as runmod

    real, started = runmod.WorkerHandle, []

    def handle(argv, memory_mb, timeout_s, environ=None):
        started.append(1)  # the first worker is the main one; the second, at 1 thread, misbehaves
        return real([sys.executable, FAKE, "crash"] if len(started) == 2 else None, memory_mb, timeout_s, environ)

    monkeypatch.setattr(runmod, "WorkerHandle", handle)
    good = variant(tiny_kokoro(tmp_path / "good.onnx"), "good")
    s = BenchSettings(**{**QUICK, "providers": ("cpu",), "threads": 2, "scaling_threads": (1,), "ttfa_repeats": 0,
                         "partition": False, "timeout_s": 30})
    rec = run_bench([good], s, voices_path=str(voices_npz), vocab=default_vocab(), run_id="r")[0]
    assert len(started) == 2
    assert rec["provider"]["status"] == "ok" and rec["metrics"]["rtf_median"] > 0
    assert rec["metrics"]["rtf_threads_1_median"] is None and rec["metrics"]["rtf_threads_2_median"] > 0
    one = rec["extra"]["thread_scaling"]["1"]
    assert one["status"] == "failed" and "SIGABRT" in one["reason"]


@pytest.mark.parametrize("bad", [{"scaling_threads": (1, 0)}, {"scaling_repeats": 0}])
def test_scaling_settings_are_validated(bad):
    from kopt.core.errors import KoptError
    from kopt.core.recipe import validate

    with pytest.raises(KoptError) as e:
        validate(BenchSettings, bad, "r.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("r.toml: " + next(iter(bad))), msg


def test_memory_limit_kills_only_that_cell(tmp_path, voices_npz):
    m = variant(tiny_kokoro(tmp_path / "m.onnx"), "m")
    s = BenchSettings(**{**QUICK, "providers": ("cpu",), "memory_limit_mb": 40, "timeout_s": 60})
    recs = run_bench([m], s, voices_path=str(voices_npz), vocab=default_vocab(), run_id="r")
    assert recs[0]["provider"]["status"] == "failed"
    assert recs[0]["provider"]["reason"]


def test_worker_handle_reports_error_reply(tmp_path):
    h = WorkerHandle(timeout_s=30)
    try:
        with pytest.raises(CellFailed, match="unknown command"):
            h.request("nonsense")
        assert h.request("stats")["rss_peak_mb"] > 0  # still alive after an error reply
    finally:
        h.close()


def test_cli_bench_and_unknown_provider(tmp_path, voices_npz):
    from kopt.cli.main import app

    model = tiny_kokoro(tmp_path / "t.onnx")
    out = tmp_path / "r.jsonl"
    r = CliRunner().invoke(app, ["--json", "--artifacts", str(tmp_path / "art"), "bench", str(model), "-p", "cpu",
                                 "-p", "coreml-ane", "--voices", str(voices_npz), "--repeats", "1", "--warmup", "0",
                                 "--ttfa-repeats", "0", "--text", "short-1", "--threads", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [x["provider"]["status"] for x in data["records"]] == ["ok", "skipped"]
    assert len(read_records(out)) == 2
    r = CliRunner().invoke(app, ["bench", str(model), "-p", "warp-drive", "--voices", str(voices_npz)])
    assert r.exit_code != 0
    assert "unknown provider 'warp-drive'" in str(r.exception) + r.output


def test_cli_bench_prints_and_records_thread_scaling(tmp_path, voices_npz):
    from kopt.cli.main import app

    model = tiny_kokoro(tmp_path / "t.onnx")
    out = tmp_path / "r.jsonl"
    common = ["--artifacts", str(tmp_path / "art"), "bench", str(model), "-p", "cpu", "--voices", str(voices_npz),
              "--repeats", "1", "--warmup", "0", "--ttfa-repeats", "0", "--text", "short-1", "--no-partition",
              "--threads", "2", "--out", str(out)]
    r = CliRunner().invoke(app, common + ["--scaling-threads", "1", "--scaling-repeats", "1"])
    assert r.exit_code == 0, r.output
    assert "thread scaling (cpu)" in r.output and "RTF 1 thread" in r.output and "speed-up 2 threads" in r.output
    (rec,) = read_records(out)
    assert rec.metrics["rtf_threads_1_median"] > 0 and rec.extra["thread_scaling"]["1"]["n"] == 1
    out.unlink()
    r = CliRunner().invoke(app, common + ["--no-scaling"])
    assert r.exit_code == 0, r.output
    (rec,) = read_records(out)
    assert "thread scaling" not in r.output and "thread_scaling" not in (rec.extra or {})
    assert not any(k.startswith("rtf_threads_") for k in rec.metrics)
    r = CliRunner().invoke(app, ["bench", "--help"])
    assert "--scaling-threads" in r.output and "--no-scaling" in r.output


def test_peak_rss_is_the_workers_own_not_the_parents():
    """ru_maxrss survives fork+exec on Linux, so a worker started by a large parent would report the
    parent's peak; the worker reports VmHWM of its own address space instead."""
    import numpy as np

    ballast = np.ones(600 * 1024 * 1024 // 8)  # 600 MB resident in this (parent) process
    h = WorkerHandle(timeout_s=30)
    try:
        st = h.request("stats")
    finally:
        h.close()
        del ballast
    assert 0 < st["rss_peak_mb"] < 400, st
    if st.get("vm_hwm_mb") is not None:
        assert st["rss_peak_mb"] == st["vm_hwm_mb"]


def _nan_kokoro(path: Path) -> Path:
    """The tiny Kokoro with NaN added to its audio (Log of -1), as a provider that breaks it gives."""
    import onnx
    from onnx import helper, numpy_helper

    from tests.graphs import tiny_kokoro_model

    m = tiny_kokoro_model()
    out = m.graph.output[0]
    prod = next(n for n in m.graph.node if out.name in n.output)
    prod.output[list(prod.output).index(out.name)] = "audio_ok"
    m.graph.initializer.append(numpy_helper.from_array(np.array(-1.0, np.float32), "minus_one"))
    m.graph.node.extend([helper.make_node("Log", ["minus_one"], ["nan"], name="/nan/Log"),
                         helper.make_node("Add", ["audio_ok", "nan"], [out.name], name="/nan/Add")])
    onnx.save(m, str(path))
    return path


def test_a_provider_whose_audio_is_not_finite_fails_its_cell(tmp_path, voices_npz):
    good = variant(tiny_kokoro(tmp_path / "good.onnx"), "good")
    bad = variant(_nan_kokoro(tmp_path / "nan.onnx"), "nan")
    s = BenchSettings(**{**QUICK, "providers": ("cpu",), "ttfa_repeats": 0, "partition": False})
    recs = run_bench([good, bad], s, voices_path=str(voices_npz), vocab=default_vocab(), run_id="r")
    by = {r["variant"]["name"]: r for r in recs}
    assert by["good"]["provider"]["status"] == "ok" and by["good"]["metrics"]["rtf_median"] > 0
    nan = by["nan"]["provider"]
    assert nan["status"] == "failed" and "NaN or infinite" in nan["reason"]
    assert by["nan"]["metrics"].get("rtf_median") is None   # no speed figure for broken audio
