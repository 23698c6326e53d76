"""The parent's end of a benchmark worker: spawn, request with a timeout, and turn a crash, a hang
or an out-of-memory death into a ``CellFailed`` with a reason, so the run goes on without it."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Mapping, Sequence


class CellFailed(Exception):
    """A worker could not finish a request; the message is the reason recorded for the cell."""


def default_argv() -> list[str]:
    return [sys.executable, "-m", "kopt.bench.worker"]


class WorkerHandle:
    def __init__(self, argv: Sequence[str] | None = None, memory_mb: int = 0, timeout_s: float = 300.0,
                 environ: Mapping[str, str] | None = None) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._stderr = tempfile.TemporaryFile()
        cmd = list(argv or default_argv()) + ["--memory-mb", str(memory_mb)]
        env = {**os.environ, **(environ or {})}
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=env, start_new_session=True)
        self._buf = b""
        self.dead: str | None = None

    # -- requests -------------------------------------------------------------------------------
    def request(self, cmd: str, timeout_s: float | None = None, **payload: Any) -> dict[str, Any]:
        if self.dead:
            raise CellFailed(self.dead)
        line = (json.dumps({"cmd": cmd, **payload}) + "\n").encode()
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._die(f"worker died before {cmd!r}")
        reply = self._read_line(cmd, self.timeout_s if timeout_s is None else timeout_s)
        try:
            rep = json.loads(reply)
        except json.JSONDecodeError:
            self._die(f"worker sent a malformed reply to {cmd!r}: {reply[:200]!r}")
        if not rep.get("ok"):
            raise CellFailed(f"{cmd}: {rep.get('error', 'failed')}")
        return rep

    def _read_line(self, cmd: str, timeout_s: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                self.dead = f"timed out after {timeout_s:g} s during {cmd!r} (worker killed)"
                raise CellFailed(self.dead)
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self._die(f"worker exited during {cmd!r}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def _die(self, what: str) -> None:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        self.dead = f"{what}: {describe_exit(code, self.memory_mb)}{self._stderr_tail()}"
        raise CellFailed(self.dead)

    def _stderr_tail(self, n: int = 300) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 4000))
            lines = [ln for ln in self._stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        return f"; stderr: {lines[-1][:n]}" if lines else ""

    # -- lifetime -------------------------------------------------------------------------------
    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None and not self.dead:
            try:
                self.request("quit", timeout_s=10)
            except CellFailed:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass
        self._stderr.close()


def describe_exit(code: int | None, memory_mb: int = 0) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    hint = f" (memory limit {memory_mb} MB may be too low)" if code == 1 and memory_mb else ""
    return f"exit code {code}{hint}"
