"""Quality per language: a record per variant and language (each on its own texts and voices), the
languages list validated by the recipe schema, and the sensitivity score as the worst language's."""

from __future__ import annotations

import numpy as np
import pytest

from kopt.bench.variants import Variant
from kopt.core.errors import KoptError
from kopt.core.hashing import sha256_file
from kopt.core.recipe import RecipeError
from kopt.core.results import check_record
from kopt.pipeline.recipe import load_build_recipe
from kopt.quality.run import plan, run_quality
from kopt.quality.sensitivity import summarize
from kopt.quality.settings import QualitySettings
from kopt.quantize.sentences import checkset
from tests.graphs import tiny_kokoro


def _voices():
    rng = np.random.default_rng(0)
    return {n: (rng.standard_normal((510, 1, 256)) * 0.1).astype(np.float32) for n in ("af_heart", "jf_alpha")}


def test_a_record_per_variant_and_language(tmp_path):
    ref = tiny_kokoro(tmp_path / "ref.onnx")
    other = tiny_kokoro(tmp_path / "other.onnx", seed=1)
    vs = [Variant(p.stem, p.stem, p, sha256_file(p)) for p in (ref, other)]
    s = QualitySettings(languages=("en-us", "ja"), categories=("short",), metrics=("log_mel",), aligned=False,
                        determinism_runs=0, threads=1, gates={"pesq_wb_aligned_min": None, "stoi_aligned_min": None,
                                                              "dnsmos_ovrl_delta_min": None})
    recs = run_quality(vs, vs[0], s, voices=_voices(), run_id="r")
    assert [(r["variant"]["name"], r["language"]) for r in recs] == [
        ("ref", "en-us"), ("ref", "ja"), ("other", "en-us"), ("other", "ja")]
    for r in recs:
        check_record(r, "quality record")
    en, ja = recs[2], recs[3]
    # each language on its own texts, spoken by a voice of that language
    assert en["inputs"]["text_set"] == "kopt-en" and en["inputs"]["voices"] == ["af_heart"]
    assert ja["inputs"]["text_set"] == "checkset-ja" and ja["inputs"]["voices"] == ["jf_alpha"]
    assert ja["inputs"]["texts"] == sorted(x.id for x in checkset("ja").select(["short"]))
    assert {c["language"] for c in ja["extra"]["cases"]} == {"ja"}
    assert ja["metrics"]["log_mel_db_natural"] != en["metrics"]["log_mel_db_natural"]
    assert recs[0]["metrics"]["log_mel_db_natural"] == pytest.approx(0.0, abs=1e-6)  # the reference against itself


def test_text_ids_name_texts_of_one_language():
    s = QualitySettings(texts=("short-1",))
    (only,) = plan(s, _voices())
    assert only[0].language == "en-us" and [c.id for c in only[2]] == ["short-1/af_heart"]
    with pytest.raises(KoptError, match="leave nothing to score"):
        plan(QualitySettings(texts=("nope",)), _voices())


def test_languages_are_validated_with_field_and_file(tmp_path):
    assert QualitySettings().languages == ("en-us", "ja")
    assert QualitySettings(languages=("j", "en")).languages == ("ja", "en-us")  # the runtime's letters, aliases
    bad = {"[quality]\nlanguages = [\"xx\"]": "quality.languages: 'xx' is not a language",
           "[quality]\nlanguages = [\"ja\", \"jp\"]": "quality.languages: .*ja listed twice",
           "[quality]\nlanguages = [\"zh\"]": "quality: .*languages: no texts for zh",
           "[quality]\nlanguages = []": "quality.languages: .*at least one language",
           "[quality]\nlanguage = [\"ja\"]": "quality.language"}
    for body, msg in bad.items():
        p = tmp_path / "r.toml"
        p.write_text('name = "r"\ninput = "reference"\n[[variants]]\nname = "f"\npasses = [{ pass = "fold" }]\n' + body + "\n")
        with pytest.raises(RecipeError, match=rf"{p}.*{msg}"):
            load_build_recipe(p)


def test_shipped_recipes_measure_english_and_japanese():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "recipes"
    for name in ("default.toml", "ci.toml"):
        r = load_build_recipe(root / name)
        assert r.quality.languages == ("en-us", "ja"), name
    assert load_build_recipe(root / "ci.toml").quality.categories == ("short",)  # keeps CI short


def test_sensitivity_scores_the_worst_language():
    def part(mean, low):
        return {"metrics": {"pesq_wb_aligned": mean, "pesq_wb_aligned_min": low, "pesq_wb_natural": mean - 0.1}}

    r = {"aligned": True, "guard_issues": [], "by_language": {"en-us": part(4.4, 4.2), "ja": part(4.1, 3.7)}}
    s = summarize(r)
    assert s["score"] == 4.1 and s["worst_language"] == "ja" and s["min"] == 3.7
    assert s["languages"]["en-us"]["score"] == 4.4
