"""fuse: ONNX Runtime's own graph optimizations applied offline and saved as an ONNX model.

Levels (ORT's GraphOptimizationLevel):
- ``basic``: constant folding, redundant-node elimination, semantics-preserving rewrites with
  standard ONNX ops only: the output runs in any ONNX runtime.
- ``extended``: adds ORT's fusions (FusedConv, FusedMatMul, Gelu/LayerNorm/attention fusions) as
  ``com.microsoft`` contrib ops: runs in onnxruntime on any machine, not in other runtimes.
- ``all``: adds layout transforms (NCHWc blocked convolutions, ``com.microsoft.nchwc``) whose block
  size depends on this CPU's vector width (AVX2 vs AVX-512). The output is tied to this kind of
  CPU: the CPU goes into the cache key and the report carries a ``portable: false`` flag. Use it
  only for a model that will run on the machine that built it.

The session that runs the optimizations uses the CPU provider; fusions are provider-specific, so
the provider is part of the cache key.
"""

from __future__ import annotations

from typing import Literal

import onnx
from pydantic import Field

from kopt.core.errors import KoptError
from kopt.core.passes import Pass, PassConfig, PassContext, PassResult, register

LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


class FuseConfig(PassConfig):
    level: Literal["basic", "extended", "all"] = Field(
        "extended", description="ORT optimization level baked in: basic (portable ONNX), extended "
                                "(ORT contrib ops), all (adds CPU-specific layouts; not portable).")


def cpu_tag() -> str:
    """A hash of what decides ORT's CPU layouts: CPU model and its vector extensions."""
    from kopt.core.env import cpu_flags, machine
    from kopt.core.hashing import sha256_bytes

    flags = " ".join(sorted(x for x in cpu_flags() if x.startswith(("avx", "sse", "fma", "amx"))))
    return sha256_bytes(f"{machine()['arch']}|{machine()['cpu']}|{flags}".encode())[:16]


def optimize_offline(src, dst, level: str, fmt: str = "ONNX", provider: str = "CPUExecutionProvider") -> None:
    """Let ORT optimize ``src`` at ``level`` and write the result to ``dst`` (ONNX or ORT format)."""
    from kopt.core.kokoro import open_session, options

    if level not in LEVELS:
        raise KoptError(f"fuse level {level!r}: use one of {', '.join(LEVELS)}")
    so = options(1, level, config={"session.save_model_format": "ORT"} if fmt == "ORT" else None)
    so.optimized_model_filepath = str(dst)
    open_session(src, 1, level, [provider], opts=so)


@register
class Fuse(Pass):
    name = "fuse"
    version = 1
    config_cls = FuseConfig
    summary = "ONNX Runtime graph optimizations (basic/extended/all) applied offline, saved as ONNX."
    equivalent = True
    # Compared with the input run at the same level (what ORT computes when it loads the input):
    # the saved graph must reproduce it. Against the unoptimized input, int8 fusions (e.g.
    # MatMulIntegerToFloat) round differently and can move a predicted duration by one frame.
    tolerance = 1e-4
    depends_on_provider = True

    def reference_level(self) -> str:
        return self.config.level  # type: ignore[attr-defined]

    def key_inputs(self) -> dict[str, str]:
        return {"cpu": cpu_tag()} if self.config.level == "all" else {}  # type: ignore[attr-defined]

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        level = self.config.level  # type: ignore[attr-defined]
        src = ctx.input_file(model)
        del model
        dst = ctx.workdir / "fused.onnx"
        optimize_offline(src, dst, level, "ONNX", ctx.provider)
        out = onnx.load(str(dst))
        return PassResult(model=out, report={"level": level, "portable": level != "all",
                                             "runs_in": "any ONNX runtime" if level == "basic" else
                                             "onnxruntime" if level == "extended" else
                                             "onnxruntime on this kind of CPU"})
