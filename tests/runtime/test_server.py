"""The HTTP server on tiny Kokoro-signature bundles: real servers on 127.0.0.1, port 0, in subprocesses."""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import threading
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from kokoro_runtime import load, to_pcm16
from tests.runtime.serving import TEXT, make_bundle, serve


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("served"), modes=True)


@pytest.fixture(scope="module")
def server(bundle):
    with serve(bundle, "--threads", "1") as s:
        yield s


@pytest.fixture(scope="module")
def expected(bundle):
    """What the library renders for TEXT with the default voice: the bytes the server must send."""
    tts = load(bundle, g2p=False, threads=1)
    return to_pcm16(tts.synthesize(TEXT, "voice_0"))


def speech(client: httpx.Client, **body) -> httpx.Response:
    return client.post("/v1/audio/speech", json={"input": TEXT, "voice": "voice_0", **body})


def test_routes_describe_the_bundle(server):
    with server.client() as c:
        h = c.get("/health").json()
        assert h["status"] == "ready" and h["modes"] == ["fast", "quality"] and h["default_mode"] == "fast"
        ids = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
        assert {"fast", "quality", "tts-1", "tts-1-hd"} <= set(ids) and ids["fast"]["default"] is True
        assert ids["tts-1"]["mode"] == "fast" and ids["tts-1-hd"]["mode"] == "quality"
        assert c.get("/v1/audio/voices").json()["voices"] == ["voice_0", "voice_1"]
        r = c.get("/nope")
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
        assert c.get("/v1/audio/speech").status_code == 405


def test_pcm_and_wav_stream_what_synthesize_gives(server, expected):
    with server.client() as c:
        assert speech(c, response_format="pcm").content == expected
        with c.stream("POST", "/v1/audio/speech", json={"input": TEXT, "voice": "voice_0",
                                                          "response_format": "wav"}) as r:
            assert r.headers["content-type"] == "audio/wav" and r.headers.get("transfer-encoding") == "chunked"
            body = b"".join(r.iter_bytes())
    assert body[:4] == b"RIFF" and struct.unpack("<I", body[40:44])[0] == 0xFFFFFFFF  # streamed: size unknown
    assert body[44:] == expected
    audio, rate = sf.read(io.BytesIO(body[:40] + struct.pack("<I", len(expected)) + body[44:]), dtype="int16")
    assert rate == 24000 and audio.tobytes() == expected


@pytest.mark.parametrize("fmt,exact", [("flac", True), ("mp3", False), ("opus", False)])
def test_encoded_formats_decode(server, expected, fmt, exact):
    with server.client() as c:
        r = speech(c, response_format=fmt)
    assert r.status_code == 200 and r.headers["content-type"] == {"flac": "audio/flac", "mp3": "audio/mpeg",
                                                                  "opus": "audio/ogg"}[fmt]
    audio, rate = sf.read(io.BytesIO(r.content), dtype="int16")
    want = np.frombuffer(expected, "<i2")
    assert rate == 24000
    if exact:
        assert np.array_equal(audio, want)
    else:  # lossy: same length within the codec's padding, and the same signal within its error
        assert abs(len(audio) - len(want)) < 0.05 * len(want), (len(audio), len(want))


def test_not_streamed_has_exact_sizes(server, expected):
    with server.client() as c:
        r = speech(c, response_format="wav", stream=False)
    assert int(r.headers["content-length"]) == 44 + len(expected)
    assert struct.unpack("<I", r.content[40:44])[0] == len(expected) and r.content[44:] == expected


def test_sse_events_carry_the_audio_and_words(server, expected):
    with server.client() as c:
        r = speech(c, response_format="pcm", stream_format="sse", timestamps=True)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(block[len("data: "):]) for block in r.text.strip().split("\n\n")]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["input_tokens"] == len(TEXT)
    assert len(deltas) >= 2 and b"".join(base64.b64decode(e["audio"]) for e in deltas) == expected
    words = [w for e in deltas for w in e["words"]]
    assert [w["word"] for w in words][:3] == ["The", "cat", "sat"] and words[-1]["word"] == "sunny"
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and all(w["end"] >= w["start"] for w in words)
    assert words[-1]["end"] <= len(expected) / 2 / 24000


