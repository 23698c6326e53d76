"""Pass cache keys follow the code: editing a pass, or a module it imports (lazily too), moves its key
even without a version bump; docstring and comment edits do not."""

import importlib
import sys
import textwrap

import pytest

from kopt.core.codehash import module_closure, module_code_hash


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    root = tmp_path / "src"
    (root / "khpkg").mkdir(parents=True)
    (root / "khpkg" / "__init__.py").write_text("")
    (root / "khpkg" / "helper.py").write_text("def scale(x):\n    return 2 * x\n")
    (root / "khpkg" / "unused.py").write_text("X = 1\n")
    (root / "khpkg" / "mypass.py").write_text(textwrap.dedent('''\
        """A pass."""
        import json  # not ours: never hashed


        def run(x):
            """Doubles x."""
            from khpkg.helper import scale  # lazy import inside a function
            return scale(x)
        '''))
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    yield root / "khpkg"
    for name in [m for m in sys.modules if m.startswith("khpkg")]:
        del sys.modules[name]


def _hash(name="khpkg.mypass"):
    return module_code_hash(name, roots=("khpkg",))


def test_closure_follows_lazy_imports_only_of_our_packages(pkg):
    assert list(module_closure("khpkg.mypass", roots=("khpkg",))) == ["khpkg", "khpkg.helper", "khpkg.mypass"]


def test_code_edit_moves_the_key_docstring_edit_does_not(pkg):
    h0 = _hash()
    f = pkg / "mypass.py"
    f.write_text(f.read_text().replace('"""Doubles x."""', '"""Doubles x (reworded)."""')
                 .replace("# lazy import inside a function", "# reworded comment"))
    assert _hash() == h0
    (pkg / "unused.py").write_text("X = 2\n")
    assert _hash() == h0  # not imported by the pass
    (pkg / "helper.py").write_text("def scale(x):\n    return 3 * x\n")
    h1 = _hash()
    assert h1 != h0
    f.write_text(f.read_text().replace("return scale(x)", "return scale(x) + 0"))
    assert _hash() not in (h0, h1)


def test_real_passes_hash_their_imports():
    closure = module_closure("kopt.quantize.hybrid")
    assert {"kopt.quantize.hybrid", "kopt.quantize.int8_static", "kopt.quantize.balance",
            "kopt.core.passes"} <= set(closure)
    assert not any(m.startswith(("kopt.cli", "kopt.report", "kopt.pipeline")) for m in closure)
    assert len(module_code_hash("kopt.optimize.fold")) == 16


def test_runner_key_moves_when_the_pass_code_changes(store, tmp_path, monkeypatch):
    """The same pass name, version and config, with different code, is a different artifact."""
    import onnx

    from kopt.core.passes import _REGISTRY
    from kopt.core.recipe import one_variant
    from kopt.core.runner import Runner
    from tests.graphs import foldable_kokoro_model

    model = tmp_path / "m.onnx"
    onnx.save(foldable_kokoro_model(), str(model))
    src = tmp_path / "passsrc"
    src.mkdir()
    body = textwrap.dedent('''\
        from kopt.core.passes import Pass, PassResult, register


        @register
        class Ident(Pass):
            name = "test-codehash-ident"
            summary = "returns its input"

            def run(self, model, ctx):
                return PassResult(model=model)
        ''')
    monkeypatch.syspath_prepend(str(src))
    keys = []
    try:
        for variant in (body, body.replace("return PassResult(model=model)",
                                           "model.doc_string = 'edited'\n        return PassResult(model=model)")):
            (src / "kh_ident_pass.py").write_text(variant)
            importlib.invalidate_caches()
            sys.modules.pop("kh_ident_pass", None)
            _REGISTRY.pop("test-codehash-ident", None)
            importlib.import_module("kh_ident_pass")
            res = Runner(store).run(one_variant(str(model), [("test-codehash-ident", {})], name="v"))[0]
            assert res.status == "ok", res.reason
            keys.append(res.key)
            assert store.get(res.key).record["extra"]["code"] == module_code_hash("kh_ident_pass")
        assert keys[0] != keys[1]
        assert onnx.load(store.get(keys[1]).path / "model.onnx").doc_string == "edited"
    finally:
        _REGISTRY.pop("test-codehash-ident", None)
        sys.modules.pop("kh_ident_pass", None)


def test_a_package_stands_for_its_whole_tree_less_what_is_excluded(pkg):
    """Measurements hash whole packages (a bench worker runs by module name, imported by nobody):
    every module counts, a folder without __init__.py (a build tree) does not, excluded ones never."""
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "server.py").write_text("PORT = 1\n")
    (pkg / "build" / "lib").mkdir(parents=True)
    (pkg / "build" / "lib" / "stale.py").write_text("X = 0\n")
    closure = module_closure("khpkg", roots=("khpkg",))
    assert list(closure) == ["khpkg", "khpkg.helper", "khpkg.mypass", "khpkg.sub", "khpkg.sub.server",
                             "khpkg.unused"]
    assert list(module_closure("khpkg", exclude=("khpkg.sub", "khpkg.unused"), roots=("khpkg",))) \
        == ["khpkg", "khpkg.helper", "khpkg.mypass"]

    def h():
        return module_code_hash("khpkg", exclude=("khpkg.sub",), roots=("khpkg",))

    h0 = h()
    (pkg / "sub" / "server.py").write_text("PORT = 2\n")
    (pkg / "build" / "lib" / "stale.py").write_text("X = 1\n")
    assert h() == h0
    (pkg / "unused.py").write_text("X = 2\n")  # imported by nothing, but part of the package
    assert h() != h0


def test_measurement_code_hashes_cover_the_runtime_they_time():
    from kopt.pipeline.measure import BENCH_CODE, QUALITY_CODE, RUNTIME_NOT_BENCHED

    bench = module_closure(*BENCH_CODE, exclude=RUNTIME_NOT_BENCHED)
    assert {"kopt.bench.worker", "kokoro_runtime.synth", "kopt.core.contract"} <= set(bench)
    assert not any(m.startswith(RUNTIME_NOT_BENCHED) for m in bench)
    assert {"kopt.quality.run", "kopt.core.kokoro"} <= set(module_closure(*QUALITY_CODE))
    assert len(module_code_hash("kopt.publish", "kokoro_runtime")) == 16
