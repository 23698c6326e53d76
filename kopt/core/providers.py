"""Execution-provider configurations as data, and detection of what this onnxruntime build offers.

A *provider config* is a named preset: the ORT execution provider it targets and the options passed
to it (the ORT way: a list of ``(name, options)`` tuples). ``PRESETS`` is the one table; ``get`` looks a
name up and lists the valid names when one is wrong. ``availability`` says whether this onnxruntime
build can run a config, with the reason when it cannot, so callers record it as *skipped* rather than
crash. ``verify_session`` confirms from ``session.get_providers()`` that a session really runs on the
requested provider (no silent CPU fallback). ``partition`` reports which provider each node runs on,
from ORT's profiler (the only node-placement report ORT's Python API exposes).

Variants of one EP are data too: the cuDNN convolution-algorithm search (``cuda`` exhaustive,
``cuda-heuristic``, ``cuda-default``) and OpenVINO's CPU inference precision (``openvino`` f32,
``openvino-bf16``). A preset with an ``env`` runs in its own worker environment: onnxruntime-openvino
replaces the onnxruntime wheel, so it lives in a venv of its own whose interpreter the bench settings
name (``[bench] worker_python = { openvino = "/path/to/venv/bin/python" }``; kopt.bench.envs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from kopt.core.env import cpu_flags
from kopt.core.errors import KoptError

CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class ProviderConfig:
    """One named provider preset: the ORT execution provider and its options."""

    name: str
    ep: str
    options: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""
    env: str | None = None            # the worker environment it needs (a key of [bench] worker_python)
    threads_option: str | None = None  # the EP option that takes the intra-op thread count (its own pool)
    cpu_flags: tuple[str, ...] = ()    # any one of these /proc/cpuinfo flags is needed (e.g. bf16 hardware)

    def ort_providers(self, threads: int | None = None) -> list[tuple[str, dict[str, str]] | str]:
        """The ``providers=`` argument for ``ort.InferenceSession``: this EP first, then CPU for the
        nodes it cannot take (ORT always keeps CPU; ``verify_session`` checks the EP is really used).
        ``threads`` (when given, and the EP sizes its own pool) fills ``threads_option``."""
        opts = dict(self.options)
        if self.threads_option and threads:
            opts.setdefault(self.threads_option, str(threads))
        first: tuple[str, dict[str, str]] = (self.ep, opts)
        return [first] if self.ep == CPU else [first, CPU]

    @property
    def thread_bound(self) -> bool:
        """Whether the intra-op thread count sizes this config's compute (CPU, or an EP with its own pool)."""
        return self.ep == CPU or self.threads_option is not None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.ep, "config": self.name, "options": dict(self.options)}
        if self.env:
            d["env"] = self.env
        return d


_COREML_SUFFIX = {"ALL": "all", "CPUAndGPU": "cpu-gpu", "CPUOnly": "cpu-only", "CPUAndNeuralEngine": "ane"}


def _coreml(units: str, summary: str) -> ProviderConfig:
    return ProviderConfig(f"coreml-{_COREML_SUFFIX[units]}", "CoreMLExecutionProvider",
                          {"ModelFormat": "MLProgram", "MLComputeUnits": units}, summary)


# cudnn_conv_algo_search -> (preset name, summary). cuDNN picks a conv algorithm per input shape the
# first time it meets that shape: EXHAUSTIVE times every algorithm (best kernels, slow first run of every
# new shape), HEURISTIC takes cuDNN's guess, DEFAULT takes the implicit-GEMM algorithm without asking.
_CUDA_SEARCH = {
    "EXHAUSTIVE": ("cuda", "NVIDIA GPU through CUDA/cuDNN; exhaustive conv algorithm search"),
    "HEURISTIC": ("cuda-heuristic", "NVIDIA GPU through CUDA/cuDNN; heuristic conv algorithm choice (faster first "
                  "run of each new shape)"),
    "DEFAULT": ("cuda-default", "NVIDIA GPU through CUDA/cuDNN; cuDNN's default conv algorithm, no search"),
}


def _cuda(search: str) -> ProviderConfig:
    name, summary = _CUDA_SEARCH[search]
    return ProviderConfig(name, "CUDAExecutionProvider", {"device_id": "0", "cudnn_conv_algo_search": search}, summary)


OPENVINO_ENV = "openvino"  # the worker environment with onnxruntime-openvino (its own venv)
# OpenVINO's CPU inference precision -> (preset name, CPU flags it needs, summary). OpenVINO runs in bf16 by
# default on CPUs that have bf16 hardware, where it ruins the audio (docs/gpu.md has the figures), so
# ``openvino`` pins f32. On a CPU without bf16 hardware the bf16 hint is ignored (f32 in disguise), so
# ``openvino-bf16`` is skipped there.
_OV_PRECISION = {
    "f32": ("openvino", (), "Intel OpenVINO (onnxruntime-openvino, own venv) on the CPU, f32 inference"),
    "bf16": ("openvino-bf16", ("avx512_bf16", "amx_bf16"),
             "Intel OpenVINO on the CPU, bf16 inference (OpenVINO's default on bf16 hardware; breaks the audio)"),
}


def _openvino(precision: str) -> ProviderConfig:
    name, flags, summary = _OV_PRECISION[precision]
    load_config = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": precision}}, sort_keys=True)
    return ProviderConfig(name, "OpenVINOExecutionProvider", {"device_type": "CPU", "load_config": load_config},
                          summary, env=OPENVINO_ENV, threads_option="num_of_threads", cpu_flags=flags)


PRESETS: dict[str, ProviderConfig] = {p.name: p for p in (
    ProviderConfig("cpu", CPU, {}, "onnxruntime's default CPU provider (threads set per run)"),
    *(_cuda(search) for search in _CUDA_SEARCH),
    ProviderConfig("tensorrt", "TensorrtExecutionProvider",
                   {"device_id": "0", "trt_fp16_enable": "False", "trt_engine_cache_enable": "False"},
                   "NVIDIA GPU through TensorRT (nodes it cannot take fall back to CPU)"),
    _coreml("ALL", "Apple CoreML, MLProgram, every compute unit"),
    _coreml("CPUAndGPU", "Apple CoreML, MLProgram, CPU and GPU (the Apple GPU / MPS row)"),
    _coreml("CPUOnly", "Apple CoreML, MLProgram, CPU only"),
    _coreml("CPUAndNeuralEngine", "Apple CoreML, MLProgram, CPU and Neural Engine"),
    *(_openvino(precision) for precision in _OV_PRECISION),
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


def availability(cfg: ProviderConfig, available: list[str] | None = None, build: str | None = None,
                 flags: frozenset[str] | None = None) -> tuple[bool, str | None]:
    """(True, None) if the onnxruntime build offers the config's EP (and the CPU has the flags it needs),
    else (False, reason). ``available``/``build`` describe another build (a worker environment's):
    its providers and a description for the reason; default: this process's onnxruntime."""
    if available is None or build is None:
        import onnxruntime as ort

        available = available_providers() if available is None else available
        build = build or f"onnxruntime {ort.__version__}, device {ort.get_device()}"
    if cfg.ep not in available:
        return False, f"{cfg.ep} is not in this onnxruntime build ({build}; available: {', '.join(available)})"
    if cfg.cpu_flags:
        have = cpu_flags() if flags is None else flags
        if not have & set(cfg.cpu_flags):
            return False, (f"{cfg.name} needs a CPU with {' or '.join(cfg.cpu_flags)} (this one has neither; the "
                           "precision hint would be ignored)")
    return True, None


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
