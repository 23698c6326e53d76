"""The results schema is described once: docs/results-schema.md's field tables are
``schema_markdown()``'s output from the record models, and a record read back dumps to the line it
was written as."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kopt.core.results import ResultRecord, append_records, as_records, make_record, read_records, schema_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "results-schema.md"


def test_schema_doc_is_the_models():
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"<!-- generated:[^\n]*-->\n(.*?)<!-- end of generated block -->", text, re.S)
    assert m, "docs/results-schema.md has lost its generated-block markers"
    assert m.group(1) == schema_markdown(), ("docs/results-schema.md differs from the record models: paste "
                                             "kopt.core.results.schema_markdown()'s output between its markers")
    for name in ResultRecord.model_fields:
        assert f"| `{ResultRecord.model_fields[name].alias or name}` |" in m.group(1)


def test_records_read_are_models_that_dump_back_to_their_line(tmp_path):
    rec = make_record("bench", run_id="r1", variant={"name": "v", "key": "k", "note": "kept"},
                      provider={"name": "CPUExecutionProvider", "config": "cpu"},
                      metrics={"rtf_median": 0.25, "gate_pass": 1, "bit_identical": True, "ttfa_ms_p90": None},
                      threads=2, extra={"x": [1, 2]})
    old = {k: v for k, v in json.loads(json.dumps(rec)).items() if k != "language"}  # before records had one
    path = append_records(tmp_path / "r.jsonl", [rec, old])
    new, back = read_records(path)
    assert isinstance(back, ResultRecord) and back.language == "en-us" and back.variant.ident == "k"
    assert back.provider.label == "cpu" and back.machine.id == rec["machine"]["id"]
    assert new.metrics == {"rtf_median": 0.25, "gate_pass": 1, "bit_identical": True, "ttfa_ms_p90": None}
    assert type(new.metrics["gate_pass"]) is int and new.variant.model_extra == {"note": "kept"}
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.dumps(r.as_dict(), sort_keys=True) for r in (new, back)] == lines
    assert as_records([rec, new])[1] is new and as_records([rec])[0] == new
