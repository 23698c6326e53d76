"""The dependency direction, checked on the source (imports inside functions included):

    cli -> build -> (select, report, publish) -> (bench, quality) -> (optimize, quantize) -> source
        -> core -> kokoro_runtime

A module imports only from its own layer or lower ones; kokoro_runtime imports nothing of kopt; and
no module reaches into another module's private (underscore) names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS = [("kokoro_runtime",), ("kopt",), ("kopt.core",), ("kopt.source",), ("kopt.optimize", "kopt.quantize"),
          ("kopt.bench", "kopt.quality"), ("kopt.select", "kopt.report", "kopt.publish"), ("kopt.pipeline",),
          ("kopt.cli",)]


def _layer(module: str) -> int:
    best = -1
    for rank, pkgs in enumerate(LAYERS):
        for p in pkgs:
            if (module == p or module.startswith(p + ".")) and len(p) >= len(LAYERS[best][0] if best >= 0 else ""):
                best = rank
    return best


def _modules():
    for root in ("kopt", "kokoro_runtime"):
        for f in sorted((REPO / root).rglob("*.py")):
            rel = f.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), f


def _imports(module: str, f: Path):
    """(imported module, imported names, line) for every import of kopt or kokoro_runtime in f."""
    is_pkg = f.name == "__init__.py"
    for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in ("kopt", "kokoro_runtime"):
                    yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] in ("kopt", "kokoro_runtime"):
                yield target, [a.name for a in node.names], node.lineno


ALL = list(_modules())


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_layers_are_known():
    assert all(_layer(m) >= 0 for m, _ in ALL)


def test_imports_point_down_the_pipeline():
    bad = []
    for module, f in ALL:
        mine = _layer(module)
        for target, _names, line in _imports(module, f):
            if _layer(target) > mine:
                bad.append(f"{f.relative_to(REPO)}:{line}: {module} imports {target}")
    assert not bad, "imports against the dependency direction:\n" + "\n".join(bad)


def test_no_private_names_cross_modules():
    """A package's underscore modules (kopt/optimize/_kokoro.py) serve that package only."""
    bad = []
    for module, f in ALL:
        for target, names, line in _imports(module, f):
            for n in names:
                if _private(n):
                    bad.append(f"{f.relative_to(REPO)}:{line}: {module} imports {target}.{n}")
            *pkg, last = target.split(".")
            if _private(last) and not module.startswith(".".join(pkg) + "."):
                bad.append(f"{f.relative_to(REPO)}:{line}: {module} imports private module {target}")
    assert not bad, "private names used outside their module:\n" + "\n".join(bad)


@pytest.mark.parametrize("pkg", ["kokoro_runtime"])
def test_the_runtime_never_imports_kopt(pkg):
    bad = [f"{f.relative_to(REPO)}:{line}" for module, f in ALL if module.startswith(pkg)
           for target, _n, line in _imports(module, f) if target.startswith("kopt")]
    assert not bad
