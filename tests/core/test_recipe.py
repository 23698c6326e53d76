"""Recipe schema: every recipe in recipes/ loads; bad ones name the file, the field and the problem."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kopt.core.errors import RecipeError
from kopt.core.recipe import load_recipe, one_variant, validate_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").glob("*.toml")) + sorted((REPO / "recipes").glob("*.json"))


def test_recipes_folder_is_not_empty():
    assert any(p.name == "optimize.toml" for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads(path):
    from kopt.pipeline.recipe import BuildRecipe, load_build_recipe

    r = load_build_recipe(path)  # build recipes (default, ci) and pass-only ones (optimize)
    assert r.variants
    # round trip: the whole recipe, and the pass part through its TOML-shaped dump
    assert validate_recipe(r.model_dump(mode="json", by_alias=True), schema=BuildRecipe) == r
    assert validate_recipe(r.dump()).variants == r.variants


GOOD = """
name = "t"
input = "reference"
[[variants]]
name = "a"
passes = [{ pass = "fuse", config = { level = "basic" } }]
"""


def _write(tmp_path, text, name="r.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_good_recipe(tmp_path):
    r = load_recipe(_write(tmp_path, GOOD))
    assert r.variants[0].passes[0].pass_name == "fuse"
    assert r.variants[0].passes[0].config == {"level": "basic"}


@pytest.mark.parametrize("text,field,problem", [
    (GOOD + "\nbogus = 1\n", "bogus", "unknown field"),
    (GOOD.replace('name = "a"', 'name = "a"\ncolour = "red"'), "variants[0].colour", "unknown field"),
    (GOOD.replace('"fuse"', '"fusee"'), "variants[0].passes[0]", "unknown pass 'fusee'"),
    (GOOD.replace('"basic"', '"turbo"'), "variants[0].passes[0]", "level"),
    (GOOD.replace('level = "basic"', 'lvl = "basic"'), "variants[0].passes[0]", "lvl"),
    (GOOD.replace('passes = [{ pass = "fuse", config = { level = "basic" } }]', "passes = []"),
     "variants[0].passes", "at least 1"),
    (GOOD + GOOD.split("input = \"reference\"")[1], "(top level)", "used twice"),
    (GOOD.replace('name = "a"', 'name = "a b"'), "variants[0].name", "letters, digits"),
    ('name = "t"\n', "variants", "required"),
])
def test_bad_recipe_names_file_field_and_problem(tmp_path, text, field, problem):
    p = _write(tmp_path, text)
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert str(p) in msg and field in msg and problem in msg, msg
    assert "\n" not in msg


def test_not_toml(tmp_path):
    p = _write(tmp_path, "name = [unclosed")
    with pytest.raises(RecipeError, match=f"{p}: not valid TOML"):
        load_recipe(p)


def test_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.toml")


def test_json_recipe(tmp_path):
    data = {"input": "base", "variants": [{"name": "f", "passes": [{"pass": "fold"}]}]}
    r = load_recipe(_write(tmp_path, json.dumps(data), "r.json"))
    assert r.input == "base" and r.variants[0].passes[0].config == {}


def test_one_variant_and_toml_round_trip(tmp_path):
    r = one_variant("m.onnx", [("fold", {}), ("fuse", {"level": "extended"})])
    assert r.variants[0].name == "fold-fuse"
    back = load_recipe(_write(tmp_path, r.to_toml()))
    assert back == r


def test_cli_dry_run_prints_the_recipe():
    from kopt.cli.main import app

    res = CliRunner().invoke(app, ["optimize", "some.onnx", "--pass", "fuse", "--set", "level=basic",
                                   "--name", "v1", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert 'pass = "fuse"' in res.output and 'level = "basic"' in res.output and 'name = "v1"' in res.output
    res = CliRunner().invoke(app, ["optimize", "some.onnx", "--pass", "fold", "--dry-run", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["variants"][0]["passes"] == [{"pass": "fold"}]


def test_cli_recipe_dry_run_with_input_override():
    from kopt.cli.main import app

    res = CliRunner().invoke(app, ["optimize", "--recipe", str(REPO / "recipes" / "optimize.toml"),
                                   "--input", "base", "--dry-run", "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["input"] == "base" and all("input" not in v for v in data["variants"])


def test_cli_bad_set_is_one_line_error():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "kopt.cli.main", "optimize", "m.onnx", "--pass", "fuse",
                          "--set", "level=turbo", "--dry-run"], capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.startswith("kopt: error: command line: variants[0].passes[0]: pass 'fuse' config field 'level'")


@pytest.mark.parametrize("pass_name,config,field,problem", [
    ("int4", "{ block_size = 24 }", "'block_size'", "24: use a power of 2 >= 16"),
    ("int4", '{ op_types = ["Conv"] }', "'op_types'", "MatMul and Gather only"),
    ("hybrid", '{ precision = {} }', "pass 'hybrid'", "would change nothing"),
    ("int8-static", "{ calib_sentences = 0 }", "'calib_sentences'", "0: use 1 to "),
    ("int8-static", "{ calib_sentences = 100000 }", "'calib_sentences'", "100000: use 1 to "),
    ("hybrid", "{ calib_sentences = 0 }", "'calib_sentences'", "0: use 1 to "),
    ("int8-static", "{ calib_speed_min = 1.5, calib_speed_max = 1.0 }", "pass 'int8-static'", "calib_speed_min 1.5"),
])
def test_pass_config_checks_fail_when_the_recipe_loads(tmp_path, pass_name, config, field, problem):
    """Config checks live in the config models: a bad recipe fails at load, before any build work."""
    text = f'input = "m.onnx"\n[[variants]]\nname = "a"\npasses = [{{ pass = "{pass_name}", config = {config} }}]\n'
    p = _write(tmp_path, text)
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: variants[0].passes[0]: pass '{pass_name}' config field"), msg
    assert field in msg and problem in msg, msg


def test_one_reader_for_recipes_sections_and_settings(tmp_path):
    """Recipes, their sections (kopt bench/quality --recipe) and settings files (select/compare
    --settings) are read by one reader and validated by one function: same formats, same errors."""
    from kopt.core.recipe import read_file, read_section
    from kopt.select.settings import load_settings

    toml = _write(tmp_path, '[bench]\nthreads = 3\n[select]\nspeed_tie_rel = 0.05\n')
    js = _write(tmp_path, json.dumps({"bench": {"threads": 3}, "select": {"speed_tie_rel": 0.05}}), "r.json")
    for p in (toml, js):
        assert read_section(p, "bench") == {"threads": 3}
        assert load_settings(p).select.speed_tie_rel == 0.05
    bad = _write(tmp_path, json.dumps({"select": {"speed_tie_rel": "fast"}}), "bad.json")
    with pytest.raises(RecipeError, match=r"bad.json: select.speed_tie_rel: "):
        load_settings(bad)
    with pytest.raises(RecipeError, match=r"x.yaml: YAML files need PyYAML|x.yaml: not valid YAML"):
        read_file(_write(tmp_path, "a: [", "x.yaml"))
    with pytest.raises(RecipeError, match=r"r.ini: recipe files are .toml, .json or .yaml"):
        read_file(_write(tmp_path, "[x]", "r.ini"))
    with pytest.raises(RecipeError, match=r"settings file not found"):
        load_settings(tmp_path / "none.toml")


def test_bench_section_error_names_file_and_field(tmp_path):
    from kopt.cli.main import app

    p = _write(tmp_path, '[bench]\nthreads = "many"\n')
    res = CliRunner().invoke(app, ["bench", "--recipe", str(p), "--dry-run", "x.onnx"])
    assert res.exit_code == 1
    assert f"{p}: threads: " in str(res.exception), res.exception
