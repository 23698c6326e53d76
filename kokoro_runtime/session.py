"""One way to open an onnxruntime session on a Kokoro model: options, providers, and no silent fallback.

``make_session`` is used by the runtime and by kopt (which imports this leaf module) so that thread
counts, optimization levels, .ort loading and provider checks are written down once.

Given the model's sha256 (a bundle's manifest has it), a CPU session at the full optimization level
keeps onnxruntime's optimized graph in the user's cache, keyed by that sha256, the onnxruntime
version and this CPU's instruction set; the next process loads it with optimizations off, which
is where a cold start spends most of its time. The audio is identical (same graph, same kernels).

The kept graph is ONNX with its weights in a data file beside it, the weights already pre-packed
for this CPU's kernels (onnxruntime's ``session.save_external_prepacked_constant_initializers``):
onnxruntime memory-maps that file instead of packing every weight again on the heap, so a session
starts in about half the time and processes share the pages. Each entry's data file has its own
name (``<entry>.<nonce>.data``, the name written inside the .onnx), so two processes writing the
same entry at once cannot pair one's graph with the other's weights. Entries of the earlier layout
(a self-contained ``<key>.onnx`` without ``-prepacked``) are never read as this one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any, Sequence, Union

from .errors import BundleError, InvalidInput, ProviderUnavailable, first_line

log = logging.getLogger("kokoro_runtime")

ProviderSpec = Union[str, tuple]  # "CUDAExecutionProvider" or ("CUDAExecutionProvider", {options})

# Short names people type; full onnxruntime names pass through unchanged.
ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
           "trt": "TensorrtExecutionProvider", "coreml": "CoreMLExecutionProvider", "rocm": "ROCMExecutionProvider",
           "dml": "DmlExecutionProvider", "openvino": "OpenVINOExecutionProvider"}
LEVELS = ("disabled", "basic", "extended", "all")


def provider_name(spec: ProviderSpec) -> str:
    name = spec[0] if isinstance(spec, tuple) else spec
    if not isinstance(name, str) or not name:
        raise InvalidInput("provider", f"{spec!r} is not a provider name")
    return ALIASES.get(name.lower(), name)


def normalize_providers(providers: Sequence[ProviderSpec] | None) -> list[ProviderSpec]:
    out: list[ProviderSpec] = []
    for spec in providers or ["CPUExecutionProvider"]:
        name = provider_name(spec)
        out.append((name, dict(spec[1])) if isinstance(spec, tuple) and len(spec) > 1 else name)
    return out


def session_options(threads: int = 0, optimization: "bool | str" = True, *, ort_format: bool = False,
                    log_severity: int = 3, profile_prefix: str | None = None,
                    config: dict[str, str] | None = None) -> Any:
    """SessionOptions as kopt and the runtime use them: ``threads`` intra-op threads (0: onnxruntime's
    default), one inter-op thread, an optimization level (True = all, False = disabled, or a name)."""
    import onnxruntime as ort

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InvalidInput("threads", f"{threads!r} is not a whole number >= 0 (0: onnxruntime's default)")
    level = ("all" if optimization else "disabled") if isinstance(optimization, bool) else optimization
    if level not in LEVELS:
        raise InvalidInput("graph_optimization", f"{optimization!r}; use one of {', '.join(LEVELS)}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = log_severity
    opts.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if ort_format:
        opts.add_session_config_entry("session.load_model_format", "ORT")
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    for k, v in (config or {}).items():
        opts.add_session_config_entry(k, v)
    return opts


def cache_root() -> Path:
    """The runtime's folder in the user's cache: ``$XDG_CACHE_HOME/kokoro_runtime`` (else
    ``~/.cache/kokoro_runtime``); optimized sessions and verification stamps live under it."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kokoro_runtime"


def cache_dir() -> Path | None:
    """Where optimized CPU models are kept: ``cache_root()/sessions``; None when it cannot be made."""
    d = cache_root() / "sessions"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return d


def _machine_tag() -> str:
    """The CPU and its instruction-set flags: an optimized model holds layouts chosen for them."""
    import platform
    info = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith(("model name", "flags", "Features"))]
        info += "".join(sorted(set(lines)))
    except OSError:
        pass
    return hashlib.sha256(info.encode()).hexdigest()[:12]


def _cached_model(model_sha256: str) -> Path | None:
    import onnxruntime as ort

    d = cache_dir()
    if d is None or not re.fullmatch(r"[0-9a-f]{16,64}", model_sha256):
        return None
    return d / f"{model_sha256[:24]}-ort{ort.__version__}-{_machine_tag()}-prepacked.onnx"


def _data_files(cached: Path) -> list[Path]:
    """The pre-packed weight files written for the cache entry ``cached`` (one, unless writers raced)."""
    import glob  # this and the modules below are needed only when an entry is written or dropped
    return [Path(f) for f in glob.glob(f"{glob.escape(str(cached.with_suffix('')))}.*.data")]


