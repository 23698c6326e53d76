"""Sensitivity rankings and result records are read as typed records: a missing field is an error
that names it, never a guess among other keys."""

from __future__ import annotations

import json

import pytest

from kopt.core.errors import KoptError
from kopt.core.results import append_records, as_records, make_record, read_records
from kopt.report import sensitivity


def test_reads_what_kopt_sensitivity_writes(tmp_path):
    f = tmp_path / "sensitivity.json"
    f.write_text(json.dumps({"ranking": [
        {"group": "generator.resblocks.5", "nodes": 12, "score": 3.91, "metric": "pesq_wb_aligned"},
        {"group": "text_encoder", "nodes": 4, "score": 4.55, "metric": "pesq_wb_aligned"}]}))
    assert sensitivity.from_file(f) == ([("text_encoder", 4.55), ("generator.resblocks.5", 3.91)], "pesq_wb_aligned")


def test_an_entry_without_a_score_is_an_error_not_a_guess(tmp_path):
    f = tmp_path / "rank.json"
    f.write_text(json.dumps([{"group": "a", "score": 1.0}, {"group": "b", "error": 0.3}]))
    with pytest.raises(KoptError, match=r"rank.json: ranking\[1\].score: required field is missing"):
        sensitivity.from_file(f)
    rec = make_record("sensitivity", run_id="r1", variant={"name": "int8"}, provider={"name": "cpu"}, metrics={},
                      extra={"ranking": [{"node": "/x", "score": 2.0}]})
    with pytest.raises(KoptError, match=r"sensitivity record of run 'r1': ranking\[0\].group: required field"):
        sensitivity.from_records(as_records([rec]))


def test_records_missing_a_field_are_refused_by_name(tmp_path):
    rec = make_record("bench", run_id="r1", variant={"name": "v", "key": "k"}, provider={"name": "cpu"},
                      metrics={"rtf_median": 0.2})
    p = tmp_path / "r.jsonl"
    append_records(p, [rec])
    assert read_records(p)[0].metrics == {"rtf_median": 0.2}
    broken = dict(rec, variant={"key": "k"})
    p.write_text(json.dumps(rec) + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(KoptError, match=r"r.jsonl:2: variant.name: required field is missing"):
        read_records(p)
    with pytest.raises(KoptError, match=r"bench record of 'v': provider.status: "):
        make_record("bench", run_id="r1", variant={"name": "v"}, provider={"name": "cpu", "status": "maybe"},
                    metrics={})
