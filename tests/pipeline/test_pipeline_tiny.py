"""`kopt build` end to end on the tiny synthetic graph."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from kopt.cli.main import app
from tests.graphs import tiny_kokoro, tiny_voices

runner = CliRunner()

RECIPE = """
name = "tiny"
input = "reference"

[source]
model = "{model}"
voices = "{voices}"

[[variants]]
name = "fold"
passes = [{{ pass = "fold" }}]

[[variants]]
name = "dyn"
passes = [{{ pass = "int8-dynamic", config = {{ per_channel = {per_channel} }} }}]

[bench]
providers = ["cpu", "cuda"]
repeats = 2
warmup = 0
ttfa_repeats = 1
categories = ["short"]
threads = 1
partition = false

[quality]
categories = ["short"]
metrics = ["log_mel", "mrstft"]
determinism_runs = 0
aligned = false

[select]
quality = "log_mel_db_natural"
{constraints}

[publish]
cache_words = 300
tarball = false
"""


@pytest.fixture
def env(tmp_path):
    tiny_kokoro(tmp_path / "tiny.onnx")
    np.savez(tmp_path / "voices.npz", **tiny_voices())
    return tmp_path


def write_recipe(env, per_channel="false", constraints="constraints = {}", extra=""):
    p = env / "tiny.toml"
    p.write_text(RECIPE.format(model=env / "tiny.onnx", voices=env / "voices.npz", per_channel=per_channel,
                               constraints=constraints) + extra)
    return p


def build(env, recipe, *args):
    r = runner.invoke(app, ["--artifacts", str(env / "arts"), "--json", "build", str(recipe), *args])
    data = json.loads(r.stdout) if r.stdout.strip().startswith("{") else None
    return r, data


def test_build_publish_rerun_and_change_one_variant(env):
    recipe = write_recipe(env)
    r, d = build(env, recipe)
    assert r.exit_code == 0, r.output
    assert d["winners"]["cpu"]["winner"] in ("fold", "dyn", "reference", "base")
    assert d["winners"]["cuda"]["winner"] is None  # no CUDA here: skipped, with the reason in the records
    # 3 models: the fp32 base is its own reference, plus fold and dyn; x cpu (measured) and cuda (skipped)
    assert d["measured"]["bench_cells"] == 3 and d["skipped"]["bench_cells"] == 3
    bundle = env / "arts" / "builds" / "tiny" / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["variant"]["key"] == d["winners"]["cpu"]["key"]
    assert manifest["lineage"][-1]["step"] == "fetch"
    assert manifest["measured_on"]["id"] and "rtf_median" in manifest["metrics"]
    recs = [json.loads(x) for x in open(d["results"])]
    cuda = [x for x in recs if x["kind"] == "bench" and x["provider"]["config"] == "cuda"]
    assert cuda and all(x["provider"]["status"] == "skipped" and x["provider"]["reason"] for x in cuda)
    assert (env / "arts" / "builds" / "tiny" / "report" / "index.html").is_file()
    quality = [x for x in recs if x["kind"] == "quality"]
    assert sorted({x["language"] for x in quality}) == ["en-us", "ja"] and len(quality) == 6
    assert {"log_mel_db_natural@en-us", "log_mel_db_natural@ja"} <= set(manifest["metrics"])
    # voice_0/voice_1 do not say their language: the manifest declares it (the runtime's default, en-us)
    assert manifest["voice_languages"] == {"voice_0": "en-us", "voice_1": "en-us"}
    assert list(manifest["languages"]) == ["en-us"] and manifest["languages"]["en-us"]["extra"] == "g2p"
    wav = env / "o.wav"
    sp = subprocess.run([sys.executable, "-m", "kokoro_runtime", "It is time to go.", "-o", str(wav)],
                        cwd=bundle, capture_output=True, text=True)
    assert sp.returncode == 0, sp.stderr
    assert wav.stat().st_size > 100

    # nothing changed: every step and measurement is reused
    r2, d2 = build(env, recipe)
    assert r2.exit_code == 0, r2.output
    assert d2["measured"] == {"steps": 0, "bench_cells": 0, "quality": 0}
    # quality: one record per model and language (the default languages: en-us and ja)
    assert d2["reused"]["bench_cells"] == 3 and d2["reused"]["quality"] == 6
    assert d2["winners"]["cpu"]["key"] == d["winners"]["cpu"]["key"]

    # one variant's config changed: only its chain and its measurements are redone
    r3, d3 = build(env, write_recipe(env, per_channel="true"))
    assert r3.exit_code == 0, r3.output
    assert d3["measured"] == {"steps": 1, "bench_cells": 1, "quality": 2}


def test_interrupted_build_resumes(env, monkeypatch):
    from kopt.pipeline import measure

    recipe = write_recipe(env)
    real = measure.quality

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(measure, "quality", boom)
    r, _ = build(env, recipe)
    assert r.exit_code != 0
    monkeypatch.setattr(measure, "quality", real)
    r2, d2 = build(env, recipe)
    assert r2.exit_code == 0, r2.output
    assert d2["measured"]["steps"] == 0 and d2["measured"]["bench_cells"] == 0  # done before the interruption
    assert d2["measured"]["quality"] == 6


def test_sigkill_at_any_moment_then_rerun_completes(env):
    recipe = write_recipe(env)
    arts = env / "arts"
    cmd = [sys.executable, "-m", "kopt.cli.main", "--artifacts", str(arts), "-q", "build", str(recipe)]
    p = subprocess.Popen(cmd, start_new_session=True)
    time.sleep(4.0)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    r = subprocess.run([sys.executable, "-m", "kopt.cli.main", "--artifacts", str(arts), "--json", "build", str(recipe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["winners"]["cpu"]["key"]
    # every artifact in the store is whole: its files have their recorded hashes
    from kopt.core.store import ArtifactStore

    st = ArtifactStore(arts)
    for a in st.all():
        assert st.get(a.key, verify=True) is not None, a.key


def test_invalid_recipe_is_one_line_exit_1(env):
    recipe = write_recipe(env, extra="\n[bench.oops]\nx = 1\n")
    r = subprocess.run([sys.executable, "-m", "kopt.cli.main", "--artifacts", str(env / "arts"), "build", str(recipe)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and str(recipe) in lines[0] and "bench.oops" in lines[0]
    assert not (env / "arts").exists()


def test_no_variant_meets_constraints_exit_4(env):
    """4, as `kopt select --strict`; 2 stays Click's usage-error code."""
    recipe = write_recipe(env, constraints="constraints = { size_mb = { max = 0.000001 } }")
    r, d = build(env, recipe)
    assert r.exit_code == 4, r.output
    assert d["bundle"] is None and any("no variant meets the constraints on cpu" in x for x in d["reasons"])


