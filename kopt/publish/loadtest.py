"""The bundle's HTTP server under a real client: warm TTFA, then throughput and TTFA under concurrency;
and its Wyoming server (Home Assistant) the same way, through the wyoming package's client.

The server runs from the bundle (``python -m kokoro_runtime serve --port 0``, loopback only) with its
audio cache off, so every request is rendered. Clients are threads with their own httpx connection;
each sends ``requests_per_client`` streamed PCM requests one after another. Throughput is seconds of
audio delivered per wall-clock second; TTFA is request sent -> first audio byte received. Every
run is bounded: a fixed number of requests, each with a timeout.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from kopt.core.errors import KoptError

BYTES_PER_S = 2 * 24000


@dataclass
class Running:
    """A server started by ``running_server``: its URL, process and log file."""

    url: str
    proc: subprocess.Popen
    log: Path


@contextlib.contextmanager
def running_server(bundle: Path, *args: str, cwd: Path | None = None, env: dict | None = None,
                   ready: bool = True, timeout: float = 120) -> Iterator[Running]:
    """``python -m kokoro_runtime serve BUNDLE --host 127.0.0.1 --port 0 ARGS`` in a subprocess
    (from ``cwd``, default the bundle: its own runtime), ready when ``/health`` says so (unless
    ``ready`` is false); terminated, and its log removed, on exit."""
    import httpx

    log = Path(tempfile.mkstemp(prefix="kokoro-serve-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "kokoro_runtime", "serve", str(bundle), "--host", "127.0.0.1", "--port", "0", *args]
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd or bundle, stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, **(env or {})})
    try:
        line = proc.stdout.readline().decode()
        m = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not m:
            proc.wait(10)
            raise KoptError(f"{bundle}: the server did not start: {_tail(log)}")
        server = Running(m.group(0), proc, log)
        t_end = time.monotonic() + timeout
        while ready:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(server.url + "/health", timeout=5).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > t_end:
                raise KoptError(f"{bundle}: the server did not become ready: {_tail(log)}")
            time.sleep(0.05)
        yield server
    finally:
        _stop(proc, log)


def _stop(proc: subprocess.Popen, log: Path) -> None:
    """Terminate a measured server (kill it if it has not gone in 15 s) and drop its log."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    proc.stdout.close()
    log.unlink(missing_ok=True)


@contextlib.contextmanager
def running_wyoming(bundle: Path, *args: str, cwd: Path | None = None, env: dict | None = None,
                    timeout: float = 120) -> Iterator[tuple[int, subprocess.Popen]]:
    """``python -m kokoro_runtime wyoming BUNDLE --uri tcp://127.0.0.1:0 ARGS`` in a subprocess (from
    ``cwd``, default the bundle: its own runtime); yields (port, process) once it listens, and
    terminates it on exit. The server also exits by itself after two idle minutes."""
    log = Path(tempfile.mkstemp(prefix="kokoro-wyoming-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "kokoro_runtime", "wyoming", str(bundle), "--uri", "tcp://127.0.0.1:0",
           "--idle-timeout", "120", *args]
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd or bundle, stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, **(env or {})})
    try:
        line = proc.stdout.readline().decode()
        m = re.search(r"tcp://127\.0\.0\.1:(\d+)", line)
        if not m:
            proc.wait(timeout)
            raise KoptError(f"{bundle}: the Wyoming server did not start: {_tail(log)}")
        yield int(m.group(1)), proc
    finally:
        _stop(proc, log)


