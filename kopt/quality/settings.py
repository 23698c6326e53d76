"""Recipe settings for quality scoring (the ``[quality]`` section) and its gates: pydantic, frozen,
unknown keys rejected. A gate left at None is not checked."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# every language kopt has quality texts for: the text set's (English) and the check sets'
LANGUAGES = ("en-us", "ja")


def _registered() -> tuple[str, ...]:
    from kopt.quality.registry import default_metrics

    return default_metrics()


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
    metrics: tuple[str, ...] = Field(default_factory=lambda: _registered(),
                                     description="Metric names from kopt.quality.registry (default: every "
                                     "registered metric).")
    aligned: bool = Field(True, description="Also score with the reference's durations fed to the variant "
                          "(needs the durations pass or instrumented graphs).")
    languages: tuple[str, ...] = Field(LANGUAGES, description="Languages to score, each on its own texts (the "
                                       "text set for its language, kopt's check set for the others) and voices; "
                                       "a record per variant and language.")
    categories: tuple[str, ...] = Field(("short", "medium", "long"), description="Text categories to score.")
    texts: tuple[str, ...] = Field((), description="Text ids to score (empty: every text of the categories); "
                                   "a language with none of them is not scored.")
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

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from kokoro_runtime import lang as rlang
        from kokoro_runtime.errors import InvalidInput

        if not v:
            raise ValueError("name at least one language, e.g. [\"en-us\", \"ja\"]")
        try:
            codes = tuple(rlang.get(x, "languages").code for x in v)
        except InvalidInput as e:
            raise ValueError(str(e).partition(": ")[2]) from None
        dup = sorted({c for c in codes if codes.count(c) > 1})
        if dup:
            raise ValueError(f"{', '.join(dup)} listed twice")
        return codes

    @model_validator(mode="after")
    def _texts_exist(self) -> "QualitySettings":
        from kopt.quality.texts import textset_language
        from kopt.quantize.sentences import CHECKSETS

        have = {textset_language(self.text_set), *CHECKSETS}
        missing = [x for x in self.languages if x not in have]
        if missing:
            raise ValueError(f"languages: no texts for {', '.join(missing)} (kopt has texts for "
                             f"{', '.join(sorted(have))})")
        return self
