"""ort-format: the model converted to ONNX Runtime's ``.ort`` format with its optimizations baked in.

ORT optimizes the graph once at build time (``SessionOptions.optimized_model_filepath`` with
``session.save_model_format = ORT``); a runtime then creates its session with
``graph_optimization_level = ORT_DISABLE_ALL`` and skips both ONNX protobuf parsing and the
optimizer. The pass measures session creation (median of ``repeats``, one thread) for the input
.onnx at ORT's default level against the .ort at ORT_DISABLE_ALL, and reports both.

The .ort file loads only in onnxruntime (same or newer version; minimal builds included), and the
``all`` level ties it to this kind of CPU, like ``fuse``. The output file is ``model.ort``; the
runner checks the contract on it through an ORT session. Put this pass last in a chain.
"""

from __future__ import annotations

import statistics
import time
from typing import Literal

import onnx
from pydantic import Field

from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register
from kopt.optimize.fuse import cpu_tag, optimize_offline


class OrtFormatConfig(PassConfig):
    level: Literal["basic", "extended", "all"] = Field(
        "extended", description="ORT optimization level baked into the .ort file (all: CPU-specific, not portable).")
    repeats: int = Field(3, ge=0, le=20, description="Session creations timed per model for the report "
                                                     "(median); 0 skips the measurement.")


def session_seconds(path, disable: bool, repeats: int) -> float:
    from kopt.core.kokoro import open_session

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        open_session(path, 1, not disable)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@register
class OrtFormat(Pass):
    name = "ort-format"
    version = 1
    config_cls = OrtFormatConfig
    summary = "Convert to .ort with ORT's optimizations baked in; load it with graph optimization disabled."
    equivalent = True
    tolerance = 1e-4  # compared with the input run at the same ORT level
    depends_on_provider = True
    output_suffix = ".ort"

    def reference_level(self) -> str:
        return self.config.level  # type: ignore[attr-defined]

    def key_inputs(self) -> dict[str, str]:
        return {"cpu": cpu_tag()} if self.config.level == "all" else {}  # type: ignore[attr-defined]

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        cfg: OrtFormatConfig = self.config  # type: ignore[assignment]
        src = ctx.input_file(model)
        del model
        dst = ctx.workdir / "model.ort"
        optimize_offline(src, dst, cfg.level, "ORT", ctx.provider)
        report = {"level": cfg.level, "portable": cfg.level != "all",
                  "load_with": "graph_optimization_level=ORT_DISABLE_ALL"}
        if cfg.repeats:
            onnx_s = session_seconds(src, disable=False, repeats=cfg.repeats)
            ort_s = session_seconds(dst, disable=True, repeats=cfg.repeats)
            report.update({"session_s_onnx_default": round(onnx_s, 4), "session_s_ort_disabled": round(ort_s, 4),
                           "session_speedup": round(onnx_s / ort_s, 2) if ort_s > 0 else None})
        return PassResult(path=dst, report=report)
