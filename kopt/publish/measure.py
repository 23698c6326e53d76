"""Measuring a published bundle as its users run it: only the bundle's own runtime, in new processes.

- one-shot cold start: from starting ``python -m kokoro_runtime TEXT -o -`` in the bundle to the
  first bytes of audio on its stdout, median of ``repeats``; and, in separate runs, where that time
  goes: Python, imports, manifest verification, voices, token cache, session, first chunk;
- warm TTFA in one process that has already spoken once, from ``stream()`` to its first chunk;
- the server (``python -m kokoro_runtime serve``) through a real HTTP client: time to the first
  audio byte and to the last, warm; then throughput and TTFA under 1, 2, 4, 8 concurrent clients
  for 1 and 2 instances (kopt.publish.loadtest);
- the Wyoming server (``python -m kokoro_runtime wyoming``, Home Assistant) through the wyoming
  package's client: time to the first audio-chunk, plain and streaming, and throughput under load;
- the ``say`` client: process start to first audio byte with a warm daemon, and with none.

Every run starts from the bundle folder with the interpreter kopt runs under; nothing of kopt is
imported by the measured processes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from kokoro_runtime.errors import first_line
from kopt.core.errors import KoptError
from kopt.publish.settings import BundleBenchSettings

_WARM = r"""
import json, sys, time
bundle, text, voice, repeats, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
lang = sys.argv[6] or None
sys.path.insert(0, bundle)
from kokoro_runtime import load
tts = load(bundle, threads=threads)
for chunk in tts.stream(text, voice, lang=lang):  # warm-up: sessions, caches, G2P
    pass
times, front = [], []
language = tts.resolve_language(voice, lang)
for _ in range(repeats):
    t = time.perf_counter()
    tts.text_to_chunks(text, True, language)      # the text front end alone (normalize, split, G2P, pack)
    front.append(time.perf_counter() - t)
    t = time.perf_counter()
    g = tts.stream(text, voice, lang=lang)
    first = next(g)
    times.append(time.perf_counter() - t)
    g.close()
print(json.dumps({"ttfa_s": times, "frontend_s": front, "first_chunk_s": len(first) / 24000,
                  "language": language.code}))
"""

# Where a one-shot cold start goes, step by step as the one-shot command takes them; run as `python -c`
# from the bundle, started at argv[1] (time.time()). The session is created on a thread from the
# synthesizer's start ("session": its creation) while voices, token cache and the front end load.
_BREAKDOWN = r"""
import time
t_python = time.time()
import json, sys
t0, bundle, text, voice, threads = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
lang = sys.argv[6] or None
sys.path.insert(0, bundle)
import numpy, onnxruntime
from kokoro_runtime.bundle import Bundle
from kokoro_runtime import synth
t_imports = time.time()
b = Bundle(bundle, verify=True)
tts = b.synthesizer(None, threads, background_session=True)
t_loaded = time.time()
chunks = tts.text_to_chunks(text, True, tts.resolve_language(voice, lang))
t_front = time.time()
tts.session
t_session = time.time()
next(tts.render(text, voice, chunks=chunks))
t_first = time.time()
print(json.dumps({"python": t_python - t0, "imports": t_imports - t_python, "verify": b.verify_s,
                  "voices": tts.load_times["voices"], "token_cache": tts.load_times["token_cache"],
                  "front_end": t_front - t_loaded, "session_wait": t_session - t_front,
                  "first_chunk": t_first - t_session, "session": tts.load_times["session"],
                  "total": t_first - t0}))
"""

def _first_bytes(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> tuple[float, bytes]:
    """Seconds from starting ``cmd`` to its first two bytes on stdout; the rest is drained."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = p.stdout.read(2)
    t1 = time.perf_counter()
    rest = p.stdout.read()
    err = p.stderr.read().decode(errors="replace").strip()
    p.wait(timeout)
    if p.returncode != 0 or len(first) < 2:
        raise KoptError(f"{cwd}: the bundle's runtime failed: {err.splitlines()[-1] if err else p.returncode}")
    return t1 - t0, first + rest


