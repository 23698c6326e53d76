"""Recipe settings for publishing (the ``[publish]`` section): pydantic, frozen, unknown keys rejected."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class PublishSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field("cpu", description="Provider preset whose winner is published (kopt.core.providers).")
    voices: tuple[str, ...] = Field((), description="Voices to ship (empty: every voice of the base pack).")
    blends: dict[str, str] = Field(default_factory=dict, description="Blended voices to add: name -> "
                                   "'a:0.7,b:0.3'.")
    default_voice: Optional[str] = Field(None, description="Voice the runtime uses when none is named.")
    cache_words: int = Field(50000, ge=0, description="Most frequent English words in the token cache "
                             "(0: no cache; the runtime then needs G2P).")
    phrases: tuple[str, ...] = Field((), description="Extra phrases to put in the token cache.")
    ort: bool = Field(False, description="Also ship the model in .ort format (graph optimizations baked in) "
                      "and point the runtime at it; model.onnx stays for other clients.")
    ort_level: Literal["basic", "extended"] = Field("extended", description="Optimization level baked into "
                                                    "the .ort model (portable levels only).")
    tarball: bool = Field(True, description="Also write <bundle>.tar.gz.")
