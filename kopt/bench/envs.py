"""Worker environments: a provider whose onnxruntime build would replace kopt's own (onnxruntime-openvino
is a different wheel of the same ``onnxruntime`` module) runs its workers under another interpreter.

The bench settings name each environment's interpreter (``[bench] worker_python = { openvino =
"/opt/ov-venv/bin/python" }``); that venv needs only numpy and its onnxruntime wheel: the worker finds
kopt's and kokoro_runtime's source through ``PYTHONPATH`` (``source_path``), never by installing kopt
there, which would pull the CPU wheel back in. Before a run, each named interpreter is *probed*
(``python -m kopt.bench.worker --probe``: its onnxruntime version and providers), so a preset it lacks,
or an interpreter that does not start, is recorded as skipped with the reason, like a provider missing
from kopt's own build.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from kopt.core.providers import ProviderConfig, availability

PACKAGES = ("kopt", "kokoro_runtime")  # what a worker imports from this checkout


@dataclass(frozen=True)
class WorkerEnv:
    """One probed worker environment: its interpreter, and what its onnxruntime build offers (or why
    it could not be asked)."""

    name: str
    python: str
    onnxruntime: str | None = None
    device: str | None = None
    providers: tuple[str, ...] = ()
    error: str | None = None

    @property
    def build(self) -> str:
        return f"worker environment {self.name!r} ({self.python}): onnxruntime {self.onnxruntime}, device {self.device}"

    def argv(self) -> list[str]:
        return [self.python, "-m", "kopt.bench.worker"]

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "python": self.python, "onnxruntime": self.onnxruntime,
                "providers": list(self.providers), "error": self.error}


def source_path() -> Path:
    """A folder that holds exactly kopt's and kokoro_runtime's packages, for another interpreter's
    ``PYTHONPATH``: the checkout's root when kopt runs from one (an editable install), else a folder of
    links next to the temp dir (a site-packages folder would bring this venv's onnxruntime along)."""
    import importlib

    roots = {Path(importlib.import_module(p).__file__).resolve().parent for p in PACKAGES}
    parents = {r.parent for r in roots}
    if len(parents) == 1:
        root = parents.pop()
        if not any((root / name).exists() for name in ("onnxruntime", "numpy")):
            return root
    from kopt.core.hashing import sha256_bytes

    links = Path(tempfile.gettempdir()) / f"kopt-src-{sha256_bytes(str(sorted(roots)).encode())[:12]}"
    links.mkdir(exist_ok=True)
    for r in roots:
        link = links / r.name
        if not link.exists():
            link.symlink_to(r, target_is_directory=True)
    return links


def environ() -> dict[str, str]:
    """Environment variables a worker under another interpreter needs (added to the parent's)."""
    return {"PYTHONPATH": str(source_path())}


def probe(name: str, python: str, timeout_s: float = 120.0) -> WorkerEnv:
    """Ask ``python`` what its onnxruntime offers, through the worker module itself (so an interpreter
    that cannot import the worker fails here, with its error, not in every cell)."""
    import os

    py = str(Path(python).expanduser())
    if not Path(py).is_file():
        return WorkerEnv(name, py, error=f"interpreter {py} not found")
    try:
        proc = subprocess.run([py, "-m", "kopt.bench.worker", "--probe"], capture_output=True, text=True,
                              timeout=timeout_s, env={**os.environ, **environ()})
    except (OSError, subprocess.TimeoutExpired) as e:
        return WorkerEnv(name, py, error=f"{py} did not answer the probe ({type(e).__name__}: {e})")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return WorkerEnv(name, py, error=f"{py} -m kopt.bench.worker --probe failed (exit code {proc.returncode})"
                         + (f": {tail[-1][:300]}" if tail else ""))
    try:
        info = json.loads(lines[-1])
    except json.JSONDecodeError:
        return WorkerEnv(name, py, error=f"{py}: the probe sent {lines[-1][:200]!r}")
    return WorkerEnv(name, py, info.get("onnxruntime"), info.get("device"), tuple(info.get("providers", ())))


def probe_all(worker_python: Mapping[str, str]) -> dict[str, WorkerEnv]:
    return {name: probe(name, py) for name, py in worker_python.items()}


def cell_availability(cfg: ProviderConfig, main_available: list[str],
                      envs: Mapping[str, WorkerEnv]) -> tuple[bool, str | None]:
    """Whether ``cfg`` can be measured, and where: in its worker environment when the settings name one,
    else in kopt's own onnxruntime (which may offer the EP too). The reason names the missing setting."""
    env = envs.get(cfg.env) if cfg.env else None
    if env is not None:
        if env.error:
            return False, f"worker environment {env.name!r} is not usable: {env.error}"
        return availability(cfg, list(env.providers), env.build)
    ok, why = availability(cfg, main_available)
    if ok or not cfg.env:
        return ok, why
    return False, (f"{why}; {cfg.ep} runs in its own worker environment: make a venv with its wheel and numpy "
                   f"(see docs/gpu.md) and set [bench] worker_python = {{ {cfg.env} = \"/path/to/venv/bin/python\" }}")
