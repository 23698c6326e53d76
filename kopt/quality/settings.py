"""Recipe settings for quality scoring (the ``[quality]`` section) and its gates: pydantic, frozen,
unknown keys rejected. A gate left at None is not checked."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator


class QualityGates(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pesq_wb_aligned_min: Optional[float] = Field(3.5, description="Lowest mean aligned PESQ-wb.")
    pesq_wb_natural_min: Optional[float] = Field(None, description="Lowest mean natural-audio PESQ-wb.")
    stoi_aligned_min: Optional[float] = Field(0.90, description="Lowest mean aligned STOI.")
    mcd_db_aligned_max: Optional[float] = Field(None, description="Highest mean aligned MCD (dB).")
    dnsmos_ovrl_delta_min: Optional[float] = Field(-0.2, description="Lowest DNSMOS overall of the variant minus "
                                                   "the reference's (a negative number allows a small drop).")
    duration_frames_changed_max: Optional[float] = Field(0.10, description="Highest fraction of tokens whose "
                                                         "predicted duration differs from the reference's.")
    guards: bool = Field(True, description="Fail a variant whose audio is non-finite, silent, clipped or far "
                         "longer/shorter than the reference's.")


class QualitySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    variants: tuple[str, ...] = Field((), description="Variants to score: model paths, artifact keys or ref names.")
    reference: str = Field("reference", description="The fp32 reference: a model path, artifact key or ref name.")
    metrics: tuple[str, ...] = Field(("pesq", "stoi", "log_mel", "mrstft", "mcd", "dnsmos"),
                                     description="Metric names from kopt.quality.registry.")
    aligned: bool = Field(True, description="Also score with the reference's durations fed to the variant "
                          "(needs the durations pass or instrumented graphs).")
    categories: tuple[str, ...] = Field(("short", "medium", "long"), description="Text-set categories to score.")
    texts: tuple[str, ...] = Field((), description="Text ids to score (empty: every text of the categories).")
    text_set: Optional[str] = Field(None, description="Path of a text-set JSON (default: kopt's own).")
    voices: tuple[str, ...] = Field((), description="Voice names to score with (empty: the first of the pack).")
    speed: float = Field(1.0, gt=0, description="Speaking speed.")
    threads: int = Field(2, ge=0, description="Intra-op threads for the scoring sessions (CPU).")
    determinism_runs: int = Field(2, ge=0, description="Runs of the first case compared bit for bit "
                                  "(0 skips the determinism check).")
    gates: QualityGates = Field(default_factory=QualityGates, description="Pass/fail thresholds.")

    @field_validator("metrics")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from kopt.quality.registry import get

        for name in v:
            get(name)
        return v
