"""Load test for the bundle's speech route (locust). Each simulated listener asks for speech with a
random voice of the server's, streamed (PCM, timed to the first audio bytes) or whole (WAV), with a
random ending so the server's audio cache never answers.

A bounded headless run (5 listeners for 60 s, a summary and CSV files at the end):

    locust -f locustfile.py --host http://127.0.0.1:8880 --headless -u 5 -r 5 -t 60s \
        --only-summary --csv kokoro-load --exit-code-on-error 1

``KOKORO_API_KEY`` (if the server needs one), ``KOKORO_VOICES`` (comma-separated; default: every
voice from /v1/audio/voices) and ``KOKORO_TEXTS`` (a file, one text a line) change what is sent.
"""

from __future__ import annotations

import os
import random
import time

from locust import HttpUser, between, events, task

TEXTS = ("The cat sat on the mat.",
         "The dog ran to the park, and it was sunny.",
         "Hello world, this is a test of the speech server.")
ENDINGS = ("one", "two", "three", "four", "five", "twenty", "hundred", "thousand")


def _texts() -> tuple[str, ...]:
    path = os.environ.get("KOKORO_TEXTS")
    if not path:
        return TEXTS
    with open(path, encoding="utf-8") as f:
        return tuple(line.strip() for line in f if line.strip())


class Listener(HttpUser):
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        key = os.environ.get("KOKORO_API_KEY")
        if key:
            self.client.headers["Authorization"] = f"Bearer {key}"
        names = [v for v in os.environ.get("KOKORO_VOICES", "").split(",") if v]
        if not names:
            with self.client.get("/v1/audio/voices", name="voices", catch_response=True) as r:
                names = r.json()["voices"] if r.status_code == 200 else []
        self.voices = names or ["af_heart"]
        self.texts = _texts()

    def _body(self, fmt: str, stream: bool) -> dict:
        ending = " ".join(random.choice(ENDINGS) for _ in range(4))     # 8^4 endings: the cache misses
        return {"model": "tts-1", "voice": random.choice(self.voices), "response_format": fmt, "stream": stream,
                "input": f"{random.choice(self.texts)} {ending.capitalize()}."}

    @task(3)
    def streamed(self) -> None:
        t0 = time.perf_counter()
        with self.client.post("/v1/audio/speech", json=self._body("pcm", True), stream=True,
                              name="speech (stream, pcm)", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return
            first, n = None, 0
            for chunk in r.iter_content(chunk_size=4096):
                if chunk and first is None:
                    first = time.perf_counter() - t0
                n += len(chunk)
            if n == 0:
                r.failure("no audio")
                return
            r.success()
            events.request.fire(request_type="TTFA", name="first audio bytes (stream)", response_time=first * 1000,
                                response_length=n, exception=None, context={})

    @task(1)
    def whole(self) -> None:
        with self.client.post("/v1/audio/speech", json=self._body("wav", False), name="speech (whole, wav)",
                              catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
            elif not r.content.startswith(b"RIFF") or len(r.content) <= 44:
                r.failure("not a WAV with audio")
            else:
                r.success()
