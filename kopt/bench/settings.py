"""Recipe settings for benchmarking (the ``[bench]`` section): pydantic, frozen, unknown keys rejected."""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kopt.core.providers import DEFAULT_BENCH, PRESETS, get_many


class BenchSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    variants: tuple[str, ...] = Field((), description="Variants to measure: model paths, artifact keys or ref "
                                      "names (the command line's VARIANT arguments take precedence).")
    providers: tuple[str, ...] = Field(DEFAULT_BENCH, description="Provider presets to measure (kopt.core.providers."
                                       "PRESETS); ones this onnxruntime build lacks are recorded as skipped.")
    threads: int = Field(2, ge=0, description="Intra-op threads per session (0 = onnxruntime's default).")
    warmup: int = Field(1, ge=0, description="Untimed runs of every text before measuring.")
    repeats: int = Field(5, ge=1, description="Timed rounds; each round runs every text once in every cell, "
                         "cells interleaved.")
    ttfa_repeats: int = Field(3, ge=0, description="Timed time-to-first-audio runs (streaming path, G2P "
                              "included) per cell, after one untimed one; 0 skips TTFA.")
    categories: tuple[str, ...] = Field(("short", "medium", "long"), description="Text-set categories to time.")
    texts: tuple[str, ...] = Field((), description="Text ids to time (empty: every text of the categories).")
    text_set: Optional[str] = Field(None, description="Path of a text-set JSON (default: kopt's own).")
    voice: Optional[str] = Field(None, description="Voice name (default: the first voice of the pack).")
    speed: float = Field(1.0, gt=0, description="Speaking speed.")
    baseline: Optional[str] = Field(None, description="Variant the ratios are against (default: the first).")
    timeout_s: float = Field(600.0, gt=0, description="Longest a worker may take for one request before it is "
                             "killed and its cell recorded as failed.")
    memory_limit_mb: int = Field(16384, ge=0, description="Address-space cap (RLIMIT_AS) per worker; 0 = none.")
    partition: bool = Field(True, description="Record which provider runs each node (ORT profiler), and whether "
                            "the session builds with CPU fallback disabled.")
    scaling_threads: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (1,), description="Thread scaling: further intra-op thread counts to time RTF at, in fresh workers after the "
        "main measurement, on CPU-provider cells only (threads only change the CPU provider). The main count "
        "(threads) is always among the figures; counts above the machine's cores are recorded as skipped; "
        "empty: no scaling.")
    scaling_repeats: int = Field(2, ge=1, description="Timed rounds at each scaling thread count (after the same "
                                 "warm-up as the main measurement); fewer than repeats keeps the extra time small.")

    worker_python: dict[str, str] = Field(
        default_factory=dict, description="Worker environments: {env: python interpreter} for presets that need "
        "an onnxruntime wheel of their own (e.g. openvino = \"/opt/ov-venv/bin/python\", a venv with "
        "onnxruntime-openvino and numpy); their workers run under it. A preset whose environment is not named "
        "here runs in kopt's own onnxruntime, or is skipped when that lacks it.")

    @field_validator("worker_python")
    @classmethod
    def _known_envs(cls, v: dict[str, str]) -> dict[str, str]:
        envs = sorted({p.env for p in PRESETS.values() if p.env})
        unknown = [k for k in v if k not in envs]
        if unknown:
            raise ValueError(f"unknown worker environment {unknown[0]!r}; presets use: {', '.join(envs)}")
        return v

    @field_validator("providers")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        get_many(v)  # raises with the valid names
        return v
