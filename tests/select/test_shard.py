"""Sharding a variant x provider matrix, and merging the shards' results back."""

from __future__ import annotations

import random

import pytest

from kopt.core.errors import KoptError
from kopt.core.results import append_records, read_records
from kopt.select.rows import merge_records
from kopt.select.shard import ShardSpec, parse_shard, shard, split
from tests.select.factory import CPU, CUDA, bench

CELLS = [(f"key{v:02d}", p) for v in range(7) for p in (CPU, CUDA, "CoreMLExecutionProvider")]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 21, 30])
def test_every_cell_exactly_once_and_balanced(n):
    parts = split(CELLS, n)
    flat = [c for p in parts for c in p]
    assert sorted(flat) == sorted(CELLS) and len(flat) == len(set(flat))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_split_is_deterministic_whatever_the_input_order():
    shuffled = CELLS[:]
    random.Random(7).shuffle(shuffled)
    assert split(shuffled, 3) == split(CELLS, 3)
    assert shard(CELLS, "2/3") == split(CELLS, 3)[1]


def test_cells_as_dicts_and_objects():
    dicts = [{"variant": {"key": k, "name": "n"}, "provider": {"config": p}} for k, p in CELLS]
    assert [(d["variant"]["key"], d["provider"]["config"]) for d in shard(dicts, "1/2")] == shard(CELLS, "1/2")


@pytest.mark.parametrize("bad", ["0/3", "4/3", "1/0", "x", "1-3", ""])
def test_bad_spec_is_a_clear_error(bad):
    with pytest.raises(KoptError, match="K/N"):
        parse_shard(bad)


def test_duplicate_cell_is_refused():
    with pytest.raises(KoptError, match="twice"):
        shard(CELLS + [CELLS[0]], ShardSpec(1, 2))


def test_merge_of_shards_equals_the_unsplit_run(tmp_path):
    cells = [(f"v{i}", p) for i in range(5) for p in (CPU, CUDA)]
    recs = {c: bench(c[0], rtf=0.1 + 0.01 * i, size=10.0 + i, provider=c[1], run="r1")
            for i, c in enumerate(cells)}
    for r in recs.values():
        r["variant"]["key"] = r["variant"]["name"]
    unsplit = merge_records(recs.values())
    for k in (1, 2, 3):
        append_records(tmp_path / "shards" / f"shard-{k}.jsonl", [recs[c] for c in shard(cells, ShardSpec(k, 3))])
    merged = merge_records(read_records(tmp_path / "shards"))
    assert merged == unsplit
    # reading the same shard twice (a retried CI job) does not duplicate records
    again = merge_records(read_records(tmp_path / "shards", tmp_path / "shards" / "shard-1.jsonl"))
    assert again == unsplit
