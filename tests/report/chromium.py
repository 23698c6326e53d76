"""Drive Debian's headless chromium over the DevTools protocol (``--remote-debugging-pipe``: JSON
messages over fds 3/4, no websocket library, no network port) to load a page, collect console errors,
failed loads and exceptions, check its images, and take a full-page screenshot."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--mute-audio", "--hide-scrollbars")


def find_chromium() -> str | None:
    for n in CHROMIUM_NAMES:
        p = shutil.which(n)
        if p:
            return p
    return None


class _Pipe:
    def __init__(self, binary: str, width: int, height: int, user_dir: str) -> None:
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def child() -> None:  # chromium reads commands on fd 3 and writes replies on fd 4
            a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)  # dup2 onto a different fd number clears close-on-exec
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={user_dir}", f"--window-size={width},{height}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child, close_fds=False)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_r], [], [], left)
            if ready:
                chunk = os.read(self._from_r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
                self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events[i]
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            self.events.append(m)
            if m.get("method") == method:
                return m

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_w, self._from_r):
            try:
                os.close(fd)
            except OSError:
                pass


def check_page(url: str, screenshot: Path, *, width: int = 1400, height: int = 900,
               binary: str | None = None, settle_s: float = 0.5) -> dict[str, Any]:
    """Load ``url``; return console errors, exceptions, failed requests, image, table and audio facts (each
    <audio>'s duration once its metadata loaded), and write a full-page PNG."""
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary on PATH")
    with tempfile.TemporaryDirectory(prefix="kopt-chromium-") as user_dir:
        b = _Pipe(binary, width, height, user_dir)
        try:
            target = b.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            sid = b.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                b.call(f"{domain}.enable", session=sid)
            b.call("Emulation.setDeviceMetricsOverride",
                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=sid)
            b.call("Page.navigate", {"url": url}, session=sid)
            b.wait_event("Page.loadEventFired")
            time.sleep(settle_s)
            audio = b.call("Runtime.evaluate", {"returnByValue": True, "awaitPromise": True, "expression": """(async () => {
                const as = Array.from(document.querySelectorAll('audio'));
                await Promise.all(as.map(a => a.readyState >= 1 || a.error ? null : new Promise(r => {
                    a.addEventListener('loadedmetadata', r, {once: true});
                    a.addEventListener('error', r, {once: true});
                    setTimeout(r, 15000);
                    if (a.networkState === HTMLMediaElement.NETWORK_EMPTY) a.load();
                })));
                return as.map(a => ({src: a.currentSrc || a.src, duration: a.duration, readyState: a.readyState,
                                     error: a.error ? a.error.code : null}));
            })()"""}, session=sid, timeout=60)["result"]["value"]
            facts = b.call("Runtime.evaluate", {"returnByValue": True, "expression": """(() => {
                const imgs = Array.from(document.images);
                return {title: document.title, images: imgs.length,
                        broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
                        srcs: imgs.map(i => i.src.slice(0, 22)),
                        sizes: imgs.map(i => [i.naturalWidth, i.naturalHeight, Math.round(i.getBoundingClientRect().width)]),
                        scrollWidth: document.documentElement.scrollWidth,
                        viewportWidth: document.documentElement.clientWidth,
                        tables: Array.from(document.querySelectorAll('table')).map(t => {
                            const w = t.closest('.tablewrap') || t.parentElement, r = w.getBoundingClientRect();
                            return {left: r.left, right: r.right, frame: w.clientWidth, table: t.scrollWidth,
                                    head: Array.from(t.querySelectorAll('th')).map(h => h.textContent).join('|')};
                        }),
                        bodyHeight: document.documentElement.scrollHeight,
                        h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent)};
            })()"""}, session=sid)["result"]["value"]
            metrics = b.call("Page.getLayoutMetrics", session=sid)
            cs = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = b.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                     "clip": {"x": 0, "y": 0, "width": width,
                                                              "height": min(cs["height"], 16000), "scale": 1}},
                          session=sid, timeout=60)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        finally:
            b.close()
    ev = b.events
    console = [e["params"] for e in ev if e.get("method") == "Runtime.consoleAPICalled"
               and e["params"].get("type") in ("error", "assert", "warning")]
    exceptions = [e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"]
    log_errors = [e["params"]["entry"] for e in ev if e.get("method") == "Log.entryAdded"
                  and e["params"]["entry"].get("level") == "error"]
    failed = [e["params"] for e in ev if e.get("method") == "Network.loadingFailed"]
    requests = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
    facts["audio"] = audio
    return {"facts": facts, "console_errors": console, "exceptions": exceptions, "log_errors": log_errors,
            "failed_requests": failed, "requests": requests, "screenshot": str(screenshot)}