def _median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def measure_oneshot(b: Path, text: str, voice: str, repeats: int, threads: int,
                    lang: str | None = None) -> dict[str, Any]:
    """The first run on this machine (an empty optimized-graph cache: the runtime optimizes and keeps
    the graph) apart from the later ones (the cache warm), each from a new process; a private cache
    folder, so the user's own cache is neither used nor touched. ``lang``: the language to read the
    text in (default: the voice's)."""
    cmd = [sys.executable, "-m", "kokoro_runtime", text, "-o", "-", "--voice", voice] + (["--lang", lang] if lang else [])
    if threads:
        cmd += ["--threads", str(threads)]
    with tempfile.TemporaryDirectory(prefix="kopt-cache-") as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        first = _first_bytes(cmd, b, env)[0]
        cold = [_first_bytes(cmd, b, env)[0] for _ in range(repeats)]
        phases: dict[str, list[float]] = {}
        for _ in range(repeats):
            r = subprocess.run([sys.executable, "-c", _BREAKDOWN, repr(time.time()), str(b), text, voice,
                                str(threads), lang or ""], capture_output=True, text=True, cwd=b, env=env)
            if r.returncode != 0:
                raise KoptError(f"{b}: cold-start breakdown failed: {last_line(r.stderr)}")
            for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items():
                phases.setdefault(k, []).append(v)
        r = subprocess.run([sys.executable, "-c", _WARM, str(b), text, voice, str(repeats), str(threads), lang or ""],
                           capture_output=True, text=True, cwd=b, env=env)
    if r.returncode != 0:
        raise KoptError(f"{b}: warm TTFA run failed: {last_line(r.stderr)}")
    warm = json.loads(r.stdout.strip().splitlines()[-1])
    return {
        "cold_start_s": round(_median(cold), 3), "cold_start_s_runs": [round(x, 3) for x in cold],
        "cold_start_first_s": round(first, 3),
        "cold_breakdown_s": {k: round(_median(v), 3) for k, v in phases.items()},
        "warm_ttfa_ms": round(_median(warm["ttfa_s"]) * 1000, 1),
        "warm_ttfa_ms_runs": [round(x * 1000, 1) for x in warm["ttfa_s"]],
        "first_chunk_audio_s": round(warm["first_chunk_s"], 3),
        "frontend_ms": round(_median(warm["frontend_s"]) * 1000, 1), "language": warm["language"],
    }


def measure_say(b: Path, text: str, voice: str, repeats: int, threads: int, lang: str | None = None) -> dict[str, Any]:
    """``say`` with no daemon (it starts one: cold), with the warm one it left on new text (the
    model renders), and the same text again (the daemon's audio cache answers), in a private
    runtime directory so no daemon of the user's is touched. Each new text differs only at its end (a
    number), so every run's first chunk is the same."""
    with tempfile.TemporaryDirectory(prefix="kopt-say-") as run_dir:
        os.chmod(run_dir, 0o700)
        env = {**os.environ, "XDG_RUNTIME_DIR": run_dir}

        def cmd(t: str) -> list[str]:
            return [sys.executable, "-m", "kokoro_runtime", "say", t, "-o", "-", "--voice", voice] + \
                (["--threads", str(threads)] if threads else []) + (["--lang", lang] if lang else [])
        stop = [sys.executable, "-m", "kokoro_runtime", "stop"]
        cold, warm, hit = [], [], []
        try:
            for k in range(repeats):
                subprocess.run(stop, cwd=b, env=env, capture_output=True, timeout=60)
                cold.append(_first_bytes(cmd(f"{text} {2 * k + 1}."), b, env)[0])   # numbers: read in any language
                warm.append(_first_bytes(cmd(f"{text} {2 * k + 2}."), b, env)[0])
                hit.append(_first_bytes(cmd(f"{text} {2 * k + 2}."), b, env)[0])
        finally:
            subprocess.run(stop, cwd=b, env=env, capture_output=True, timeout=60)
    ms = lambda xs: [round(x * 1000, 1) for x in xs]  # noqa: E731
    return {"say_cold_ms": round(_median(cold) * 1000, 1), "say_cold_ms_runs": ms(cold),
            "say_warm_ms": round(_median(warm) * 1000, 1), "say_warm_ms_runs": ms(warm),
            "say_cached_ms": round(_median(hit) * 1000, 1), "say_cached_ms_runs": ms(hit)}


