"""Listen: the build's report embeds every measured variant's check sentences as FLAC <audio> players,
grouped by sentence (reference, winner, the rest), rendered from the store's models and cached; a model
that is not there is a one-line note."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from kopt.cli.main import app
from kopt.core.results import append_records, as_records, read_records
from kopt.core.store import ArtifactStore
from kopt.quantize.sentences import checkset
from kopt.report.listen import DEFAULT_TEXTS, ListenSettings
from kopt.report.page import write_report
from kopt.select.settings import SelectSettings
from tests.graphs import tiny_kokoro, tiny_voices
from tests.pipeline.test_pipeline_tiny import RECIPE

SETTINGS = SelectSettings(quality="log_mel_db_natural", constraints={})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    env = tmp_path_factory.mktemp("listen")
    tiny_kokoro(env / "tiny.onnx")
    np.savez(env / "voices.npz", **tiny_voices())
    recipe = env / "tiny.toml"
    recipe.write_text(RECIPE.format(model=env / "tiny.onnx", voices=env / "voices.npz", per_channel="false",
                                    constraints="constraints = {}"))
    r = CliRunner().invoke(app, ["--artifacts", str(env / "arts"), "--json", "build", str(recipe), "--no-publish"])
    assert r.exit_code == 0, r.output
    return env, json.loads(r.stdout)


def players(html: str) -> list[tuple[str, str, str, str]]:
    """(sentence title, player name, roles, data URI) in page order."""
    out = []
    for sent in re.findall(r'<div class="sentence"><h3>(.*?)</h3><div class="players">(.*?)</div></div>', html):
        for role, name, src in re.findall(r'<div class="player ([a-z ]*)"><div class="who"><b>([^<]*)</b>.*?'
                                          r'<audio controls preload="metadata" src="([^"]*)"></audio>', sent[1]):
            out.append((sent[0], name, role, src))
    return out


def flac(src: str) -> np.ndarray:
    assert src.startswith("data:audio/flac;base64,"), src[:40]
    audio, sr = sf.read(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), dtype="float32")
    assert sr == 24000
    return audio


def test_build_report_has_players_grouped_by_sentence(built):
    env, d = built
    html = open(d["report"], encoding="utf-8").read()
    ps = players(html)
    ja_short = [s.id for s in checkset("ja").select(["short"])]
    # both languages the build scored (the recipe's default): English texts, then Japanese check sentences
    assert len(ps) == 3 * (len(DEFAULT_TEXTS) + len(ja_short))  # reference, fold, dyn on each sentence
    titles = list(dict.fromkeys(p[0] for p in ps))
    assert [t.split(":")[0] for t in titles] == [f"[en-us] {t}" for t in DEFAULT_TEXTS] + [f"[ja] {t}" for t in ja_short]
    assert "ねえ、駅までどのくらいかかるの？" in html
    winner = d["winners"]["cpu"]["winner"]
    for t in titles:
        names = [(p[1], p[2].split()) for p in ps if p[0] == t]
        assert names[0][0] == "reference" and "reference" in names[0][1]
        assert [n for n, roles in names if "winner" in roles] == [winner]
        assert names[0][0] == winner or names[1][0] == winner  # the winner right beside the reference
        assert sorted(n for n, _ in names) == ["dyn", "fold", "reference"]
    assert "<h2>Listen</h2>" in html
    if winner == "reference":  # on the tiny graph timing noise can make the reference itself the fastest
        assert "no spectrogram: the winner is the reference (reference) itself" in html
    else:
        assert 'alt="short-1: reference vs winner' in html
    # the page says how long each clip is, and the clip is that long
    for m in re.finditer(r'<span class="mono">[0-9a-f]+</span> ([0-9.]+) s</div><audio controls preload="metadata" '
                         r'src="([^"]*)"', html):
        assert abs(len(flac(m.group(2))) / 24000 - float(m.group(1))) < 0.006


def test_clips_are_the_models_audio(built):
    """A clip decodes to what the variant's model says for that sentence, within 16-bit rounding."""
    from kopt.bench.textset import load_textset
    from kopt.quality.synth import Case, ModelRunner, style_for
    from kopt.source.voices import load_voices

    env, d = built
    ps = players(open(d["report"], encoding="utf-8").read())
    dyn = next(v for v in d["variants"] if v["name"] == "dyn")
    store = ArtifactStore(env / "arts")
    item = load_textset().select(None, ["short-2"])[0]
    voices = load_voices(env / "voices.npz")
    case = Case("short-2", item.tokens, sorted(voices)[0])
    want, _ = ModelRunner(store.get(dyn["key"]).file("model.onnx"))(case, style_for(voices, case))
    got = flac(next(p[3] for p in ps if p[0].startswith("[en-us] short-2") and p[1] == "dyn"))
    assert got.shape == want.shape and np.abs(got - np.clip(want, -1, 1)).max() <= 1.5 / 32768
    other = flac(next(p[3] for p in ps if p[0].startswith("[en-us] short-2") and p[1] == "reference"))
    assert other.shape != got.shape or np.abs(other - got).max() > 1e-3  # int8 sounds different


