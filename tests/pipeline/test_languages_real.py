"""A two-language build on the real model (one variant, the short texts): quality records, the
selection, the report and the bundle manifest all carry English and Japanese."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kopt.cli.main import app

pytestmark = pytest.mark.slow

RECIPE = """
name = "languages"
input = "reference"
baselines = ["reference"]

[[variants]]
name = "fused"
passes = [{ pass = "fold" }, { pass = "fuse", config = { level = "extended" } }]

[bench]
providers = ["cpu"]
threads = 2
warmup = 0
repeats = 1
ttfa_repeats = 1
categories = ["short"]
scaling_threads = []

[quality]
languages = ["en-us", "ja"]
categories = ["short"]
determinism_runs = 0

[select]
constraints = { pesq_wb_aligned = { min = 3.0 } }

[publish]
cache_words = 2000
tarball = false
"""


def test_a_two_language_build_carries_both_languages(real_store, tmp_path):
    from kopt.quantize.sentences import checkset

    store, _, _ = real_store
    recipe = tmp_path / "languages.toml"
    recipe.write_text(RECIPE)
    r = CliRunner().invoke(app, ["--artifacts", str(store.root), "--json", "build", str(recipe)])
    assert r.exit_code == 0, r.output[-3000:]
    d = json.loads(r.stdout)
    recs = [json.loads(x) for x in open(d["results"])]
    quality = [x for x in recs if x["kind"] == "quality"]
    assert sorted((x["variant"]["name"], x["language"]) for x in quality) == [
        ("fused", "en-us"), ("fused", "ja"), ("reference", "en-us"), ("reference", "ja")]
    ja = next(x for x in quality if x["variant"]["name"] == "fused" and x["language"] == "ja")
    assert ja["inputs"]["voices"] == ["jf_alpha"] and ja["inputs"]["text_set"] == "checkset-ja"
    assert ja["inputs"]["texts"] == sorted(s.id for s in checkset("ja").select(["short"]))
    assert ja["metrics"]["pesq_wb_aligned"] > 3.0 and not ja["extra"]["errors"]
    win = d["winners"]["cpu"]["metrics"]
    en_ja = (win["pesq_wb_aligned@en-us"], win["pesq_wb_aligned@ja"])
    assert win["pesq_wb_aligned"] == min(en_ja)  # the winner's figure is its worst language's
    page = Path(d["report"]).read_text(encoding="utf-8")
    assert "PESQ aligned ja" in page and "PESQ aligned en-us" in page
    assert "[ja] short-dialogue" in page and "[en-us] short-1" in page  # A/B clips in both languages
    manifest = json.loads((Path(d["bundle"]) / "manifest.json").read_text(encoding="utf-8"))
    langs = manifest["languages"]
    assert list(langs) == ["ja"] and langs["ja"]["quality_measured"]  # the shipped voices are Japanese
    assert langs["ja"]["g2p_packages"]["pyopenjtalk-plus"] and langs["ja"]["g2p_packages"]["misaki"] == "0.9.4"
    assert "voice_languages" not in manifest  # every shipped voice is named the Kokoro way
    assert {"pesq_wb_aligned@en-us", "pesq_wb_aligned@ja"} <= set(manifest["metrics"])
    card = (Path(d["bundle"]) / "README.md").read_text(encoding="utf-8")
    assert "pip install './kokoro_runtime[ja]'" in card and "--voice jf_alpha" in card
    print("figures:", {k: round(v, 3) for k, v in win.items() if k.startswith("pesq_wb_aligned")})
