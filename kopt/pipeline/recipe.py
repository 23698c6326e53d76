"""The build recipe: the pass recipe (input + variants) plus the sections a whole build needs.

Each section is typed by the settings model of the stage that owns it, so one schema validates a
build before any work starts and an error names the file and the field::

    [source]   model/voices/vocab (default: the embedded PyPI model)
    [bench]    kopt.bench.settings.BenchSettings
    [quality]  kopt.quality.settings.QualitySettings
    [select]   kopt.select.settings.SelectSettings
    [compare]  baseline results + kopt.select.settings.CompareSettings thresholds
    [publish]  kopt.publish.settings.PublishSettings
    [bundle_bench]  kopt.publish.settings.BundleBenchSettings (how the published bundle is measured)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kopt.bench.settings import BenchSettings
from kopt.core.recipe import Recipe, load_recipe
from kopt.publish.settings import BundleBenchSettings, PublishSettings
from kopt.quality.settings import QualitySettings
from kopt.select.settings import CompareSettings, SelectSettings

__all__ = ["BuildRecipe", "BundleBenchSettings", "CompareBuild", "SourceSettings", "load_build_recipe"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSettings(_Strict):
    model: Optional[str] = Field(None, description="Your own Kokoro ONNX (default: the embedded int8 model).")
    voices: Optional[str] = Field(None, description="Voices for --model (npz/.bin/.pt or a folder).")
    vocab: Optional[str] = Field(None, description="Kokoro vocab.json (default: Kokoro v1.0's).")


class CompareBuild(_Strict):
    baseline: Optional[str] = Field(None, description="Results file or folder of an earlier build to gate "
                                    "against (relative to the recipe's folder); none: no regression gate.")
    settings: CompareSettings = Field(default_factory=CompareSettings, description="Thresholds and noise rules.")


class BuildRecipe(Recipe):
    source: SourceSettings = Field(default_factory=SourceSettings)
    baselines: tuple[str, ...] = Field(("reference", "base"), description="Models measured beside the variants "
                                       "(ref names or keys); the first is the bench ratio baseline.")
    bench: BenchSettings = Field(default_factory=lambda: BenchSettings(providers=("cpu",)))
    quality: QualitySettings = Field(default_factory=QualitySettings)
    select: SelectSettings = Field(default_factory=SelectSettings)
    compare: CompareBuild = Field(default_factory=CompareBuild)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    bundle_bench: BundleBenchSettings = Field(default_factory=BundleBenchSettings)

    @model_validator(mode="after")
    def _modes_name_variants(self) -> "BuildRecipe":
        known = {v.name for v in self.variants} | set(self.baselines)
        for mode, name in self.publish.modes.items():
            if name not in known:
                raise ValueError(f"publish.modes.{mode}: {name!r} is not a variant of this recipe "
                                 f"(variants: {', '.join(sorted(known))})")
        if self.publish.deploy and not self.bundle_bench.server:
            raise ValueError("publish.deploy: the deploy files are sized from the server's measured memory; "
                             "set bundle_bench.server = true or deploy = false")
        return self


def load_build_recipe(path: str | Path) -> BuildRecipe:
    """Load a build recipe; a plain pass recipe is one too (every build section has defaults)."""
    return load_recipe(path, BuildRecipe)  # type: ignore[return-value]
