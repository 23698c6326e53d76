"""Versions and machine facts that every record carries."""

from __future__ import annotations

import functools
import os
import platform


@functools.lru_cache(maxsize=None)
def versions() -> dict[str, str]:
    import numpy
    import onnx
    import onnxruntime

    from kopt import __version__

    return {
        "kopt": __version__,
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


@functools.lru_cache(maxsize=None)
def _cpuinfo() -> dict[str, str]:
    """The first value of each field of Linux ``/proc/cpuinfo`` (the first CPU's), read once;
    empty where it cannot be read."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                name, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (Linux ``/proc/cpuinfo``; empty where it cannot be read)."""
    return frozenset(_cpuinfo().get("flags", "").split())


def int8_dot(flags: frozenset[str] | None = None) -> str:
    """Which int8 dot product onnxruntime's CPU kernels get here: ``amx`` or ``vnni`` (32-bit sums),
    ``avx2`` (16-bit multiply-add, which saturates with full 8-bit weights; see reduce_range),
    or ``other`` (not x86, or flags unreadable)."""
    have = cpu_flags() if flags is None else flags
    if "amx_int8" in have:
        return "amx"
    if have & {"avx512_vnni", "avx_vnni"}:
        return "vnni"
    return "avx2" if "avx2" in have else "other"


def machine() -> dict[str, object]:
    cpu = _cpuinfo().get("model name") or platform.processor() or platform.machine()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "hostname": platform.node(),
        "system": platform.system(),
        "arch": platform.machine(),
        "cpu": cpu,
        "cores": cores,
        "memory_bytes": mem,
        "int8_dot": int8_dot(),
    }
