"""engine.name auto, engine.quality and engine.tta: defaults, checks, profiles, and the CLI that mirrors them."""

from __future__ import annotations

import pytest

from midframe.cli import build_parser
from midframe.config import Config, EngineConfig, config_from_mapping
from midframe.config._sections import EngineConfig as Section
from midframe.engine.interpolators import ENGINES
from midframe.errors import ConfigError


def test_defaults_are_auto_and_standard_quality():
    engine = Config().engine
    assert (engine.name, engine.quality, engine.tta) == ("auto", "standard", 4)


def test_the_config_names_exactly_the_registry_s_engines():
    assert set(Section.model_fields["name"].annotation.__args__) == set(ENGINES)


@pytest.mark.parametrize(("engine", "key"), [
    ({"quality": "ultra"}, "engine.quality"),
    ({"tta": 3}, "engine.tta"),
    ({"tta": 8}, "engine.tta"),
    ({"name": "automatic"}, "engine.name"),
])
def test_bad_values_name_their_key(engine, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_mapping({"engine": engine})


def test_profiles_take_the_new_keys():
    config = config_from_mapping({"engine": {"name": "rife"}, "profiles": {
        "best": {"engine": {"name": "auto", "quality": "high", "tta": 2}}}})
    best = config.effective("best").engine
    assert (best.name, best.quality, best.tta) == ("auto", "high", 2)
    assert config.effective(None).engine.quality == "standard"
    with pytest.raises(ConfigError, match=r"profiles\.best\.engine\.quality"):
        config_from_mapping({"profiles": {"best": {"engine": {"quality": "best"}}}})


def test_the_cli_offers_the_registry_and_both_qualities(capsys):
    parser = build_parser()
    args = parser.parse_args(["interpolate", "in.mp4", "-o", "out.mp4", "--engine", "auto", "--quality", "high"])
    assert (args.engine, args.quality) == ("auto", "high")
    for name in ENGINES:
        assert parser.parse_args(["interpolate", "a", "-o", "b", "--engine", name]).engine == name
    with pytest.raises(SystemExit):
        parser.parse_args(["interpolate", "a", "-o", "b", "--quality", "ultra"])
    assert "invalid choice" in capsys.readouterr().err
    assert parser.parse_args(["interpolate", "a", "-o", "b"]).quality is None  # the config's value stays


def test_engine_settings_validate_alone():
    assert EngineConfig(quality="high").tta == 4
    with pytest.raises(ValueError):
        EngineConfig(tta=1)