def test_timestamps_as_json(server, expected):
    with server.client() as c:
        r = speech(c, response_format="wav", timestamps=True)
    body = r.json()
    wav = base64.b64decode(body["audio"])
    assert wav[44:] == expected and body["sample_rate"] == 24000
    assert len(body["words"]) == 16 and body["words"][3] == {**body["words"][3], "word": "on"}


def test_modes_and_blends(server, expected):
    with server.client() as c:
        fast = speech(c, model="tts-1", response_format="pcm").content
        hd = speech(c, model="tts-1-hd", response_format="pcm").content
        by_name = speech(c, model="quality", response_format="pcm").content
        a = speech(c, voice="voice_0(1)+voice_1(3)", response_format="pcm").content
        b = speech(c, voice="voice_0:0.25,voice_1:0.75", response_format="pcm").content
        one = speech(c, voice="voice_1", response_format="pcm").content
    assert fast == expected and hd == by_name and hd != fast
    assert a == b and a != one and a != expected


@pytest.mark.parametrize("body,param,needle", [
    ({"speed": 0}, "speed", "out of range"),
    ({"speed": 1e9}, "speed", "out of range"),
    ({"speed": "fast"}, "speed", "not a number"),
    ({"voice": "nobody"}, "voice", "unknown voice 'nobody'"),
    ({"voice": "voice_0(x)+voice_1"}, "voice", "not a number"),
    ({"input": ""}, "input", "empty"),
    ({"input": 42}, "input", "must be a string"),
    ({"input": "~~~ ^^^"}, "input", "nothing to speak"),
    ({"input": "x" * 4097}, "input", "4097 characters; the limit is 4096"),
    ({"response_format": "aac"}, "response_format", "no AAC encoder"),
    ({"response_format": "ogg"}, "response_format", "not a format"),
    ({"stream_format": "chunks"}, "stream_format", "use 'audio' or 'sse'"),
    ({"timestamps": "yes"}, "timestamps", "true or false"),
    ({"model": "gpt-9"}, "model", "not served here"),
    ({"sped": 2}, "sped", "unknown field"),
])
def test_bad_input_is_a_json_400_naming_the_field(server, body, param, needle):
    with server.client() as c:
        r = c.post("/v1/audio/speech", json={"input": TEXT, "voice": "voice_0", **body})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and needle in err["message"], err


def test_nan_speed_and_malformed_bodies(server):
    with server.client() as c:
        r = c.post("/v1/audio/speech", content='{"input": "the cat", "voice": "voice_0", "speed": NaN}')
        assert r.status_code == 400 and r.json()["error"]["param"] == "speed"
        for raw in ("{bad", "[1, 2]", "\xff"):
            r = c.post("/v1/audio/speech", content=raw.encode("latin-1"))
            assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_cache_serves_a_repeat_and_metrics_count(server):
    text = "The dog sat on the mat and it was sunny."
    with server.client() as c:
        hits0 = server.metric("kokoro_cache_hits_total")
        first = c.post("/v1/audio/speech", json={"input": text, "voice": "voice_1", "response_format": "pcm"})
        again = c.post("/v1/audio/speech", json={"input": text, "voice": "voice_1", "response_format": "pcm"})
    assert first.content == again.content
    assert server.metric("kokoro_cache_hits_total") == hits0 + 1
    assert server.metric("kokoro_requests_total") >= 2
    assert server.metric("kokoro_time_to_first_audio_seconds_count") >= 2
    assert server.metric("kokoro_request_errors_total") >= 1      # the 400s above
    assert server.metric("kokoro_cache_bytes") > 0


def test_openai_client_streams_speech(server, expected, tmp_path):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="voice_0", input=TEXT,
                                                            response_format="pcm") as r:
        got = b"".join(r.iter_bytes())
    assert got == expected


