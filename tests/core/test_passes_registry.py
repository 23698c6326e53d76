"""Every registered pass imports, has a name, a version and a documented frozen config."""

import pytest
from pydantic import ValidationError

from kopt.core.errors import KoptError, RecipeError
from kopt.core.passes import PassConfig, get_pass, make_config, registry

EXPECTED_OPTIMIZE = {"fold", "fuse", "ort-format", "bind-shapes", "durations", "adain", "stft-conv", "snake",
                     "polyphase", "quant-scale", "snake-lut"}


def test_registry_holds_the_optimization_passes():
    assert EXPECTED_OPTIMIZE <= set(registry())


@pytest.mark.parametrize("name", sorted(registry()))
def test_pass_is_well_formed(name):
    cls = registry()[name]
    assert cls.name == name
    assert isinstance(cls.version, int) and cls.version >= 1
    assert issubclass(cls.config_cls, PassConfig)
    assert cls.summary
    cfg = cls.config_cls()  # defaults make a valid config
    assert cls.config_cls.model_config.get("frozen") is True
    assert cls.config_cls.model_config.get("extra") == "forbid"
    for fname, f in cls.config_cls.model_fields.items():
        assert f.description, f"{name}.{fname} has no description"
    if cls.config_cls.model_fields:
        first = next(iter(cls.config_cls.model_fields))
        with pytest.raises(ValidationError):
            setattr(cfg, first, getattr(cfg, first))  # frozen
    with pytest.raises(RecipeError, match="no_such_field"):
        make_config(cls, {"no_such_field": 1})
    if cls.equivalent:
        assert cls.tolerance is not None and cls.tolerance >= 0
    d = cls.describe()
    assert d["name"] == name and set(d["config"]) == set(cls.config_cls.model_fields)


def test_unknown_pass_lists_the_known_ones():
    with pytest.raises(KoptError, match="fold"):
        get_pass("no-such-pass")


def test_passes_cli_lists_every_pass_as_json():
    import json

    from typer.testing import CliRunner

    from kopt.cli.main import app

    res = CliRunner().invoke(app, ["--json", "passes"])
    assert res.exit_code == 0, res.output
    names = {p["name"] for p in json.loads(res.output)["passes"]}
    assert names == set(registry())
