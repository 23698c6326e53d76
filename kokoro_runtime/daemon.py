"""The ``say`` workflow: a client that speaks through a local daemon, starting it when none answers.

The daemon is ``serve --uds SOCKET --idle-timeout N`` on a Unix socket in a directory only this
user can enter (``$XDG_RUNTIME_DIR/kokoro_runtime`` or ``/tmp/kokoro_runtime-UID``, mode 0700; the
socket 0600), one per bundle. A client that finds no daemon takes a file lock, looks again, and
only then starts one (detached, its log beside the socket), so two clients never start two; then it
waits for ``/health`` and goes on. A daemon killed with -9 leaves a socket nobody listens on: the
next client sees the refused connection and starts a new one.

This module is stdlib only (no numpy, no onnxruntime), so ``say`` with a warm daemon costs little
more than starting Python. Where the audio goes (a player, a WAV file, stdout) is
kokoro_runtime.playback.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .errors import KokoroError
from .playback import PCMSink, find_player  # noqa: F401  (say's sinks; kept importable from here)

DEFAULT_IDLE_S = 600.0
START_TIMEOUT_S = 120.0


class DaemonError(KokoroError):
    """The daemon could not be reached, started or stopped."""


def runtime_dir() -> Path:
    """A directory only this user can enter, created 0700; refused if someone else could enter it."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    d = Path(base) / "kokoro_runtime" if base and Path(base).is_dir() else \
        Path(tempfile.gettempdir()) / f"kokoro_runtime-{os.getuid()}"
    try:
        d.mkdir(mode=0o700, exist_ok=True)
    except OSError as e:
        raise DaemonError(f"{d}: cannot create the daemon directory ({e.strerror})") from None
    st = d.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise DaemonError(f"{d}: not a private directory of this user (owner {st.st_uid}, mode "
                          f"{oct(st.st_mode & 0o777)}); remove it or set XDG_RUNTIME_DIR")
    return d


class Paths:
    """The socket, lock and log of the daemon for one bundle."""

    def __init__(self, bundle: Path) -> None:
        self.bundle = Path(bundle).resolve()
        ident = hashlib.sha256(str(self.bundle).encode()).hexdigest()[:16]
        d = runtime_dir()
        self.socket = d / f"{ident}.sock"
        self.lock = d / f"{ident}.lock"
        self.log = d / f"{ident}.log"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except BaseException:
            s.close()
            raise
        self.sock = s


def health(paths: Paths, timeout: float = 2.0) -> dict | None:
    """The daemon's /health JSON, or None when nothing listens on its socket."""
    if not paths.socket.exists():
        return None
    conn = _UnixConnection(paths.socket, timeout)
    try:
        conn.request("GET", "/health")
        r = conn.getresponse()
        return json.loads(r.read() or b"{}")
    except (ConnectionRefusedError, FileNotFoundError, socket.timeout, ConnectionResetError,
            http.client.RemoteDisconnected, json.JSONDecodeError):
        return None
    finally:
        conn.close()


def _runtime_pythonpath() -> str:
    """Where this kokoro_runtime package lives, so the daemon imports the same one."""
    here = str(Path(__file__).resolve().parent.parent)
    old = os.environ.get("PYTHONPATH")
    return here + (os.pathsep + old if old else "")


def serve_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("starlette", "uvicorn"))


def ensure(paths: Paths, idle_s: float = DEFAULT_IDLE_S, threads: int = 0, providers: list[str] | None = None,
           verify: bool = True) -> dict:
    """A ready daemon for the bundle: the one running, or one started now (under the lock)."""
    info = health(paths)
    if info and info.get("status") == "ready":
        return info
    with open(paths.lock, "a+") as lock:
        os.chmod(paths.lock, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)       # another client may be starting it: wait for it
        info = health(paths)
        proc = None
        if info is None:
            proc = _start(paths, idle_s, threads, providers, verify)
        info = _wait_ready(paths, proc)
    return info


def _start(paths: Paths, idle_s: float, threads: int, providers: list[str] | None, verify: bool):
    cmd = [sys.executable, "-m", "kokoro_runtime", "serve", str(paths.bundle), "--uds", str(paths.socket),
           "--idle-timeout", str(idle_s), "--log-level", "info"]
    if threads:
        cmd += ["--threads", str(threads)]
    for p in providers or []:
        cmd += ["--provider", p]
    if not verify:
        cmd.append("--no-verify")
    env = dict(os.environ, PYTHONPATH=_runtime_pythonpath())
    log = open(paths.log, "ab")
    os.chmod(paths.log, 0o600)
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True, close_fds=True)
    finally:
        log.close()


def _wait_ready(paths: Paths, proc) -> dict:
    t_end = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < t_end:
        info = health(paths)
        if info and info.get("status") == "ready":
            return info
        if info and info.get("status") == "failed":
            raise DaemonError(f"the daemon could not start: {info.get('error')} (log: {paths.log})")
        if proc is not None and proc.poll() is not None:
            raise DaemonError(f"the daemon exited with code {proc.returncode}: {_last_line(paths.log)} "
                              f"(log: {paths.log})")
        time.sleep(0.05)
    raise DaemonError(f"the daemon did not become ready in {START_TIMEOUT_S:.0f} s (log: {paths.log})")


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def speak(paths: Paths, text: str, voice: str | None, speed: float, mode: str | None,
          lang: str | None = None) -> Iterator[bytes]:
    """Raw 16-bit 24 kHz mono PCM from the daemon, as it arrives."""
    body = {"input": text, "speed": speed, "response_format": "pcm", "stream_format": "audio"}
    if voice:
        body["voice"] = voice
    if mode:
        body["model"] = mode
    if lang:
        body["lang"] = lang
    conn = _UnixConnection(paths.socket, START_TIMEOUT_S)
    try:
        conn.request("POST", "/v1/audio/speech", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            raw = r.read()
            try:
                msg = json.loads(raw)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                msg = raw.decode(errors="replace")[:200] or r.reason
            raise DaemonError(msg)
        while True:
            data = r.read1(65536) if hasattr(r, "read1") else r.read(65536)
            if not data:
                break
            yield data
    except (ConnectionRefusedError, FileNotFoundError, http.client.RemoteDisconnected, ConnectionResetError) as e:
        raise DaemonError(f"the daemon went away mid-request ({type(e).__name__}); run the command again") from None
    finally:
        conn.close()


def stop(paths: Paths, timeout: float = 10.0) -> bool:
    """SIGTERM the daemon and wait for its socket to go quiet; False if none was running."""
    info = health(paths)
    if not info:
        return False
    pid = int(info.get("pid", 0))
    if pid <= 0:
        raise DaemonError("the daemon did not say its pid; stop it by hand")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if health(paths, timeout=0.5) is None:
            return True
        time.sleep(0.05)
    raise DaemonError(f"the daemon (pid {pid}) did not stop within {timeout:.0f} s")
