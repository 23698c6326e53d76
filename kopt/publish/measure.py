"""Measuring a published bundle as its users run it: only the bundle's own runtime, in new processes.

- cold start: from starting ``python -m kokoro_runtime TEXT -o -`` in the bundle to the first
  bytes of audio on its stdout (interpreter start, manifest verification, session creation, front
  end, first chunk), median of ``repeats``;
- warm TTFA: in one process that has already spoken once, from ``stream()`` to its first chunk,
  G2P included, median of ``repeats``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kopt.core.errors import KoptError

_WARM = r"""
import json, sys, time
bundle, text, voice, repeats, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
sys.path.insert(0, bundle)
from kokoro_runtime import open_bundle
tts = open_bundle(bundle, threads=threads)
for chunk in tts.stream(text, voice):  # warm-up: sessions, caches, G2P
    pass
times = []
for _ in range(repeats):
    t = time.perf_counter()
    g = tts.stream(text, voice)
    first = next(g)
    times.append(time.perf_counter() - t)
    g.close()
print(json.dumps({"ttfa_s": times, "first_chunk_s": len(first) / 24000}))
"""


def measure_bundle(bundle: str | Path, text: str, voice: str | None = None, repeats: int = 3,
                   threads: int = 0) -> dict[str, Any]:
    b = Path(bundle).resolve()  # the runs below start inside the bundle: a relative path would break
    if not (b / "manifest.json").is_file():
        raise KoptError(f"{b}: not a bundle (no manifest.json)")
    manifest = json.loads((b / "manifest.json").read_text(encoding="utf-8"))
    voice = voice or manifest.get("default_voice") or manifest["voice_names"][0]
    cmd = [sys.executable, "-m", "kokoro_runtime", text, "-o", "-", "--voice", voice]
    if threads:
        cmd += ["--threads", str(threads)]
    cold = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=b, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = p.stdout.read(2)
        t1 = time.perf_counter()
        p.stdout.read()
        err = p.stderr.read().decode(errors="replace").strip()
        p.wait()
        if p.returncode != 0 or len(first) < 2:
            raise KoptError(f"{b}: the bundle's runtime failed: {err.splitlines()[-1] if err else p.returncode}")
        cold.append(t1 - t0)
    r = subprocess.run([sys.executable, "-c", _WARM, str(b), text, voice, str(repeats), str(threads)],
                       capture_output=True, text=True, cwd=b)
    if r.returncode != 0:
        raise KoptError(f"{b}: warm TTFA run failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    warm = json.loads(r.stdout.strip().splitlines()[-1])
    return {
        "cold_start_s": round(statistics.median(cold), 3), "cold_start_s_runs": [round(x, 3) for x in cold],
        "warm_ttfa_ms": round(statistics.median(warm["ttfa_s"]) * 1000, 1),
        "warm_ttfa_ms_runs": [round(x * 1000, 1) for x in warm["ttfa_s"]],
        "first_chunk_audio_s": round(warm["first_chunk_s"], 3), "text_words": len(text.split()),
        "voice": voice, "threads": threads, "repeats": repeats,
    }
