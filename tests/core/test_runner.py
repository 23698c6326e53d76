"""Runner: content-keyed step cache, lineage, contract and equivalence gates, failure isolation."""

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from kopt.core.passes import _REGISTRY, Pass, PassConfig, PassResult, register
from kopt.core.recipe import one_variant, validate_recipe
from kopt.core.runner import Runner
from kopt.core.store import StepSpec
from tests.graphs import foldable_kokoro_model


@pytest.fixture
def foldable(tmp_path):
    p = tmp_path / "foldable.onnx"
    onnx.save(foldable_kokoro_model(), str(p))
    return p


class _RaiseConfig(PassConfig):
    pass


class _Raises(Pass):
    name = "test-raises"
    config_cls = _RaiseConfig
    summary = "raises"

    def run(self, model, ctx):
        raise RuntimeError("boom on purpose")


class _Silence(Pass):
    """Multiplies the audio by 0: the output fails the contract (silent audio)."""

    name = "test-silence"
    config_cls = _RaiseConfig
    summary = "silences"

    def run(self, model, ctx):
        g = model.graph
        out = g.output[0].name
        g.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero_gain"))
        for n in g.node:
            for k, o in enumerate(n.output):
                if o == out:
                    n.output[k] = "pre_silence"
        g.node.append(helper.make_node("Mul", ["pre_silence", "zero_gain"], [out]))
        return PassResult(model=model)


class _Louder(_Silence):
    """Claims equivalence but scales the audio by 1.01: the equivalence check must catch it."""

    name = "test-louder"
    equivalent = True
    tolerance = 1e-4

    def run(self, model, ctx):
        res = super().run(model, ctx)
        for t in res.model.graph.initializer:
            if t.name == "zero_gain":
                t.CopyFrom(numpy_helper.from_array(np.array(1.01, np.float32), "zero_gain"))
        return res


@pytest.fixture
def test_passes():
    for cls in (_Raises, _Silence, _Louder):
        register(cls)
    yield
    for cls in (_Raises, _Silence, _Louder):
        _REGISTRY.pop(cls.name, None)


def _recipe(model, *variants):
    return validate_recipe({"input": str(model), "variants": [
        {"name": n, "passes": [{"pass": p, "config": c} for p, c in chain]} for n, chain in variants]})


def test_step_key_is_content_based():
    a = StepSpec("pass:fuse@1", {"level": "basic"}, {"model": "ab" * 32})
    assert a.key == StepSpec("pass:fuse@1", {"level": "basic"}, {"model": "ab" * 32}).key
    assert a.key != StepSpec("pass:fuse@1", {"level": "extended"}, {"model": "ab" * 32}).key
    assert a.key != StepSpec("pass:fuse@2", {"level": "basic"}, {"model": "ab" * 32}).key
    assert a.key != StepSpec("pass:fuse@1", {"level": "basic"}, {"model": "cd" * 32}).key
    assert a.key != StepSpec("pass:fuse@1", {"level": "basic"}, {"model": "ab" * 32}, provider="CPUExecutionProvider").key
    assert len(a.key) >= 16


def test_run_caches_and_records_lineage(store, foldable):
    r = one_variant(str(foldable), [("fold", {}), ("fuse", {"level": "basic"})], name="v")
    first = Runner(store).run(r)[0]
    assert first.status == "ok", first.reason
    assert [s.cached for s in first.steps] == [False, False]
    fold_key, fuse_key = (s.key for s in first.steps)
    rec = store.get(fuse_key).record
    assert rec["parents"] == [fold_key] and rec["step"] == "pass:fuse@1"
    assert rec["config"] == {"level": "basic"} and rec["extra"]["pass"] == "fuse"
    assert rec["extra"]["equivalence"]["max_abs_diff"] <= 1e-4
    assert "audio" in rec["extra"]["contract"]
    fold_rec = store.get(fold_key).record
    assert fold_rec["parents"] == []  # a path input has no parent artifact
    assert fold_rec["extra"]["report"]["nodes_after"] < fold_rec["extra"]["report"]["nodes_before"]

    again = Runner(store).run(r)[0]
    assert again.status == "cached" and all(s.cached for s in again.steps)
    assert again.key == first.key and again.model_path == first.model_path

    # a config change on the last step redoes only that step
    r2 = one_variant(str(foldable), [("fold", {}), ("fuse", {"level": "extended"})], name="v")
    third = Runner(store).run(r2)[0]
    assert [s.cached for s in third.steps] == [True, False]
    assert third.key != first.key


def test_failures_are_isolated(store, foldable, test_passes):
    r = _recipe(foldable, ("good", [("fold", {})]), ("raises", [("fold", {}), ("test-raises", {})]),
                ("silent", [("test-silence", {})]), ("louder", [("test-louder", {})]), ("good2", [("fuse", {})]))
    res = {x.name: x for x in Runner(store).run(r)}
    assert res["good"].status == "ok" and res["good2"].status == "ok"
    assert res["raises"].status == "failed" and "boom on purpose" in res["raises"].reason
    assert res["raises"].steps[0].cached  # fold was reused from the first variant
    assert res["silent"].status == "failed" and "silent audio" in res["silent"].reason
    assert res["louder"].status == "failed" and "not equivalent" in res["louder"].reason
    assert "test-louder" in res["louder"].reason
    # nothing of the failed steps landed in the store
    steps = {a.record["step"] for a in store.all()}
    assert not any(s.startswith("pass:test-") for s in steps)
    assert not list((store.root / ".tmp").iterdir())


def test_missing_input_fails_the_variant_only(store, foldable):
    r = validate_recipe({"input": str(foldable), "variants": [
        {"name": "a", "input": str(foldable.with_name("missing.onnx")), "passes": [{"pass": "fold"}]},
        {"name": "b", "passes": [{"pass": "fold"}]}]})
    a, b = Runner(store).run(r)
    assert a.status == "failed" and "not found" in a.reason
    assert b.status == "ok"


def test_cli_optimize_json(tmp_path, foldable):
    from typer.testing import CliRunner

    from kopt.cli.main import app

    args = ["--json", "--artifacts", str(tmp_path / "a"), "optimize", str(foldable), "--pass", "fold"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["variants"][0]["status"] == "ok"
    res = CliRunner().invoke(app, args)
    assert json.loads(res.output)["variants"][0]["status"] == "cached"
