"""Execution-provider configurations as data, and detection of what this onnxruntime build offers.

A *provider config* is a named preset: the ORT execution provider it targets and the options passed
to it (the ORT way: a list of ``(name, options)`` tuples). ``PRESETS`` is the one table; ``get`` looks a
name up and lists the valid names when one is wrong. ``availability`` says whether this onnxruntime
build can run a config, with the reason when it cannot, so callers record it as *skipped* rather than
crash. ``verify_session`` confirms from ``session.get_providers()`` that a session really runs on the
requested provider (no silent CPU fallback). ``partition`` reports which provider each node runs on,
from ORT's profiler (the only node-placement report ORT's Python API exposes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from kopt.core.errors import KoptError

CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class ProviderConfig:
    """One named provider preset: the ORT execution provider and its options."""

    name: str
    ep: str
    options: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""

    def ort_providers(self) -> list[tuple[str, dict[str, str]] | str]:
        """The ``providers=`` argument for ``ort.InferenceSession``: this EP first, then CPU for the
        nodes it cannot take (ORT always keeps CPU; ``verify_session`` checks the EP is really used)."""
        first: tuple[str, dict[str, str]] = (self.ep, dict(self.options))
        return [first] if self.ep == CPU else [first, CPU]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.ep, "config": self.name, "options": dict(self.options)}


_COREML_SUFFIX = {"ALL": "all", "CPUAndGPU": "cpu-gpu", "CPUOnly": "cpu-only", "CPUAndNeuralEngine": "ane"}


def _coreml(units: str, summary: str) -> ProviderConfig:
    return ProviderConfig(f"coreml-{_COREML_SUFFIX[units]}", "CoreMLExecutionProvider",
                          {"ModelFormat": "MLProgram", "MLComputeUnits": units}, summary)


PRESETS: dict[str, ProviderConfig] = {p.name: p for p in (
    ProviderConfig("cpu", CPU, {}, "onnxruntime's default CPU provider (threads set per run)"),
    ProviderConfig("cuda", "CUDAExecutionProvider",
                   {"device_id": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"},
                   "NVIDIA GPU through CUDA/cuDNN; exhaustive conv algorithm search"),
    ProviderConfig("cuda-heuristic", "CUDAExecutionProvider",
                   {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC"},
                   "NVIDIA GPU through CUDA/cuDNN; heuristic conv algorithm choice (faster session start)"),
    ProviderConfig("tensorrt", "TensorrtExecutionProvider",
                   {"device_id": "0", "trt_fp16_enable": "False", "trt_engine_cache_enable": "False"},
                   "NVIDIA GPU through TensorRT (nodes it cannot take fall back to CPU)"),
    _coreml("ALL", "Apple CoreML, MLProgram, every compute unit"),
    _coreml("CPUAndGPU", "Apple CoreML, MLProgram, CPU and GPU (the Apple GPU / MPS row)"),
    _coreml("CPUOnly", "Apple CoreML, MLProgram, CPU only"),
    _coreml("CPUAndNeuralEngine", "Apple CoreML, MLProgram, CPU and Neural Engine"),
)}

# Presets that run wherever onnxruntime does; the rest need a build (or hardware) that has them.
DEFAULT_BENCH = ("cpu", "cuda", "tensorrt", "coreml-all", "coreml-cpu-gpu", "coreml-cpu-only", "coreml-ane")


def get(name: str) -> ProviderConfig:
    """A preset by name; a KoptError listing the valid names when it is unknown."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KoptError(f"unknown provider {name!r}; choose from: {', '.join(PRESETS)}") from None


def get_many(names: list[str] | tuple[str, ...]) -> list[ProviderConfig]:
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise KoptError(f"unknown provider{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                        f"choose from: {', '.join(PRESETS)}")
    return [PRESETS[n] for n in dict.fromkeys(names)]


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build offers."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def availability(cfg: ProviderConfig, available: list[str] | None = None) -> tuple[bool, str | None]:
    """(True, None) if this build offers the config's EP, else (False, reason)."""
    import onnxruntime as ort

    avail = available_providers() if available is None else available
    if cfg.ep in avail:
        return True, None
    device = ort.get_device()
    return False, (f"{cfg.ep} is not in this onnxruntime build (onnxruntime {ort.__version__}, device {device}; "
                   f"available: {', '.join(avail)})")


def verify_session(session: Any, cfg: ProviderConfig) -> str | None:
    """None if the session's first provider is the requested one, else the reason it is not."""
    got = list(session.get_providers())
    if not got or got[0] != cfg.ep:
        return f"session runs on {got} instead of {cfg.ep} (onnxruntime fell back silently)"
    return None


def partition_from_profile(profile_path: str | Path) -> dict[str, Any]:
    """Which provider ran each node, from an ORT profile (JSON list of trace events).

    Returns ``{"nodes": {provider: count}, "ops": {provider: {op_type: count}}}`` counted over the
    distinct nodes of the first profiled run."""
    events = json.loads(Path(profile_path).read_text(encoding="utf-8"))
    seen: dict[str, tuple[str, str]] = {}
    for ev in events:
        if ev.get("cat") != "Node":
            continue
        args = ev.get("args") or {}
        prov = args.get("provider")
        name = ev.get("name", "")
        if not prov or not name.endswith("_kernel_time"):
            continue
        node = name[: -len("_kernel_time")]
        seen.setdefault(node, (prov, args.get("op_name", "?")))
    nodes: dict[str, int] = {}
    ops: dict[str, dict[str, int]] = {}
    for prov, op in seen.values():
        nodes[prov] = nodes.get(prov, 0) + 1
        ops.setdefault(prov, {})[op] = ops.setdefault(prov, {}).get(op, 0) + 1
    return {"nodes": dict(sorted(nodes.items())),
            "ops": {p: dict(sorted(o.items(), key=lambda kv: (-kv[1], kv[0]))) for p, o in sorted(ops.items())}}
