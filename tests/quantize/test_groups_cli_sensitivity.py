"""Node groups, the registry entries, the CLI commands and the sensitivity search logic."""

from __future__ import annotations

import json

import pytest

from kopt.core.errors import KoptError
from kopt.core.passes import registry
from kopt.quantize.groups import group_of, precision_by_group, select

QUANT = {"fp16", "int8-dynamic", "int8-static", "hybrid", "int4"}


def test_quantization_passes_are_registered():
    assert QUANT <= set(registry())


@pytest.mark.parametrize("name,group", [
    ("/encoder/bert/encoder/albert_layer_groups.0/albert_layers.0/ffn/MatMul", "bert"),
    ("/encoder/predictor/text_encoder/lstms.0/LSTM", "predictor.text_encoder"),
    ("/encoder/F0.1/conv1/Conv", "predictor.F0"),
    ("/encoder/N_proj/Conv", "predictor.N"),
    ("/decoder/decoder/decode.3/conv1/Conv", "decoder.decode.3"),
    ("/decoder/decoder/F0_conv/Conv", "decoder.encode"),
    ("/decoder/decoder/generator/resblocks.5/convs1.0/Conv", "generator.resblocks.5.convs1.0"),
    ("/decoder/decoder/generator/resblocks.5/adain1.0/Sub", "generator.resblocks.5"),
    ("/decoder/decoder/generator/noise_res.1/convs1.0/Conv", "generator.noise.1"),
    ("/decoder/decoder/generator/m_source/l_sin_gen/Sin", "generator.source"),
    ("/decoder/decoder/generator/Atan", "generator.istft"),
    ("/decoder/decoder/generator/istft/stft/ConvTranspose", "generator.istft"),
    ("/decoder/decoder/generator/conv_post/Conv", "generator.conv_post"),
    ("Gather_token_3", "other"),
])
def test_group_of_kokoro_paths(name, group):
    assert group_of(name) == group


def test_unnamed_nodes_inherit_their_producers_group(named_model):
    from kopt.quantize.groups import assign

    named_model.graph.node[-1].name = "Transpose_token_7"  # an ORT-made name without a module path
    assert assign(named_model)["Transpose_token_7"] == "generator.conv_post"


def test_selectors(named_model):
    # prefix on dot boundaries, and op:TYPE
    decode = [n.name for n in named_model.graph.node if n.name.startswith("/decoder/decoder/decode.")]
    assert select(named_model, ["decoder"]) == decode  # the generator is its own top-level group
    assert len(select(named_model, ["generator"])) == 5
    assert select(named_model, ["decoder.dec"]) == []
    assert select(named_model, ["op:LSTM"]) == ["/encoder/predictor/text_encoder/lstms.0/LSTM"]
    pg = precision_by_group(named_model)
    assert pg["generator.ups"] == {"fp32": 1} and pg["decoder.decode"] == {"fp32": 2}


def test_cli_quantize_builds_through_the_runner(tmp_path, named_path):
    from typer.testing import CliRunner

    from kopt.cli.main import app

    args = ["--json", "--artifacts", str(tmp_path / "a"), "quantize", str(named_path), "--pass", "int8-dynamic",
            "--set", "include_lstm=false"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)["variant"]
    assert out["status"] == "ok"
    assert out["steps"][0]["config"]["include_lstm"] is False
    assert out["steps"][0]["report"]["precision_by_group"]["predictor.text_encoder"] == {"fp32": 1}
    res = CliRunner().invoke(app, args)
    assert json.loads(res.output)["variant"]["status"] == "cached"


def test_cli_quantize_rejects_other_passes(tmp_path, named_path):
    from typer.testing import CliRunner

    from kopt.cli.main import app

    res = CliRunner().invoke(app, ["--artifacts", str(tmp_path / "a"), "quantize", str(named_path), "--pass", "fold"])
    assert res.exit_code == 1
    assert "not a quantization pass" in str(res.exception)


