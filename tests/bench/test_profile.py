"""kopt profile: op-by-op kernel times from onnxruntime's profiler, on tiny Kokoro-signature graphs."""

import json

import numpy as np
from typer.testing import CliRunner

from kopt.cli.main import app
from kopt.core.results import read_records
from tests.graphs import busy_kokoro_model, tiny_kokoro, tiny_voices


def test_profile_two_variants_records_ops_and_compares(tmp_path):
    import onnx

    voices = tmp_path / "voices.npz"
    np.savez(voices, **tiny_voices())
    a = tiny_kokoro(tmp_path / "a.onnx")
    b = tmp_path / "b.onnx"
    onnx.save(busy_kokoro_model(), str(b))
    out = tmp_path / "p.jsonl"
    r = CliRunner().invoke(app, ["profile", str(a), str(b), "--voices", str(voices), "--text", "short-1",
                                 "--threads", "1", "--runs", "2", "--top", "3", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    recs = read_records(out)
    assert [x.kind for x in recs] == ["profile", "profile"] and recs[0].threads == 1
    for rec in recs:
        ops = rec.extra["ops"]
        assert ops and all(o["ms"] >= 0 and o["nodes"] >= 1 for o in ops)
        assert abs(sum(o["share"] for o in ops) - 1.0) < 1e-6
        assert len(rec.extra["top_nodes"]) <= 3
        assert rec.metrics["wall_s_median"] > 0 and rec.inputs["texts"] == ["short-1"]
    # the busy graph runs ops the tiny one does not: they show up in its profile
    ops_a = {o["op"] for o in recs[0].extra["ops"]}
    ops_b = {o["op"] for o in recs[1].extra["ops"]}
    assert ops_a != ops_b
    assert json.loads(r.stdout)["command"] == "profile"


def test_profile_unknown_voice_is_one_line(tmp_path):
    voices = tmp_path / "voices.npz"
    np.savez(voices, **tiny_voices())
    a = tiny_kokoro(tmp_path / "a.onnx")
    r = CliRunner().invoke(app, ["profile", str(a), "--voices", str(voices), "--voice", "nobody"])
    assert r.exit_code != 0
    assert "--voice: 'nobody' is not in" in str(r.exception) + r.output