async def wyoming_request(port: int, text: str, voice: str | None, timeout: float = 120) -> dict[str, Any]:
    """One ``synthesize`` over a new connection: seconds to the first audio-chunk and to audio-stop,
    audio seconds, and the error event's code if one came instead."""
    import asyncio

    from wyoming.audio import AudioChunk, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.error import Error
    from wyoming.tts import Synthesize, SynthesizeVoice

    t0 = time.perf_counter()
    first, n = None, 0
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Synthesize(text, voice=SynthesizeVoice(voice) if voice else None).event())
        while True:
            ev = await asyncio.wait_for(c.read_event(), timeout)
            if ev is None or Error.is_type(ev.type):
                code = Error.from_event(ev).code if ev is not None else "closed"
                return {"status": code, "ttfa_s": None, "latency_s": time.perf_counter() - t0, "audio_s": 0.0}
            if AudioChunk.is_type(ev.type):
                first = first if first is not None else time.perf_counter() - t0
                n += len(ev.payload or b"")
            elif AudioStop.is_type(ev.type):
                return {"status": "ok", "ttfa_s": first, "latency_s": time.perf_counter() - t0,
                        "audio_s": n / BYTES_PER_S}


async def wyoming_stream_first_audio(port: int, text: str, voice: str | None, timeout: float = 120) -> float:
    """Streaming synthesis, the text sent word by word at once: seconds from synthesize-start to the
    first audio-chunk (the rest is read to synthesize-stopped)."""
    import asyncio

    from wyoming.audio import AudioChunk
    from wyoming.client import AsyncTcpClient
    from wyoming.error import Error
    from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

    async with AsyncTcpClient("127.0.0.1", port) as c:
        t0 = time.perf_counter()
        await c.write_event(SynthesizeStart(voice=SynthesizeVoice(voice) if voice else None).event())
        for word in text.split(" "):
            await c.write_event(SynthesizeChunk(word + " ").event())
        await c.write_event(SynthesizeStop().event())
        first = None
        while True:
            ev = await asyncio.wait_for(c.read_event(), timeout)
            if ev is None or Error.is_type(ev.type):
                raise KoptError(f"Wyoming streaming synthesis failed: {ev.data if ev else 'connection closed'}")
            if first is None and AudioChunk.is_type(ev.type):
                first = time.perf_counter() - t0
            if SynthesizeStopped.is_type(ev.type):
                return first if first is not None else float("nan")


def wyoming_load_run(port: int, texts: Sequence[str], voice: str, clients: int, requests_per_client: int,
                     timeout: float = 300) -> dict[str, Any]:
    """``clients`` concurrent Wyoming connections, ``requests_per_client`` synthesize each, one after another."""
    import asyncio

    async def client(k: int) -> list[dict[str, Any]]:
        out = []
        for j in range(requests_per_client):
            try:
                out.append(await wyoming_request(port, texts[(k * requests_per_client + j) % len(texts)], voice,
                                                 timeout))
            except (OSError, asyncio.TimeoutError) as e:
                out.append({"status": type(e).__name__, "ttfa_s": None, "latency_s": None, "audio_s": 0.0})
        return out

    async def run() -> tuple[list[dict[str, Any]], float]:
        t0 = time.perf_counter()
        rows = await asyncio.gather(*(client(k) for k in range(clients)))
        return [r for row in rows for r in row], time.perf_counter() - t0

    results, wall = asyncio.run(run())
    ok = [r for r in results if r["status"] == "ok"]
    ttfa = sorted(r["ttfa_s"] for r in ok if r["ttfa_s"] is not None)
    busy = sum(r["status"] == "busy" for r in results)
    audio = sum(r["audio_s"] for r in ok)
    return {"clients": clients, "requests": len(results), "ok": len(ok), "busy": busy,
            "errors": len(results) - len(ok) - busy, "wall_s": round(wall, 3), "audio_s": round(audio, 3),
            "throughput_x": round(audio / wall, 3) if wall > 0 else None,
            "ttfa_ms_p50": _pct(ttfa, 50), "ttfa_ms_p95": _pct(ttfa, 95)}