def test_api_key(bundle):
    with serve(bundle, "--threads", "1", env={"KOKORO_API_KEY": "s3cret"}) as s, s.client() as c:
        assert c.get("/health").status_code == 200              # probes need no key
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = c.post("/v1/audio/speech", json={"input": TEXT, "voice": "voice_0"}, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert c.get("/metrics").status_code == 401
        ok = c.post("/v1/audio/speech", json={"input": TEXT, "voice": "voice_0", "response_format": "pcm"},
                    headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and len(ok.content) > 0


def test_text_is_not_logged_unless_asked(bundle):
    marker = "The zebra sat."
    for flag, logged in (((), False), (("--log-text",), True)):
        with serve(bundle, "--threads", "1", "--log-level", "info", *flag) as s, s.client() as c:
            assert speech(c, input=marker, response_format="pcm").status_code in (200, 400)
            time.sleep(0.2)
            assert (marker in s.log.read_text()) is logged


@pytest.fixture(scope="module")
def busy_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("busy"), busy=True)


LONG = " ".join(["The cat sat on the mat, and the dog ran to the park."] * 70)  # ~3,500 characters, a dozen chunks


def test_full_queue_answers_503_with_retry_after(busy_bundle):
    with serve(busy_bundle, "--threads", "1", "--instances", "1", "--queue", "0", "--cache-mb", "0") as s, \
            s.client() as c, s.client() as c2:
        with c.stream("POST", "/v1/audio/speech", json={"input": LONG, "voice": "voice_0",
                                                          "response_format": "pcm"}) as held:
            chunks = held.iter_raw()          # kept: a dropped iterator closes the connection
            next(chunks)                      # admitted and speaking
            r = speech(c2, response_format="pcm")
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "busy"
        assert s.metric("kokoro_request_errors_total") >= 1
        t_end = time.monotonic() + 10
        while s.metric("kokoro_requests_in_flight") and time.monotonic() < t_end:
            time.sleep(0.05)
        assert speech(c2, response_format="pcm").status_code == 200   # the slot came back


def test_client_disconnect_stops_its_synthesis_and_frees_the_instance(busy_bundle):
    with serve(busy_bundle, "--threads", "1", "--instances", "1", "--queue", "0", "--cache-mb", "0") as s:
        with s.client() as c:
            with c.stream("POST", "/v1/audio/speech", json={"input": LONG, "voice": "voice_0",
                                                              "response_format": "pcm"}) as r:
                next(r.iter_raw())
            # the response is closed after its first chunk of 70 sentences: the server must notice and stop
        t_end = time.monotonic() + 10
        while (s.metric("kokoro_requests_in_flight") or s.metric("kokoro_instances_busy")) and time.monotonic() < t_end:
            time.sleep(0.05)
        assert s.metric("kokoro_requests_in_flight") == 0 and s.metric("kokoro_instances_busy") == 0
        assert s.metric("kokoro_client_disconnects_total") == 1
        sent = s.metric("kokoro_audio_seconds_total")
        with s.client() as c:
            assert speech(c, response_format="pcm", input="The cat sat.").status_code == 200
        full = len(to_pcm16(load(busy_bundle, g2p=False, threads=1).synthesize(LONG, "voice_0"))) / 2 / 24000
        assert sent == 0 and full > 1.0            # nothing of the abandoned request was counted as sent


def test_concurrent_clients_all_answered(busy_bundle):
    """Two instances, eight clients at once, a queue of four: every request ends in 200 or 503."""
    codes: list[int] = []
    with serve(busy_bundle, "--threads", "1", "--instances", "2", "--queue", "4", "--cache-mb", "0") as s:
        def one(k: int) -> None:
            with s.client() as c:
                codes.append(speech(c, input=f"The cat sat on the mat {k}.", response_format="pcm").status_code)
        threads = [threading.Thread(target=one, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert s.proc.poll() is None
    assert len(codes) == 8 and set(codes) <= {200, 503} and codes.count(200) >= 6, codes


def test_deadline_gives_504(busy_bundle):
    with serve(busy_bundle, "--threads", "1", "--timeout", "0.01", "--cache-mb", "0") as s, s.client() as c:
        r = speech(c, input=LONG, response_format="pcm")
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"


def test_bad_serve_options_fail_in_one_line(bundle):
    import subprocess
    import sys

    for args, needle in ((["--instances", "0"], "--instances: 0; use 1 or more"),
                         (["--timeout", "nan"], "--timeout"),
                         (["--provider", "NoSuchProvider"], "NoSuchProvider is not in this onnxruntime build")):
        r = subprocess.run([sys.executable, "-m", "kokoro_runtime", "serve", str(bundle), "--port", "0", *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_speed_changes_length(server):
    with server.client() as c:
        slow = speech(c, speed=0.5, response_format="pcm").content
        fast = speech(c, speed=2.0, response_format="pcm").content
    assert len(slow) > len(fast) and math.isclose(len(slow) / len(fast), 4, rel_tol=0.5)
