"""The server and the say daemon on the real Kokoro model (slow): the official openai client streams
what `synthesize` renders, a bounded load run answers every request, and say survives a kill -9. The
text is English, asked for with lang (the embedded voices are Japanese; Japanese through serve is in
test_serve_ja_real.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import wave

import numpy as np
import pytest

from kopt.publish.publish import publish
from kopt.publish.settings import PublishSettings
from tests.runtime.helpers import REPO
from tests.runtime.serving import serve

pytestmark = pytest.mark.slow

TEXT = "The morning train was late again, so Maria walked the last two miles to the office."


@pytest.fixture(scope="module")
def bundle(real_store, tmp_path_factory):
    store, base, _ = real_store
    res = publish(store, base.key, tmp_path_factory.mktemp("served") / "bundle",
                  PublishSettings(cache_words=20000, tarball=False, default_voice="jf_alpha"))
    assert res.manifest["variant"]["timings"] == "duration"
    return res.bundle


@pytest.fixture(scope="module")
def reference_pcm(bundle):
    from kokoro_runtime import load, to_pcm16

    return np.frombuffer(to_pcm16(load(bundle, threads=2).synthesize(TEXT, "jf_alpha", lang="en-us")), "<i2")


def test_openai_client_streams_what_synthesize_gives(bundle, reference_pcm):
    import openai

    with serve(bundle, "--threads", "2", "--instances", "1", timeout=180) as s:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused")
        with client.audio.speech.with_streaming_response.create(model="tts-1", voice="jf_alpha", input=TEXT,
                                                                response_format="pcm", extra_body={"lang": "en-us"}) as r:
            pieces = list(r.iter_bytes())
        got = np.frombuffer(b"".join(pieces), "<i2")
        assert len(pieces) >= 2                                    # streamed, not one block
        assert got.shape == reference_pcm.shape and np.abs(got.astype(int) - reference_pcm).max() <= 1
        # word timings from the published `duration` output, over SSE
        import httpx

        ev = httpx.post(s.url + "/v1/audio/speech", json={"input": TEXT, "voice": "jf_alpha", "lang": "en-us", "response_format": "pcm",
                                                          "stream_format": "sse", "timestamps": True}, timeout=120)
        import json

        words = [w for block in ev.text.strip().split("\n\n") for w in json.loads(block[6:]).get("words", [])]
        assert [w["word"] for w in words][:3] == ["The", "morning", "train"] and words[-1]["word"] == "office"
        assert words[-1]["end"] <= len(reference_pcm) / 24000 + 0.01 and words[-1]["end"] > 0.7 * len(reference_pcm) / 24000


def test_bounded_load_every_request_answered_and_memory_bounded(bundle):
    """200 requests, 8 clients at a time, over 20 texts (the audio cache serves repeats): every one
    answers 200 or an explicit 503, and the server's RSS grows by less than 300 MB (the 64 MB cache,
    onnxruntime's arenas for longer inputs) between the first renders and the end."""
    import httpx

    texts = [f"Notice number {k}: the {w} door is open." for k, w in
             enumerate(["front", "back", "side", "garage", "kitchen"] * 4, start=1)]
    codes: list[int] = []
    lock = threading.Lock()
    with serve(bundle, "--threads", "2", "--instances", "1", "--queue", "16", timeout=180) as s:
        def rss() -> float:
            for line in open(f"/proc/{s.proc.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
            raise AssertionError("no VmRSS")

        with httpx.Client(base_url=s.url, timeout=120) as c:
            for t in texts[:2]:
                assert c.post("/v1/audio/speech", json={"input": t, "voice": "jf_alpha", "lang": "en-us",
                                                        "response_format": "pcm"}).status_code == 200
        before = rss()

        def client(k: int) -> None:
            with httpx.Client(base_url=s.url, timeout=120) as c:
                for j in range(25):
                    r = c.post("/v1/audio/speech", json={"input": texts[(k * 25 + j) % len(texts)],
                                                         "voice": "jf_alpha", "lang": "en-us", "response_format": "pcm"})
                    with lock:
                        codes.append(r.status_code)
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        took = time.monotonic() - t0
        after = rss()
        assert s.proc.poll() is None
        hits = s.metric("kokoro_cache_hits_total")
    assert len(codes) == 200 and set(codes) <= {200, 503}, sorted(set(codes))
    assert codes.count(200) >= 180 and hits >= 150, (codes.count(503), hits)
    assert after - before < 300, (before, after)
    assert took < 290


def test_say_daemon_on_the_real_model(bundle, reference_pcm, tmp_path):
    run_dir = tmp_path / "xdg"
    run_dir.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir)}

    def say(out):
        return subprocess.run([sys.executable, "-m", "kokoro_runtime", "say", TEXT, "--bundle", str(bundle),
                               "--voice", "jf_alpha", "--lang", "en-us", "--threads", "2", "-o", str(out)], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=300)

    def pid():
        r = subprocess.run([sys.executable, "-m", "kokoro_runtime", "status", "--bundle", str(bundle), "--json"],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        import json

        return json.loads(r.stdout).get("pid")
    try:
        r = say(tmp_path / "a.wav")
        assert r.returncode == 0, r.stderr
        with wave.open(str(tmp_path / "a.wav")) as w:
            got = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        assert got.shape == reference_pcm.shape and np.abs(got.astype(int) - reference_pcm).max() <= 1
        first = pid()
        os.kill(first, signal.SIGKILL)
        r = say(tmp_path / "b.wav")
        assert r.returncode == 0, r.stderr
        assert pid() not in (None, first)
    finally:
        subprocess.run([sys.executable, "-m", "kokoro_runtime", "stop", "--bundle", str(bundle)], env=env, cwd=REPO,
                       capture_output=True, timeout=60)