def _drop(cached: Path) -> None:
    """Remove a cache entry: its graph and its weights."""
    for f in [cached, *_data_files(cached)]:
        try:
            f.unlink(missing_ok=True)
        except OSError:   # e.g. mapped by a running session on Windows: stale but harmless
            pass


def _saving(opts: Any, cached: Path) -> tuple[Path, str]:
    """Make ``opts`` write the optimized graph into a private folder beside ``cached``, its weights
    pre-packed into a data file of its own name; returns (folder, data file name)."""
    import secrets
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix=f".{cached.stem}.", dir=cached.parent))
    data = f"{cached.stem}.{secrets.token_hex(6)}.data"
    opts.optimized_model_filepath = str(tmp / cached.name)
    opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", data)
    opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    opts.add_session_config_entry("session.save_external_prepacked_constant_initializers", "1")
    return tmp, data


def _install(tmp: Path, cached: Path, data: str) -> None:
    """Move what onnxruntime wrote in ``tmp`` into the cache: the weights first, then the graph that
    names them (so a reader never sees a graph without its weights); other weight files of the
    entry are no longer named by any graph and are removed."""
    import shutil
    try:
        if not (tmp / cached.name).is_file():
            return
        if (tmp / data).is_file():            # no initializer reached the size limit: none is written
            os.replace(tmp / data, cached.parent / data)
        os.replace(tmp / cached.name, cached)
        for old in _data_files(cached):
            if old.name != data:
                old.unlink(missing_ok=True)
    except OSError as e:
        log.debug("optimized model not kept in %s (%s)", cached.parent, e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_session(model_path: str | Path, providers: Sequence[ProviderSpec] | None = None, threads: int = 0,
                 graph_optimization: "bool | str" = True, *, fallback: bool = False, options: Any = None,
                 error: type[Exception] = BundleError, model_sha256: str | None = None) -> Any:
    """An InferenceSession on ``model_path`` with ``providers`` in priority order.

    A provider this onnxruntime build lacks, or one that fails to initialise (onnxruntime then drops
    it and runs on the next), is a ``ProviderUnavailable`` error unless ``fallback`` is true, in
    which case the session runs on what remains and the drop is logged. ``error`` is the class
    raised when onnxruntime cannot load the model (kopt passes its own)."""
    import onnxruntime as ort

    p = Path(model_path)
    if not p.is_file():
        raise error(f"{p}: model file not found")
    wanted = normalize_providers(providers)
    available = set(ort.get_available_providers())
    missing = [provider_name(s) for s in wanted if provider_name(s) not in available]
    if missing and not fallback:
        raise ProviderUnavailable(
            f"provider {', '.join(missing)} is not in this onnxruntime build (it has {', '.join(sorted(available))}); "
            "install the matching onnxruntime package or ask for a fallback")
    usable = [s for s in wanted if provider_name(s) in available] or ["CPUExecutionProvider"]
    cached = None
    if (model_sha256 and options is None and p.suffix == ".onnx" and graph_optimization in (True, "all")
            and [provider_name(s) for s in usable] == ["CPUExecutionProvider"]):
        cached = _cached_model(model_sha256)
    if cached is not None and cached.is_file():
        try:   # onnxruntime's optimizations were applied when it was saved: load it as it is
            return ort.InferenceSession(str(cached), sess_options=session_options(threads, False), providers=usable)
        except Exception as e:  # a damaged, truncated or foreign entry: drop it and optimize afresh
            log.warning("optimized model %s unusable (%s); rebuilding it", cached, first_line(e))
            _drop(cached)
    opts = options if options is not None else session_options(threads, graph_optimization,
                                                                ort_format=p.suffix == ".ort")
    saving = None
    if cached is not None:
        try:
            saving = _saving(opts, cached)
        except OSError as e:                   # a read-only cache: run without keeping the graph
            log.debug("optimized model not kept in %s (%s)", cached.parent, e)
    try:
        sess = ort.InferenceSession(str(p), sess_options=opts, providers=usable)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise error(f"{p}: onnxruntime cannot load the model ({first_line(e)})") from e
    finally:
        if saving is not None and cached is not None:
            _install(saving[0], cached, saving[1])
    got = sess.get_providers()
    dropped = [provider_name(s) for s in usable if provider_name(s) not in got]
    if dropped and not fallback:
        raise ProviderUnavailable(f"provider {', '.join(dropped)} failed to start on this machine (the session "
                                  f"got {', '.join(got)}); check its drivers or ask for a fallback")
    if missing or dropped:
        log.warning("providers %s unavailable; running on %s", ", ".join(missing + dropped), ", ".join(got))
    return sess
