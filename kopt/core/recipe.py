"""Recipe schema and its one loader.

A recipe is a declarative build: the input model and a list of variants, each a chain of passes
with their configs. Example (TOML)::

    name = "optimize"
    input = "reference"            # a ref name ("base", "reference"), an artifact key, or a model path

    [[variants]]
    name = "fold"
    passes = [{ pass = "fold" }]

    [[variants]]
    name = "fuse-extended-int8"
    input = "base"                 # a variant may take another input
    passes = [{ pass = "fold" }, { pass = "fuse", config = { level = "extended" } }]

Every model is pydantic with ``extra="forbid"``; pass names and pass configs are checked against the
registry while loading, so a typo fails before any work starts. Errors are one line naming the file,
the field (``variants[1].passes[0].config.level``) and the problem.

Later sections (``bench``, ``quality``, ``select``, ``report``, ``publish``) are added as optional
fields on :class:`Recipe`, each typed by its own settings model, e.g.
``bench: BenchSettings | None = None``; nothing else here needs to change.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kokoro_runtime.errors import first_line
from kopt.core.errors import RecipeError

_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Step(_Strict):
    """One pass in a chain: its registered name and its config (checked against the pass's config model)."""

    pass_name: str = Field(alias="pass", description="Registered pass name (see `kopt passes`).")
    config: dict[str, Any] = Field(default_factory=dict, description="The pass's config fields.")

    @model_validator(mode="after")
    def _known_pass(self) -> "Step":
        from kopt.core.passes import make_config, registry

        reg = registry()
        if self.pass_name not in reg:
            raise ValueError(f"unknown pass {self.pass_name!r}; choose one of: {', '.join(reg)}")
        try:
            make_config(reg[self.pass_name], self.config)
        except RecipeError as e:  # re-raised as ValueError so pydantic adds the step's location
            raise ValueError(str(e)) from None
        return self

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pass": self.pass_name}
        if self.config:
            out["config"] = dict(self.config)
        return out


class Variant(_Strict):
    """A named chain of passes applied to the recipe's input (or the variant's own ``input``)."""

    name: str = Field(description="Variant name: letters, digits, _ . - (unique in the recipe).")
    input: str | None = Field(default=None, description="Input for this variant; default: the recipe's.")
    passes: list[Step] = Field(min_length=1, description="The chain of passes, applied in order.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _VARIANT_NAME.match(v):
            raise ValueError(f"variant name {v!r} must be letters, digits, _ . - (not starting with _ . -)")
        return v


class Recipe(_Strict):
    """A build: the input model and its variants. Optional later sections are added as typed fields."""

    name: str = Field(default="recipe", description="Recipe name (used in reports).")
    input: str = Field(default="reference", description="Input model: ref name, artifact key, or model path.")
    variants: list[Variant] = Field(min_length=1, description="Variants to build.")

    @model_validator(mode="after")
    def _unique(self) -> "Recipe":
        seen: set[str] = set()
        for v in self.variants:
            if v.name in seen:
                raise ValueError(f"variant name {v.name!r} is used twice")
            seen.add(v.name)
        return self

    def dump(self) -> dict[str, Any]:
        """Plain data in the file format's shape (``pass`` keys, empty configs left out)."""
        variants = []
        for v in self.variants:
            d: dict[str, Any] = {"name": v.name}
            if v.input is not None:
                d["input"] = v.input
            d["passes"] = [s.dump() for s in v.passes]
            variants.append(d)
        return {"name": self.name, "input": self.input, "variants": variants}

    def to_toml(self) -> str:
        return dump_toml(self.dump())

    def to_json(self) -> str:
        return json.dumps(self.dump(), indent=2, ensure_ascii=False)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


M = TypeVar("M", bound=BaseModel)


def explain(e: ValidationError) -> tuple[str, str]:
    """(field location, message) of a validation error's first problem, in the words kopt's one-line
    errors use: the one translation of a pydantic ValidationError."""
    err = e.errors()[0]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown field (not allowed here)"
    elif err.get("type") == "missing":
        msg = "required field is missing"
    return _loc(tuple(err.get("loc", ()))), msg


def validate(schema: type[M], data: Any, source: str) -> M:
    """``data`` as a ``schema`` (any settings or recipe model); RecipeError naming ``source``, the
    field and the problem."""
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        loc, msg = explain(e)
        raise RecipeError(f"{source}: {loc}: {msg}") from None


def validate_recipe(data: dict[str, Any], source: str = "<recipe>", schema: type[Recipe] = Recipe) -> Recipe:
    """Validate plain data as a Recipe (or a subclass such as the build recipe)."""
    return validate(schema, data, source)


def read_file(path: str | Path, what: str = "recipe") -> dict[str, Any]:
    """The one reader of recipe and settings files: TOML, JSON, or YAML (with PyYAML installed),
    a table at the top level; RecipeError naming the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{p}: {what} file not found")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RecipeError(f"{p}: not valid TOML ({e})") from None
    elif p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecipeError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    elif p.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise RecipeError(f"{p}: YAML files need PyYAML (pip install pyyaml); or write it in TOML") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise RecipeError(f"{p}: not valid YAML ({first_line(e)})") from None
    else:
        raise RecipeError(f"{p}: {what} files are .toml, .json or .yaml")
    if not isinstance(data, dict):
        raise RecipeError(f"{p}: a {what} must be a table/object at the top level")
    return data


def read_section(path: str | Path | None, section: str) -> dict[str, Any]:
    """One section (``[bench]``, ``[quality]``, ...) of a recipe file; {} without a file or section."""
    if path is None:
        return {}
    sec = read_file(path).get(section, {})
    if not isinstance(sec, dict):
        raise RecipeError(f"{path}: [{section}] must be a table")
    return sec


def load_recipe(path: str | Path, schema: type[Recipe] = Recipe) -> Recipe:
    """Load and validate a recipe file against ``schema``."""
    return validate_recipe(read_file(path), str(path), schema)


def parse_sets(sets: list[str]) -> dict[str, Any]:
    """``--set key=value`` flags as a pass config; a value is JSON when it parses (64, true,
    [32,64]), else the plain string."""
    out: dict[str, Any] = {}
    for s in sets:
        if "=" not in s:
            raise RecipeError(f"--set {s!r}: expected key=value")
        k, v = s.split("=", 1)
        try:
            out[k.strip()] = json.loads(v.strip())
        except json.JSONDecodeError:
            out[k.strip()] = v.strip()
    return out


def one_variant(input_: str, passes: list[tuple[str, dict[str, Any]]], name: str | None = None,
                source: str = "command line") -> Recipe:
    """A recipe built on the fly (``kopt optimize MODEL --pass NAME --set k=v``)."""
    name = name or "-".join(p for p, _ in passes)
    data = {"name": name, "input": input_,
            "variants": [{"name": name, "passes": [{"pass": p, "config": c} for p, c in passes]}]}
    return validate_recipe(data, source)


# -- a small TOML writer for recipe-shaped data (tomllib only reads) -----------------------------

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if v is None:
        raise RecipeError("TOML has no null; leave the field out")
    raise RecipeError(f"cannot write {type(v).__name__} as TOML")


def _toml_key(k: str) -> str:
    return k if re.match(r"^[A-Za-z0-9_\-]+$", k) else json.dumps(k)


def dump_toml(data: dict[str, Any]) -> str:
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if k != "variants"]
    for v in data.get("variants", []):
        lines += ["", "[[variants]]"]
        for k, x in v.items():
            if k != "passes":
                lines.append(f"{_toml_key(k)} = {_toml_value(x)}")
        for s in v.get("passes", []):
            lines += ["[[variants.passes]]", f"pass = {_toml_value(s['pass'])}"]
            if s.get("config"):
                lines.append(f"config = {_toml_value(s['config'])}")
    return "\n".join(lines) + "\n"