def measure_wyoming(bundle: Path, text: str, voice: str, repeats: int, threads: int, *, load_texts: Sequence[str],
                    clients: Sequence[int] = (1, 4), requests_per_client: int = 2,
                    progress: Callable[[str], None] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """The bundle's Wyoming server (one instance, audio cache off) through the wyoming package's own
    client: warm time to the first audio-chunk for ``synthesize`` and for streaming synthesis, then
    throughput under ``clients`` concurrent connections; or why it was not measured. The server runs
    the bundle's own runtime unless ``cwd`` names another checkout."""
    import asyncio
    import importlib.util

    if importlib.util.find_spec("wyoming") is None:
        return {"wyoming_skipped": "the wyoming package is not installed (pip install wyoming)"}
    say = progress or (lambda msg: None)
    cores = threads or os.cpu_count() or 1
    args = ("--instances", "1", "--threads", str(cores), "--queue", str(max(16, max(clients))), "--cache-mb", "0")
    out: dict[str, Any] = {"wyoming_load": [], "wyoming_threads": cores}
    with running_wyoming(bundle, *args, cwd=cwd) as (port, proc):
        say(f"Wyoming first audio (1 instance x {cores} threads)")
        asyncio.run(wyoming_request(port, text, voice))              # warm the model
        runs = [asyncio.run(wyoming_request(port, text, voice)) for _ in range(repeats)]
        if any(r["status"] != "ok" for r in runs):
            raise KoptError(f"{bundle}: the Wyoming server answered {[r['status'] for r in runs]}")
        stream = [asyncio.run(wyoming_stream_first_audio(port, text, voice)) for _ in range(repeats)]
        out.update({"wyoming_first_audio_ms": round(statistics.median(r["ttfa_s"] for r in runs) * 1000, 1),
                    "wyoming_first_audio_ms_runs": [round(r["ttfa_s"] * 1000, 1) for r in runs],
                    "wyoming_latency_ms": round(statistics.median(r["latency_s"] for r in runs) * 1000, 1),
                    "wyoming_stream_first_audio_ms": round(statistics.median(stream) * 1000, 1),
                    "wyoming_stream_first_audio_ms_runs": [round(x * 1000, 1) for x in stream],
                    "wyoming_audio_s": round(runs[0]["audio_s"], 3)})
        for k in clients:
            say(f"Wyoming load: {k} client(s)")
            out["wyoming_load"].append(wyoming_load_run(port, load_texts, voice, k, requests_per_client))
        out["wyoming_rss_mb"] = _rss_mb(proc.pid)
    return out


def one_request(client, text: str, voice: str, lang: str | None = None) -> dict[str, Any]:
    """Stream one PCM response: status, seconds to first byte and to the last, audio seconds.
    ``lang``: the language to read the text in (default: the voice's)."""
    t0 = time.perf_counter()
    ttfa = None
    n = 0
    body = {"input": text, "voice": voice, "response_format": "pcm", **({"lang": lang} if lang else {})}
    with client.stream("POST", "/v1/audio/speech", json=body) as r:
        if r.status_code != 200:
            r.read()
            return {"status": r.status_code, "ttfa_s": None, "latency_s": time.perf_counter() - t0, "audio_s": 0.0}
        for chunk in r.iter_raw():
            if ttfa is None and chunk:
                ttfa = time.perf_counter() - t0
            n += len(chunk)
    return {"status": 200, "ttfa_s": ttfa, "latency_s": time.perf_counter() - t0, "audio_s": n / BYTES_PER_S}


def load_run(url: str, texts: Sequence[str], voice: str, clients: int, requests_per_client: int,
             timeout: float = 300, lang: str | None = None) -> dict[str, Any]:
    import httpx

    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=timeout) as c:
            start.wait()
            for j in range(requests_per_client):
                text = texts[(k * requests_per_client + j) % len(texts)]
                try:
                    res = one_request(c, text, voice, lang)
                except httpx.HTTPError as e:
                    res = {"status": -1, "error": type(e).__name__, "ttfa_s": None, "latency_s": None, "audio_s": 0.0}
                with lock:
                    results.append(res)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(timeout)
    wall = time.perf_counter() - t0
    ok = [r for r in results if r["status"] == 200]
    ttfa = sorted(r["ttfa_s"] for r in ok if r["ttfa_s"] is not None)
    lat = sorted(r["latency_s"] for r in ok)
    return {"clients": clients, "requests": clients * requests_per_client, "ok": len(ok),
            "busy_503": sum(r["status"] == 503 for r in results),
            "errors": clients * requests_per_client - len(ok) - sum(r["status"] == 503 for r in results),
            "wall_s": round(wall, 3), "audio_s": round(sum(r["audio_s"] for r in ok), 3),
            "throughput_x": round(sum(r["audio_s"] for r in ok) / wall, 3) if wall > 0 else None,
            "ttfa_ms_p50": _pct(ttfa, 50), "ttfa_ms_p95": _pct(ttfa, 95),
            "latency_ms_p50": _pct(lat, 50), "latency_ms_p95": _pct(lat, 95)}


