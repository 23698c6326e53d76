"""Settings of the sensitivity search (kopt.quality.sensitivity): pydantic, frozen, unknown keys
rejected. This module imports only pydantic, so `kopt sensitivity --help` can show its defaults
without loading onnx."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

# Candidate groups: module paths first, then op types.
DEFAULT_GROUPS = (
    "bert", "text_encoder", "predictor.text_encoder", "predictor.duration", "predictor.shared",
    "predictor.F0", "predictor.N", "decoder.encode", "decoder.decode.0", "decoder.decode.1",
    "decoder.decode.2", "decoder.decode.3", "generator.source", "generator.ups",
    "generator.resblocks.0", "generator.resblocks.1", "generator.resblocks.2", "generator.resblocks.3",
    "generator.resblocks.4", "generator.resblocks.5", "generator.noise", "generator.conv_post",
    "generator.istft",
)


class SensitivityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    groups: tuple[str, ...] = Field(DEFAULT_GROUPS, description="Candidate node groups (module-path prefixes or op:TYPE).")
    budget: float = Field(4.0, description="Quality budget: mean aligned PESQ-wb the combined model must keep.")
    margin: float = Field(0.1, ge=0, description="Headroom the search keeps above the budget: a group set is "
                          "accepted only when its mean is >= budget + margin.")
    case_floor: Optional[float] = Field(3.9, description="No single check sentence of an accepted set may score "
                                        "below this (null: no floor).")
    cases: tuple[str, ...] = Field(("short", "medium"), description="Check-set sentences scored (ids or "
                                   "categories), in every language.")
    languages: tuple[str, ...] = Field(("en-us", "ja"), description="Check-set languages scored; a group set's "
                                       "score is its worst language's mean.")
    op_types: tuple[str, ...] = Field(("Conv", "ConvTranspose"), description="Op types quantized in each group. "
                                      "Conv is where the time goes; MatMul (ALBERT, AdaIN style MLPs) costs "
                                      "quality for no speed.")
    calibrate_method: str = Field("MinMax", description="Calibration method for the int8 runs.")
    calib_sentences: int = Field(16, description="Calibration utterances.")
    calib_seed: int = Field(0, description="Calibration seed.")
    balance: bool = Field(True, description="Channel-balanced QDQ for the int8 runs (see int8-static's balance).")
    search: bool = Field(True, description="After ranking, bisect for the largest group set within budget.")
    threads: int = Field(1, description="Threads for scoring sessions.")
    reuse: str = Field("", description="An earlier sensitivity.json: groups it scored alone under the same "
                                       "reference, cases, calibration, op types and balancing are not re-run.")
