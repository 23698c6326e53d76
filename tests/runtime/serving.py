"""Real servers for the tests: `python -m kokoro_runtime serve` in a subprocess, bound to 127.0.0.1
on port 0, stopped when the block ends; and small bundles to serve (tiny Kokoro-signature graphs)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import httpx
import onnx

from kopt.publish.loadtest import Running, running_server
from tests.graphs import busy_kokoro_model, duration_kokoro_model, tiny_kokoro, tiny_voices
from tests.runtime.helpers import REPO, VOCAB, small_cache

TEXT = "The cat sat on the mat. The dog ran to the park, and it was sunny."


def timed_model(path: Path) -> Path:
    """A tiny Kokoro with the real duration machinery and the published `duration` output."""
    import onnx_ir as ir

    from kopt.optimize.durations import expose_durations

    m = ir.serde.deserialize_model(duration_kokoro_model())
    expose_durations(m, False, output_name="duration")
    onnx.save(ir.serde.serialize_model(m), str(path))
    return path


def make_bundle(root: Path, *, busy: bool = False, modes: bool = False, voices: list[str] | None = None) -> Path:
    """A bundle whose model reports durations; ``modes`` adds a second mode, ``quality``, with a
    different graph; ``busy`` uses a graph that takes tens of milliseconds per call; ``voices``
    renames the tiny voices (``jf_test`` speaks Japanese by Kokoro's naming convention)."""
    from kopt.publish.bundle import write_bundle

    root.mkdir(parents=True, exist_ok=True)
    if busy:
        model = root / "busy.onnx"
        onnx.save(busy_kokoro_model(), str(model))
    else:
        model = timed_model(root / "timed.onnx")
    extra_files, manifest = {}, {}
    if modes:
        extra_files["modes/quality.onnx"] = tiny_kokoro(root / "plain.onnx")
        manifest = {"modes": {"fast": {"model": "model.onnx"}, "quality": {"model": "modes/quality.onnx"}},
                    "default_mode": "fast"}
    packs = tiny_voices(len(voices) if voices else 2)
    if voices:
        packs = dict(zip(voices, packs.values()))
    return write_bundle(root / "bundle", model, packs, VOCAB, small_cache(), manifest,
                        extra_files=extra_files)


class Server(Running):
    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kw)

    def metric(self, name: str, headers: dict | None = None) -> float:
        """The value of an unlabelled Prometheus sample (or the sum over a labelled one's samples)."""
        text = httpx.get(self.url + "/metrics", headers=headers or {}, timeout=10).text
        vals = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
        return sum(vals)


@contextlib.contextmanager
def serve(bundle: Path, *args: str, env: dict | None = None, ready: bool = True, timeout: float = 60):
    """A real server on 127.0.0.1, port 0, run from the repo (this checkout's runtime)."""
    with running_server(bundle, *args, cwd=REPO, env=env, ready=ready, timeout=timeout) as r:
        yield Server(r.url, r.proc, r.log)
