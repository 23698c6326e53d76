"""The one-shot cold start, old runtime vs new, side by side on one bundle (latency issue, part 2;
figures in docs/cold-start.md).

    .venv/bin/python docs/measurements/cold_start.py copies BUNDLE WORK/NAME [--old-ref HEAD]
    .venv/bin/python docs/measurements/cold_start.py run RUNS THREADS TEXT VOICE LANG COPY...
    .venv/bin/python docs/measurements/cold_start.py sessions MODEL [--runs 5]
    .venv/bin/python docs/measurements/cold_start.py chunk BUNDLE THREADS TEXT VOICE LANG [--runs 4]

``copies`` makes NAME-old (the runtime of git ref --old-ref) and NAME-new (this checkout's
runtime) from BUNDLE, hard-linking its large files and re-listing each copy's runtime files in its
manifest. ``run`` gives each copy its own XDG_CACHE_HOME, runs each once unmeasured (the optimized
graph and the stamps are written), then alternates them RUNS times: the one-shot command from
process start to its first audio bytes, then kopt's cold-start breakdown; medians as JSON. LANG ''
is the voice's language. ``sessions`` saves MODEL's optimized graph three ways (plain .onnx, ORT
format, .onnx with pre-packed external weights) and times creating a session on each, with
optimizations off, in new processes taking turns (.ort also with the use_ort_model_bytes_* keys).
``chunk`` renders TEXT's first chunk RUNS times in one process, with the session from the cache
and without it: whether the first run of a session costs more than later ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kopt.publish.measure import _BREAKDOWN, _first_bytes

REPO = Path(__file__).resolve().parents[2]


def relist(bundle: Path) -> None:
    """The manifest's kokoro_runtime/ entries, from the files now there."""
    m = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    files = {k: v for k, v in m["files"].items() if not k.startswith("kokoro_runtime/")}
    for p in sorted((bundle / "kokoro_runtime").rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            files[p.relative_to(bundle).as_posix()] = {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                                                       "size": p.stat().st_size}
    m["files"] = files
    (bundle / "manifest.json").write_text(json.dumps(m, indent=1), encoding="utf-8")


def copies(src: Path, dest: Path, old_ref: str) -> None:
    old, new = dest.with_name(dest.name + "-old"), dest.with_name(dest.name + "-new")
    for d in (old, new):
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(src, d, copy_function=os.link, ignore=shutil.ignore_patterns("kokoro_runtime"))
        (d / "manifest.json").unlink()
        shutil.copy(src / "manifest.json", d / "manifest.json")
    with tempfile.TemporaryDirectory() as t:
        tar = Path(t) / "rt.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(tar), old_ref, "kokoro_runtime"], check=True)
        subprocess.run(["tar", "-xf", str(tar), "-C", str(old)], check=True)
    shutil.copytree(REPO / "kokoro_runtime", new / "kokoro_runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    for d in (old, new):
        relist(d)
        print(d)


def breakdown(bundle: Path) -> str:
    """kopt's breakdown script, for a runtime from before the session was made on a thread without
    the keyword (its session is then made in the synthesizer's start: session_wait ~0)."""
    if "background_session" in (bundle / "kokoro_runtime" / "synth.py").read_text(encoding="utf-8"):
        return _BREAKDOWN
    return _BREAKDOWN.replace(", background_session=True", "")


def run(runs: int, threads: int, text: str, voice: str, lang: str, bundles: list[str]) -> dict:
    cmd = [sys.executable, "-m", "kokoro_runtime", text, "-o", "-", "--voice", voice, "--threads", str(threads)]
    cmd += ["--lang", lang] if lang else []
    res = {b: {"oneshot": [], "phases": {}} for b in bundles}
    with tempfile.TemporaryDirectory(prefix="cold-start-") as caches:
        envs = {b: {**os.environ, "XDG_CACHE_HOME": str(Path(caches) / str(i))} for i, b in enumerate(bundles)}
        for b in bundles:
            _first_bytes(cmd, Path(b), envs[b])
        for i in range(runs):
            for b in bundles if i % 2 == 0 else bundles[::-1]:
                res[b]["oneshot"].append(_first_bytes(cmd, Path(b), envs[b])[0])
                r = subprocess.run([sys.executable, "-c", breakdown(Path(b)), repr(time.time()), b, text, voice,
                                    str(threads), lang], capture_output=True, text=True, cwd=b, env=envs[b])
                if r.returncode:
                    sys.exit(r.stderr)
                for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items():
                    res[b]["phases"].setdefault(k, []).append(v)

    def med(xs: list[float]) -> float:
        return round(statistics.median(xs), 3)

    return {Path(b).name: {"oneshot_first_audio_s": med(r["oneshot"]), "oneshot_runs": [round(x, 3) for x in r["oneshot"]],
                           "breakdown": {k: med(v) for k, v in r["phases"].items()}} for b, r in res.items()}


_SAVE = r"""
import sys, onnxruntime as ort
src, out = sys.argv[1], sys.argv[2]
for name, cfg in (("opt.onnx", {}), ("opt.ort", {"session.save_model_format": "ORT"}),
                  ("pp.onnx", {"session.optimized_model_external_initializers_file_name": "pp.data",
                               "session.optimized_model_external_initializers_min_size_in_bytes": "1024",
                               "session.save_external_prepacked_constant_initializers": "1"})):
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = 1, 1, 3
    o.optimized_model_filepath = f"{out}/{name}"
    for k, v in cfg.items():
        o.add_session_config_entry(k, v)
    ort.InferenceSession(src, o, providers=["CPUExecutionProvider"])
"""

_LOAD = r"""
import sys, time, onnxruntime as ort
kind, d = sys.argv[1], sys.argv[2]
o = ort.SessionOptions()
o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = 1, 1, 3
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
if kind == "ort-bytes-keys":
    o.add_session_config_entry("session.use_ort_model_bytes_directly", "1")
    o.add_session_config_entry("session.use_ort_model_bytes_for_initializers", "1")
t = time.perf_counter()
ort.InferenceSession(f"{d}/" + {"onnx": "opt.onnx", "ort": "opt.ort", "ort-bytes-keys": "opt.ort",
                                "prepacked": "pp.onnx"}[kind], o, providers=["CPUExecutionProvider"])
print(time.perf_counter() - t)
"""


def sessions(model: Path, runs: int) -> dict:
    kinds = ("onnx", "ort", "ort-bytes-keys", "prepacked")
    times: dict[str, list[float]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="cold-start-sessions-") as d:
        subprocess.run([sys.executable, "-c", _SAVE, str(model), d], check=True)
        for i in range(runs):
            for k in kinds if i % 2 == 0 else kinds[::-1]:
                r = subprocess.run([sys.executable, "-c", _LOAD, k, d], capture_output=True, text=True, check=True)
                times[k].append(float(r.stdout))
    return {k: {"median_s": round(statistics.median(v), 3), "runs": [round(x, 3) for x in v]} for k, v in times.items()}


_CHUNK = r"""
import json, sys, time
bundle, threads, text, voice, lang, runs, cache = sys.argv[1:8]
sys.path.insert(0, bundle)
from kokoro_runtime.bundle import Bundle
b = Bundle(bundle)
tts = b.synthesizer(None, int(threads), session_cache=cache == "1")
chunks = tts.text_to_chunks(text, True, tts.resolve_language(voice, lang or None))[:1]
times = []
for _ in range(int(runs)):
    t = time.perf_counter()
    next(tts.render(text, voice, chunks=chunks))
    times.append(round(time.perf_counter() - t, 3))
print(json.dumps({"tokens": len(chunks[0].tokens), "runs_s": times}))
"""


def chunk(bundle: Path, threads: int, text: str, voice: str, lang: str, runs: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory(prefix="cold-start-chunk-") as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        for name, flag in (("cached", "1"), ("cached", "1"), ("uncached", "0")):   # the first fills the cache
            r = subprocess.run([sys.executable, "-c", _CHUNK, str(bundle), str(threads), text, voice, lang, str(runs),
                                flag], capture_output=True, text=True, cwd=bundle, env=env, check=True)
            out[name] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def _speech_args(p: argparse.ArgumentParser) -> None:
    """THREADS TEXT VOICE LANG, as ``run`` and ``chunk`` take them."""
    p.add_argument("threads", type=int)
    p.add_argument("text")
    p.add_argument("voice")
    p.add_argument("lang")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("copies")
    c.add_argument("bundle", type=Path)
    c.add_argument("dest", type=Path)
    c.add_argument("--old-ref", default="HEAD")
    r = sub.add_parser("run")
    r.add_argument("runs", type=int)
    _speech_args(r)
    r.add_argument("bundles", nargs="+")
    se = sub.add_parser("sessions")
    se.add_argument("model", type=Path)
    se.add_argument("--runs", type=int, default=5)
    ch = sub.add_parser("chunk")
    ch.add_argument("bundle", type=Path)
    _speech_args(ch)
    ch.add_argument("--runs", type=int, default=4)
    a = p.parse_args()
    if a.cmd == "copies":
        copies(a.bundle, a.dest, a.old_ref)
    elif a.cmd == "sessions":
        print(json.dumps(sessions(a.model, a.runs), indent=1))
    elif a.cmd == "chunk":
        print(json.dumps(chunk(a.bundle, a.threads, a.text, a.voice, a.lang, a.runs), indent=1))
    else:
        print(json.dumps(run(a.runs, a.threads, a.text, a.voice, a.lang, a.bundles), indent=1))


if __name__ == "__main__":
    main()
