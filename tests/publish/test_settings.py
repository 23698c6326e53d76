"""The [publish] section: a blend is checked when the recipe loads, by the runtime's own parser, so
both of the runtime's spellings are accepted and a malformed one fails naming the file and field."""

import pytest

from kokoro_runtime.voicepack import parse_blend as runtime_parse_blend
from kopt.core.recipe import RecipeError
from kopt.pipeline.recipe import load_build_recipe
from kopt.source.voices import parse_blend

RECIPE = """
name = "blends"

[[variants]]
name = "fold"
passes = [{{ pass = "fold" }}]

[publish]
blends = {{ mix = "{spec}" }}
"""


def _recipe(tmp_path, spec):
    p = tmp_path / "r.toml"
    p.write_text(RECIPE.format(spec=spec), encoding="utf-8")
    return p


@pytest.mark.parametrize("spec", ["af_a:0.7,af_b:0.3", "af_a(2)+af_b(1)", "af_a+af_b"])
def test_both_runtime_spellings_validate(tmp_path, spec):
    assert load_build_recipe(_recipe(tmp_path, spec)).publish.blends == {"mix": spec}


def test_kopt_reads_a_blend_as_the_runtime_does():
    for spec in ("af_a(2)+af_b(1)", "af_a:2,af_b:1"):
        total = sum(w for _, w in runtime_parse_blend(spec))
        assert parse_blend(spec) == [(n, w / total) for n, w in runtime_parse_blend(spec)]
    assert parse_blend("af_a(2)+af_b(1)") == parse_blend("af_a:2,af_b:1")


@pytest.mark.parametrize("spec,msg", [("af_a:x", "not a number"), ("af_a(1)+(2)", "NAME(WEIGHT)"),
                                      ("af_a:0", "sum above zero"), (":1", "no voice name")])
def test_a_bad_blend_is_one_line_naming_the_file_and_field(tmp_path, spec, msg):
    p = _recipe(tmp_path, spec)
    with pytest.raises(RecipeError) as e:
        load_build_recipe(p)
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{p}: publish.blends.mix: ") and msg in text, text
