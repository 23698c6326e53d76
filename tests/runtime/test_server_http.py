"""The HTTP server's edges on tiny bundles (real servers on 127.0.0.1 port 0, in subprocesses): the
request's language, hostile bodies over one keep-alive connection, wrong-typed voices, blends,
405s, clients that leave whole-file requests, deadlines in a stream, and the Unix socket's file."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from kokoro_runtime import load, to_pcm16
from tests.runtime.helpers import REPO
from tests.runtime.serving import make_bundle, serve
from tests.runtime.test_server import LONG

JA = "今日は良い天気ですね。明日も晴れるでしょう。"
EN = "The cat sat on the mat."


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("lang"), voices=["af_test", "jf_test"])


@pytest.fixture(scope="module")
def server(bundle):
    with serve(bundle, "--threads", "1", "--log-level", "info") as s:
        yield s


def post(c: httpx.Client, **body) -> httpx.Response:
    return c.post("/v1/audio/speech", json={"response_format": "pcm", **body})


def error(r: httpx.Response, status: int = 400) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()["error"]


# -- language ----------------------------------------------------------------------------------------
def test_japanese_voice_speaks_japanese_end_to_end(server, bundle):
    want = to_pcm16(load(bundle, threads=1).synthesize(JA, "jf_test"))
    with server.client() as c:
        r = post(c, input=JA, voice="jf_test")
        assert r.status_code == 200, r.text
        assert r.headers["content-language"] == "ja" and r.headers["x-kokoro-language"] == "ja"
        assert len(r.content) > 24000 and r.content == want          # over half a second, the library's bytes
        whole = post(c, input=JA, voice="jf_test", response_format="wav", stream=False)
        assert whole.headers["x-kokoro-language"] == "ja" and whole.content[44:] == want
        en = post(c, input=EN, voice="af_test")
        assert en.status_code == 200 and en.headers["content-language"] == "en-us"
    time.sleep(0.3)
    log = server.log.read_text()
    assert re.search(r'"POST /v1/audio/speech HTTP/1.1" 200 lang=ja \d', log), log[-2000:]
    assert re.search(r'"POST /v1/audio/speech HTTP/1.1" 200 lang=en-us \d', log)
    assert re.search(r'"GET /health HTTP/1.1" 200 lang=- \d', log)


def test_lang_overrides_the_voice_and_lang_code_is_its_alias(server, bundle):
    want = to_pcm16(load(bundle, threads=1).synthesize(JA, "af_test", lang="ja"))
    with server.client() as c:
        for field in ("lang", "lang_code"):
            r = post(c, input=JA, voice="af_test", **{field: "ja" if field == "lang" else "j"})
            assert r.status_code == 200 and r.headers["x-kokoro-language"] == "ja" and r.content == want
        err = error(post(c, input=JA, voice="jf_test", lang="klingon"))
        assert err["param"] == "lang" and "'klingon' is not a language" in err["message"]
        err = error(post(c, input=JA, voice="jf_test", lang_code=7))
        assert err["param"] == "lang_code"


def test_mixed_input_is_refused_naming_lang(server):
    with server.client() as c:
        err = error(post(c, input=JA, voice="af_test"))
        assert err["param"] == "lang" and "send lang 'ja'" in err["message"]
        err = error(post(c, input=EN, voice="jf_test"))
        assert err["param"] == "lang" and "send lang 'en-us'" in err["message"]
        ok = post(c, input=EN, voice="jf_test", lang="en-us")          # English read with the Japanese voice
        assert ok.status_code == 200 and ok.headers["content-language"] == "en-us"


def test_the_cache_keys_on_the_language(server):
    text = "The dog ran to the park and it was sunny today."
    with server.client() as c:
        hits = server.metric("kokoro_cache_hits_total")
        us = post(c, input=text, voice="af_test", lang="en-us")
        gb = post(c, input=text, voice="af_test", lang="en-gb")       # same text and voice, another reading
        assert us.status_code == gb.status_code == 200 and gb.headers["content-language"] == "en-gb"
        assert server.metric("kokoro_cache_hits_total") == hits
        again = post(c, input=text, voice="af_test", lang="en-gb")
        assert again.content == gb.content and server.metric("kokoro_cache_hits_total") == hits + 1


def test_voices_list_their_languages(server):
    with server.client() as c:
        v = c.get("/v1/audio/voices").json()
    assert v["voices"] == ["af_test", "jf_test"] and v["default"] == "af_test"
    assert v["languages"] == {"af_test": "en-us", "jf_test": "ja"} and v["default_language"] == "en-us"
    assert v["data"] == [{"id": "af_test", "name": "af_test", "language": "en-us"},
                         {"id": "jf_test", "name": "jf_test", "language": "ja"}]


# -- hostile bodies, one keep-alive connection -------------------------------------------------------
def exchange(sock: socket.socket, method: str, path: str, body: bytes = b"",
             ctype: str | None = "application/json") -> tuple[int, dict, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    sock.sendall(head.encode() + b"\r\n" + body)
    buf = b""
    for _ in range(10_000):
        if b"\r\n\r\n" in buf:
            break
        part = sock.recv(65536)
        assert part, "the server closed the connection"
        buf += part
    raw_head, rest = buf.split(b"\r\n\r\n", 1)
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    n = int(headers["content-length"])
    for _ in range(10_000):
        if len(rest) >= n:
            break
        part = sock.recv(65536)
        assert part, "the server closed the connection"
        rest += part
    return int(lines[0].split()[1]), headers, rest[:n]


def test_hostile_json_is_a_400_and_the_connection_keeps_serving(server):
    host, port = server.url.removeprefix("http://").split(":")
    cases = [(b"[" * 100_000 + b"]" * 100_000, "body", "nested too deeply"),
             (b'{"input": "Hi.", "voice": "af_test", "speed": ' + b"7" * 5000 + b"}", "speed", "out of range"),
             (b'{"input": "Hi.", "voice": "af_test", "speed": ' + b"1" * 400 + b"}", "speed", "out of range"),
             (b'{"input": ' + b"1" * 5000 + b"}", "input", "must be a string")]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        for raw, param, needle in cases:
            status, _, body = exchange(sock, "POST", "/v1/audio/speech", raw)
            err = json.loads(body)["error"]
            assert status == 400 and err["param"] == param and needle in err["message"], (status, err)
        status, _, body = exchange(sock, "GET", "/health")
        assert status == 200 and json.loads(body)["status"] == "ready"
    assert server.metric('kokoro_request_errors_total{kind="internal"}') == 0
    assert "Traceback" not in server.log.read_text()


def test_content_types_and_body_size(server):
    good = json.dumps({"input": EN, "voice": "af_test", "response_format": "pcm"})
    with server.client() as c:
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            err = error(c.post("/v1/audio/speech", content=good, headers={"Content-Type": ctype}), 415)
            assert err["param"] == "content-type" and "application/json" in err["message"]
        for headers in ({}, {"Content-Type": "application/json; charset=utf-8"}):
            r = c.post("/v1/audio/speech", content=good, headers=headers)
            assert r.status_code == 200 and len(r.content) > 0
        err = error(c.post("/v1/audio/speech", content=b" " * (2 << 20), headers={"Content-Type": "application/json"}),
                    413)
        assert err["param"] == "body"


def test_wrong_typed_voice_is_a_400_and_only_a_missing_one_is_the_default(server):
    with server.client() as c:
        for voice in ([], {}, 0, False, ["jf_test"], ""):
            err = error(post(c, input=EN, voice=voice))
            assert err["param"] == "voice" and "missing" not in err["message"], (voice, err)
        default = post(c, input=EN)
        assert default.status_code == 200 and default.content == post(c, input=EN, voice="af_test").content


def test_punctuation_only_is_nothing_to_speak(server):
    with server.client() as c:
        for text in ("...", "!!! ???", "—", "😀", "~~~ ^^^"):
            err = error(post(c, input=text, voice="af_test"))
            assert err["param"] == "input" and "nothing to speak" in err["message"], (text, err)


def test_blends_are_bounded_and_duplicates_merge(server):
    with server.client() as c:
        t0 = time.monotonic()
        err = error(post(c, input=EN, voice="+".join(["af_test", "jf_test"] * 15000)))
        assert err["param"] == "voice" and "at most 64" in err["message"]
        assert time.monotonic() - t0 < 2.0
        assert c.get("/health").status_code == 200
        merged = post(c, input=EN, voice="af_test+af_test+jf_test")
        assert merged.status_code == 200 and merged.headers["content-language"] == "en-us"
        assert merged.content == post(c, input=EN, voice="af_test(2)+jf_test(1)").content
        assert merged.content != post(c, input=EN, voice="af_test").content
        many = post(c, input=EN, voice="+".join(["af_test", "jf_test"] * 32))      # 64 terms: allowed
        assert many.status_code == 200
        assert many.content == post(c, input=EN, voice="af_test(1)+jf_test(1)").content


def test_405_says_what_is_allowed(server):
    with server.client() as c:
        r = c.get("/v1/audio/speech")
        err = error(r, 405)
        assert r.headers["allow"] == "POST" and err["type"] == "invalid_request_error"
        assert err["code"] == "method_not_allowed" and "use POST" in err["message"]
        r = c.post("/health")
        assert r.status_code == 405 and "GET" in r.headers["allow"]
        assert error(c.get("/nope"), 404)["type"] == "not_found"


# -- clients that leave, deadlines in a stream --------------------------------------------------------
@pytest.fixture(scope="module")
def busy_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("busy"), busy=True)


LONGER = " ".join([LONG] * 3)       # ~10,700 characters: several seconds of tiny-model work


def wait_idle(s, limit_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if not s.metric("kokoro_requests_in_flight") and not s.metric("kokoro_instances_busy"):
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"still rendering {limit_s} s after the client left")


@pytest.mark.parametrize("extra", [{"stream": False}, {"timestamps": True, "response_format": "wav"}])
def test_a_client_that_leaves_a_whole_file_request_stops_its_synthesis(busy_bundle, extra):
    with serve(busy_bundle, "--threads", "1", "--instances", "1", "--cache-mb", "0", "--max-chars", "12000") as s:
        host, port = s.url.removeprefix("http://").split(":")
        body = json.dumps({"input": LONGER, "voice": "voice_0", "response_format": "pcm", **extra}).encode()
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            t_end = time.monotonic() + 10
            while not s.metric("kokoro_instances_busy") and time.monotonic() < t_end:
                time.sleep(0.02)           # rendering
            assert s.metric("kokoro_requests_in_flight") == 1
        assert wait_idle(s, 3.0) < 3.0
        assert s.metric("kokoro_client_disconnects_total") == 1 and s.metric("kokoro_audio_seconds_total") == 0
        with s.client() as c:
            assert post(c, input="The cat sat.", voice="voice_0").status_code == 200
        time.sleep(0.2)
        assert "Traceback" not in s.log.read_text()


def test_a_deadline_in_a_stream_is_counted_once_without_a_traceback(busy_bundle):
    # The busy graph's first chunk takes tens of milliseconds and LONGER about 1.6 s on a fast CPU,
    # more on a slow one: a 0.5 s deadline lands after the first audio and before the end on both.
    with serve(busy_bundle, "--threads", "1", "--timeout", "0.5", "--cache-mb", "0", "--max-chars", "12000") as s:
        got = b""
        with s.client() as c, c.stream("POST", "/v1/audio/speech",
                                       json={"input": LONGER, "voice": "voice_0", "response_format": "pcm"}) as r:
            assert r.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):      # cut: the body is not terminated
                for part in r.iter_raw():
                    got += part
        assert len(got) > 0
        assert s.metric('kokoro_request_errors_total{kind="deadline"}') == 1
        assert s.metric('kokoro_request_errors_total{kind="internal"}') == 0
        assert s.metric("kokoro_request_errors_total") == 1
        with s.client() as c:
            assert post(c, input="The cat sat.", voice="voice_0").status_code == 200   # still serving
        time.sleep(0.2)
        log = s.log.read_text()
        assert "Traceback" not in log and "stream stopped" in log and "deadline" in log


# -- the Unix socket -------------------------------------------------------------------------------
class _Unix(http.client.HTTPConnection):
    def __init__(self, path) -> None:
        super().__init__("localhost", timeout=5)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


def test_sigterm_removes_the_unix_socket(bundle, tmp_path):
    sock = tmp_path / "s.sock"
    proc = subprocess.Popen([sys.executable, "-m", "kokoro_runtime", "serve", str(bundle), "--uds", str(sock),
                             "--threads", "1"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end:
            try:
                c = _Unix(sock)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("the server did not become ready")
        assert sock.exists() and oct(os.stat(sock).st_mode & 0o777) == "0o600"
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stderr.close()


def test_pcm_of_a_blend_keeps_its_first_voices_language(server):
    with server.client() as c:
        r = post(c, input=JA, voice="jf_test:0.5,af_test:0.5")
        assert r.status_code == 200 and r.headers["content-language"] == "ja"
        assert np.frombuffer(r.content, "<i2").size > 12000