def test_regression_gate_exit_3(env):
    recipe = write_recipe(env, extra="\n[compare.settings.thresholds]\nlog_mel_db_natural = { abs = 0.01 }\n")
    r, d = build(env, recipe)
    assert r.exit_code == 0, r.output
    # A planted baseline in which the int8 variant's audio matched the reference exactly: the current
    # build's real log-mel distance for it is then an absolute quality regression. (Speed is not planted:
    # the tiny model's timings vary more than their median, so the noise rule rightly calls that noise.)
    planted = env / "baseline.jsonl"
    dyn_lm = None
    with open(planted, "w") as f:
        for line in open(d["results"]):
            rec = json.loads(line)
            if rec["kind"] == "quality" and rec["variant"]["name"] == "dyn":
                dyn_lm = rec["metrics"]["log_mel_db_natural"]
                rec["metrics"]["log_mel_db_natural"] = 0.0
            f.write(json.dumps(rec) + "\n")
    assert dyn_lm > 0.01  # int8 changes the tiny graph's audio by more than the recipe's 0.01 dB threshold
    r2, d2 = build(env, recipe, "--baseline", str(planted))
    assert r2.exit_code == 3, r2.output
    assert d2["comparison"]["verdict"] == "regression" and d2["comparison"]["regressions"]
    r3, d3 = build(env, recipe, "--baseline", d["results"])  # the same build against itself
    assert r3.exit_code == 0, r3.output


def test_shards_cover_every_cell_once(env):
    recipe = write_recipe(env)
    cells = []
    for k in ("1/2", "2/2"):
        r, d = build(env, recipe, "--shard", k)
        assert r.exit_code == 0, r.output
        cells += [(x["variant"]["key"], x["provider"]["config"] if x["kind"] == "bench" else "quality",
                   x["language"]) for x in map(json.loads, open(d["results"]))]
    r, d = build(env, recipe)
    recs = list(map(json.loads, open(d["results"])))
    whole = [(x["variant"]["key"], x["provider"]["config"] if x["kind"] == "bench" else "quality", x["language"])
             for x in recs if x["kind"] != "bundle"]
    assert sorted(cells) == sorted(whole) and len(set(cells)) == len(cells)
    assert [x["kind"] for x in recs].count("bundle") == 1      # the published bundle, measured once
