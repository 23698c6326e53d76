"""Reading one section of a recipe file (TOML, or YAML when PyYAML is installed) into a settings
model, with command-line overrides on top; errors name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kokoro_runtime.errors import first_line
from kopt.core.errors import RecipeError

M = TypeVar("M", bound=BaseModel)


def read_section(path: str | Path | None, section: str) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{p}: recipe file not found")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            import tomllib

            data = tomllib.loads(text)
    except ImportError:
        raise RecipeError(f"{p}: YAML recipes need PyYAML (pip install pyyaml); or write the recipe in TOML") from None
    except Exception as e:  # tomllib.TOMLDecodeError / yaml.YAMLError
        raise RecipeError(f"{p}: not a readable recipe ({type(e).__name__}: {first_line(e)})") from e
    sec = data.get(section, {}) if isinstance(data, dict) else {}
    if not isinstance(sec, dict):
        raise RecipeError(f"{p}: [{section}] must be a table")
    return sec


def build(model: type[M], values: dict[str, Any], where: str) -> M:
    try:
        return model(**values)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ())) or "?"
        raise RecipeError(f"{where}: field {loc!r}: {err.get('msg')}") from None