def measure_server(bundle: Path, text: str, voice: str, repeats: int, threads: int, *, load_texts: Sequence[str],
                   clients: Sequence[int] = (1, 2, 4, 8), instances: Sequence[int] = (1, 2),
                   requests_per_client: int = 2, progress: Callable[[str], None] | None = None,
                   lang: str | None = None) -> dict[str, Any]:
    import httpx

    say = progress or (lambda msg: None)
    cores = threads or os.cpu_count() or 1
    out: dict[str, Any] = {"load": [], "load_texts": len(load_texts), "requests_per_client": requests_per_client}
    rss: list[float] = []
    for n, inst in enumerate(instances):
        per = max(1, cores // inst)
        args = ("--instances", str(inst), "--threads", str(per), "--queue", str(max(16, max(clients, default=1))),
                "--cache-mb", "0")
        with running_server(bundle, *args) as srv:
            url, pid = srv.url, srv.proc.pid
            with httpx.Client(base_url=url, timeout=300) as c:
                one_request(c, text, voice, lang)                  # warm the connection and the model
                if n == 0:
                    say(f"HTTP TTFA ({inst} instance x {per} threads)")
                    runs = [one_request(c, text, voice, lang) for _ in range(repeats)]
                    if any(r["status"] != 200 for r in runs):
                        raise KoptError(f"{bundle}: the server answered {[r['status'] for r in runs]}")
                    out.update({"http_ttfa_ms": round(statistics.median(r["ttfa_s"] for r in runs) * 1000, 1),
                                "http_ttfa_ms_runs": [round(r["ttfa_s"] * 1000, 1) for r in runs],
                                "http_latency_ms": round(statistics.median(r["latency_s"] for r in runs) * 1000, 1),
                                "http_audio_s": round(runs[0]["audio_s"], 3), "http_instances": inst,
                                "http_threads": per})
            for k in clients:
                say(f"load: {k} client(s), {inst} instance(s) x {per} thread(s)")
                row = load_run(url, load_texts, voice, k, requests_per_client, lang=lang)
                out["load"].append({"instances": inst, "threads": per, **row})
            rss.append(_rss_mb(pid))
    out["server_rss_mb"] = max((r for r in rss if r is not None), default=None)
    out["server_rss_mb_by_instances"] = {str(i): r for i, r in zip(instances, rss)}   # what kopt.publish.deploy sizes from
    best1 = max((r["throughput_x"] or 0 for r in out["load"] if r["clients"] == 1), default=0)
    best8 = max((r["throughput_x"] or 0 for r in out["load"] if r["clients"] == max(clients, default=1)), default=0)
    out["throughput_8_vs_best_1"] = round(best8 / best1, 3) if best1 else None
    return out


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return round(xs[k] * 1000, 1)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _tail(log: Path) -> str:
    from kopt.publish.measure import last_line

    try:
        return last_line(log.read_text(errors="replace"))
    except OSError:
        return "no log"
