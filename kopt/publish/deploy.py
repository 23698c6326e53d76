"""Deploy files for a published bundle: a Dockerfile, Kubernetes manifests and a locustfile, written
next to the bundle (``<build>/deploy/``) when the recipe says ``[publish] deploy = true``.

The templates live in ``kopt/data/deploy/``. The Kubernetes requests and limits come from the
bundle's measured figures (``kopt bundle-bench``): memory from the server's resident set with one
instance, CPU from the threads one instance ran with; without figures, stated defaults are used
and the manifest says so.
"""

from __future__ import annotations

import json
import math
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kopt.core.errors import KoptError

K8S_VERSION = "1.31.0"          # the Kubernetes API the manifests are written for and validated against
COPIED = ("Dockerfile", "Dockerfile.dockerignore", "locustfile.py", "prometheus-adapter-rules.yaml")
FILLED = ("kubernetes.yaml", "hpa-queue-depth.yaml")
DEFAULT_RSS_MB, DEFAULT_CORES = 1024.0, 2


@dataclass(frozen=True)
class Sizing:
    """One pod: one server instance with ``threads`` intra-op threads."""

    threads: int
    cpu: str
    memory_request: str
    memory_limit: str
    measured: str                 # where the figures came from, one line

    @classmethod
    def from_bench(cls, res: dict[str, Any] | None) -> "Sizing":
        res = res or {}
        by = res.get("server_rss_mb_by_instances", {})
        rss = by.get("1") or by.get(1) or res.get("server_rss_mb")
        threads = res.get("http_threads")
        if isinstance(rss, (int, float)) and isinstance(threads, int) and threads > 0:
            measured = (f"Sized from kopt bundle-bench: one instance x {threads} threads, RSS {rss:.0f} MB "
                        "after load.")
        else:
            rss, threads = DEFAULT_RSS_MB, DEFAULT_CORES
            measured = (f"NOT MEASURED: defaults ({DEFAULT_CORES} cores, {DEFAULT_RSS_MB:.0f} MB); run "
                        "kopt bundle-bench and rewrite.")
        request = _mebibytes(rss * 1.25)           # a quarter over the measured RSS
        return cls(threads, str(threads), f"{request}Mi", f"{_mebibytes(request * 1.5)}Mi", measured)


def _mebibytes(mb: float) -> int:
    """Rounded up to a multiple of 64 MiB."""
    return int(math.ceil(mb / 64.0) * 64)


def write_deploy(bundle: str | Path, bench: dict[str, Any] | None = None, out: str | Path | None = None, *,
                 image: str | None = None, queue: int = 8) -> Path:
    """Write the deploy files for ``bundle`` into ``out`` (default: ``deploy/`` beside the bundle)."""
    b = Path(bundle)
    mpath = b / "manifest.json"
    if not mpath.is_file():
        raise KoptError(f"{b}: not a bundle (no manifest.json)")
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    version = str(manifest.get("runtime_version") or "unknown")
    variant = str(manifest.get("variant", {}).get("name", "bundle"))   # none in a bundle not from kopt publish
    size = Sizing.from_bench(bench)
    values = {"k8s_version": K8S_VERSION, "sizing": size.measured, "image": image or f"kokoro-runtime:{variant}",
              "runtime_version": version, "instances": 1, "threads": size.threads, "queue": queue,
              "cpu": size.cpu, "memory_request": size.memory_request, "memory_limit": size.memory_limit,
              "queue_target": 2}
    dest = Path(out) if out is not None else b.parent / "deploy"
    dest.mkdir(parents=True, exist_ok=True)
    src = resources.files("kopt") / "data" / "deploy"
    for name in COPIED:
        (dest / name).write_bytes((src / name).read_bytes())
    for name in FILLED:
        text = string.Template((src / name).read_text(encoding="utf-8")).substitute(values)
        (dest / name).write_text(text, encoding="utf-8")
    (dest / "sizing.json").write_text(json.dumps({**values, "bundle": str(b.resolve())}, indent=1) + "\n",
                                      encoding="utf-8")
    return dest
