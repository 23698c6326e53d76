import json

import pytest

from kopt.core.hashing import KEY_LEN
from kopt.core.store import StepSpec


def test_same_inputs_same_key_and_any_change_new_key():
    a = StepSpec("pass:fold@1", {"x": 1, "y": [1, 2]}, {"model": "ab" * 32})
    b = StepSpec("pass:fold@1", {"y": [1, 2], "x": 1}, {"model": "ab" * 32})
    assert a.key == b.key and len(a.key) == KEY_LEN
    assert StepSpec("pass:fold@1", {"x": 2, "y": [1, 2]}, {"model": "ab" * 32}).key != a.key
    assert StepSpec("pass:fold@2", {"x": 1, "y": [1, 2]}, {"model": "ab" * 32}).key != a.key
    assert StepSpec("pass:fold@1", {"x": 1, "y": [1, 2]}, {"model": "cd" * 32}).key != a.key
    assert StepSpec("pass:fold@1", {"x": 1, "y": [1, 2]}, {"model": "ab" * 32}, provider="CUDA").key != a.key


def test_write_records_files_and_hashes(store):
    spec = StepSpec("demo", {"n": 1}, {"in": "00"}, parents=("p1",))
    with store.writing(spec, {"note": "hi"}) as tmp:
        (tmp / "model.onnx").write_bytes(b"abc")
    art = store.get(spec.key, verify=True)
    assert art is not None
    rec = json.loads((art.path / "record.json").read_text())
    assert rec["files"]["model.onnx"]["size"] == 3
    assert rec["files"]["model.onnx"]["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert rec["parents"] == ["p1"] and rec["extra"] == {"note": "hi"} and rec["step"] == "demo"
    assert "onnxruntime" in rec["versions"]


def test_interrupted_write_leaves_nothing(store):
    spec = StepSpec("demo", {"n": 2})
    with pytest.raises(KeyboardInterrupt):
        with store.writing(spec) as tmp:
            (tmp / "model.onnx").write_bytes(b"half")
            raise KeyboardInterrupt
    assert store.get(spec.key) is None
    assert not (store.root / spec.key).exists()
    assert list((store.root / ".tmp").iterdir()) == []


def test_folder_without_record_or_with_wrong_size_is_not_trusted(store):
    spec = StepSpec("demo", {"n": 3})
    (store.root / spec.key).mkdir(parents=True)
    (store.root / spec.key / "model.onnx").write_bytes(b"x")
    assert store.get(spec.key) is None  # no record.json: a killed run's leftovers
    with store.writing(spec) as tmp:  # a real write replaces the untrusted folder
        (tmp / "model.onnx").write_bytes(b"full")
    art = store.get(spec.key)
    assert art is not None and art.file("model.onnx").read_bytes() == b"full"
    art.file("model.onnx").write_bytes(b"ful")  # truncated behind our back
    assert store.get(spec.key) is None


def test_refs_find_is_none_without_the_ref_and_the_artifact_with_it(tmp_path):
    from kopt.core.refs import find, resolve, set_ref
    from kopt.core.store import ArtifactStore, StepSpec

    store = ArtifactStore(tmp_path / "arts")
    assert find(store, "base") is None
    spec = StepSpec("fetch", {"x": 1}, {})
    with store.writing(spec) as tmp:
        (tmp / "f.txt").write_text("hi")
    set_ref(store, "base", spec.key)
    assert find(store, "base").key == resolve(store, "base").key == spec.key
    assert find(store, "no such/name") is None
