"""`python -m kokoro_runtime say`: the self-starting daemon on a tiny bundle (real processes, a private
Unix socket under a temporary XDG_RUNTIME_DIR)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import wave

import pytest

from kokoro_runtime import load, to_pcm16
from tests.runtime.helpers import REPO
from tests.runtime.serving import TEXT, make_bundle


@pytest.fixture()
def env(tmp_path):
    run_dir = tmp_path / "xdg"
    run_dir.mkdir(mode=0o700)
    e = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir)}
    yield e
    # whatever a test left running is stopped
    for sock in (run_dir / "kokoro_runtime").glob("*.sock") if (run_dir / "kokoro_runtime").is_dir() else []:
        _pid_stop(sock)


def _pid_stop(sock):
    import http.client
    import socket as s

    class C(http.client.HTTPConnection):
        def connect(self):
            self.sock = s.socket(s.AF_UNIX)
            self.sock.connect(str(sock))
    try:
        c = C("x", timeout=2)
        c.request("GET", "/health")
        pid = json.loads(c.getresponse().read())["pid"]
        os.kill(pid, signal.SIGKILL)
    except (OSError, KeyError, ValueError):
        pass


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("said"))


def rt(env, *args, stdin=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "kokoro_runtime", *args], input=stdin, capture_output=True,
                          env=env, cwd=REPO, timeout=timeout)


def status(env, bundle) -> dict:
    r = rt(env, "status", "--bundle", str(bundle), "--json")
    info = json.loads(r.stdout)
    info["rc"] = r.returncode
    return info


def test_say_starts_a_private_daemon_and_reuses_it(env, bundle, tmp_path):
    assert status(env, bundle)["rc"] == 3
    out = tmp_path / "a.wav"
    r = rt(env, "say", TEXT, "--bundle", str(bundle), "-o", str(out), "--voice", "voice_1")
    assert r.returncode == 0, r.stderr.decode()
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        got = w.readframes(w.getnframes())
    assert got == to_pcm16(load(bundle, g2p=False).synthesize(TEXT, "voice_1"))
    first = status(env, bundle)
    assert first["rc"] == 0 and first["status"] == "ready"
    d = os.path.join(env["XDG_RUNTIME_DIR"], "kokoro_runtime")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    socks = [f for f in os.listdir(d) if f.endswith(".sock")]
    assert len(socks) == 1 and stat.S_IMODE(os.stat(os.path.join(d, socks[0])).st_mode) == 0o600
    # again, text on stdin, raw PCM on stdout: the same daemon answers
    r = rt(env, "say", "--bundle", str(bundle), "-o", "-", "--voice", "voice_1", stdin=TEXT.encode())
    assert r.returncode == 0 and r.stdout == got
    assert status(env, bundle)["pid"] == first["pid"]
    r = rt(env, "stop", "--bundle", str(bundle))
    assert r.returncode == 0 and r.stdout.decode().strip() == "stopped"
    assert status(env, bundle)["rc"] == 3
    t_end = time.monotonic() + 10          # the daemon removes its socket as it exits
    while os.path.exists(os.path.join(d, socks[0])) and time.monotonic() < t_end:
        time.sleep(0.05)
    assert not [f for f in os.listdir(d) if f.endswith(".sock")]


def test_say_sends_lang_and_a_japanese_voice_speaks_japanese(env, tmp_path_factory, tmp_path):
    ja = make_bundle(tmp_path_factory.mktemp("said_ja"), voices=["af_test", "jf_test"])
    text = "今日は良い天気ですね。"
    try:
        r = rt(env, "say", text, "--bundle", str(ja), "-o", "-", "--voice", "jf_test")
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == to_pcm16(load(ja).synthesize(text, "jf_test")) and len(r.stdout) > 4000
        r = rt(env, "say", text, "--bundle", str(ja), "-o", "-", "--voice", "af_test", "--lang", "ja")
        assert r.returncode == 0 and r.stdout == to_pcm16(load(ja).synthesize(text, "af_test", lang="ja"))
        r = rt(env, "say", text, "--bundle", str(ja), "-o", "-", "--voice", "af_test")
        err = r.stderr.decode()
        assert r.returncode == 1 and "lang: " in err and "send lang 'ja'" in err and err.count("\n") == 1, err
    finally:
        rt(env, "stop", "--bundle", str(ja))


def test_two_clients_start_one_daemon(env, bundle, tmp_path):
    results = []

    def say(k):
        results.append(rt(env, "say", f"The cat sat {k}.", "--bundle", str(bundle), "-o", str(tmp_path / f"{k}.wav")))
    threads = [threading.Thread(target=say, args=(k,)) for k in ("one", "two", "three")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    log = next((REPO / env["XDG_RUNTIME_DIR"] / "kokoro_runtime").glob("*.log")).read_text()
    assert log.count("Started server process") == 1, log


def test_idle_daemon_exits_and_a_killed_one_is_restarted(env, bundle, tmp_path):
    r = rt(env, "say", "The cat sat.", "--bundle", str(bundle), "-o", str(tmp_path / "a.wav"), "--idle-timeout", "1")
    assert r.returncode == 0, r.stderr.decode()
    t_end = time.monotonic() + 20
    while status(env, bundle)["rc"] == 0 and time.monotonic() < t_end:
        time.sleep(0.2)
    assert status(env, bundle)["rc"] == 3          # exited by itself
    r = rt(env, "say", "The cat sat.", "--bundle", str(bundle), "-o", str(tmp_path / "b.wav"))
    assert r.returncode == 0
    pid = status(env, bundle)["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    r = rt(env, "say", "The cat sat.", "--bundle", str(bundle), "-o", str(tmp_path / "c.wav"))
    assert r.returncode == 0, r.stderr.decode()
    new = status(env, bundle)
    assert new["rc"] == 0 and new["pid"] != pid
    assert (tmp_path / "b.wav").read_bytes() == (tmp_path / "c.wav").read_bytes()


def test_say_errors_are_one_line_and_leave_no_file(env, bundle, tmp_path):
    out = tmp_path / "x.wav"
    for args, needle in ((["--voice", "nobody"], "unknown voice 'nobody'"),
                         (["--speed", "0"], "out of range"),
                         (["--speed", "nan"], "out of range"),
                         (["--mode", "turbo"], "not a mode")):
        r = rt(env, "say", "The cat sat.", "--bundle", str(bundle), "-o", str(out), *args)
        err = r.stderr.decode()
        assert r.returncode != 0 and needle in err and err.count("\n") == 1, err
        assert not out.exists() and not list(tmp_path.glob(".x.wav*"))


def test_no_daemon_speaks_in_process(env, bundle, tmp_path):
    out = tmp_path / "n.wav"
    r = rt(env, "say", TEXT, "--bundle", str(bundle), "-o", str(out), "--no-daemon")
    assert r.returncode == 0, r.stderr.decode()
    assert status(env, bundle)["rc"] == 3
    with wave.open(str(out)) as w:
        assert w.readframes(w.getnframes()) == to_pcm16(load(bundle, g2p=False).synthesize(TEXT, "voice_0"))