def test_rerun_renders_nothing_and_missing_model_is_a_note(built, tmp_path):
    env, d = built
    recs = read_records(d["results"])
    lis = ListenSettings(store=ArtifactStore(env / "arts"), voices=env / "voices.npz")
    res = write_report([("a", recs)], tmp_path / "rep", settings=SETTINGS, listen=lis)
    assert res.listen["rendered"] == 0 and res.listen["reused"] >= 9, res.listen
    dyn = next(v["key"] for v in d["variants"] if v["name"] == "dyn")
    for r in recs:
        if r.variant.key == dyn:
            r.variant.key = "f" * 20  # a model the store never had
            r.variant.path = "/nonexistent/model.onnx"
    res = write_report([("a", recs)], tmp_path / "rep2", settings=SETTINGS, listen=lis)
    html = (tmp_path / "rep2" / "index.html").read_text()
    assert {p[1] for p in players(html)} == {"reference", "fold"}
    note = f"dyn (ffffffffff): model not available (not in the store {env / 'arts'}, nor at its recorded path)"
    assert note in html and note in res.listen["notes"]


def test_report_cli_listen_options(built, tmp_path):
    env, d = built
    run = CliRunner()
    moved = tmp_path / "moved.jsonl"  # results whose models are neither in the store given nor at their paths
    append_records(moved, [{**r.as_dict(), "variant": {**r.variant.as_dict(), "path": "/gone/model.onnx"}}
                           for r in read_records(d["results"])])
    r = run.invoke(app, ["--artifacts", str(tmp_path / "empty"), "report", str(moved), "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    assert "listen: no model of these results is available" in r.output
    assert "<audio" not in (tmp_path / "r" / "index.html").read_text()
    base = ["report", d["results"], "--out", str(tmp_path / "r")]
    r = run.invoke(app, ["--artifacts", str(env / "arts"), *base, "--listen-provider", "tpu"])
    assert r.exit_code == 1 and "listen provider 'tpu' is not in these results; choose from: cpu, cuda" in str(r.exception)
    r = run.invoke(app, ["--artifacts", str(env / "arts"), *base, "--voices", str(tmp_path / "no.npz")])
    assert r.exit_code == 1 and "voice pack not found" in str(r.exception)
    r = run.invoke(app, ["--artifacts", str(env / "arts"), "--json", *base, "--no-listen"])
    assert r.exit_code == 0 and json.loads(r.stdout)["listen"] is None
    r = run.invoke(app, ["--artifacts", str(env / "arts"), "--json", *base])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["listen"]["models"] == 3
    # another cache folder: the clips are rendered there, the store's cache is not touched
    before = sorted((env / "arts" / ".cache" / "listen").iterdir())
    r = run.invoke(app, ["--artifacts", str(env / "arts"), "--json", *base, "--listen-cache", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["listen"]["rendered"] >= 9
    assert len(list((tmp_path / "c" / "listen").glob("*.flac"))) >= 9
    assert sorted((env / "arts" / ".cache" / "listen").iterdir()) == before


def test_records_and_report_name_variants_with_their_pass_precision(built, tmp_path):
    """Results carry the recipe's name, the key and what the last pass made (not the precision guessed from
    the file); a hybrid's precision map reaches the results and the report's variants table."""
    from kopt.core.store import StepSpec
    from kopt.report.names import variant_facts, with_facts

    env, d = built
    recs = read_records(d["results"])
    dyn = next(v for v in d["variants"] if v["name"] == "dyn")
    mine = [r.variant for r in recs if r.variant.key == dyn["key"]]
    assert mine and all(v.name == "dyn" and v.precision == "int8-dynamic" for v in mine)
    md = open(d["report"].replace("index.html", "results.md"), encoding="utf-8").read()
    assert re.search(rf"\| dyn\s+\| {dyn['key'][:10]}\s+\| int8-dynamic\s+\|", md), md

    store = ArtifactStore(tmp_path / "arts")
    spec = StepSpec("pass", {"pass": "hybrid"}, {"model": "0" * 64})
    with store.writing(spec, {"report": {"precision": "hybrid", "default": "fp32",
                                         "precision_map": {"generator.resblocks.0": "int8", "decoder.encode": "fp16"}}}) as t:
        (t / "model.onnx").write_bytes(b"x")
    facts = variant_facts(store, spec.key)
    assert facts == {"precision": "hybrid", "precision_default": "fp32",
                     "precision_map": {"generator.resblocks.0": "int8", "decoder.encode": "fp16"}}
    assert variant_facts(store, "0" * 20) == {}
    # a step after the hybrid pass that reports no precision (e.g. bind-shapes): the nearest one that did
    later = StepSpec("pass", {"pass": "bind-shapes"}, {"model": "1" * 64}, parents=(spec.key,))
    with store.writing(later, {"report": {"nodes_before": 3}}) as t:
        (t / "model.onnx").write_bytes(b"y")
    assert variant_facts(store, later.key) == facts
    # records written before the build copied these facts: a report given the store fills them in
    old = as_records({**r.as_dict(), "variant": {
        **{k: v for k, v in r.variant.as_dict().items() if k != "precision_map"},
        "key": spec.key if r.variant.key == dyn["key"] else r.variant.key, "precision": "int8"}} for r in recs)
    assert [r.variant.precision for r in with_facts(old, store) if r.variant.key == spec.key][:1] == ["hybrid"]
    write_report([("a", old)], tmp_path / "rep", settings=SETTINGS, store=store)
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "fp16: decoder.encode; int8: generator.resblocks.0; everything else fp32" in html
    assert re.search(r"<td>dyn</td><td class=\"mono\">[0-9a-f]+</td><td>hybrid</td>", html)


def test_a_model_that_says_nan_is_played_as_silence_with_a_note(built, tmp_path, monkeypatch):
    from kopt.report import listen as L

    env, d = built
    dyn = next(v["key"] for v in d["variants"] if v["name"] == "dyn")
    real = L._runner

    def runner(path, threads):
        run = real(path, threads)
        if dyn not in str(path):
            return run

        def nan(case, style, durations=None):
            audio, dur = run(case, style, durations)
            audio = audio.copy()
            audio[:10] = np.nan
            return audio, dur
        return nan

    monkeypatch.setattr(L, "_runner", runner)
    lis = ListenSettings(store=ArtifactStore(env / "arts"), voices=env / "voices.npz", cache_dir=tmp_path / "c")
    res = write_report([("a", read_records(d["results"]))], tmp_path / "rep", settings=SETTINGS, listen=lis)
    assert f"dyn ({dyn[:10]}): short-1 has non-finite samples (10), played as silence" in res.listen["notes"]
    clip = flac(next(p[3] for p in players((tmp_path / "rep" / "index.html").read_text())
                     if p[0].startswith("[en-us] short-1") and p[1] == "dyn"))
    assert np.isfinite(clip).all() and (clip[:10] == 0).all()
