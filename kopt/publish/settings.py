"""Recipe settings for publishing (the ``[publish]`` and ``[bundle_bench]`` sections): pydantic, frozen,
unknown keys rejected. This module imports only pydantic at load time, so help text can read its defaults."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator


def _blend_spec(spec: str) -> str:
    """A blend's syntax by the runtime's own rule (kopt.source.voices.parse_blend); its voice names
    are checked against the base's voices when the bundle is written."""
    from kopt.core.errors import VoiceError
    from kopt.source.voices import parse_blend

    try:
        parse_blend(spec)
    except VoiceError as e:
        raise ValueError(str(e)) from None
    return spec


BlendSpec = Annotated[str, AfterValidator(_blend_spec)]

DEFAULT_WORDS = 50_000   # words in a bundle's token cache unless the recipe or a flag says otherwise


class CacheConfig(BaseModel):
    """What a token cache holds (kopt.publish.tokencache.build_cache; `kopt tokencache build`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    words: int = Field(DEFAULT_WORDS, ge=0, description="How many of the most frequent English words "
                       "(wordfreq) to include.")
    phrases: tuple[str, ...] = Field((), description="Phrases phonemized whole (names, product terms, greetings).")
    pair_words: int = Field(250, ge=0, description="Word pairs among this many top words that espeak says "
                            "differently together are cached as pairs.")
    language: str = Field("en-us", description="The G2P language of the cached phonemes.")


class PublishSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field("cpu", description="Provider preset whose winner is published (kopt.core.providers).")
    voices: tuple[str, ...] = Field((), description="Voices to ship (empty: every voice of the base pack).")
    blends: dict[str, BlendSpec] = Field(default_factory=dict, description="Blended voices to add: name -> "
                                         "'a:0.7,b:0.3' or 'a(2)+b(1)' (the runtime's two spellings).")
    default_voice: Optional[str] = Field(None, description="Voice the runtime uses when none is named.")
    voice_languages: dict[str, str] = Field(default_factory=dict, description="The language of each voice whose "
                                            "name does not follow Kokoro's <letter><f|m>_ convention (a user's own "
                                            "pack), e.g. {narrator = \"en-us\"}; written to the manifest, which "
                                            "the runtime reads.")
    default_language: Optional[str] = Field(None, description="Language of the unconventionally named voices not "
                                            "in voice_languages (the runtime's default: en-us).")
    cache_words: int = Field(DEFAULT_WORDS, ge=0, description="Most frequent English words in the token cache "
                             "(0: no cache; the runtime then needs G2P).")
    phrases: tuple[str, ...] = Field((), description="Extra phrases to put in the token cache.")
    ort: bool = Field(False, description="Also ship the model in .ort format (graph optimizations baked in) "
                      "and point the runtime at it; model.onnx stays for other clients.")
    ort_level: Literal["basic", "extended"] = Field("extended", description="Optimization level baked into "
                                                    "the .ort model (portable levels only).")
    tarball: bool = Field(True, description="Also write <bundle>.tar.gz.")
    timings: bool = Field(True, description="Ship the model with its per-token durations as a second output, "
                          "'duration' (the `timings` pass): word timestamps in the runtime, create_timed in "
                          "kokoro-onnx. The audio is bit-identical.")
    modes: dict[str, str] = Field(default_factory=dict, description="Quality modes served from one bundle: mode "
                                  "name -> variant (recipe name), e.g. {fast = \"hybrid\", quality = \"fused\"}. "
                                  "The server maps OpenAI's tts-1 to 'fast' and tts-1-hd to 'quality'. Empty: one "
                                  "mode, the published winner.")
    deploy: bool = Field(False, description="Also write deploy files beside the bundle (deploy/): a Dockerfile, "
                         "Kubernetes manifests sized from the bundle's measured RSS and threads, a locustfile "
                         "(kopt.publish.deploy).")
    default_mode: Optional[str] = Field(None, description="The mode used when a request names none (default: the "
                                        "mode of the published winner, else the first).")

    @field_validator("modes")
    @classmethod
    def _mode_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
                raise ValueError(f"mode name {name!r}: use lower-case letters, digits, '-' or '_' (e.g. fast)")
        return v

    @model_validator(mode="after")
    def _default_mode_known(self) -> "PublishSettings":
        if self.default_mode is not None and self.default_mode not in self.modes:
            raise ValueError(f"default_mode {self.default_mode!r} is not one of the modes "
                             f"({', '.join(self.modes) or 'none given'})")
        return self


class BundleBenchSettings(BaseModel):
    """The published bundle's own benchmark (kopt.publish.measure.measure_bundle), as `kopt
    bundle-bench` runs it (the recipe's ``[bundle_bench]`` section); a short CI build can measure fewer cells."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repeats: int = Field(3, ge=1, le=20, description="Cold starts and warm TTFA runs per figure.")
    clients: tuple[int, ...] = Field((1, 2, 4, 8), description="Concurrent HTTP clients of the load sweep (the "
                                     "Wyoming sweep uses 1 and the largest).")
    instances: tuple[int, ...] = Field((1, 2), description="Server instances the load sweep tries (threads split "
                                       "between them).")
    requests_per_client: int = Field(2, ge=1, le=50, description="Requests each load client sends.")
    server: bool = Field(True, description="Measure the HTTP server, say daemon and Wyoming too (false: only "
                         "the one-shot command and the library).")

    @field_validator("clients", "instances")
    @classmethod
    def _counts(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(n < 1 or n > 64 for n in v):
            raise ValueError("give one or more counts from 1 to 64, e.g. [1, 2]")
        return tuple(sorted(set(v)))
