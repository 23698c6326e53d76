"""Pass base class and registry.

A pass is a small class with a name, a version, a frozen typed config (a pydantic model with
``extra="forbid"``) and one job: model in, model out, plus a short report. Loading, saving,
caching, lineage and the contract check live in the runner, never in a pass.

``Pass.apply`` is how every caller (the runner, tests) runs a pass on a protobuf model: a graph
rewrite (``on_ir``) gets the model converted to onnx-ir once and hands its onnx-ir model back,
serialized once; any pass checks its ``requires`` on the input before running and its ``ensures``
on the output after (onnx-ir's precondition/postcondition idea: a ModelError that says what to
do), and a ``checked`` pass's output goes through ONNX's model checker once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import onnx
import onnx_ir as ir
from pydantic import BaseModel, ConfigDict, ValidationError

from kopt.core.errors import KoptError, RecipeError


class PassConfig(BaseModel):
    """Base for pass configs: frozen, unknown keys rejected. Document each field with Field(description=...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass
class PassContext:
    """What a pass may read besides the model: a scratch folder (inside the artifact being
    written), the input model's path, voices for running it, and the progress hooks."""

    workdir: Path
    input_path: Path | None = None
    voices: dict[str, Any] | None = None
    progress: Any = None
    provider: str = "CPUExecutionProvider"

    def input_file(self, model: onnx.ModelProto) -> Path:
        """The input model as a file, for passes whose library works on files: the runner's input
        path when it has one, else ``model`` saved into the workdir."""
        if self.input_path is not None:
            return self.input_path
        src = self.workdir / "input.onnx"
        onnx.save(model, str(src))
        return src


@dataclass
class PassResult:
    """A pass's output: the new model (an onnx-ir model from an ``on_ir`` pass, else a protobuf;
    or a path to it, for passes that must write files themselves, e.g. .ort conversion) and a short
    report of what changed."""

    model: onnx.ModelProto | ir.Model | None = None
    path: Path | None = None
    report: dict[str, Any] = field(default_factory=dict)
    extra_files: dict[str, Path] = field(default_factory=dict)


class Pass:
    name: ClassVar[str]
    version: ClassVar[int] = 1
    config_cls: ClassVar[type[PassConfig]] = PassConfig
    summary: ClassVar[str] = ""
    # Must the output compute the same maths as the input? If so, the runner's equivalence check
    # compares outputs on fixed token sequences within ``tolerance`` (max abs diff of audio).
    equivalent: ClassVar[bool] = False
    tolerance: ClassVar[float | None] = None
    # The ORT optimization level the input runs at in the equivalence check ("disable", "basic",
    # "extended", "all"); passes that bake ORT's own optimizations in compare at their level.
    equivalence_reference_level: ClassVar[str] = "disable"
    depends_on_provider: ClassVar[bool] = False
    output_suffix: ClassVar[str] = ".onnx"
    # A graph rewrite on onnx-ir: ``run``, ``requires`` and ``ensures`` take an ``ir.Model`` (``run``
    # may edit it in place and return it); ``apply`` converts once each way.
    on_ir: ClassVar[bool] = False
    # Does ONNX's checker run on the output? On for the graph rewrites kopt writes itself; off for
    # passes whose output a library writes (onnxruntime's quantizers may add contrib ops without an
    # opset import for their domain, which onnxruntime accepts and the checker does not).
    checked: ClassVar[bool] = False

    def __init__(self, config: PassConfig | None = None):
        self.config = config if config is not None else self.config_cls()

    def run(self, model: onnx.ModelProto | ir.Model, ctx: PassContext) -> PassResult:
        raise NotImplementedError

    def requires(self, model: onnx.ModelProto | ir.Model, ctx: PassContext) -> None:
        """Preconditions on the input (an onnx-ir model for an ``on_ir`` pass): raise a ModelError
        that says what to do. None by default."""

    def ensures(self, model: onnx.ModelProto | ir.Model, ctx: PassContext) -> None:
        """Postconditions on the output model, in the form ``run`` returned it (not called for a
        file output). None by default."""

    def apply(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        """``run`` between its ``requires`` and ``ensures``, on onnx-ir for an ``on_ir`` pass (the
        one conversion each way); a ``checked`` pass's output goes through ONNX's checker once. The
        result's model is a protobuf (or None when the pass wrote a file)."""
        from kopt.core.graph import to_proto

        given = ir.serde.deserialize_model(model) if self.on_ir else model
        self.requires(given, ctx)
        result = self.run(given, ctx)
        del given, model
        if result.model is not None:
            self.ensures(result.model, ctx)
            if isinstance(result.model, ir.Model):
                result.model = to_proto(result.model)
            if self.checked:
                onnx.checker.check_model(result.model)
        return result

    def reference_level(self) -> str:
        """Level the equivalence check runs the input at (may depend on the config)."""
        return self.equivalence_reference_level

    def key_inputs(self) -> dict[str, str]:
        """Extra facts (name -> hash) the output depends on beyond model, config and provider, e.g.
        the CPU for passes that bake in hardware-specific layouts. They go into the cache key."""
        return {}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        fields = {}
        for fname, f in cls.config_cls.model_fields.items():
            fields[fname] = {"type": _type_name(f.annotation), "default": f.get_default(call_default_factory=True),
                             "description": f.description or ""}
        return {"name": cls.name, "version": cls.version, "summary": cls.summary,
                "equivalent": cls.equivalent, "tolerance": cls.tolerance,
                "depends_on_provider": cls.depends_on_provider, "output_suffix": cls.output_suffix,
                "config": fields}


def _type_name(t: Any) -> str:
    from typing import Literal, get_args, get_origin

    if get_origin(t) is Literal:
        return " | ".join(repr(a) for a in get_args(t))
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


_REGISTRY: dict[str, type[Pass]] = {}


def register(cls: type[Pass]) -> type[Pass]:
    """Class decorator: add a pass to the registry under its ``name``."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"pass name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


ENTRY_POINTS = "kopt.passes"  # packages whose modules register passes (pyproject's [project.entry-points])


def _load_all() -> None:
    """Import every module of the packages named in the ``kopt.passes`` entry points, so each
    registers its passes; core names none of them (another distribution can add its own)."""
    import importlib
    import pkgutil
    from importlib.metadata import entry_points

    eps = entry_points(group=ENTRY_POINTS)
    if not eps:
        raise KoptError(f"no pass packages are registered (entry point group {ENTRY_POINTS!r}); "
                        "reinstall kopt (pip install -e .)")
    for pkg_name in sorted({ep.value for ep in eps}):
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{info.name}")


def registry() -> dict[str, type[Pass]]:
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get_pass(name: str) -> type[Pass]:
    reg = registry()
    if name not in reg:
        raise KoptError(f"unknown pass {name!r}; choose one of: {', '.join(reg) or '(none registered)'}")
    return reg[name]


def make_config(cls: type[Pass], values: dict[str, Any], where: str = "") -> PassConfig:
    from kopt.core.recipe import explain

    try:
        return cls.config_cls(**values)
    except ValidationError as e:
        field_, msg = explain(e)
        prefix = f"{where}: " if where else ""
        raise RecipeError(f"{prefix}pass {cls.name!r} config field {field_!r}: {msg}") from None
