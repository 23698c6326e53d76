"""Hashes of code, for cache keys: a step's artifact is keyed on the code that made it, so editing a
pass (or anything in kopt it imports) can never be served a stale artifact.

``module_code_hash("kopt.optimize.adain")`` hashes the module and every ``kopt``/``kokoro_runtime``
module it imports, transitively, lazy imports inside functions included (found by reading the
source, not by importing it). Each file is hashed as its syntax tree without docstrings, so an edit
to a comment or a docstring keeps the key while any change to what the code does moves it.
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
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


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
                if a.name != "*" and importlib.util.find_spec(base) is not None and _is_module(sub):
                    found.add(sub)
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


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


def _digest(module: str, roots: tuple[str, ...]) -> tuple[str, set[str]]:
    path = _source_file(module)
    if path is None:
        raise KoptError(f"{module}: no Python source to hash for the cache key")
    src = path.read_text(encoding="utf-8")
    return _parse(module, path.name == "__init__.py", src, roots)


@functools.lru_cache(maxsize=None)
def _parse(module: str, is_package: bool, src: str, roots: tuple[str, ...]) -> tuple[str, set[str]]:
    """(digest of the docstring-free syntax tree, our modules it imports) of one module's source."""
    deps = _imports(module, ast.parse(src), is_package, roots)
    stripped = _StripDocstrings().visit(ast.parse(src))
    return sha256_bytes(ast.dump(stripped, include_attributes=False).encode()), deps


def module_closure(module: str, roots: tuple[str, ...] = ROOTS) -> dict[str, str]:
    """module name -> digest for ``module`` and every kopt/kokoro_runtime module it reaches."""
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if _source_file(name) is None:  # a namespace package or a name that is not a module
            seen[name] = ""
            continue
        digest, deps = _digest(name, roots)
        seen[name] = digest
        todo.extend(d for d in deps | set(_parents(name)) if d not in seen)
    return {k: v for k, v in sorted(seen.items()) if v}


def module_code_hash(module: str, roots: tuple[str, ...] = ROOTS) -> str:
    """16 hex chars over :func:`module_closure`."""
    return sha256_bytes(canonical_json(module_closure(module, roots)).encode())[:16]
