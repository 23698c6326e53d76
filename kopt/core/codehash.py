"""Hashes of code, for cache keys: an artifact or a measurement is keyed on the code that made it, so
editing a pass, or the bench, or anything in kopt it imports, can never be served a stale result.

``module_code_hash("kopt.optimize.adain")`` hashes the module and every ``kopt``/``kokoro_runtime``
module it imports, transitively, lazy imports inside functions included (found by reading the
source, never by importing it). A package's name stands for every module in its tree, so
``module_code_hash("kopt.bench", "kokoro_runtime", exclude=("kokoro_runtime.server",))`` covers code
run by name (a worker started with ``python -m``) as well as what it imports; ``exclude`` names
modules or packages never hashed, even where something imports them. Each file is hashed as its
syntax tree without docstrings, so an edit to a comment or a docstring keeps the key while any
change to what the code does moves it.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

from kopt.core.errors import KoptError
from kopt.core.hashing import canonical_json, sha256_bytes

ROOTS = ("kopt", "kokoro_runtime")


def _source_file(module: str) -> Path | None:
    """The .py file of ``module``, found on disk from its top-level package (nothing is imported), or
    the file of a top-level module; None when there is none (a name that is not a module)."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not spec.submodule_search_locations:
        return Path(spec.origin) if not rest and spec.origin and spec.origin.endswith(".py") else None
    for root in spec.submodule_search_locations:
        base = Path(root).joinpath(*rest)
        for f in (base / "__init__.py", base.with_name(base.name + ".py") if rest else None):
            if f is not None and f.is_file():
                return f
    return None


def _package_modules(package: str, init: Path) -> list[str]:
    """Every module of the package whose ``__init__.py`` is ``init``, in sub-packages too (folders
    with their own ``__init__.py``: a build tree or a data folder is not code of the package)."""
    out = []
    for f in sorted(init.parent.rglob("*.py")):
        rel = f.relative_to(init.parent)
        if not all((init.parent / Path(*rel.parts[:i]) / "__init__.py").is_file() for i in range(1, len(rel.parts))):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join([package, *parts]))
    return out


def _is_ours(name: str, roots: tuple[str, ...]) -> bool:
    return name.split(".")[0] in roots


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([name] if name else []))


def _imports(module: str, tree: ast.AST, is_package: bool, roots: tuple[str, ...]) -> set[str]:
    """The kopt/kokoro_runtime modules ``tree`` imports: ``from pkg import sub`` names the submodule
    when ``sub`` is one, else the package it comes from."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if _is_ours(a.name, roots))
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(module, is_package, node.level, node.module) if node.level
                    else node.module or "")
            if not _is_ours(base, roots):
                continue
            found.add(base)
            for a in node.names:
                sub = f"{base}.{a.name}"
                if a.name != "*" and _is_module(sub):
                    found.add(sub)
    return found


def _is_module(name: str) -> bool:
    return _source_file(name) is not None


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


class _StripDocstrings(ast.NodeTransformer):
    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


@functools.lru_cache(maxsize=None)
def _parse(module: str, is_package: bool, src: str, roots: tuple[str, ...]) -> tuple[str, set[str]]:
    """(digest of the docstring-free syntax tree, our modules it imports) of one module's source."""
    deps = _imports(module, ast.parse(src), is_package, roots)
    stripped = _StripDocstrings().visit(ast.parse(src))
    return sha256_bytes(ast.dump(stripped, include_attributes=False).encode()), deps


def _excluded(name: str, exclude: tuple[str, ...]) -> bool:
    return any(name == x or name.startswith(x + ".") for x in exclude)


def module_closure(*modules: str, exclude: tuple[str, ...] = (), roots: tuple[str, ...] = ROOTS) -> dict[str, str]:
    """module name -> digest for ``modules`` (a package: all of its modules) and every
    kopt/kokoro_runtime module they reach, less ``exclude`` (dotted names, a package with its tree)."""
    seen: dict[str, str] = {}
    todo: list[str] = []
    for name in modules:
        path = _source_file(name)
        if path is None:
            raise KoptError(f"{name}: no Python source to hash for the cache key")
        todo.extend(_package_modules(name, path) if path.name == "__init__.py" else [name])
    while todo:
        name = todo.pop()
        if name in seen or _excluded(name, exclude):
            continue
        path = _source_file(name)
        if path is None:  # a namespace package or a name that is not a module
            seen[name] = ""
            continue
        digest, deps = _parse(name, path.name == "__init__.py", path.read_text(encoding="utf-8"), roots)
        seen[name] = digest
        todo.extend(d for d in deps | set(_parents(name)) if d not in seen)
    return {k: v for k, v in sorted(seen.items()) if v}


def module_code_hash(*modules: str, exclude: tuple[str, ...] = (), roots: tuple[str, ...] = ROOTS) -> str:
    """16 hex chars over :func:`module_closure`."""
    return sha256_bytes(canonical_json(module_closure(*modules, exclude=exclude, roots=roots)).encode())[:16]
