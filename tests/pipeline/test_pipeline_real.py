"""`kopt build recipes/ci.toml` on the real model: builds, reports, publishes; quality records, the
selection, the report, the bundle's manifest and its benchmark carry both languages (English and
Japanese); the bundle speaks; a re-run reuses everything."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kopt.cli.main import app

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_ci_recipe_builds_publishes_and_reuses(real_store, tmp_path):
    store, base, ref = real_store
    args = ["--artifacts", str(store.root), "--json", "build", str(REPO / "recipes" / "ci.toml")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output[-3000:]
    d = json.loads(r.stdout)
    assert d["base"] == base.key and d["reference"] == ref.key
    assert all(v["status"] != "failed" for v in d["variants"]), d["variants"]
    win = d["winners"]["cpu"]
    assert win["key"] and win["metrics"]["pesq_wb_aligned"] >= 4.0
    for prov in ("cuda", "coreml-all"):
        assert d["winners"][prov]["winner"] is None
    recs = [json.loads(x) for x in open(d["results"])]
    skipped = [x for x in recs if x["kind"] == "bench" and x["provider"]["status"] == "skipped"]
    assert skipped and all("not in this onnxruntime build" in x["provider"]["reason"] for x in skipped)
    # thread scaling (ci.toml: main 2 threads, scaling at 1, one round): on every measured CPU cell
    cpu = [x for x in recs if x["kind"] == "bench" and x["provider"]["config"] == "cpu"
           and x["provider"]["status"] == "ok"]
    assert cpu
    for x in cpu:
        ts = x["extra"]["thread_scaling"]
        assert x["threads"] == 2 and ts["2"]["main"] and x["metrics"]["rtf_threads_2_median"] == x["metrics"]["rtf_median"]
        assert ts["1"]["status"] == "ok" and ts["1"]["repeats"] == 1 and x["metrics"]["rtf_threads_1_median"] > 0
        assert ts["1"]["n"] == len(x["inputs"]["texts"])  # one round of every text
    page = Path(d["report"]).read_text(encoding="utf-8")
    assert "Thread scaling" in page
    _languages(d, recs, page)
    assert Path(d["report"]).is_file() and Path(d["tarball"]).is_file()
    manifest = json.loads((Path(d["bundle"]) / "manifest.json").read_text())
    assert manifest["base_model_sha256"] == base.sha256("model.onnx")
    assert manifest["variant"]["key"] == win["key"]
    # the bundle speaks in a fresh process: Japanese (its voices' language), and English when asked for
    wav = tmp_path / "out.wav"
    for text in (["新しいモデルは、今日から使えます。"], ["The new model sounds right and ships today.", "--lang", "en-us"]):
        sp = subprocess.run([sys.executable, "-m", "kokoro_runtime", *text, "-o", str(wav)], cwd=d["bundle"],
                            capture_output=True, text=True)
        assert sp.returncode == 0, sp.stderr
        assert wav.stat().st_size > 24000 * 2  # more than a second of 16-bit audio
        wav.unlink()
    # nothing changed: a re-run reuses every step, measurement and the bundle
    r2 = CliRunner().invoke(app, args)
    assert r2.exit_code == 0, r2.output[-3000:]
    d2 = json.loads(r2.stdout)
    assert d2["measured"] == {"steps": 0, "bench_cells": 0, "quality": 0}
    assert d2["winners"]["cpu"]["key"] == win["key"] and d2["bundle"] == d["bundle"]


def _languages(d: dict, recs: list[dict], page: str) -> None:
    """English and Japanese (ci.toml's [quality] languages) from the records to the bundle."""
    from kopt.quantize.sentences import checkset

    quality = [x for x in recs if x["kind"] == "quality"]
    assert sorted((x["variant"]["name"], x["language"]) for x in quality) == sorted(
        (v, lang) for v in ("reference", "base", "fused", "int8-dynamic") for lang in ("en-us", "ja"))
    ja = next(x for x in quality if x["variant"]["name"] == "fused" and x["language"] == "ja")
    assert ja["inputs"]["voices"] == ["jf_alpha"] and ja["inputs"]["text_set"] == "checkset-ja"
    assert ja["inputs"]["texts"] == sorted(s.id for s in checkset("ja").select(["short"]))
    assert ja["metrics"]["pesq_wb_aligned"] > 4.0 and not ja["extra"]["errors"]
    win = d["winners"]["cpu"]["metrics"]
    en_ja = (win["pesq_wb_aligned@en-us"], win["pesq_wb_aligned@ja"])
    assert win["pesq_wb_aligned"] == min(en_ja)  # the winner's figure is its worst language's
    assert "PESQ aligned ja" in page and "PESQ aligned en-us" in page
    assert "[ja] short-dialogue" in page and "[en-us] short-1" in page  # A/B clips in both languages
    bundle = Path(d["bundle"])
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    langs = manifest["languages"]
    assert list(langs) == ["ja"] and langs["ja"]["quality_measured"]  # the shipped voices are Japanese
    assert langs["ja"]["g2p_packages"]["pyopenjtalk-plus"] and langs["ja"]["g2p_packages"]["misaki"] == "0.9.4"
    assert "voice_languages" not in manifest  # every shipped voice is named the Kokoro way
    assert {"pesq_wb_aligned@en-us", "pesq_wb_aligned@ja"} <= set(manifest["metrics"])
    card = (bundle / "README.md").read_text(encoding="utf-8")
    assert "pip install './kokoro_runtime[ja]'" in card and "--voice jf_alpha" in card
    # the bundle's own benchmark: Japanese in full, English TTFA beside it; ci.toml's short load sweep
    b = next(x for x in recs if x["kind"] == "bundle")
    assert b["language"] == "ja" and b["inputs"]["languages"] == ["en-us", "ja"]
    m = b["metrics"]
    assert m["http_ttfa_ms_ja"] > 0 and m["http_ttfa_ms_en-us"] > 0 and m["frontend_ms_ja"] > 0
    assert {"ttfa_ms_p50_c1_i1", "ttfa_ms_p50_c2_i1"} <= set(m) and not any("_c8" in k or "_i2" in k for k in m)
    assert m["errors_c2_i1"] == 0 and m["wyoming_errors_c2"] == 0
    print("figures:", {k: round(v, 3) for k, v in win.items() if k.startswith("pesq_wb_aligned")},
          {k: m[k] for k in ("http_ttfa_ms_ja", "http_ttfa_ms_en-us", "frontend_ms_ja", "frontend_ms_en-us")})