def measure_bundle(bundle: str | Path, text: str, voice: str | None = None, threads: int = 0,
                   settings: BundleBenchSettings | None = None, *, load_texts: Sequence[str] = (),
                   lang: str | None = None, other_languages: Mapping[str, str] = MappingProxyType({}),
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every figure above for ``bundle``, ``text`` read in ``lang`` (default: the voice's language),
    measured as ``settings`` says (repeats, load sweep, whether the servers are measured; default:
    the ``[bundle_bench]`` defaults). ``other_languages`` (language -> text) adds, per language, the
    library's warm TTFA and front-end time and the HTTP server's TTFA with the same voice, under
    ``languages`` beside the main language's."""
    s = settings or BundleBenchSettings()
    b = Path(bundle).resolve()  # the runs below start inside the bundle: a relative path would break
    if not (b / "manifest.json").is_file():
        raise KoptError(f"{b}: not a bundle (no manifest.json)")
    manifest = json.loads((b / "manifest.json").read_text(encoding="utf-8"))
    voice = voice or manifest.get("default_voice") or manifest["voice_names"][0]
    say = progress or (lambda msg: None)
    say("one-shot cold start")
    out: dict[str, Any] = measure_oneshot(b, text, voice, s.repeats, threads, lang)
    out.update({"text_words": len(text.split()), "text_chars": len(text), "voice": voice, "threads": threads,
                "repeats": s.repeats})
    if s.server:
        out.update(_measure_servers(b, text, voice, threads, s, list(load_texts) or [text], lang,
                                    main_language=out["language"], say=say))
    out["languages"] = {out["language"]: _language_figures(out)}
    for code, other in other_languages.items():
        say(f"language {code}")
        out["languages"][code] = measure_language(b, other, voice, code, s.repeats, threads, s.server)
    _compare_languages(out["languages"])
    return out


def _measure_servers(b: Path, text: str, voice: str, threads: int, s: BundleBenchSettings, load_texts: list[str],
                     lang: str | None, *, main_language: str, say: Callable[[str], None]) -> dict[str, Any]:
    """The say client, the HTTP server with its load sweep, and (when ``text`` is read in the
    voice's own language) the Wyoming server."""
    from kopt.publish import loadtest

    out: dict[str, Any] = {}
    say("say client")
    out.update(measure_say(b, text, voice, s.repeats, threads, lang))
    say("HTTP server")
    out.update(loadtest.measure_server(b, text, voice, s.repeats, threads, load_texts=load_texts,
                                       clients=s.clients, instances=s.instances,
                                       requests_per_client=s.requests_per_client, progress=say, lang=lang))
    if lang is None or lang == main_language:      # Wyoming speaks each voice in its own language
        say("Wyoming server")
        out.update(loadtest.measure_wyoming(b, text, voice, s.repeats, threads, load_texts=load_texts,
                                            clients=sorted({1, max(s.clients)}),
                                            requests_per_client=s.requests_per_client, progress=say))
    return out


def _compare_languages(langs: dict[str, dict[str, Any]], base: str = "en-us") -> None:
    """Each language's HTTP TTFA per second of its first chunk's audio (the first chunk's length
    decides how long the model runs before it can answer), and, beside English, that figure's ratio
    to English's: TTFA compared for first chunks of the same audio length."""
    for figs in langs.values():
        t, a = figs.get("http_ttfa_ms"), figs.get("first_chunk_audio_s")
        if isinstance(t, (int, float)) and isinstance(a, (int, float)) and a > 0:
            figs["http_ttfa_ms_per_audio_s"] = round(t / a, 1)
    ref = langs.get(base, {}).get("http_ttfa_ms_per_audio_s")
    for code, figs in langs.items():
        if code != base and ref and "http_ttfa_ms_per_audio_s" in figs:
            figs["http_ttfa_vs_english"] = round(figs["http_ttfa_ms_per_audio_s"] / ref, 3)


def bundle_languages(bundle: Path, voice: str | None = None) -> tuple[str, list[str]]:
    """The language a bundle-bench measures in full (its voice's, when kopt ships a text set in it,
    else English) and the other shipped languages it measures TTFA in, with the same voice."""
    from kokoro_runtime import lang as L
    from kopt.bench.textset import SHIPPED

    m = json.loads((Path(bundle) / "manifest.json").read_text(encoding="utf-8"))
    voice = voice or m.get("default_voice") or m["voice_names"][0]
    own = L.voice_language(voice, m.get("voice_languages"), m.get("default_language") or L.DEFAULT_LANGUAGE).code
    main = own if own in SHIPPED else L.DEFAULT_LANGUAGE
    return main, [c for c in SHIPPED if c != main]


_LANGUAGE_FIGURES = ("warm_ttfa_ms", "frontend_ms", "first_chunk_audio_s", "http_ttfa_ms", "http_audio_s",
                     "text_chars")


def _language_figures(res: dict[str, Any]) -> dict[str, Any]:
    return {k: res[k] for k in _LANGUAGE_FIGURES if k in res}


def measure_language(b: Path, text: str, voice: str, lang: str, repeats: int, threads: int,
                     server: bool = True) -> dict[str, Any]:
    """One more language through the same bundle and voice: the library's warm TTFA and front-end
    time, and (``server``) the HTTP server's TTFA with one instance."""
    from kopt.publish import loadtest

    with tempfile.TemporaryDirectory(prefix="kopt-cache-") as cache:
        r = subprocess.run([sys.executable, "-c", _WARM, str(b), text, voice, str(repeats), str(threads), lang],
                           capture_output=True, text=True, cwd=b, env={**os.environ, "XDG_CACHE_HOME": cache})
    if r.returncode != 0:
        raise KoptError(f"{b}: warm TTFA in {lang} failed: {last_line(r.stderr)}")
    warm = json.loads(r.stdout.strip().splitlines()[-1])
    out: dict[str, Any] = {"warm_ttfa_ms": round(_median(warm["ttfa_s"]) * 1000, 1),
                           "frontend_ms": round(_median(warm["frontend_s"]) * 1000, 1),
                           "first_chunk_audio_s": round(warm["first_chunk_s"], 3), "text_chars": len(text)}
    if server:
        res = loadtest.measure_server(b, text, voice, repeats, threads, load_texts=[text], clients=(), instances=(1,),
                                      lang=lang)
        out.update({k: res[k] for k in ("http_ttfa_ms", "http_audio_s") if k in res})
    return out


def bundle_metrics(res: dict[str, Any]) -> dict[str, float]:
    """The flat metrics of a bundle-bench result (the results record's ``metrics``)."""
    m: dict[str, float] = {}
    for k in ("cold_start_s", "cold_start_first_s", "warm_ttfa_ms", "first_chunk_audio_s", "frontend_ms", "say_cold_ms",
              "say_warm_ms", "say_cached_ms", "http_ttfa_ms",
              "http_latency_ms", "server_rss_mb", "throughput_8_vs_best_1", "wyoming_first_audio_ms",
              "wyoming_latency_ms", "wyoming_stream_first_audio_ms", "wyoming_rss_mb"):
        if isinstance(res.get(k), (int, float)):
            m[k] = res[k]
    for k, v in res.get("cold_breakdown_s", {}).items():
        m[f"cold_{k}_s"] = v
    for code, figs in res.get("languages", {}).items():
        for k, v in figs.items():
            if isinstance(v, (int, float)) and k != "text_chars":
                m[f"{k}_{code}"] = v
    for row in res.get("wyoming_load", []):
        for k in ("throughput_x", "ttfa_ms_p50", "ttfa_ms_p95", "busy", "errors"):
            if row.get(k) is not None:
                m[f"wyoming_{k}_c{row['clients']}"] = row[k]
    for row in res.get("load", []):
        tag = f"c{row['clients']}_i{row['instances']}"
        for k in ("throughput_x", "ttfa_ms_p50", "ttfa_ms_p95", "latency_ms_p50", "latency_ms_p95", "busy_503",
                  "errors"):
            if row.get(k) is not None:
                m[f"{k}_{tag}"] = row[k]
    return m


def last_line(text: str) -> str:
    """The last non-empty line of a process's stderr or log (what says why it failed), one line."""
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return first_line(Exception(lines[-1])) if lines else "no output"


def bundle_record(res: dict[str, Any], bundle: str | Path, run_id: str, text: str) -> dict[str, Any]:
    """A ``kind: "bundle"`` results record: the flat metrics, and every run and load row in ``extra``."""
    from kopt.core.hashing import sha256_bytes, sha256_file
    from kopt.core.results import make_record

    b = Path(bundle)
    m = json.loads((b / "manifest.json").read_text(encoding="utf-8"))
    v = m.get("variant", {})
    variant = {"name": v.get("name"), "key": v.get("key"), "parents": [], "precision": v.get("precision"),
               "path": str(b)}
    inputs = {"bundle_manifest_sha256": sha256_file(b / "manifest.json"), "model_sha256": v.get("model_sha256"),
              "runtime_version": m.get("runtime_version"), "text_sha256": sha256_bytes(text.encode()),
              "text_words": res.get("text_words"), "voice": res.get("voice"), "language": res.get("language"),
              "languages": sorted(res["languages"])}
    return make_record("bundle", run_id=run_id, variant=variant,
                       provider={"name": "CPUExecutionProvider", "config": "cpu"}, threads=res.get("threads"),
                       metrics=bundle_metrics(res), inputs=inputs, extra={"bundle_bench": res},
                       language=res.get("language") or "en-us")