def test_cli_sensitivity_dry_run(tmp_path):
    from typer.testing import CliRunner

    from kopt.cli.main import app

    res = CliRunner().invoke(app, ["sensitivity", "--dry-run", "--budget", "3.5", "-g", "generator", "-g", "bert"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["budget"] == 3.5 and d["groups"] == ["generator", "bert"]


def test_sensitivity_ranks_and_bisects(tmp_path, named_path, monkeypatch):
    """The search logic with quantization and scoring replaced by a fixed table of damages:
    each int8 group costs its penalty; the budget admits the three cheapest groups."""
    import kopt.quality.score as qs
    from kopt.quality import sensitivity as S

    penalty = {"decoder.decode.0": 0.05, "decoder.decode.1": 0.1, "generator.ups": 0.2, "op:MatMul": 0.05,
               "op:Conv": 5.0}
    calls = []

    class FakeScorer:
        aligned = True
        align_reason = None

        def __init__(self, *a, **k):
            pass

    def fake_quantize(c, model, include, tag):
        calls.append(list(include))
        p = tmp_path / f"{tag}.onnx"
        p.write_text(json.dumps(list(include)))
        return p

    def fake_score(c, path):
        groups = json.loads(path.read_text())
        s = 4.5 - sum(penalty[g] for g in groups)
        return {"score": s, "metric": "pesq_wb_aligned", "min": s - 0.3, "pesq_wb_natural": s, "issues": []}

    monkeypatch.setattr(qs, "ReferenceScorer", FakeScorer)
    monkeypatch.setattr(S, "_quantize", fake_quantize)
    monkeypatch.setattr(S, "_score", fake_score)
    monkeypatch.setattr("kopt.quality.align.instrumented", lambda p, accept_input, cache_dir=None: p)
    cfg = S.SensitivityConfig(groups=tuple(penalty) + ("predictor.F0",), budget=4.2, margin=0, case_floor=None,
                              op_types=("Conv", "ConvTranspose", "MatMul"))
    res = S.run_sensitivity(named_path, tmp_path / "out", cfg, voices={"v": __import__("numpy").zeros((510, 1, 256), "float32")})
    assert res["skipped_groups"] == ["predictor.F0"]  # no weight node in the tiny graph
    assert [r["group"] for r in res["ranking"]][:2] == ["op:MatMul", "decoder.decode.0"] or \
        [r["group"] for r in res["ranking"]][:2] == ["decoder.decode.0", "op:MatMul"]
    assert res["ranking"][-1]["group"] == "op:Conv"
    assert set(res["int8_groups"]) == {"op:MatMul", "decoder.decode.0", "decoder.decode.1"}  # 4.5-0.2 = 4.3 >= 4.2
    assert set(res["exclude"]) == {"generator.ups", "op:Conv"}
    from kopt.report.plots import sensitivity as sensitivity_plot

    png = sensitivity_plot(res, tmp_path / "out" / "sensitivity.png")   # what `kopt sensitivity` draws
    assert (tmp_path / "out" / "sensitivity.json").is_file() and png.stat().st_size > 1000
    m = S.write_precision_map(res, tmp_path / "map.json")
    data = json.loads(m.read_text())
    assert data["precision"] == {g: "int8" for g in res["int8_groups"]} and data["default"] == "fp32"
    # a second run reuses the alone-scores of the first for the same settings: only new groups and the
    # search probes quantize again
    calls.clear()
    cfg2 = S.SensitivityConfig(groups=tuple(penalty), budget=4.2, margin=0, case_floor=None,
                               op_types=("Conv", "ConvTranspose", "MatMul"),
                               reuse=str(tmp_path / "out" / "sensitivity.json"))
    res2 = S.run_sensitivity(named_path, tmp_path / "out2", cfg2,
                             voices={"v": __import__("numpy").zeros((510, 1, 256), "float32")})
    assert calls, "the search still probes"
    assert not any(len(c) == 1 and c[0] in ("generator.ups", "op:Conv", "decoder.decode.1") for c in calls)
    assert {r["group"] for r in res2["ranking"] if r.get("reused")} == set(penalty)
    assert res2["int8_groups"] == res["int8_groups"]
    # other settings: refused with the reason
    cfg3 = S.SensitivityConfig(groups=tuple(penalty), budget=4.2, calib_seed=1,
                               reuse=str(tmp_path / "out" / "sensitivity.json"))
    with pytest.raises(KoptError, match="calib_seed"):
        S.run_sensitivity(named_path, tmp_path / "out3", cfg3,
                          voices={"v": __import__("numpy").zeros((510, 1, 256), "float32")})


@pytest.mark.parametrize("margin,floor,chosen", [
    (0.0, None, {"op:MatMul", "decoder.decode.0", "decoder.decode.1"}),   # 4.30 >= 4.2: grazes the budget
    (0.15, None, {"op:MatMul", "decoder.decode.0"}),                      # three: 4.30 < 4.35; two: 4.40
    (0.0, 4.05, {"op:MatMul", "decoder.decode.0"}),                       # three: worst sentence 4.00 < 4.05
])
def test_search_keeps_a_margin_and_a_case_floor(tmp_path, named_path, monkeypatch, margin, floor, chosen):
    """The same damage table: a margin above the budget, or a floor under the worst sentence, gives
    up the set that only grazes the budget."""
    import numpy as np

    import kopt.quality.score as qs
    from kopt.quality import sensitivity as S

    penalty = {"decoder.decode.0": 0.05, "decoder.decode.1": 0.1, "generator.ups": 0.2, "op:MatMul": 0.05}

    class FakeScorer:
        aligned, align_reason = True, None

        def __init__(self, *a, **k):
            pass

    def fake_quantize(c, model, include, tag):
        p = tmp_path / f"{tag}.onnx"
        p.write_text(json.dumps(list(include)))
        return p

    def fake_score(c, path):
        s = round(4.5 - sum(penalty[g] for g in json.loads(path.read_text())), 4)
        return {"score": s, "metric": "pesq_wb_aligned", "min": round(s - 0.3, 4), "pesq_wb_natural": s, "issues": []}

    monkeypatch.setattr(qs, "ReferenceScorer", FakeScorer)
    monkeypatch.setattr(S, "_quantize", fake_quantize)
    monkeypatch.setattr(S, "_score", fake_score)
    monkeypatch.setattr("kopt.quality.align.instrumented", lambda p, accept_input, cache_dir=None: p)
    cfg = S.SensitivityConfig(groups=tuple(penalty), budget=4.2, margin=margin, case_floor=floor,
                              op_types=("Conv", "ConvTranspose", "MatMul"))
    res = S.run_sensitivity(named_path, tmp_path / "out", cfg, voices={"v": np.zeros((510, 1, 256), "float32")})
    assert set(res["int8_groups"]) == chosen
    m = json.loads(S.write_precision_map(res, tmp_path / "map.json").read_text())
    assert m["made_by"]["margin"] == margin and m["made_by"]["case_floor"] == floor


@pytest.mark.parametrize("args,field", [(["--margin", "-1"], "margin"), (["--threads", "x"], "threads")])
def test_sensitivity_bad_option_is_one_line(args, field):
    from typer.testing import CliRunner

    from kopt.cli.main import app

    r = CliRunner().invoke(app, ["sensitivity", "--dry-run", *args])
    assert r.exit_code != 0
    msg = str(r.exception) + r.output
    assert field in msg and "Traceback" not in msg
